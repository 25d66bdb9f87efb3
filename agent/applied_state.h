#pragma once

#include <map>
#include <string>

#include "agent/driver/proxy_driver.h"

namespace meridian::agent {

// The xDS types the agent subscribes to (wildcard, its node's environment).
inline constexpr char kServiceTypeUrl[] = "type.googleapis.com/meridian.v1.Service";
inline constexpr char kEndpointTypeUrl[] = "type.googleapis.com/meridian.v1.Endpoint";
inline constexpr char kRouteTypeUrl[] = "type.googleapis.com/meridian.v1.Route";
inline constexpr char kCertificateTypeUrl[] = "type.googleapis.com/meridian.v1.Certificate";

// The xDS version of every resource held: type URL → (resource name → version). Sent back as
// initial_resource_versions when a stream opens, so only what changed is resent.
using ResourceVersions = std::map<std::string, std::map<std::string, std::string>>;

// What the agent holds: the snapshot its proxy runs and the version of each resource in it.
// Only ever replaced as a whole, after the proxy accepted the new snapshot.
struct AppliedState {
  ProxySnapshot snapshot;
  ResourceVersions versions;
};

}  // namespace meridian::agent
