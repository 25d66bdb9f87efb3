#include "controlplane/xds/envoy_projection.h"

#include "absl/strings/str_cat.h"
#include "controlplane/xds/envoy_resources.h"
#include "google/protobuf/any.pb.h"

namespace meridian::xds {
namespace {

// The part of a service's spec that routes copy (as hash policies): empty unless RING_HASH.
std::string RouteRelevantPart(const v1::Resource* service) {
  if (service == nullptr) return "";
  const v1::LoadBalancing& lb = service->service().load_balancing();
  if (lb.policy() != v1::RING_HASH || !lb.has_hash()) return "";
  return lb.hash().SerializeAsString();
}

std::vector<std::string> UniqueHosts(const v1::RouteSpec& spec) {
  std::vector<std::string> hosts;
  std::set<std::string> seen;
  for (const std::string& host : spec.hosts()) {
    if (seen.insert(host).second) hosts.push_back(host);
  }
  return hosts;
}

template <typename Map, typename Key>
void EraseFromIndex(Map& index, const Key& key, const std::string& name) {
  auto it = index.find(key);
  if (it == index.end()) return;
  it->second.erase(name);
  if (it->second.empty()) index.erase(it);
}

}  // namespace

void EnvoyProjection::Reset(const std::vector<v1::Resource>& resources, int64_t revision) {
  absl::flat_hash_map<std::string, Environment> previous = std::move(environments_);
  environments_.clear();
  absl::flat_hash_map<std::string, Affected> affected;
  for (const v1::Resource& resource : resources) {
    Update(environments_[resource.environment()], resource.name(), resource.kind(), &resource,
           affected[resource.environment()]);
  }
  for (auto& [name, env] : environments_) {
    auto old = previous.find(name);
    if (old != previous.end()) env.derived = std::move(old->second.derived);
    absl::flat_hash_set<DerivedKey> produced;
    Rebuild(env, affected[name], Sink{name, revision, nullptr, &produced});
    absl::erase_if(env.derived, [&](const auto& item) { return !produced.contains(item.first); });
  }
}

std::vector<ProjectedResource> EnvoyProjection::Apply(const v1::RevisionRecord& record) {
  absl::flat_hash_map<std::string, Affected> affected;
  for (const v1::ChangeRecord& change : record.changes()) {
    const std::string& environment = change.key().environment();
    const v1::Resource* after = change.operation() == v1::PUT ? &change.after() : nullptr;
    Update(environments_[environment], change.key().name(), change.key().kind(), after,
           affected[environment]);
  }
  std::vector<ProjectedResource> changes;
  for (const auto& [name, invalidated] : affected) {
    Environment& env = environments_[name];
    Rebuild(env, invalidated, Sink{name, record.revision(), &changes, nullptr});
  }
  return changes;
}

std::vector<ProjectedResource> EnvoyProjection::Entries() const {
  std::vector<ProjectedResource> entries;
  for (const auto& [environment, env] : environments_) {
    for (const auto& [key, entry] : env.derived) {
      entries.push_back({environment, key.first, key.second, entry});
    }
  }
  return entries;
}

void EnvoyProjection::Update(Environment& env, const std::string& name, v1::Kind kind,
                             const v1::Resource* after, Affected& affected) {
  switch (kind) {
    case v1::SERVICE:
      return UpdateService(env, name, after, affected);
    case v1::ENDPOINT:
      return UpdateEndpoint(env, name, after, affected);
    case v1::ROUTE:
      return UpdateRoute(env, name, after, affected);
    case v1::CERTIFICATE:
      return UpdateCertificate(env, name, after, affected);
    default:
      return;  // config entries have no Envoy form
  }
}

void EnvoyProjection::MarkRoute(const Environment& env, const std::string& route,
                                Affected& affected) {
  affected.route_configs.insert(route);
  auto it = env.routes.find(route);
  if (it != env.routes.end()) affected.ports.insert(it->second.route().port());
}

void EnvoyProjection::UpdateService(Environment& env, const std::string& name,
                                    const v1::Resource* after, Affected& affected) {
  auto old = env.services.find(name);
  const bool existed = old != env.services.end();
  const std::string old_part = RouteRelevantPart(existed ? &old->second : nullptr);
  if (after != nullptr) {
    env.services[name] = *after;
  } else if (existed) {
    env.services.erase(old);
  }
  affected.clusters.insert(name);
  // The load assignment depends on the service only through its existence.
  if (existed != (after != nullptr)) affected.load_assignments.insert(name);
  if (old_part != RouteRelevantPart(after)) {
    auto routes = env.routes_by_service.find(name);
    if (routes != env.routes_by_service.end()) {
      for (const std::string& route : routes->second) MarkRoute(env, route, affected);
    }
  }
}

void EnvoyProjection::UpdateEndpoint(Environment& env, const std::string& name,
                                     const v1::Resource* after, Affected& affected) {
  auto old = env.endpoints.find(name);
  if (old != env.endpoints.end()) {
    const std::string service = old->second.endpoint().service();
    affected.load_assignments.insert(service);
    EraseFromIndex(env.endpoints_by_service, service, name);
    env.endpoints.erase(old);
  }
  if (after != nullptr) {
    const std::string& service = after->endpoint().service();
    affected.load_assignments.insert(service);
    env.endpoints_by_service[service].insert(name);
    env.endpoints[name] = *after;
  }
}

void EnvoyProjection::UpdateRoute(Environment& env, const std::string& name,
                                  const v1::Resource* after, Affected& affected) {
  affected.route_configs.insert(name);
  auto index = [&](const v1::RouteSpec& spec, bool add) {
    affected.ports.insert(spec.port());
    for (const std::string& host : spec.hosts()) affected.hosts.insert(host);
    if (add) {
      env.routes_by_port[spec.port()].insert(name);
      for (const std::string& host : spec.hosts()) env.routes_by_host[host].insert(name);
      for (const auto& rule : spec.rules()) {
        for (const auto& destination : rule.destinations()) {
          env.routes_by_service[destination.service()].insert(name);
        }
      }
      if (!spec.tls_certificate().empty()) {
        env.routes_by_certificate[spec.tls_certificate()].insert(name);
      }
    } else {
      EraseFromIndex(env.routes_by_port, spec.port(), name);
      for (const std::string& host : spec.hosts()) EraseFromIndex(env.routes_by_host, host, name);
      for (const auto& rule : spec.rules()) {
        for (const auto& destination : rule.destinations()) {
          EraseFromIndex(env.routes_by_service, destination.service(), name);
        }
      }
      EraseFromIndex(env.routes_by_certificate, spec.tls_certificate(), name);
    }
  };
  auto old = env.routes.find(name);
  if (old != env.routes.end()) {
    index(old->second.route(), /*add=*/false);
    env.routes.erase(old);
  }
  if (after != nullptr) {
    index(after->route(), /*add=*/true);
    env.routes[name] = *after;
  }
}

void EnvoyProjection::UpdateCertificate(Environment& env, const std::string& name,
                                        const v1::Resource* after, Affected& affected) {
  const bool existed = env.certificates.erase(name) > 0;
  if (after != nullptr) env.certificates[name] = *after;
  affected.secrets.insert(name);
  // Listeners reference the secret by name; they only change when it appears or goes.
  if (existed != (after != nullptr)) {
    auto routes = env.routes_by_certificate.find(name);
    if (routes != env.routes_by_certificate.end()) {
      for (const std::string& route : routes->second) MarkRoute(env, route, affected);
    }
  }
}

void EnvoyProjection::Rebuild(Environment& env, const Affected& affected, const Sink& sink) {
  auto lookup = [&env](const std::string& service) -> const v1::ServiceSpec* {
    auto it = env.services.find(service);
    return it == env.services.end() ? nullptr : &it->second.service();
  };
  for (const std::string& service : affected.clusters) {
    auto it = env.services.find(service);
    std::optional<std::string> message;
    if (it != env.services.end()) {
      message = BuildCluster(service, it->second.service()).SerializeAsString();
    }
    Record(env, kEnvoyClusterType, service, std::move(message), sink);
  }
  for (const std::string& service : affected.load_assignments) {
    std::optional<std::string> message;
    if (env.services.contains(service)) {
      std::vector<const v1::EndpointSpec*> endpoints;
      auto names = env.endpoints_by_service.find(service);
      if (names != env.endpoints_by_service.end()) {
        for (const std::string& name : names->second) {
          endpoints.push_back(&env.endpoints.at(name).endpoint());
        }
      }
      message = BuildLoadAssignment(service, endpoints).SerializeAsString();
    }
    Record(env, kEnvoyLoadAssignmentType, service, std::move(message), sink);
  }
  for (const std::string& route : affected.route_configs) {
    auto it = env.routes.find(route);
    std::optional<std::string> message;
    if (it != env.routes.end()) {
      const v1::RouteSpec& spec = it->second.route();
      envoy::config::route::v3::RouteConfiguration config;
      config.set_name(route);
      *config.add_virtual_hosts() = BuildVirtualHost(route, spec, UniqueHosts(spec), lookup);
      message = config.SerializeAsString();
    }
    Record(env, kEnvoyRouteConfigurationType, route, std::move(message), sink);
  }
  for (const std::string& host : affected.hosts) {
    auto routes = env.routes_by_host.find(host);
    std::optional<std::string> message;
    if (routes != env.routes_by_host.end()) {
      // Several routes may list the host; the first by name serves it.
      message = BuildApiListener(host, *routes->second.begin()).SerializeAsString();
    }
    Record(env, kEnvoyListenerType, host, std::move(message), sink);
  }
  for (uint32_t port : affected.ports) RebuildPort(env, port, sink);
  for (const std::string& certificate : affected.secrets) {
    auto it = env.certificates.find(certificate);
    std::optional<std::string> message;
    if (it != env.certificates.end()) {
      message = BuildSecret(certificate, it->second.certificate()).SerializeAsString();
    }
    Record(env, kEnvoySecretType, certificate, std::move(message), sink);
  }
}

// The socket Listener of a port: a filter chain per TLS route (by SNI, names not claimed by an
// earlier route), and a default chain for the plaintext routes, whose virtual hosts merge into
// one RouteConfiguration (a domain claimed by an earlier route is left out: Envoy rejects
// duplicates).
void EnvoyProjection::RebuildPort(Environment& env, uint32_t port, const Sink& sink) {
  auto lookup = [&env](const std::string& service) -> const v1::ServiceSpec* {
    auto it = env.services.find(service);
    return it == env.services.end() ? nullptr : &it->second.service();
  };
  std::vector<TlsFilterChain> tls_chains;
  envoy::config::route::v3::RouteConfiguration merged;
  merged.set_name(SocketListenerName(port));
  auto routes = env.routes_by_port.find(port);
  if (routes != env.routes_by_port.end()) {
    std::set<std::string> server_names;
    std::set<std::string> domains;
    bool catch_all = false;
    for (const std::string& name : routes->second) {
      const v1::RouteSpec& spec = env.routes.at(name).route();
      if (!spec.tls_certificate().empty() && env.certificates.contains(spec.tls_certificate())) {
        TlsFilterChain chain{name, {}, spec.tls_certificate()};
        bool wildcard = false;
        for (const std::string& host : UniqueHosts(spec)) {
          if (host == "*") {
            wildcard = true;
          } else if (server_names.insert(host).second) {
            chain.server_names.push_back(host);
          }
        }
        if (wildcard && !catch_all) {
          catch_all = true;
          chain.server_names.clear();  // any SNI; more specific chains still win
        } else if (chain.server_names.empty()) {
          continue;  // every name already served by an earlier route
        }
        tls_chains.push_back(std::move(chain));
        continue;
      }
      std::vector<std::string> unclaimed;
      for (const std::string& host : UniqueHosts(spec)) {
        if (domains.insert(host).second) unclaimed.push_back(host);
      }
      if (!unclaimed.empty()) {
        *merged.add_virtual_hosts() = BuildVirtualHost(name, spec, unclaimed, lookup);
      }
    }
  }
  const bool plaintext = merged.virtual_hosts_size() > 0;
  std::optional<std::string> listener;
  if (plaintext || !tls_chains.empty()) {
    listener = BuildSocketListener(port, tls_chains, plaintext).SerializeAsString();
  }
  Record(env, kEnvoyListenerType, SocketListenerName(port), std::move(listener), sink);
  std::optional<std::string> route_config;
  if (plaintext) route_config = merged.SerializeAsString();
  Record(env, kEnvoyRouteConfigurationType, SocketListenerName(port), std::move(route_config),
         sink);
}

void EnvoyProjection::Record(Environment& env, const std::string& type_url, const std::string& name,
                             std::optional<std::string> message, const Sink& sink) {
  DerivedKey key{type_url, name};
  auto it = env.derived.find(key);
  if (!message.has_value()) {
    if (it == env.derived.end()) return;
    env.derived.erase(it);
    if (sink.changes != nullptr)
      sink.changes->push_back({sink.environment, type_url, name, nullptr});
    return;
  }
  if (sink.produced != nullptr) sink.produced->insert(key);
  if (it != env.derived.end()) {
    google::protobuf::Any any;
    any.set_type_url(type_url);
    any.set_value(*message);
    if (any.SerializeAsString() == it->second->any_bytes) return;  // unchanged: nothing to push
  }
  XdsEntryPtr entry = MakeXdsEntry(type_url, name, sink.revision, std::move(*message));
  env.derived[key] = entry;
  if (sink.changes != nullptr) {
    sink.changes->push_back({sink.environment, type_url, name, std::move(entry)});
  }
}

}  // namespace meridian::xds
