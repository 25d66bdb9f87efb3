#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/driver/haproxy/haproxy_config.h"

namespace meridian::agent::haproxy {

// One server as `show servers state` reports it.
struct RuntimeServer {
  std::string backend;
  std::string server;
  std::string address;
  uint32_t port = 0;
  int weight = 0;       // srv_uweight
  int admin_state = 0;  // SRV_ADMF_* bits
  int op_state = 0;     // 0 stopped, 1 starting, 2 running, 3 stopping

  // What the admin state amounts to (maintenance wins over drain).
  ServerState state() const;
};

// `show proc` on the master CLI.
struct ProcessList {
  int master_pid = 0;
  int reloads = 0;
  int failed_reloads = 0;
  std::vector<int> workers;  // current workers (not the old ones still finishing)
};

// A client of HAProxy's CLI on a unix socket: the stats socket (runtime API of the current
// worker) or the master CLI (-S). One command per connection; any reply other than the
// documented success text is a failure. Stateless, so thread-safe.
class HaproxyRuntimeClient {
 public:
  explicit HaproxyRuntimeClient(std::string socket_path, absl::Duration timeout = absl::Seconds(2));

  // Sends one command and returns the whole reply.
  absl::StatusOr<std::string> Execute(absl::string_view command) const;

  absl::Status SetServerAddress(const std::string& backend, const std::string& server,
                                const std::string& address, uint32_t port) const;
  absl::Status SetServerWeight(const std::string& backend, const std::string& server,
                               int weight) const;
  absl::Status SetServerState(const std::string& backend, const std::string& server,
                              ServerState state) const;
  absl::StatusOr<std::vector<RuntimeServer>> ShowServersState() const;
  // Master CLI only.
  absl::StatusOr<ProcessList> ShowProc() const;

  const std::string& socket_path() const { return socket_path_; }

 private:
  // Runs a `set ...` command whose success reply is empty.
  absl::Status ExecuteExpectingEmpty(const std::string& command) const;

  std::string socket_path_;
  absl::Duration timeout_;
};

// Parses the reply of `show servers state` (exposed for tests).
absl::StatusOr<std::vector<RuntimeServer>> ParseServersState(absl::string_view reply);
// Parses the reply of `show proc` (exposed for tests).
absl::StatusOr<ProcessList> ParseProcessList(absl::string_view reply);

}  // namespace meridian::agent::haproxy
