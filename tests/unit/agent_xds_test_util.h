#pragma once

// Builders of the xDS messages the agent receives, for agent unit tests.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/applied_state.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "meridian/v1/xds_types.pb.h"

namespace meridian::testing {

inline v1::Service AgentService(const std::string& name, int64_t mod_revision, uint32_t port = 8080,
                                const std::string& environment = "prod") {
  v1::Service service;
  service.set_name(name);
  service.set_environment(environment);
  service.set_mod_revision(mod_revision);
  auto* service_port = service.mutable_spec()->add_ports();
  service_port->set_name("http");
  service_port->set_port(port);
  return service;
}

inline v1::Endpoint AgentEndpoint(const std::string& name, const std::string& service,
                                  int64_t mod_revision, const std::string& environment = "prod") {
  v1::Endpoint endpoint;
  endpoint.set_name(name);
  endpoint.set_environment(environment);
  endpoint.set_mod_revision(mod_revision);
  endpoint.mutable_spec()->set_service(service);
  endpoint.mutable_spec()->set_address("127.0.0.1");
  endpoint.mutable_spec()->set_port(9000);
  return endpoint;
}

// A delta response of the payloads' type, each resource versioned by its mod_revision.
template <typename Message>
envoy::service::discovery::v3::DeltaDiscoveryResponse DeltaResponse(
    const std::string& type_url, int64_t revision, const std::vector<Message>& resources,
    const std::vector<std::string>& removed = {}, const std::string& nonce = "") {
  envoy::service::discovery::v3::DeltaDiscoveryResponse response;
  response.set_type_url(type_url);
  response.set_system_version_info(absl::StrCat(revision));
  response.set_nonce(nonce.empty() ? absl::StrCat("n", revision, "-", type_url.size()) : nonce);
  for (const Message& message : resources) {
    auto* resource = response.add_resources();
    resource->set_name(message.name());
    resource->set_version(absl::StrCat(message.mod_revision()));
    resource->mutable_resource()->PackFrom(message);
  }
  for (const std::string& name : removed) response.add_removed_resources(name);
  return response;
}

inline envoy::service::discovery::v3::DeltaDiscoveryResponse ServicesResponse(
    int64_t revision, const std::vector<v1::Service>& services,
    const std::vector<std::string>& removed = {}, const std::string& nonce = "") {
  return DeltaResponse(agent::kServiceTypeUrl, revision, services, removed, nonce);
}

}  // namespace meridian::testing
