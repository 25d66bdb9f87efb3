#include "controlplane/ctl/commands.h"

#include <fstream>
#include <iterator>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "controlplane/ctl/format.h"
#include "controlplane/ctl/manifest.h"
#include "controlplane/ctl/yaml_json.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;

constexpr char kListPageSize[] = "500";
constexpr absl::Duration kWatchReconnectPause = absl::Milliseconds(200);

// The server's JSON as is for -o json/yaml; `table` renders the human view otherwise.
template <typename TableView>
void Print(const CommandContext& context, const json& value, TableView table) {
  switch (context.flags.output) {
    case OutputFormat::kJson:
      context.out << value.dump(2) << "\n";
      break;
    case OutputFormat::kYaml:
      context.out << JsonToYaml(value);
      break;
    case OutputFormat::kTable:
      context.out << table();
      break;
  }
}

std::string Number(int64_t value) { return value > 0 ? absl::StrCat(value) : ""; }

// The environment filter of history, diff and watch: -e, unless -A asks for all of them.
std::string EnvironmentFilter(const CommandContext& context, bool all_environments) {
  return all_environments ? "" : context.flags.environment;
}

absl::StatusOr<std::string> OptionalKind(const std::string& kind) {
  if (kind.empty()) return std::string();
  return CanonicalKind(kind);
}

absl::StatusOr<std::string> ReadInput(const CommandContext& context, const std::string& file) {
  if (file == "-") {
    return std::string(std::istreambuf_iterator<char>(context.in),
                       std::istreambuf_iterator<char>());
  }
  std::ifstream stream(file, std::ios::binary);
  if (!stream) return absl::NotFoundError(absl::StrCat(file, ": cannot open"));
  std::ostringstream text;
  text << stream.rdbuf();
  if (stream.bad()) return absl::DataLossError(absl::StrCat(file, ": read error"));
  return text.str();
}

int64_t IntOr(const json& object, const char* name, int64_t fallback) {
  auto it = object.find(name);
  return it != object.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

bool Converged(const json& status) {
  const auto converged = status.find("converged");
  return converged != status.end() && *converged == true;
}

// POST /api/v1/revisions/{revision}/wait: the revision's status once it converged or the
// timeout passed, whichever is first.
absl::StatusOr<json> AwaitConvergence(const CommandContext& context, int64_t revision,
                                      absl::Duration timeout) {
  const std::string timeout_text = absl::StrCat(absl::ToInt64Milliseconds(timeout), "ms");
  absl::StatusOr<json> status = context.client.Post(
      absl::StrCat("/api/v1/revisions/", revision, "/wait",
                   QueryString({{"timeout", timeout_text}})),
      json::object());
  if (status.ok() && !Converged(*status)) {
    context.err << "revision " << revision << " has not converged after "
                << absl::FormatDuration(timeout) << "\n";
  }
  return status;
}

// Prints a write's result (`table` for the human view); with --wait, first waits for its
// revision and adds the status: after the table, or as "convergence" in JSON and YAML.
template <typename TableView>
absl::StatusOr<bool> PrintWrite(const CommandContext& context, json result,
                                const ConvergenceWait& wait, TableView table) {
  if (!wait.enabled) {
    Print(context, result, table);
    return true;
  }
  absl::StatusOr<json> status =
      AwaitConvergence(context, IntOr(result, "revision", 0), wait.timeout);
  if (!status.ok()) {
    // The write itself succeeded: say so before the error about waiting.
    Print(context, result, table);
    return status.status();
  }
  const bool converged = Converged(*status);
  if (context.flags.output == OutputFormat::kTable) {
    context.out << table() << RevisionStatusText(*status);
  } else {
    result["convergence"] = std::move(*status);
    Print(context, result, [] { return std::string(); });
  }
  return converged;
}

// The server names a change of a batch by its index ("changes[1].put.spec: ..."); name the
// document and resource the operator wrote instead.
absl::Status DescribeBatchError(const absl::Status& status, const json& request) {
  absl::string_view message = status.message();
  if (!absl::ConsumePrefix(&message, "changes[")) return status;
  const size_t close = message.find(']');
  size_t index = 0;
  if (close == absl::string_view::npos || !absl::SimpleAtoi(message.substr(0, close), &index) ||
      index >= request["changes"].size()) {
    return status;
  }
  absl::string_view rest = message.substr(close + 1);
  absl::ConsumePrefix(&rest, ".put");
  if (!absl::ConsumePrefix(&rest, ".") && !absl::ConsumePrefix(&rest, ":")) return status;
  const json& put = request["changes"][index]["put"];
  return absl::Status(status.code(), absl::StrCat("document ", index + 1, " (",
                                                  put.value("kind", ""), "/", put.value("name", ""),
                                                  "): ", absl::StripLeadingAsciiWhitespace(rest)));
}

// The newest revision that changed `environment` (empty: any environment).
absl::StatusOr<int64_t> NewestRevision(const CommandContext& context,
                                       const std::string& environment) {
  absl::StatusOr<json> history = context.client.Get(
      "/api/v1/history", {{"environment", environment}, {"order", "newest"}, {"limit", "1"}});
  if (!history.ok()) return history.status();
  const json& entries = (*history)["entries"];
  if (!entries.empty() && IntOr(entries.back(), "revision", 0) > 0) {
    return IntOr(entries.back(), "revision", 0);
  }
  return absl::NotFoundError(
      environment.empty()
          ? std::string("no revision in the history yet")
          : absl::StrCat("no revision in the history has changed environment ", environment,
                         " (name a REVISION, or -A for the newest of any environment)"));
}

std::string NoNodesText(const std::string& status, const std::string& environment) {
  const std::string what =
      status.empty() || status == "all" ? "nodes" : absl::StrCat(status, " nodes");
  if (environment.empty()) return absl::StrCat("no ", what, "\n");
  return absl::StrCat("no ", what, " in environment ", environment, " (-A: all of them)\n");
}

}  // namespace

absl::Status RunGet(const CommandContext& context, const GetArgs& args) {
  absl::StatusOr<std::string> kind = CanonicalKind(args.kind);
  if (!kind.ok()) return kind.status();
  absl::StatusOr<json> resource =
      context.client.Get(ResourcePath(context.flags.environment, *kind, args.name),
                         {{"at_revision", Number(args.at_revision)}});
  if (!resource.ok()) return resource.status();
  Print(context, *resource, [&] { return ResourceTable(json::array({*resource})); });
  return absl::OkStatus();
}

absl::Status RunList(const CommandContext& context, const ListArgs& args) {
  absl::StatusOr<std::string> kind = CanonicalKind(args.kind);
  if (!kind.ok()) return kind.status();
  json resources = json::array();
  int64_t revision = args.at_revision;
  std::string page_token;
  do {
    absl::StatusOr<json> page = context.client.Get(ResourcePath(context.flags.environment, *kind),
                                                   {{"label_selector", args.label_selector},
                                                    {"page_size", kListPageSize},
                                                    {"page_token", page_token},
                                                    {"at_revision", Number(revision)}});
    if (!page.ok()) return page.status();
    revision = IntOr(*page, "revision", revision);
    for (json& resource : (*page)["resources"]) resources.push_back(std::move(resource));
    page_token = page->value("next_page_token", "");
  } while (!page_token.empty());
  const json list = {{"resources", resources}, {"revision", revision}};
  Print(context, list, [&] {
    if (resources.empty()) {
      return absl::StrCat("no ", *kind, " in environment ", context.flags.environment, "\n");
    }
    return ResourceTable(resources);
  });
  return absl::OkStatus();
}

absl::StatusOr<bool> RunApply(const CommandContext& context, const ApplyArgs& args) {
  std::vector<json> documents;
  for (const std::string& file : args.files) {
    absl::StatusOr<std::string> text = ReadInput(context, file);
    if (!text.ok()) return text.status();
    absl::StatusOr<std::vector<json>> parsed =
        ParseDocuments(*text, file == "-" ? "<stdin>" : file);
    if (!parsed.ok()) return parsed.status();
    for (json& document : *parsed) documents.push_back(std::move(document));
  }
  ApplyDefaults defaults;
  defaults.environment = context.flags.environment;
  defaults.environment_explicit = context.flags.environment_explicit;
  defaults.comment = context.flags.comment;
  absl::StatusOr<json> request = BuildApplyRequest(documents, defaults);
  if (!request.ok()) return request.status();
  absl::StatusOr<json> result = context.client.Post("/api/v1/changes", *request);
  if (!result.ok()) return DescribeBatchError(result.status(), *request);
  const json& written = *result;
  return PrintWrite(context, written, args.wait, [&] {
    return absl::StrCat(WrittenResourcesText(written["resources"], context.flags.environment),
                        "revision ", IntOr(written, "revision", 0), "\n");
  });
}

absl::StatusOr<bool> RunDelete(const CommandContext& context, const DeleteArgs& args) {
  absl::StatusOr<std::string> kind = CanonicalKind(args.kind);
  if (!kind.ok()) return kind.status();
  json body = json::object();
  if (!context.flags.comment.empty()) body["comment"] = context.flags.comment;
  absl::StatusOr<json> result = context.client.Delete(
      ResourcePath(context.flags.environment, *kind, args.name), body, args.if_version);
  if (!result.ok()) return result.status();
  const int64_t revision = IntOr(*result, "revision", 0);
  return PrintWrite(context, *result, args.wait, [&] {
    return absl::StrCat(*kind, "/", args.name, " deleted (revision ", revision, ")\n");
  });
}

absl::Status RunHistory(const CommandContext& context, const HistoryArgs& args) {
  absl::StatusOr<std::string> kind = OptionalKind(args.kind);
  if (!kind.ok()) return kind.status();
  if (!args.name.empty() && kind->empty()) {
    return absl::InvalidArgumentError("--name requires --kind");
  }
  const std::string environment = EnvironmentFilter(context, args.all_environments);
  absl::StatusOr<json> history =
      context.client.Get("/api/v1/history", {{"environment", environment},
                                             {"kind", *kind},
                                             {"name", args.name},
                                             {"since_revision", Number(args.since)},
                                             {"limit", Number(args.limit)}});
  if (!history.ok()) return history.status();
  Print(context, *history, [&] {
    const json& entries = (*history)["entries"];
    if (entries.empty()) {
      return environment.empty()
                 ? std::string("no history\n")
                 : absl::StrCat("no history in environment ", environment, " (-A: all of them)\n");
    }
    return HistoryTable(entries, environment);
  });
  return absl::OkStatus();
}

absl::Status RunDiff(const CommandContext& context, const DiffArgs& args) {
  const std::string environment = EnvironmentFilter(context, args.all_environments);
  absl::StatusOr<json> diff =
      context.client.Get("/api/v1/diff", {{"from_revision", absl::StrCat(args.from)},
                                          {"to_revision", Number(args.to)},
                                          {"environment", environment}});
  if (!diff.ok()) return diff.status();
  Print(context, *diff, [&] {
    const json& changes = (*diff)["changes"];
    if (changes.empty()) {
      return absl::StrCat("no changes between revision ", args.from, " and ",
                          args.to > 0 ? absl::StrCat("revision ", args.to) : "now", "\n");
    }
    return DiffText(changes, environment);
  });
  return absl::OkStatus();
}

absl::StatusOr<bool> RunRollback(const CommandContext& context, const RollbackArgs& args) {
  absl::StatusOr<std::string> kind = OptionalKind(args.kind);
  if (!kind.ok()) return kind.status();
  if (!args.name.empty() && kind->empty()) {
    return absl::InvalidArgumentError("--name requires --kind");
  }
  json request = {{"to_revision", args.to},
                  {"environment", context.flags.environment},
                  {"comment", context.flags.comment}};
  if (!kind->empty()) request["kind"] = *kind;
  if (!args.name.empty()) request["name"] = args.name;
  absl::StatusOr<json> result = context.client.Post("/api/v1/rollback", request);
  if (!result.ok()) return result.status();
  const int64_t revision = IntOr(*result, "revision", 0);
  std::string text;
  if (context.flags.output == OutputFormat::kTable) {
    // The write response lists what was put, not what was deleted; the revision record has
    // every change.
    absl::StatusOr<json> record =
        context.client.Get(absl::StrCat("/api/v1/revisions/", revision));
    if (!record.ok()) return record.status();
    text = absl::StrCat(ChangeRecordsText((*record)["changes"], context.flags.environment),
                        "rolled back to revision ", args.to, " as revision ", revision, "\n");
  }
  return PrintWrite(context, *result, args.wait, [&] { return text; });
}

absl::Status RunWatch(const CommandContext& context, const WatchArgs& args) {
  absl::StatusOr<std::string> kind = OptionalKind(args.kind);
  if (!kind.ok()) return kind.status();
  const std::string environment = EnvironmentFilter(context, args.all_environments);
  int64_t since = args.since;
  if (since < 0) {
    // "From now on" must survive a reconnect, so pin "now" to a revision first.
    absl::StatusOr<json> list = context.client.Get(
        ResourcePath(context.flags.environment, "services"), {{"page_size", "1"}});
    if (!list.ok()) return list.status();
    since = IntOr(*list, "revision", 0);
  }
  if (context.flags.output == OutputFormat::kTable) context.out << WatchHeader() << std::flush;

  // A revision's events may straddle a reconnect: resume at that revision and skip the
  // events of it already printed.
  int64_t current = 0;
  int64_t printed_of_current = 0;
  int64_t to_skip = 0;
  absl::Status stream_error;
  auto on_line = [&](absl::string_view line) {
    json event = json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
    if (event.is_discarded()) return true;  // not ours to judge; skip a damaged line
    if (event.contains("error")) {
      stream_error = StatusFromResponse(0, event["error"].dump());
      return false;
    }
    const int64_t revision = IntOr(event, "revision", 0);
    if (revision == current && to_skip > 0) {
      --to_skip;
      return true;
    }
    if (revision != current) printed_of_current = 0;
    current = revision;
    ++printed_of_current;
    if (context.flags.output == OutputFormat::kTable) {
      context.out << WatchEventLine(event, environment);
    } else if (context.flags.output == OutputFormat::kJson) {
      context.out << event.dump() << "\n";  // one event per line, as jq expects a stream
    } else {
      context.out << "---\n" << JsonToYaml(event);
    }
    context.out.flush();
    return true;
  };
  while (true) {
    const int64_t resume_after = current > 0 ? current - 1 : since;
    to_skip = current > 0 ? printed_of_current : 0;
    absl::Status status = context.client.Stream("/api/v1/watch",
                                                {{"since_revision", absl::StrCat(resume_after)},
                                                 {"environment", environment},
                                                 {"kind", *kind}},
                                                args.idle_timeout, on_line);
    if (!stream_error.ok()) return stream_error;
    if (!absl::IsDeadlineExceeded(status)) return status;
    // Events keep accumulating server-side meanwhile; the pause only keeps a server that
    // drops every stream from being hammered.
    absl::SleepFor(kWatchReconnectPause);
  }
}

absl::StatusOr<bool> RunStatus(const CommandContext& context, const StatusArgs& args) {
  int64_t revision = args.revision;
  if (revision <= 0) {
    absl::StatusOr<int64_t> newest =
        NewestRevision(context, EnvironmentFilter(context, args.all_environments));
    if (!newest.ok()) return newest.status();
    revision = *newest;
  }
  absl::StatusOr<json> status =
      args.wait.enabled
          ? AwaitConvergence(context, revision, args.wait.timeout)
          : context.client.Get(absl::StrCat("/api/v1/revisions/", revision, "/status"));
  if (!status.ok()) return status.status();
  Print(context, *status, [&] { return RevisionStatusText(*status); });
  return Converged(*status);
}

absl::Status RunNodes(const CommandContext& context, const NodesArgs& args) {
  const std::string environment = EnvironmentFilter(context, args.all_environments);
  absl::StatusOr<json> nodes =
      context.client.Get("/api/v1/nodes", {{"environment", environment}, {"status", args.status}});
  if (!nodes.ok()) return nodes.status();
  Print(context, *nodes, [&] {
    const json& list = (*nodes)["nodes"];
    return list.empty() ? NoNodesText(args.status, environment) : NodesTable(list);
  });
  return absl::OkStatus();
}

}  // namespace meridian::ctl
