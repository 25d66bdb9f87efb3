#include "controlplane/xds/envoy_resources.h"

#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb.h"

namespace meridian::xds {
namespace {

namespace cluster_v3 = envoy::config::cluster::v3;
namespace core_v3 = envoy::config::core::v3;
namespace endpoint_v3 = envoy::config::endpoint::v3;
namespace listener_v3 = envoy::config::listener::v3;
namespace route_v3 = envoy::config::route::v3;
namespace hcm_v3 = envoy::extensions::filters::network::http_connection_manager::v3;
namespace tls_v3 = envoy::extensions::transport_sockets::tls::v3;

void SetMillis(google::protobuf::Duration* duration, uint32_t millis) {
  duration->set_seconds(millis / 1000);
  duration->set_nanos(static_cast<int32_t>(millis % 1000) * 1000000);
}

void UseAds(core_v3::ConfigSource* source) {
  source->mutable_ads();
  source->set_resource_api_version(core_v3::V3);
}

cluster_v3::Cluster::LbPolicy LbPolicyOf(v1::LoadBalancingPolicy policy) {
  switch (policy) {
    case v1::LEAST_REQUEST:
      return cluster_v3::Cluster::LEAST_REQUEST;
    case v1::RANDOM:
      return cluster_v3::Cluster::RANDOM;
    case v1::RING_HASH:
      return cluster_v3::Cluster::RING_HASH;
    default:
      return cluster_v3::Cluster::ROUND_ROBIN;
  }
}

void AddHealthCheck(const v1::HealthCheck& check, cluster_v3::Cluster& cluster) {
  core_v3::HealthCheck* out = cluster.add_health_checks();
  SetMillis(out->mutable_timeout(), check.timeout_ms() > 0 ? check.timeout_ms() : 1000);
  SetMillis(out->mutable_interval(), check.interval_ms() > 0 ? check.interval_ms() : 10000);
  out->mutable_unhealthy_threshold()->set_value(
      check.unhealthy_threshold() > 0 ? check.unhealthy_threshold() : 3);
  out->mutable_healthy_threshold()->set_value(
      check.healthy_threshold() > 0 ? check.healthy_threshold() : 2);
  if (check.path().empty()) {
    out->mutable_tcp_health_check();
  } else {
    out->mutable_http_health_check()->set_path(check.path());
  }
}

void AddResilience(const v1::CircuitBreaker& breaker, cluster_v3::Cluster& cluster) {
  if (breaker.max_connections() > 0 || breaker.max_pending_requests() > 0 ||
      breaker.max_requests() > 0) {
    auto* thresholds = cluster.mutable_circuit_breakers()->add_thresholds();
    thresholds->set_priority(core_v3::DEFAULT);
    if (breaker.max_connections() > 0) {
      thresholds->mutable_max_connections()->set_value(breaker.max_connections());
    }
    if (breaker.max_pending_requests() > 0) {
      thresholds->mutable_max_pending_requests()->set_value(breaker.max_pending_requests());
    }
    if (breaker.max_requests() > 0) {
      thresholds->mutable_max_requests()->set_value(breaker.max_requests());
    }
  }
  if (breaker.consecutive_5xx() > 0 || breaker.consecutive_failures() > 0) {
    auto* outlier = cluster.mutable_outlier_detection();
    // Envoy defaults consecutive_5xx to 5 and gateway-failure enforcement to 0: state both.
    outlier->mutable_consecutive_5xx()->set_value(breaker.consecutive_5xx());
    outlier->mutable_enforcing_consecutive_5xx()->set_value(breaker.consecutive_5xx() > 0 ? 100
                                                                                          : 0);
    if (breaker.consecutive_failures() > 0) {
      outlier->mutable_consecutive_gateway_failure()->set_value(breaker.consecutive_failures());
      outlier->mutable_enforcing_consecutive_gateway_failure()->set_value(100);
    }
    if (breaker.base_ejection_time_ms() > 0) {
      SetMillis(outlier->mutable_base_ejection_time(), breaker.base_ejection_time_ms());
    }
  }
}

core_v3::HealthStatus HealthOf(v1::HealthStatus health) {
  switch (health) {
    case v1::HEALTHY:
      return core_v3::HEALTHY;
    case v1::UNHEALTHY:
      return core_v3::UNHEALTHY;
    case v1::DRAINING:
      return core_v3::DRAINING;
    default:
      return core_v3::UNKNOWN;
  }
}

bool ReceivesTraffic(v1::HealthStatus health) {
  return health != v1::UNHEALTHY && health != v1::DRAINING;
}

route_v3::HeaderMatcher* AddHeaderMatcher(const std::string& name, route_v3::RouteMatch& match) {
  route_v3::HeaderMatcher* matcher = match.add_headers();
  matcher->set_name(name);
  return matcher;
}

void BuildMatch(const v1::RouteMatch& in, route_v3::RouteMatch& out) {
  switch (in.path_case()) {
    case v1::RouteMatch::kPathExact:
      out.set_path(in.path_exact());
      break;
    case v1::RouteMatch::kPathRegex:
      out.mutable_safe_regex()->set_regex(in.path_regex());
      break;
    case v1::RouteMatch::kPathPrefix:
      out.set_prefix(in.path_prefix());
      break;
    default:
      out.set_prefix("/");
  }
  if (in.methods_size() == 1) {
    AddHeaderMatcher(":method", out)->set_exact_match(in.methods(0));
  } else if (in.methods_size() > 1) {
    AddHeaderMatcher(":method", out)
        ->mutable_safe_regex_match()
        ->set_regex(absl::StrCat("^(", absl::StrJoin(in.methods(), "|"), ")$"));
  }
  for (const v1::HeaderMatch& header : in.headers()) {
    route_v3::HeaderMatcher* matcher = AddHeaderMatcher(header.name(), out);
    switch (header.match_case()) {
      case v1::HeaderMatch::kExact:
        matcher->set_exact_match(header.exact());
        break;
      case v1::HeaderMatch::kPrefix:
        matcher->set_prefix_match(header.prefix());
        break;
      case v1::HeaderMatch::kRegex:
        matcher->mutable_safe_regex_match()->set_regex(header.regex());
        break;
      default:
        matcher->set_present_match(true);
    }
  }
}

void AddHashPolicy(const v1::HashPolicy& hash, route_v3::RouteAction& action) {
  route_v3::RouteAction::HashPolicy policy;
  switch (hash.key_case()) {
    case v1::HashPolicy::kHeader:
      policy.mutable_header()->set_header_name(hash.header());
      break;
    case v1::HashPolicy::kCookie:
      policy.mutable_cookie()->set_name(hash.cookie());
      break;
    case v1::HashPolicy::kSourceIp:
      policy.mutable_connection_properties()->set_source_ip(true);
      break;
    default:
      return;
  }
  const std::string bytes = policy.SerializeAsString();
  for (const auto& existing : action.hash_policy()) {
    if (existing.SerializeAsString() == bytes) return;
  }
  *action.add_hash_policy() = std::move(policy);
}

void BuildAction(const v1::RouteRule& rule, ServiceLookup services, route_v3::RouteAction& out) {
  if (rule.destinations_size() == 1) {
    out.set_cluster(rule.destinations(0).service());
  } else {
    auto* split = out.mutable_weighted_clusters();
    uint32_t total = 0;
    for (const v1::Destination& destination : rule.destinations()) {
      if (destination.weight() == 0) continue;  // no traffic; gRPC would skip it as well
      auto* cluster = split->add_clusters();
      cluster->set_name(destination.service());
      cluster->mutable_weight()->set_value(destination.weight());
      total += destination.weight();
    }
    split->mutable_total_weight()->set_value(total);
  }
  for (const v1::Destination& destination : rule.destinations()) {
    const v1::ServiceSpec* service = services(destination.service());
    if (service != nullptr && service->load_balancing().policy() == v1::RING_HASH &&
        service->load_balancing().has_hash()) {
      AddHashPolicy(service->load_balancing().hash(), out);
    }
  }
  if (!rule.rewrite().prefix_rewrite().empty()) {
    out.set_prefix_rewrite(rule.rewrite().prefix_rewrite());
  }
  if (rule.timeout_ms() > 0) {
    SetMillis(out.mutable_timeout(), rule.timeout_ms());
    // What gRPC reads as the call deadline cap (it ignores `timeout`).
    SetMillis(out.mutable_max_stream_duration()->mutable_max_stream_duration(), rule.timeout_ms());
  }
  if (rule.retries().attempts() > 0) {
    auto* retry = out.mutable_retry_policy();
    retry->set_retry_on(rule.retries().retry_on().empty()
                            ? "5xx,connect-failure,reset"
                            : absl::StrJoin(rule.retries().retry_on(), ","));
    retry->mutable_num_retries()->set_value(rule.retries().attempts());
    if (rule.retries().per_try_timeout_ms() > 0) {
      SetMillis(retry->mutable_per_try_timeout(), rule.retries().per_try_timeout_ms());
    }
  }
}

void SetHeaders(const google::protobuf::Map<std::string, std::string>& headers,
                google::protobuf::RepeatedPtrField<core_v3::HeaderValueOption>& out) {
  const std::map<std::string, std::string> sorted(headers.begin(), headers.end());
  for (const auto& [key, value] : sorted) {
    core_v3::HeaderValueOption* option = out.Add();
    option->mutable_header()->set_key(key);
    option->mutable_header()->set_value(value);
    option->set_append_action(core_v3::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD);
  }
}

hcm_v3::HttpConnectionManager BuildConnectionManager(const std::string& stat_prefix,
                                                     const std::string& route_config) {
  hcm_v3::HttpConnectionManager manager;
  manager.set_stat_prefix(stat_prefix);
  UseAds(manager.mutable_rds()->mutable_config_source());
  manager.mutable_rds()->set_route_config_name(route_config);
  hcm_v3::HttpFilter* router = manager.add_http_filters();
  router->set_name("envoy.filters.http.router");
  router->mutable_typed_config()->PackFrom(envoy::extensions::filters::http::router::v3::Router());
  return manager;
}

listener_v3::FilterChain* AddChain(const std::string& name, const std::string& route_config,
                                   listener_v3::Listener& listener) {
  listener_v3::FilterChain* chain = listener.add_filter_chains();
  chain->set_name(name);
  hcm_v3::HttpConnectionManager manager = BuildConnectionManager(route_config, route_config);
  manager.set_strip_any_host_port(true);  // Host "shop.example.com:8080" matches its domain
  listener_v3::Filter* filter = chain->add_filters();
  filter->set_name("envoy.filters.network.http_connection_manager");
  filter->mutable_typed_config()->PackFrom(manager);
  return chain;
}

}  // namespace

const std::vector<std::string>& EnvoyTypeUrls() {
  static const std::vector<std::string> kTypes = {kEnvoyClusterType, kEnvoyLoadAssignmentType,
                                                  kEnvoySecretType, kEnvoyListenerType,
                                                  kEnvoyRouteConfigurationType};
  return kTypes;
}

std::string SocketListenerName(uint32_t port) { return absl::StrCat("listener_", port); }

cluster_v3::Cluster BuildCluster(const std::string& service, const v1::ServiceSpec& spec) {
  cluster_v3::Cluster cluster;
  cluster.set_name(service);
  cluster.set_type(cluster_v3::Cluster::EDS);
  UseAds(cluster.mutable_eds_cluster_config()->mutable_eds_config());
  cluster.mutable_eds_cluster_config()->set_service_name(service);
  if (spec.timeouts().connect_ms() > 0) {
    SetMillis(cluster.mutable_connect_timeout(), spec.timeouts().connect_ms());
  }
  cluster.set_lb_policy(LbPolicyOf(spec.load_balancing().policy()));
  if (spec.has_health_check()) AddHealthCheck(spec.health_check(), cluster);
  if (spec.has_circuit_breaker()) AddResilience(spec.circuit_breaker(), cluster);
  return cluster;
}

endpoint_v3::ClusterLoadAssignment BuildLoadAssignment(
    const std::string& service, const std::vector<const v1::EndpointSpec*>& endpoints) {
  std::map<std::string, std::vector<const v1::EndpointSpec*>> by_zone;
  for (const v1::EndpointSpec* endpoint : endpoints) by_zone[endpoint->zone()].push_back(endpoint);
  endpoint_v3::ClusterLoadAssignment assignment;
  assignment.set_cluster_name(service);
  // gRPC and Envoy both need the locality weights of a priority to fit in a uint32.
  const uint64_t cap = std::numeric_limits<uint32_t>::max() / std::max<size_t>(1, by_zone.size());
  for (const auto& [zone, members] : by_zone) {
    endpoint_v3::LocalityLbEndpoints* locality = assignment.add_endpoints();
    locality->mutable_locality()->set_zone(zone);
    uint64_t serving_weight = 0;
    for (const v1::EndpointSpec* endpoint : members) {
      const uint32_t weight = endpoint->weight() > 0 ? endpoint->weight() : 1;
      endpoint_v3::LbEndpoint* lb_endpoint = locality->add_lb_endpoints();
      auto* socket = lb_endpoint->mutable_endpoint()->mutable_address()->mutable_socket_address();
      socket->set_address(endpoint->address());
      socket->set_port_value(endpoint->port());
      lb_endpoint->set_health_status(HealthOf(endpoint->health()));
      lb_endpoint->mutable_load_balancing_weight()->set_value(weight);
      if (ReceivesTraffic(endpoint->health())) serving_weight += weight;
    }
    // The zone's share follows the endpoints that take traffic, so a zone whose other
    // endpoints drain does not pull more than its live endpoints' weight. Never 0: gRPC
    // silently drops a locality without a weight.
    locality->mutable_load_balancing_weight()->set_value(
        static_cast<uint32_t>(std::clamp<uint64_t>(serving_weight, 1, cap)));
  }
  return assignment;
}

route_v3::VirtualHost BuildVirtualHost(const std::string& route_name, const v1::RouteSpec& spec,
                                       const std::vector<std::string>& domains,
                                       ServiceLookup services) {
  route_v3::VirtualHost host;
  host.set_name(route_name);
  for (const std::string& domain : domains) host.add_domains(domain);
  for (int i = 0; i < spec.rules_size(); ++i) {
    const v1::RouteRule& rule = spec.rules(i);
    route_v3::Route* route = host.add_routes();
    route->set_name(absl::StrCat(route_name, "/", i));
    BuildMatch(rule.match(), *route->mutable_match());
    BuildAction(rule, services, *route->mutable_route());
    SetHeaders(rule.rewrite().set_request_headers(), *route->mutable_request_headers_to_add());
    for (const std::string& name : rule.rewrite().remove_request_headers()) {
      route->add_request_headers_to_remove(name);
    }
    SetHeaders(rule.rewrite().set_response_headers(), *route->mutable_response_headers_to_add());
    for (const std::string& name : rule.rewrite().remove_response_headers()) {
      route->add_response_headers_to_remove(name);
    }
  }
  return host;
}

listener_v3::Listener BuildApiListener(const std::string& host, const std::string& route_config) {
  listener_v3::Listener listener;
  listener.set_name(host);
  listener.mutable_api_listener()->mutable_api_listener()->PackFrom(
      BuildConnectionManager(route_config, route_config));
  return listener;
}

listener_v3::Listener BuildSocketListener(uint32_t port,
                                          const std::vector<TlsFilterChain>& tls_chains,
                                          bool plaintext) {
  listener_v3::Listener listener;
  listener.set_name(SocketListenerName(port));
  auto* socket = listener.mutable_address()->mutable_socket_address();
  socket->set_address("0.0.0.0");
  socket->set_port_value(port);
  if (!tls_chains.empty()) {
    listener_v3::ListenerFilter* inspector = listener.add_listener_filters();
    inspector->set_name("envoy.filters.listener.tls_inspector");
    inspector->mutable_typed_config()->PackFrom(
        envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector());
  }
  for (const TlsFilterChain& tls : tls_chains) {
    listener_v3::FilterChain* chain = AddChain(tls.route, tls.route, listener);
    chain->mutable_filter_chain_match()->set_transport_protocol("tls");
    for (const std::string& name : tls.server_names) {
      chain->mutable_filter_chain_match()->add_server_names(name);
    }
    tls_v3::DownstreamTlsContext context;
    auto* common = context.mutable_common_tls_context();
    common->add_alpn_protocols("h2");
    common->add_alpn_protocols("http/1.1");
    tls_v3::SdsSecretConfig* secret = common->add_tls_certificate_sds_secret_configs();
    secret->set_name(tls.certificate);
    UseAds(secret->mutable_sds_config());
    chain->mutable_transport_socket()->set_name("envoy.transport_sockets.tls");
    chain->mutable_transport_socket()->mutable_typed_config()->PackFrom(context);
  }
  if (plaintext) AddChain(SocketListenerName(port), SocketListenerName(port), listener);
  return listener;
}

tls_v3::Secret BuildSecret(const std::string& name, const v1::CertificateSpec& spec) {
  tls_v3::Secret secret;
  secret.set_name(name);
  secret.mutable_tls_certificate()->mutable_certificate_chain()->set_inline_string(
      spec.certificate_chain());
  secret.mutable_tls_certificate()->mutable_private_key()->set_inline_string(spec.private_key());
  return secret;
}

}  // namespace meridian::xds
