#pragma once

#include <memory>
#include <string>

#include "controlplane/store/postgres_config_store.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"

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

// A PostgresConfigStore on a fresh database of the shared test server.
inline std::unique_ptr<store::PostgresConfigStore> OpenFreshStore(const std::string& prefix,
                                                                  std::string* url_out = nullptr) {
  auto url = SharedPostgres().CreateDatabase(prefix);
  EXPECT_TRUE(url.ok()) << url.status();
  if (!url.ok()) return nullptr;
  if (url_out != nullptr) *url_out = *url;
  auto store = store::PostgresConfigStore::Open({*url, 4});
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

}  // namespace meridian::testing
