#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/applied_state.h"

namespace meridian::agent {

// The last applied state on disk, `<work_dir>/snapshot.pb` (meridian.v1.AgentSnapshot), so that
// the proxy can be started from it while the control plane is unreachable. Written atomically:
// a temporary file (mode 0600: certificates carry private keys) is written and fsynced, renamed
// over the old one, and the directory fsynced; a crash leaves the old or the new file, whole.
// Thread-compatible: one writer.
class SnapshotStore {
 public:
  // `environment`, `node_id`: whose snapshot this is; Load refuses another environment's.
  SnapshotStore(std::string work_dir, std::string environment, std::string node_id);

  // NotFound when nothing was saved yet; DataLoss when the file does not parse;
  // FailedPrecondition when it holds another environment's config.
  absl::StatusOr<AppliedState> Load() const;
  absl::Status Save(const AppliedState& state);

  const std::string& path() const { return path_; }

 private:
  const std::string work_dir_;
  const std::string path_;
  const std::string environment_;
  const std::string node_id_;
};

}  // namespace meridian::agent
