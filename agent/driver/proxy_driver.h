#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "meridian/v1/xds_types.pb.h"

namespace meridian::agent {

// Everything of one environment that the agent received: the desired proxy state. Keyed by
// resource name. `revision` is the xDS system version (the control plane's revision) that
// produced it.
struct ProxySnapshot {
  int64_t revision = 0;
  std::map<std::string, v1::Service> services;
  std::map<std::string, v1::Endpoint> endpoints;
  std::map<std::string, v1::Route> routes;
  std::map<std::string, v1::Certificate> certificates;
};

// How the last Apply reached the proxy.
enum class ApplyMode {
  kNoChange,    // rendered config identical: nothing done
  kRuntimeApi,  // endpoint-only change, applied without a reload
  kReload,      // structural change, hitless reload
};

// Turns a ProxySnapshot into a running local proxy. Implementations: HaproxyDriver (first),
// NginxDriver (next). The xDS client knows nothing of any proxy; it hands whole snapshots to
// a driver and ACKs or NACKs with what Apply returned.
// Thread-compatible: the agent calls it from one thread.
class ProxyDriver {
 public:
  virtual ~ProxyDriver() = default;

  // Starts the proxy serving `snapshot` (empty on first boot, or the last good one from disk).
  virtual absl::Status Start(const ProxySnapshot& snapshot) = 0;
  // Validates the new config before touching the running proxy, then applies it. On error
  // (InvalidArgument with the proxy's own message, e.g. `haproxy -c` output) the running
  // proxy keeps its previous config.
  virtual absl::Status Apply(const ProxySnapshot& snapshot) = 0;
  virtual ApplyMode last_apply_mode() const = 0;
  // Stops the proxy (graceful).
  virtual absl::Status Stop() = 0;
};

}  // namespace meridian::agent
