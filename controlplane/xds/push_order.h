#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace meridian::xds {

inline constexpr int kUnranked = 10;

// Make-before-break: what others point at goes out first (services and endpoints before the
// routes that send traffic to them), the way Istio pushes CDS, EDS, LDS, RDS in order. Envoy
// types: Cluster, ClusterLoadAssignment, Secret (before the Listener that names it), Listener,
// RouteConfiguration.
inline int PushRank(const std::string& type_url) {
  static const char* const kOrder[] = {
      "meridian.v1.Service",
      "meridian.v1.Endpoint",
      "meridian.v1.Certificate",
      "meridian.v1.ConfigEntry",
      "meridian.v1.Route",
      "/envoy.config.cluster.v3.Cluster",
      "/envoy.config.endpoint.v3.ClusterLoadAssignment",
      "/envoy.extensions.transport_sockets.tls.v3.Secret",
      "/envoy.config.listener.v3.Listener",
      "/envoy.config.route.v3.RouteConfiguration",
  };
  for (int i = 0; i < kUnranked; ++i) {
    if (absl::EndsWith(type_url, kOrder[i])) return i;
  }
  return kUnranked;
}

// Break after make: the Envoy types hold back removals until the additions and updates of
// every type have gone out, then remove referrers before what they refer to, so a client never
// holds a reference to a resource it was told is gone: a Listener before the RouteConfiguration
// it names, a RouteConfiguration (updated in the first phase) before the Cluster, a Cluster
// before its ClusterLoadAssignment, a Listener before its Secret. (Strictly reversing the
// push order would delete a RouteConfiguration while a Listener still names it.) Meridian's
// own types keep removals in their regular responses.
inline int RemovalRank(const std::string& type_url) {
  static const char* const kOrder[] = {
      "/envoy.config.listener.v3.Listener",
      "/envoy.config.route.v3.RouteConfiguration",
      "/envoy.config.cluster.v3.Cluster",
      "/envoy.config.endpoint.v3.ClusterLoadAssignment",
      "/envoy.extensions.transport_sockets.tls.v3.Secret",
  };
  for (int i = 0; i < 5; ++i) {
    if (absl::EndsWith(type_url, kOrder[i])) return i;
  }
  return kUnranked;
}

inline bool DefersRemovals(const std::string& type_url) {
  return RemovalRank(type_url) < kUnranked;
}

// The entries of a map keyed by type URL, ordered by `rank`.
template <typename Map, typename Rank>
std::vector<typename Map::value_type*> RankedEntries(Map& by_type, Rank rank) {
  std::vector<typename Map::value_type*> entries;
  for (auto& entry : by_type) entries.push_back(&entry);
  std::stable_sort(entries.begin(), entries.end(),
                   [&](const auto* a, const auto* b) { return rank(a->first) < rank(b->first); });
  return entries;
}

// The entries of a map keyed by type URL, in push order.
template <typename Map>
std::vector<typename Map::value_type*> InPushOrder(Map& by_type) {
  return RankedEntries(by_type, PushRank);
}

// The entries of a map keyed by type URL, in removal order.
template <typename Map>
std::vector<typename Map::value_type*> InRemovalOrder(Map& by_type) {
  return RankedEntries(by_type, RemovalRank);
}

}  // namespace meridian::xds
