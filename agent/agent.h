#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/admin_server.h"
#include "agent/driver/proxy_driver.h"
#include "agent/snapshot_store.h"
#include "agent/xds_client.h"

namespace meridian::agent {

struct AgentOptions {
  XdsClientOptions xds;  // control planes, node id, environment, zone, backoff
  std::string work_dir;  // holds snapshot.pb; created (0700) when missing
  std::string admin_address = "127.0.0.1:19000";  // empty: no admin server
};

// Where the config the proxy runs came from.
enum class SnapshotSource { kNone, kDisk, kControlPlane };

struct AgentStatus {
  std::string node_id;
  std::string environment;
  std::string zone;
  bool healthy = false;
  bool ready = false;
  SnapshotSource source = SnapshotSource::kNone;
  int64_t applied_revision = 0;
  std::optional<ApplyMode> last_apply_mode;
  XdsClientStatus xds;
  std::string last_error;  // newest of the xDS client's and the agent's own
  absl::Time last_error_time = absl::InfinitePast();
};

// meridian-agent: starts the proxy from the last snapshot on disk (so it serves while the
// control plane is unreachable), then follows the control plane over delta xDS, applying each
// response through the ProxyDriver, logging it, and persisting what was accepted before the
// ACK. Serves /healthz, /readyz and /status on the admin address.
// Thread-safety: Start/Stop from one thread; status() and the admin endpoints from any. The
// driver is only called from Start/Stop and, in between, from the xDS client's thread.
class Agent {
 public:
  Agent(AgentOptions options, ProxyDriver& driver);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Returns once the proxy runs (from the disk snapshot, or empty) and the xDS client started.
  // Fails only when the proxy cannot be started at all, or the admin address is unusable.
  absl::Status Start();
  // Stops following the control plane, then stops the proxy. Idempotent.
  void Stop();

  // The agent loop (xDS client thread) runs.
  bool healthy() const;
  // The proxy runs a snapshot, from disk or from the control plane.
  bool ready() const;
  AgentStatus status() const;
  std::string StatusJson() const;
  int admin_port() const { return admin_.port(); }

 private:
  // Called on the xDS client's thread.
  absl::Status ApplySnapshot(const ProxySnapshot& snapshot);
  void OnAccepted(const AppliedState& state, const ResponseChange& change);
  // Starts the proxy from disk if possible; returns what it runs.
  absl::StatusOr<AppliedState> StartProxy();
  void RecordError(std::string error);

  const AgentOptions options_;
  ProxyDriver& driver_;
  SnapshotStore store_;
  AdminServer admin_;
  std::unique_ptr<XdsClient> xds_;
  absl::Duration last_apply_duration_;  // xDS client's thread only

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool proxy_running_ ABSL_GUARDED_BY(mu_) = false;
  SnapshotSource source_ ABSL_GUARDED_BY(mu_) = SnapshotSource::kNone;
  int64_t applied_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ApplyMode> last_apply_mode_ ABSL_GUARDED_BY(mu_);
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time last_error_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// "no_change", "runtime_api", "reload".
const char* ApplyModeName(ApplyMode mode);
// "none", "disk", "control_plane".
const char* SnapshotSourceName(SnapshotSource source);

}  // namespace meridian::agent
