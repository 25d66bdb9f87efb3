#include "controlplane/ctl/cli.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "controlplane/ctl/api_client.h"
#include "controlplane/ctl/commands.h"

namespace meridian::ctl {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNotConverged = 3;
// A --wait holds its request open for up to its timeout; the request may take this much longer.
constexpr absl::Duration kWaitRequestMargin = absl::Seconds(10);

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// $USER, else the login name of this uid; empty lets the server record "anonymous".
std::string DefaultActor() {
  const passwd* entry = getpwuid(getuid());
  return EnvOr("USER", entry != nullptr && entry->pw_name != nullptr ? entry->pw_name : "");
}

OutputFormat ParseOutput(const std::string& name) {
  if (name == "json") return OutputFormat::kJson;
  if (name == "yaml") return OutputFormat::kYaml;
  return OutputFormat::kTable;
}

// "30s", "500ms", "2m" (what meridian-cp accepts) or a plain number of seconds.
std::optional<absl::Duration> ParseWaitTimeout(const std::string& text) {
  absl::Duration duration;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &duration)) {
    return std::nullopt;
  }
  if (duration < absl::ZeroDuration()) return std::nullopt;
  return duration;
}

using Runner = std::function<absl::Status(const CommandContext&)>;

// Subcommands and what each runs once parsed; the argument structs outlive parsing.
struct CommandLine {
  ApiClientOptions client;
  GlobalFlags flags;
  std::string output = "table";
  int timeout_seconds = 60;
  CLI::Option* environment_option = nullptr;

  GetArgs get;
  ListArgs list;
  ApplyArgs apply;
  DeleteArgs remove;
  HistoryArgs history;
  DiffArgs diff;
  RollbackArgs rollback;
  WatchArgs watch;
  StatusArgs status;
  NodesArgs nodes;
  std::vector<std::pair<CLI::App*, Runner>> commands;
  int exit_code = 0;  // when every command succeeded
};

void AddGlobalFlags(CLI::App& app, CommandLine& line) {
  line.client.server = EnvOr("MERIDIAN_SERVER", "http://127.0.0.1:18080");
  line.client.actor = DefaultActor();
  line.flags.environment = EnvOr("MERIDIAN_ENVIRONMENT", "default");
  app.add_option("--server", line.client.server, "meridian-cp REST address ($MERIDIAN_SERVER)")
      ->capture_default_str();
  line.environment_option = app.add_option("-e,--environment", line.flags.environment,
                                           "environment to work in ($MERIDIAN_ENVIRONMENT)")
                                ->capture_default_str();
  app.add_option("--actor", line.client.actor, "who to record in history (default: $USER)");
  app.add_option("--comment", line.flags.comment, "comment recorded with the change");
  app.add_option("-o,--output", line.output, "output format")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_option("--timeout", line.timeout_seconds, "request timeout in seconds")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

void AddResourceCommands(CLI::App& app, CommandLine& line) {
  CLI::App* get = app.add_subcommand("get", "show one resource");
  get->add_option("kind", line.get.kind, "services, endpoints, routes, certificates or configs")
      ->required();
  get->add_option("name", line.get.name, "resource name")->required();
  get->add_option("--at-revision", line.get.at_revision, "as of this revision");
  line.commands.emplace_back(get, [&line](const CommandContext& c) { return RunGet(c, line.get); });

  CLI::App* list = app.add_subcommand("list", "list the resources of a kind");
  list->add_option("kind", line.list.kind, "services, endpoints, routes, certificates or configs")
      ->required();
  list->add_option("-l,--selector", line.list.label_selector,
                   "label selector, e.g. app=web,tier!=db");
  list->add_option("--at-revision", line.list.at_revision, "as of this revision");
  line.commands.emplace_back(list,
                             [&line](const CommandContext& c) { return RunList(c, line.list); });

  CLI::App* apply = app.add_subcommand(
      "apply", "create or update the resources of YAML or JSON files, as one revision");
  apply->add_option("-f,--filename", line.apply.files, "file to apply, - for standard input")
      ->required();
  line.commands.emplace_back(apply,
                             [&line](const CommandContext& c) { return RunApply(c, line.apply); });

  CLI::App* remove = app.add_subcommand("delete", "delete one resource");
  remove->add_option("kind", line.remove.kind, "resource kind")->required();
  remove->add_option("name", line.remove.name, "resource name")->required();
  remove->add_option("--if-version", line.remove.if_version,
                     "only if the resource is still at this version");
  line.commands.emplace_back(
      remove, [&line](const CommandContext& c) { return RunDelete(c, line.remove); });
}

void AddHistoryCommands(CLI::App& app, CommandLine& line) {
  CLI::App* history = app.add_subcommand("history", "show the audit history");
  history->add_option("--kind", line.history.kind, "only this kind");
  history->add_option("--name", line.history.name, "only this resource (needs --kind)");
  history->add_option("--since", line.history.since, "only revisions after this one");
  history->add_option("--limit", line.history.limit, "at most this many entries");
  history->add_flag("-A,--all-environments", line.history.all_environments,
                    "every environment, not just -e");
  line.commands.emplace_back(
      history, [&line](const CommandContext& c) { return RunHistory(c, line.history); });

  CLI::App* diff = app.add_subcommand("diff", "what changed between two revisions");
  diff->add_option("--from", line.diff.from, "from this revision")->required();
  diff->add_option("--to", line.diff.to, "to this revision (default: now)");
  diff->add_flag("-A,--all-environments", line.diff.all_environments,
                 "every environment, not just -e");
  line.commands.emplace_back(diff,
                             [&line](const CommandContext& c) { return RunDiff(c, line.diff); });

  CLI::App* rollback = app.add_subcommand(
      "rollback", "make the environment (or one kind or resource) look as at a revision");
  rollback->add_option("--to", line.rollback.to, "revision to go back to")
      ->required()
      ->check(CLI::PositiveNumber);
  rollback->add_option("--kind", line.rollback.kind, "only this kind");
  rollback->add_option("--name", line.rollback.name, "only this resource (needs --kind)");
  line.commands.emplace_back(
      rollback, [&line](const CommandContext& c) { return RunRollback(c, line.rollback); });

  CLI::App* watch = app.add_subcommand("watch", "print changes as they happen, until Ctrl-C");
  watch->add_option("--since", line.watch.since, "start after this revision (default: now)");
  watch->add_option("--kind", line.watch.kind, "only this kind");
  watch->add_flag("-A,--all-environments", line.watch.all_environments,
                  "every environment, not just -e");
  // Hidden: tests shorten it to exercise resuming.
  watch
      ->add_option_function<double>(
          "--idle-timeout",
          [&line](double seconds) { line.watch.idle_timeout = absl::Seconds(seconds); },
          "reconnect after this many seconds without an event")
      ->check(CLI::PositiveNumber)
      ->group("");
  line.commands.emplace_back(watch,
                             [&line](const CommandContext& c) { return RunWatch(c, line.watch); });
}

void AddConvergenceCommands(CLI::App& app, CommandLine& line) {
  CLI::App* status = app.add_subcommand(
      "status", "show whether a revision has reached the proxies (xDS nodes) in its scope");
  status
      ->add_option("revision", line.status.revision,
                   "revision to check (default: the newest that changed -e)")
      ->type_name("REVISION")
      ->check(CLI::Validator(
          [](std::string& text) {
            int64_t revision = 0;
            return absl::SimpleAtoi(text, &revision) && revision > 0
                       ? std::string()
                       : std::string("must be a positive integer");
          },
          ""));
  CLI::Option* wait =
      status->add_flag("--wait", line.status.wait,
                       "first wait until every connected node in scope has applied or rejected it");
  status
      ->add_option_function<std::string>(
          "--timeout",
          [&line](const std::string& text) { line.status.timeout = *ParseWaitTimeout(text); },
          "how long --wait waits: 30s, 500ms, 2m (default 30s, at most 10m)")
      ->type_name("DURATION")
      ->check(CLI::Validator(
          [](std::string& text) {
            return ParseWaitTimeout(text).has_value()
                       ? std::string()
                       : absl::StrCat("not a duration: ", text, " (e.g. 30s, 500ms, 2m)");
          },
          ""))
      ->needs(wait);
  status->add_flag("-A,--all-environments", line.status.all_environments,
                   "without REVISION: the newest revision of any environment");
  status->footer(
      "Exit status: 0 converged; 3 not converged (with --wait: not within --timeout);\n"
      "1 error; 2 usage error.");
  line.commands.emplace_back(status, [&line](const CommandContext& c) -> absl::Status {
    absl::StatusOr<bool> converged = RunStatus(c, line.status);
    if (!converged.ok()) return converged.status();
    if (!*converged) line.exit_code = kExitNotConverged;
    return absl::OkStatus();
  });

  CLI::App* nodes =
      app.add_subcommand("nodes", "list the xDS nodes (agents, proxies) and what they applied");
  nodes->add_option("--status", line.nodes.status, "only connected or disconnected nodes")
      ->check(CLI::IsMember({"connected", "disconnected", "all"}));
  nodes->add_flag("-A,--all-environments", line.nodes.all_environments,
                  "every environment, not just -e");
  line.commands.emplace_back(nodes,
                             [&line](const CommandContext& c) { return RunNodes(c, line.nodes); });
}

}  // namespace

int RunCli(int argc, const char* const* argv, std::istream& in, std::ostream& out,
           std::ostream& err) {
  CLI::App app("meridianctl: inspect and change Meridian's configuration", "meridianctl");
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  app.footer(
      "Kinds: services, endpoints, routes, certificates, configs (singular forms work too).\n"
      "Exit status: 0 success; 1 error; 2 usage error; 3 `status`: not converged.\n");
  CommandLine line;
  AddGlobalFlags(app, line);
  AddResourceCommands(app, line);
  AddHistoryCommands(app, line);
  AddConvergenceCommands(app, line);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e, out, err);
    return code == 0 ? 0 : kExitUsage;
  }
  line.flags.output = ParseOutput(line.output);
  line.flags.environment_explicit = line.environment_option->count() > 0;
  line.client.timeout = absl::Seconds(line.timeout_seconds);
  if (line.status.wait) {
    line.client.timeout = std::max(line.client.timeout, line.status.timeout + kWaitRequestMargin);
  }

  absl::StatusOr<std::unique_ptr<ApiClient>> client = ApiClient::Create(line.client);
  absl::Status status = client.status();
  if (status.ok()) {
    const CommandContext context{**client, line.flags, in, out, err};
    for (const auto& [command, run] : line.commands) {
      if (command->parsed()) status = run(context);
    }
  }
  out.flush();
  if (!status.ok()) {
    err << "error: " << status.message() << "\n";
    return kExitFailure;
  }
  return line.exit_code;
}

}  // namespace meridian::ctl
