#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/applied_state.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meridian::agent {

// What one accepted response changed, for the apply log.
struct ResponseChange {
  std::string type_url;
  int64_t revision = 0;  // the response's system_version_info
  size_t added = 0;      // names not held before
  size_t updated = 0;    // names held at another version
  size_t removed = 0;    // held names the response removed
};

// A response validated and merged into a copy of the held state, awaiting the proxy's verdict.
struct StagedUpdate {
  AppliedState state;
  ResponseChange change;
};

// The delta-xDS state of the agent's four wildcard subscriptions, without any transport: what
// the first requests of a stream say, how a response is checked and merged, what ACK and NACK
// look like. Validate-then-apply, as Envoy's delta_subscription_state: Stage() never touches
// the held state, so a rejected response leaves it as it was (the next response is merged into
// the last good state), and Commit() adopts a staged update once the proxy accepted it.
// Thread-compatible.
class DeltaSubscriptionState {
 public:
  explicit DeltaSubscriptionState(std::string environment, AppliedState initial = {});

  // The types subscribed to, in the order their first requests are sent.
  static const std::vector<std::string>& TypeUrls();
  static bool IsSubscribed(const std::string& type_url);

  // One wildcard request per type (empty resource_names_subscribe) naming every held resource
  // in initial_resource_versions; the first also carries `node`.
  std::vector<envoy::service::discovery::v3::DeltaDiscoveryRequest> InitialRequests(
      const envoy::config::core::v3::Node& node) const;

  // Checks the whole response (subscribed type, unique names, payloads of the response's type
  // and of this environment) and merges it into a copy of the held state. InvalidArgument says
  // what is wrong; the held state is unchanged either way.
  absl::StatusOr<StagedUpdate> Stage(
      const envoy::service::discovery::v3::DeltaDiscoveryResponse& response) const;
  void Commit(StagedUpdate update);

  const AppliedState& held() const { return held_; }

  static envoy::service::discovery::v3::DeltaDiscoveryRequest Ack(
      const envoy::service::discovery::v3::DeltaDiscoveryResponse& response);
  // error_detail carries the code and the exact message of `error`.
  static envoy::service::discovery::v3::DeltaDiscoveryRequest Nack(
      const envoy::service::discovery::v3::DeltaDiscoveryResponse& response,
      const absl::Status& error);

 private:
  const std::string environment_;
  AppliedState held_;
};

}  // namespace meridian::agent
