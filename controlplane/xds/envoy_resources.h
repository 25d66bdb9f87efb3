#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/secret.pb.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::xds {

// The Envoy xDS types Meridian serves next to its own (type.googleapis.com/...).
inline constexpr char kEnvoyClusterType[] = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
inline constexpr char kEnvoyLoadAssignmentType[] =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
inline constexpr char kEnvoyListenerType[] =
    "type.googleapis.com/envoy.config.listener.v3.Listener";
inline constexpr char kEnvoyRouteConfigurationType[] =
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
inline constexpr char kEnvoySecretType[] =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
const std::vector<std::string>& EnvoyTypeUrls();

// "listener_8080": the socket Listener on a port, and the RouteConfiguration that merges the
// plaintext Routes on it. Meridian names cannot contain '_', so these never clash with a Route.
std::string SocketListenerName(uint32_t port);

// Pure translations from Meridian specs to Envoy resources: no state, no I/O. Every map is
// walked in sorted order so equal input always serializes to equal bytes.

// type EDS over ADS, lb_policy, connect timeout, health check, circuit breakers, outlier
// detection.
envoy::config::cluster::v3::Cluster BuildCluster(const std::string& service,
                                                 const v1::ServiceSpec& spec);

// One locality per zone (load_balancing_weight always set: gRPC ignores localities without
// one), endpoint weights, DRAINING/UNHEALTHY health. `endpoints` in a stable order.
envoy::config::endpoint::v3::ClusterLoadAssignment BuildLoadAssignment(
    const std::string& service, const std::vector<const v1::EndpointSpec*>& endpoints);

// The spec of a destination service, or null when it does not exist (for hash policies).
using ServiceLookup = absl::FunctionRef<const v1::ServiceSpec*(const std::string& service)>;

// The routes of a Meridian Route as one virtual host answering `domains`.
envoy::config::route::v3::VirtualHost BuildVirtualHost(const std::string& route_name,
                                                       const v1::RouteSpec& spec,
                                                       const std::vector<std::string>& domains,
                                                       ServiceLookup services);

// For proxyless gRPC (xds:///<host>): a Listener named `host` with no socket whose
// HttpConnectionManager fetches `route_config` by RDS over ADS and runs the router filter.
envoy::config::listener::v3::Listener BuildApiListener(const std::string& host,
                                                       const std::string& route_config);

// A TLS-terminating filter chain of a socket Listener: chosen by SNI, certificate by SDS.
struct TlsFilterChain {
  std::string route;                      // its RouteConfiguration
  std::vector<std::string> server_names;  // empty = any SNI
  std::string certificate;                // Secret name
};

// For Envoy: a Listener on 0.0.0.0:`port` with one filter chain per TLS Route and, when
// `plaintext` is set, a default chain routing by the merged RouteConfiguration of the port.
envoy::config::listener::v3::Listener BuildSocketListener(
    uint32_t port, const std::vector<TlsFilterChain>& tls_chains, bool plaintext);

envoy::extensions::transport_sockets::tls::v3::Secret BuildSecret(const std::string& name,
                                                                  const v1::CertificateSpec& spec);

}  // namespace meridian::xds
