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

// --wait and --timeout of `status` and of the writes (`what` says what --wait waits for).
void AddWaitFlags(CLI::App* command, ConvergenceWait& wait, const std::string& what) {
  CLI::Option* wait_flag = command->add_flag(
      "--wait", wait.enabled,
      absl::StrCat(what, " until every connected node in scope has applied or rejected it"));
  command
      ->add_option_function<std::string>(
          "--timeout", [&wait](const std::string& text) { wait.timeout = *ParseWaitTimeout(text); },
          "how long --wait waits: 30s, 500ms, 2m (default 30s, at most 10m)")
      ->type_name("DURATION")
      ->check(CLI::Validator(
          [](std::string& text) {
            return ParseWaitTimeout(text).has_value()
                       ? std::string()
                       : absl::StrCat("not a duration: ", text, " (e.g. 30s, 500ms, 2m)");
          },
          ""))
      ->needs(wait_flag);
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

// A write's runner: a --wait that timed out exits with kExitNotConverged.
template <typename Args>
void AddWriteCommand(CommandLine& line, CLI::App* command, Args& args,
                     absl::StatusOr<bool> (*run)(const CommandContext&, const Args&)) {
  AddWaitFlags(command, args.wait, "then wait for the new revision");
  command->footer(
      "Exit status: 0 written (with --wait: and converged); 3 written, but not converged\n"
      "within --timeout; 1 error; 2 usage error.");
  line.commands.emplace_back(command, [&line, &args, run](const CommandContext& c) -> absl::Status {
    absl::StatusOr<bool> converged = run(c, args);
    if (!converged.ok()) return converged.status();
    if (!*converged) line.exit_code = kExitNotConverged;
    return absl::OkStatus();
  });
}

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
  AddWriteCommand(line, apply, line.apply, &RunApply);

  CLI::App* remove = app.add_subcommand("delete", "delete one resource");
  remove->add_option("kind", line.remove.kind, "resource kind")->required();
  remove->add_option("name", line.remove.name, "resource name")->required();
  remove->add_option("--if-version", line.remove.if_version,
                     "only if the resource is still at this version");
  AddWriteCommand(line, remove, line.remove, &RunDelete);
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
  AddWriteCommand(line, rollback, line.rollback, &RunRollback);

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
  AddWaitFlags(status, line.status.wait, "first wait");
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
      "Exit status: 0 success; 1 error; 2 usage error; 3 not converged (`status`, or a write's\n"
      "--wait that timed out).\n");
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
  for (const ConvergenceWait* wait :
       {&line.status.wait, &line.apply.wait, &line.remove.wait, &line.rollback.wait}) {
    if (wait->enabled) {
      line.client.timeout = std::max(line.client.timeout, wait->timeout + kWaitRequestMargin);
    }
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
