#pragma once

// Builders for ProxySnapshot contents, shared by the proxy driver's unit and integration tests.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "agent/driver/proxy_driver.h"

namespace meridian::testing {

inline v1::Service& AddService(agent::ProxySnapshot& snapshot, const std::string& name,
                               uint32_t port = 8080) {
  v1::Service& service = snapshot.services[name];
  service.set_name(name);
  service.set_environment("test");
  auto* service_port = service.mutable_spec()->add_ports();
  service_port->set_name("http");
  service_port->set_port(port);
  service_port->set_protocol(v1::HTTP);
  return service;
}

inline v1::Endpoint& AddEndpoint(agent::ProxySnapshot& snapshot, const std::string& name,
                                 const std::string& service, const std::string& address,
                                 uint32_t port, uint32_t weight = 0,
                                 v1::HealthStatus health = v1::HEALTHY) {
  v1::Endpoint& endpoint = snapshot.endpoints[name];
  endpoint.set_name(name);
  endpoint.set_environment("test");
  auto* spec = endpoint.mutable_spec();
  spec->set_service(service);
  spec->set_address(address);
  spec->set_port(port);
  spec->set_weight(weight);
  spec->set_health(health);
  return endpoint;
}

// A route with one rule matching `path_prefix` on `hosts`, split over `destinations`
// (service, weight).
inline v1::Route& AddRoute(agent::ProxySnapshot& snapshot, const std::string& name, uint32_t port,
                           const std::vector<std::pair<std::string, uint32_t>>& destinations,
                           const std::string& path_prefix = "/",
                           const std::vector<std::string>& hosts = {"*"}) {
  v1::Route& route = snapshot.routes[name];
  route.set_name(name);
  route.set_environment("test");
  auto* spec = route.mutable_spec();
  for (const auto& host : hosts) spec->add_hosts(host);
  spec->set_port(port);
  auto* rule = spec->add_rules();
  rule->mutable_match()->set_path_prefix(path_prefix);
  for (const auto& [service, weight] : destinations) {
    auto* destination = rule->add_destinations();
    destination->set_service(service);
    destination->set_weight(weight);
  }
  return route;
}

}  // namespace meridian::testing
