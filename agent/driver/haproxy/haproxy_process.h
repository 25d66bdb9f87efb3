#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace meridian::agent::haproxy {

// Runs `haproxy -c -f <config>`. OK when HAProxy accepts the file; InvalidArgument carrying
// HAProxy's own alerts when it does not.
absl::Status CheckHaproxyConfig(const std::string& haproxy_bin, const std::string& config_path,
                                absl::Duration timeout = absl::Seconds(30));

struct MasterLaunch {
  std::string haproxy_bin;
  std::string config_path;
  std::string pid_file;
  std::string master_socket;  // master CLI (-S)
  std::string log_path;       // stdout and stderr of the master and its workers
};

// Starts `haproxy -W -db` (master-worker, master in the foreground) as a child in its own
// process group, with a clean signal mask and no inherited descriptors. Returns the master pid.
absl::StatusOr<pid_t> SpawnHaproxyMaster(const MasterLaunch& launch);

// Writes `contents` to a temporary file next to `path`, fsyncs it, renames it over `path` and
// fsyncs the directory, so readers see the old file or the new one, never a mix.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, mode_t mode);

// HAProxy's verdict without its banner: its ALERT lines (else all of `output`).
std::string HaproxyAlerts(const std::string& output);

// Size of the file at `path` (0 if it does not exist).
int64_t FileSize(const std::string& path);
// What the file at `path` holds past `offset`, at most `max_bytes` (empty if unreadable).
std::string ReadFileFrom(const std::string& path, int64_t offset, int64_t max_bytes = 65536);

}  // namespace meridian::agent::haproxy
