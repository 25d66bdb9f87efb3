#pragma once

// Builders for resources and change sets shared by unit and integration tests.
#include <string>
#include <utility>
#include <vector>

#include "controlplane/store/config_store.h"

namespace meridian::testing {

inline v1::Resource ServiceResource(const std::string& environment, const std::string& name,
                                    uint32_t port = 8080) {
  v1::Resource resource;
  resource.set_kind(v1::SERVICE);
  resource.set_environment(environment);
  resource.set_name(name);
  auto* service_port = resource.mutable_service()->add_ports();
  service_port->set_name("http");
  service_port->set_port(port);
  service_port->set_protocol(v1::HTTP);
  return resource;
}

inline v1::Resource RouteResource(const std::string& environment, const std::string& name,
                                  const std::vector<std::pair<std::string, uint32_t>>& split) {
  v1::Resource resource;
  resource.set_kind(v1::ROUTE);
  resource.set_environment(environment);
  resource.set_name(name);
  auto* route = resource.mutable_route();
  route->add_hosts("shop.example.com");
  route->set_port(8080);
  auto* rule = route->add_rules();
  rule->mutable_match()->set_path_prefix("/");
  for (const auto& [service, weight] : split) {
    auto* destination = rule->add_destinations();
    destination->set_service(service);
    destination->set_weight(weight);
  }
  return resource;
}

inline store::Mutation Put(v1::Resource resource, int64_t expected_version = 0) {
  store::Mutation mutation;
  mutation.operation = store::Mutation::Operation::kPut;
  mutation.key = model::KeyOf(resource);
  mutation.resource = std::move(resource);
  mutation.expected_version = expected_version;
  return mutation;
}

inline store::Mutation Delete(model::ResourceKey key, int64_t expected_version = 0) {
  store::Mutation mutation;
  mutation.operation = store::Mutation::Operation::kDelete;
  mutation.key = std::move(key);
  mutation.expected_version = expected_version;
  return mutation;
}

inline store::ChangeSet Changes(std::vector<store::Mutation> mutations,
                                std::string actor = "alice", std::string comment = "") {
  store::ChangeSet change_set;
  change_set.mutations = std::move(mutations);
  change_set.actor = std::move(actor);
  change_set.comment = std::move(comment);
  return change_set;
}

}  // namespace meridian::testing
