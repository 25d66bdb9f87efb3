#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/driver/proxy_driver.h"

// How Meridian resources become haproxy.cfg (HAProxy 2.6):
//  - One `frontend fe_<port>` per route port. Rules are tried routes-by-name, rules in order;
//    the first match sets txn.rule ("<route>/<index>") and everything else (rate limit, split,
//    rewrites, use_backend) keys on it. No match: 404.
//  - One `backend svc_<service>` per destination service (algorithm, health check, circuit
//    breaker, timeouts); a rule with retries gets `svc_<service>:retry<N>:<conditions>`, as
//    `retries`/`retry-on` are backend settings.
//  - Weighted splits: a per-rule request counter picks the backend (see RenderUseBackends).
//  - Endpoints: fixed `server sN` slots per backend (SlotCountFor), so endpoint changes go
//    through the runtime API; the rendered lines keep the file in step for the next reload.
//  - Rate limits: stick tables keyed by source IP (or a constant for GLOBAL), 429 past
//    requests_per_second + burst within http_req_rate(1s).
//  - TLS: `ssl crt <cert_dir>/<certificate>.pem` (chain + key) on the route's port.
namespace meridian::agent::haproxy {

// What a server slot should be doing.
enum class ServerState { kReady, kDrain, kMaint };

// One pre-allocated server of a backend and the endpoint (if any) that occupies it. Slots are
// how endpoint changes reach a running HAProxy without a reload: the runtime API re-points a
// slot (`set server <backend>/<server> addr|weight|state`).
struct ServerSlot {
  std::string backend;
  std::string server;    // "s1" .. "sN"
  std::string endpoint;  // empty: free slot, kept in maintenance
  std::string address;
  uint32_t port = 0;
  int weight = 1;  // HAProxy weight, 0..256
  ServerState state = ServerState::kMaint;

  friend bool operator==(const ServerSlot&, const ServerSlot&) = default;
};

// Which endpoint sits in which slot of each backend. The driver hands the previous layout back
// to the next render so an endpoint keeps its slot (and its connections) while others come and
// go, and so the slot count only changes when the endpoints outgrow it.
struct SlotLayout {
  struct Backend {
    int size = 0;
    std::map<std::string, int> slot_of_endpoint;  // endpoint name -> 1-based slot
  };
  std::map<std::string, Backend> backends;
};

struct RenderOptions {
  std::string work_dir;  // holds haproxy.sock and server-state
  std::string bind_address = "0.0.0.0";
  std::string cert_dir;  // where `crt` files are read from; empty = <work_dir>/certs
  SlotLayout previous_layout;
};

struct RenderedConfig {
  std::string text;  // the complete haproxy.cfg
  // The same config with every slot rendered empty (except slots holding DNS names, which the
  // runtime API cannot set): two renders with equal structures differ only in what the
  // runtime API can change.
  std::string structure;
  SlotLayout layout;
  std::vector<ServerSlot> slots;  // every slot of every backend
  // File name in cert_dir ("<certificate>.pem") -> certificate chain followed by private key.
  std::map<std::string, std::string> certificate_files;
};

// Renders the haproxy.cfg that serves `snapshot`. Pure: the same snapshot and options give the
// same text. Fails with InvalidArgument when the snapshot is inconsistent in a way HAProxy
// cannot express (a route naming a certificate the snapshot lacks).
absl::StatusOr<RenderedConfig> RenderHaproxyConfig(const ProxySnapshot& snapshot,
                                                   const RenderOptions& options);

// Slots for a backend with `endpoints` endpoints: the next power of two >= max(8, 2 x endpoints),
// so a backend can double before a reload is needed.
int SlotCountFor(int endpoints);

// Quotes `value` as one HAProxy config word (double quotes; \, ", $ and control bytes escaped).
std::string QuoteWord(const std::string& value);

}  // namespace meridian::agent::haproxy
