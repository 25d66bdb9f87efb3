#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/driver/haproxy/haproxy_config.h"
#include "agent/driver/haproxy/haproxy_runtime.h"
#include "agent/driver/proxy_driver.h"

namespace meridian::agent::haproxy {

// Runs HAProxy 2.6 in master-worker mode and keeps it serving the latest snapshot: endpoint-only
// changes go through the runtime API (no reload), everything else is validated with
// `haproxy -c` and applied by a hitless reload (listeners pass to the new worker).
// Thread-compatible: one thread drives it, as ProxyDriver requires.
class HaproxyDriver : public ProxyDriver {
 public:
  struct Options {
    std::string haproxy_bin = "/usr/sbin/haproxy";
    std::string work_dir;  // config, sockets, certificates, logs
    std::string bind_address = "0.0.0.0";
    absl::Duration start_timeout = absl::Seconds(10);
    absl::Duration reload_timeout = absl::Seconds(10);
    absl::Duration stop_timeout = absl::Seconds(10);
    // Stop HAProxy when the driver is destroyed. A running HAProxy outlives the agent
    // otherwise, and the next Start adopts it.
    bool stop_on_destruction = true;
  };

  explicit HaproxyDriver(Options options);
  ~HaproxyDriver() override;
  HaproxyDriver(const HaproxyDriver&) = delete;
  HaproxyDriver& operator=(const HaproxyDriver&) = delete;

  absl::Status Start(const ProxySnapshot& snapshot) override;
  absl::Status Apply(const ProxySnapshot& snapshot) override;
  ApplyMode last_apply_mode() const override { return last_apply_mode_; }
  absl::Status Stop() override;

  // The current worker's pid (changes on every reload), or -1 when unknown.
  int worker_pid() const;
  int master_pid() const { return master_pid_; }
  std::string config_path() const { return options_.work_dir + "/haproxy.cfg"; }

 private:
  std::string WorkPath(absl::string_view name) const;
  absl::StatusOr<RenderedConfig> Render(const ProxySnapshot& snapshot,
                                        const std::string& cert_dir) const;
  // Renders against a staging certificate directory and runs `haproxy -c` on the result;
  // touches nothing HAProxy reads.
  absl::Status Validate(const ProxySnapshot& snapshot);
  // Certificates and config file for `rendered`; `previous` is what they replace.
  absl::Status InstallFiles(const RenderedConfig& rendered);
  void RemoveStaleCertificates(const RenderedConfig& rendered);
  // Brings the running servers to `slots` through the runtime API. With `strict`, a slot the
  // running worker lacks is an error; otherwise it is skipped.
  absl::Status Reconcile(const std::vector<ServerSlot>& slots, bool strict) const;
  absl::Status SaveServerState() const;
  absl::Status Reload();
  absl::Status LaunchMaster();
  // Waits for the first worker of a new master; its alerts start at `log_offset` of the log.
  absl::Status WaitForWorker(absl::Duration timeout, int64_t log_offset);
  // A master from an earlier agent run, still serving this work dir: its pid, else -1.
  pid_t FindRunningMaster() const;
  bool MasterAlive();
  absl::Status ApplyByReload(const ProxySnapshot& snapshot, RenderedConfig rendered);

  Options options_;
  HaproxyRuntimeClient stats_;
  HaproxyRuntimeClient master_cli_;
  pid_t master_pid_ = -1;
  bool master_is_child_ = false;
  std::optional<RenderedConfig> current_;
  ApplyMode last_apply_mode_ = ApplyMode::kNoChange;
};

}  // namespace meridian::agent::haproxy
