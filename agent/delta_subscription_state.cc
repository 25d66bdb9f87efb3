#include "agent/delta_subscription_state.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controlplane/common/status_macros.h"
#include "google/protobuf/any.pb.h"

namespace meridian::agent {
namespace {

using ::envoy::service::discovery::v3::DeltaDiscoveryRequest;
using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;

// Checks one received resource and unpacks its payload into `message`.
template <typename Message>
absl::Status Unpack(const envoy::service::discovery::v3::Resource& resource,
                    const std::string& type_url, const std::string& environment, Message& message) {
  const std::string& name = resource.name();
  if (!resource.has_resource()) {
    return absl::InvalidArgumentError(absl::StrCat("resource \"", name, "\": no payload"));
  }
  if (resource.resource().type_url() != type_url) {
    return absl::InvalidArgumentError(absl::StrCat("resource \"", name, "\": payload type ",
                                                   resource.resource().type_url(),
                                                   " in a response of type ", type_url));
  }
  if (!resource.resource().UnpackTo(&message)) {
    return absl::InvalidArgumentError(
        absl::StrCat("resource \"", name, "\": payload does not parse as ", type_url));
  }
  if (message.name() != name) {
    return absl::InvalidArgumentError(
        absl::StrCat("resource \"", name, "\": payload is named \"", message.name(), "\""));
  }
  if (message.environment() != environment) {
    return absl::InvalidArgumentError(
        absl::StrCat("resource \"", name, "\": belongs to environment \"", message.environment(),
                     "\", this node serves \"", environment, "\""));
  }
  return absl::OkStatus();
}

// Merges the response into one type's map and versions, counting what changed.
template <typename Message>
absl::Status Merge(const DeltaDiscoveryResponse& response, const std::string& environment,
                   std::map<std::string, Message>& held,
                   std::map<std::string, std::string>& versions, ResponseChange& change) {
  for (const auto& resource : response.resources()) {
    Message message;
    MERIDIAN_RETURN_IF_ERROR(Unpack(resource, response.type_url(), environment, message));
    auto version = versions.find(resource.name());
    if (version == versions.end()) {
      ++change.added;
    } else if (version->second != resource.version()) {
      ++change.updated;
    }
    held[resource.name()] = std::move(message);
    versions[resource.name()] = resource.version();
  }
  for (const std::string& name : response.removed_resources()) {
    if (held.erase(name) > 0) ++change.removed;
    versions.erase(name);
  }
  return absl::OkStatus();
}

// Envoy rejects a response that names a resource twice, across added and removed alike.
absl::Status CheckNamesUnique(const DeltaDiscoveryResponse& response) {
  std::set<std::string> seen;
  auto check = [&](const std::string& name) -> absl::Status {
    if (name.empty()) return absl::InvalidArgumentError("a resource has no name");
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "duplicate name \"", name, "\" in the union of added and removed resources"));
    }
    return absl::OkStatus();
  };
  for (const auto& resource : response.resources())
    MERIDIAN_RETURN_IF_ERROR(check(resource.name()));
  for (const auto& name : response.removed_resources()) MERIDIAN_RETURN_IF_ERROR(check(name));
  return absl::OkStatus();
}

}  // namespace

DeltaSubscriptionState::DeltaSubscriptionState(std::string environment, AppliedState initial)
    : environment_(std::move(environment)), held_(std::move(initial)) {}

const std::vector<std::string>& DeltaSubscriptionState::TypeUrls() {
  // Dependencies first, as the server pushes them.
  static const std::vector<std::string> kTypes = {kServiceTypeUrl, kEndpointTypeUrl,
                                                  kCertificateTypeUrl, kRouteTypeUrl};
  return kTypes;
}

bool DeltaSubscriptionState::IsSubscribed(const std::string& type_url) {
  const auto& types = TypeUrls();
  return std::find(types.begin(), types.end(), type_url) != types.end();
}

std::vector<DeltaDiscoveryRequest> DeltaSubscriptionState::InitialRequests(
    const envoy::config::core::v3::Node& node) const {
  std::vector<DeltaDiscoveryRequest> requests;
  for (const std::string& type_url : TypeUrls()) {
    DeltaDiscoveryRequest& request = requests.emplace_back();
    if (requests.size() == 1) *request.mutable_node() = node;
    request.set_type_url(type_url);
    auto held = held_.versions.find(type_url);
    if (held == held_.versions.end()) continue;
    for (const auto& [name, version] : held->second) {
      (*request.mutable_initial_resource_versions())[name] = version;
    }
  }
  return requests;
}

absl::StatusOr<StagedUpdate> DeltaSubscriptionState::Stage(
    const DeltaDiscoveryResponse& response) const {
  const std::string& type_url = response.type_url();
  if (!IsSubscribed(type_url)) {
    return absl::InvalidArgumentError(absl::StrCat("type ", type_url, " is not subscribed"));
  }
  MERIDIAN_RETURN_IF_ERROR(CheckNamesUnique(response));
  StagedUpdate update{held_, ResponseChange{type_url, held_.snapshot.revision}};
  int64_t revision = 0;
  if (absl::SimpleAtoi(response.system_version_info(), &revision)) {
    update.change.revision = revision;
  }
  ProxySnapshot& snapshot = update.state.snapshot;
  snapshot.revision = update.change.revision;
  std::map<std::string, std::string>& versions = update.state.versions[type_url];
  absl::Status merged;
  if (type_url == kServiceTypeUrl) {
    merged = Merge(response, environment_, snapshot.services, versions, update.change);
  } else if (type_url == kEndpointTypeUrl) {
    merged = Merge(response, environment_, snapshot.endpoints, versions, update.change);
  } else if (type_url == kRouteTypeUrl) {
    merged = Merge(response, environment_, snapshot.routes, versions, update.change);
  } else {
    merged = Merge(response, environment_, snapshot.certificates, versions, update.change);
  }
  if (!merged.ok()) return merged;
  if (versions.empty()) update.state.versions.erase(type_url);
  return update;
}

void DeltaSubscriptionState::Commit(StagedUpdate update) { held_ = std::move(update.state); }

DeltaDiscoveryRequest DeltaSubscriptionState::Ack(const DeltaDiscoveryResponse& response) {
  DeltaDiscoveryRequest ack;
  ack.set_type_url(response.type_url());
  ack.set_response_nonce(response.nonce());
  return ack;
}

DeltaDiscoveryRequest DeltaSubscriptionState::Nack(const DeltaDiscoveryResponse& response,
                                                   const absl::Status& error) {
  DeltaDiscoveryRequest nack = Ack(response);
  nack.mutable_error_detail()->set_code(static_cast<int>(error.code()));
  nack.mutable_error_detail()->set_message(std::string(error.message()));
  return nack;
}

}  // namespace meridian::agent
