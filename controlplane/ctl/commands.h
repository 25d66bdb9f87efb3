#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "controlplane/ctl/api_client.h"

namespace meridian::ctl {

// The meridianctl subcommands, each one REST conversation with meridian-cp and its output.
// Errors come back as absl::Status carrying the server's message; cli.cc prints them.

enum class OutputFormat { kTable, kJson, kYaml };

struct GlobalFlags {
  std::string environment = "default";
  bool environment_explicit = false;  // given with -e rather than defaulted
  std::string comment;
  OutputFormat output = OutputFormat::kTable;
};

struct CommandContext {
  ApiClient& client;
  const GlobalFlags& flags;
  std::istream& in;  // `apply -f -`
  std::ostream& out;
  std::ostream& err;
};

// --wait on status and on writes: wait until every connected node in scope has applied or
// rejected the revision, for at most `timeout`.
struct ConvergenceWait {
  bool enabled = false;
  absl::Duration timeout = absl::Seconds(30);
};

struct GetArgs {
  std::string kind;
  std::string name;
  int64_t at_revision = 0;
};
struct ListArgs {
  std::string kind;
  std::string label_selector;
  int64_t at_revision = 0;
};
struct ApplyArgs {
  std::vector<std::string> files;  // "-" = standard input
  ConvergenceWait wait;
};
struct DeleteArgs {
  std::string kind;
  std::string name;
  int64_t if_version = 0;
  ConvergenceWait wait;
};
struct HistoryArgs {
  std::string kind;
  std::string name;
  int64_t since = 0;
  int64_t limit = 0;  // 0 = the server's default
  bool all_environments = false;
};
struct DiffArgs {
  int64_t from = 0;
  int64_t to = 0;  // 0 = current
  bool all_environments = false;
};
struct RollbackArgs {
  int64_t to = 0;
  std::string kind;
  std::string name;
  ConvergenceWait wait;
};
struct WatchArgs {
  int64_t since = -1;  // -1 = from now on
  std::string kind;
  bool all_environments = false;
  // A stream with no event for this long reconnects, so a silently dead connection is noticed.
  absl::Duration idle_timeout = absl::Hours(1);
};
struct StatusArgs {
  // 0 = the newest revision that changed the environment (with -A: the newest revision).
  int64_t revision = 0;
  bool all_environments = false;
  ConvergenceWait wait;
};
struct NodesArgs {
  std::string status;  // connected, disconnected, or empty / "all"
  bool all_environments = false;
};

absl::Status RunGet(const CommandContext& context, const GetArgs& args);
// Follows next_page_token, pinning every page to the revision of the first.
absl::Status RunList(const CommandContext& context, const ListArgs& args);
// The writes: apply (all documents of all files as one atomic change set), delete and rollback.
// With `wait` they then wait for the new revision to converge, print its status too, and
// return whether it converged; without, they return true.
absl::StatusOr<bool> RunApply(const CommandContext& context, const ApplyArgs& args);
absl::StatusOr<bool> RunDelete(const CommandContext& context, const DeleteArgs& args);
absl::StatusOr<bool> RunRollback(const CommandContext& context, const RollbackArgs& args);
absl::Status RunHistory(const CommandContext& context, const HistoryArgs& args);
absl::Status RunDiff(const CommandContext& context, const DiffArgs& args);
// Prints events until interrupted, resuming transparently after an idle timeout or a broken
// connection (without repeating or skipping events); returns when the server cannot be
// reached or sends an error.
absl::Status RunWatch(const CommandContext& context, const WatchArgs& args);
// Prints how far a revision has reached the xDS nodes in its scope; with `wait`, first waits
// (up to the timeout) for every connected node to apply or reject it. Returns whether the
// revision converged (nothing pending).
absl::StatusOr<bool> RunStatus(const CommandContext& context, const StatusArgs& args);
absl::Status RunNodes(const CommandContext& context, const NodesArgs& args);

}  // namespace meridian::ctl
