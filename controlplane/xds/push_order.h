#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace meridian::xds {

// Make-before-break: what others point at goes out first (services and endpoints before the
// routes that send traffic to them), the way Istio pushes CDS, EDS, LDS, RDS in order.
inline int PushRank(const std::string& type_url) {
  static const char* const kOrder[] = {"meridian.v1.Service", "meridian.v1.Endpoint",
                                       "meridian.v1.Certificate", "meridian.v1.ConfigEntry",
                                       "meridian.v1.Route"};
  for (int i = 0; i < 5; ++i) {
    if (absl::EndsWith(type_url, kOrder[i])) return i;
  }
  return 5;
}

// The entries of a map keyed by type URL, in push order.
template <typename Map>
std::vector<typename Map::value_type*> InPushOrder(Map& by_type) {
  std::vector<typename Map::value_type*> entries;
  for (auto& entry : by_type) entries.push_back(&entry);
  std::stable_sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) {
    return PushRank(a->first) < PushRank(b->first);
  });
  return entries;
}

}  // namespace meridian::xds
