#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "controlplane/xds/xds_entry.h"
#include "meridian/v1/config_service.pb.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::xds {

// One projected Envoy resource, as it now is (entry null = it no longer exists).
struct ProjectedResource {
  std::string environment;
  std::string type_url;
  std::string name;
  XdsEntryPtr entry;
};

// Projects Meridian resources onto Envoy's xDS types (Cluster and ClusterLoadAssignment per
// Service, RouteConfiguration per Route, an api_listener Listener per Route host, a socket
// Listener and merged RouteConfiguration per Route port, Secret per Certificate).
// Incremental: it keeps each environment's Meridian resources with reverse indexes (endpoints
// by service, routes by host, port, destination service and certificate), so a revision
// rebuilds only the Envoy resources that depend on the keys it changed, and reports only those
// whose serialized bytes differ. A resource's version is the revision that last changed it.
// Not thread-safe: driven by the ResourceIndex's single writer.
class EnvoyProjection {
 public:
  // Replaces the state with `resources` at `revision`. Resources whose bytes are unchanged
  // from before keep their entries (and versions).
  void Reset(const std::vector<v1::Resource>& resources, int64_t revision);
  // Applies one revision; returns the projected resources it changed or removed.
  std::vector<ProjectedResource> Apply(const v1::RevisionRecord& record);
  // Every projected resource.
  std::vector<ProjectedResource> Entries() const;

 private:
  using DerivedKey = std::pair<std::string, std::string>;  // (type_url, name)
  using Names = std::set<std::string>;                     // sorted: stable output

  struct Environment {
    absl::flat_hash_map<std::string, v1::Resource> services;
    absl::flat_hash_map<std::string, v1::Resource> endpoints;
    absl::flat_hash_map<std::string, v1::Resource> routes;
    absl::flat_hash_map<std::string, v1::Resource> certificates;
    absl::flat_hash_map<std::string, Names> endpoints_by_service;
    absl::flat_hash_map<std::string, Names> routes_by_host;
    absl::flat_hash_map<uint32_t, Names> routes_by_port;
    absl::flat_hash_map<std::string, Names> routes_by_service;
    absl::flat_hash_map<std::string, Names> routes_by_certificate;
    absl::flat_hash_map<DerivedKey, XdsEntryPtr> derived;
  };

  // What one revision's changes invalidate in an environment.
  struct Affected {
    absl::flat_hash_set<std::string> clusters;          // by service
    absl::flat_hash_set<std::string> load_assignments;  // by service
    absl::flat_hash_set<std::string> route_configs;     // by route
    absl::flat_hash_set<std::string> hosts;             // api listeners
    absl::flat_hash_set<uint32_t> ports;                // socket listener + merged routes
    absl::flat_hash_set<std::string> secrets;           // by certificate
  };

  // Where a Rebuild puts what it produced.
  struct Sink {
    const std::string& environment;
    int64_t revision;
    std::vector<ProjectedResource>* changes;    // changed or removed entries, if wanted
    absl::flat_hash_set<DerivedKey>* produced;  // keys produced, if wanted
  };

  static void Update(Environment& env, const std::string& name, v1::Kind kind,
                     const v1::Resource* after, Affected& affected);
  static void UpdateService(Environment& env, const std::string& name, const v1::Resource* after,
                            Affected& affected);
  static void UpdateEndpoint(Environment& env, const std::string& name, const v1::Resource* after,
                             Affected& affected);
  static void UpdateRoute(Environment& env, const std::string& name, const v1::Resource* after,
                          Affected& affected);
  static void UpdateCertificate(Environment& env, const std::string& name,
                                const v1::Resource* after, Affected& affected);
  static void MarkRoute(const Environment& env, const std::string& route, Affected& affected);

  static void Rebuild(Environment& env, const Affected& affected, const Sink& sink);
  static void RebuildPort(Environment& env, uint32_t port, const Sink& sink);
  // Records the new bytes of (type_url, name), or its removal when `message` is empty.
  static void Record(Environment& env, const std::string& type_url, const std::string& name,
                     std::optional<std::string> message, const Sink& sink);

  absl::flat_hash_map<std::string, Environment> environments_;
};

}  // namespace meridian::xds
