// Backends: one per (service, retry profile) a rule routes to, each with a fixed set of server
// slots that endpoints occupy.

#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "agent/driver/haproxy/haproxy_config_parts.h"

namespace meridian::agent::haproxy::internal {
namespace {

constexpr int kMaxHaproxyWeight = 256;
constexpr uint32_t kDefaultEjectionMs = 30000;

bool IsIpLiteral(const std::string& address) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, address.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, address.c_str(), buffer) == 1;
}

// Meridian retry conditions (Envoy's names) in HAProxy retry-on words.
std::vector<std::string> RetryOnWords(const RetryProfile& retry) {
  // Fixed order keeps the rendered line stable.
  static const std::vector<std::string> kOrder = {"conn-failure",
                                                  "empty-response",
                                                  "junk-response",
                                                  "response-timeout",
                                                  "all-retryable-errors",
                                                  "408",
                                                  "425",
                                                  "500",
                                                  "502",
                                                  "503",
                                                  "504"};
  std::set<std::string> words;
  auto add = [&](std::initializer_list<const char*> list) {
    words.insert(list.begin(), list.end());
  };
  if (retry.retry_on.empty()) add({"conn-failure", "empty-response", "502", "503", "504"});
  for (const std::string& condition : retry.retry_on) {
    if (condition == "5xx") {
      // Envoy's 5xx includes no response at all.
      add({"conn-failure", "empty-response", "response-timeout", "500", "502", "503", "504"});
    } else if (condition == "gateway-error") {
      add({"502", "503", "504"});
    } else if (condition == "connect-failure") {
      add({"conn-failure"});
    } else if (condition == "reset") {
      add({"empty-response", "response-timeout"});
    } else if (condition == "retriable-4xx") {
      // Envoy retries 409; HAProxy 2.6 cannot retry on 409, so take the 4xx it can that mean
      // "try again": Request Timeout and Too Early.
      add({"408", "425"});
    } else if (condition == "refused-stream") {
      add({"conn-failure", "empty-response"});
    } else if (condition == "empty-response" || condition == "response-timeout" ||
               condition == "all-retryable-errors") {
      words.insert(condition);
    }
  }
  std::vector<std::string> ordered;
  for (const std::string& word : kOrder) {
    if (words.count(word)) ordered.push_back(word);
  }
  return ordered;
}

const char* Balance(const v1::LoadBalancing& lb) {
  switch (lb.policy()) {
    case v1::LEAST_REQUEST:
      return "leastconn";
    case v1::RANDOM:
      return "random";
    default:
      return "roundrobin";
  }
}

void RenderBalance(const v1::LoadBalancing& lb, ConfigWriter& out) {
  if (lb.policy() != v1::RING_HASH) {
    out.Line(absl::StrCat("  balance ", Balance(lb)));
    return;
  }
  // Sticky sessions: consistent hashing keeps most keys on their server when servers change
  // and supports runtime weight changes.
  switch (lb.hash().key_case()) {
    case v1::HashPolicy::kHeader:
      out.Line(absl::StrCat("  balance hdr(", SafeName(lb.hash().header()), ")"));
      break;
    case v1::HashPolicy::kCookie:
      out.Line(absl::StrCat("  balance hash req.cook(", SafeName(lb.hash().cookie()), ")"));
      break;
    default:
      out.Line("  balance source");
      break;
  }
  out.Line("  hash-type consistent");
}

// Health checks, passive ejection (circuit breaking) and connection limits, all per server,
// so they go on `default-server` and every slot inherits them.
std::string DefaultServerParams(const v1::ServiceSpec& spec, ConfigWriter& out) {
  const auto& hc = spec.health_check();
  const auto& cb = spec.circuit_breaker();
  std::vector<std::string> params;
  const bool observe = cb.consecutive_5xx() > 0 || cb.consecutive_failures() > 0;
  if (spec.has_health_check() || observe) {
    if (!hc.path().empty()) {
      out.Line("  option httpchk");
      out.Line(absl::StrCat("  http-check send meth GET uri ", QuoteWord(hc.path())));
    }
    if (hc.timeout_ms() > 0) out.Line(absl::StrCat("  timeout check ", hc.timeout_ms()));
    uint32_t rise = hc.healthy_threshold() > 0 ? hc.healthy_threshold() : cb.success_threshold();
    if (rise == 0) rise = 2;
    const uint32_t fall = hc.unhealthy_threshold() > 0 ? hc.unhealthy_threshold() : 3;
    // Passive ejection (observe ... on-error mark-down) takes a server out after N consecutive
    // errors and readmits it on its next passing check (HAProxy leaves its health at `rise`).
    // With an active health check that is within the check's interval; without one the probe
    // (a TCP connect) runs every base_ejection_time, so the ejection lasts at most that long.
    uint32_t inter = hc.interval_ms() > 0 ? hc.interval_ms() : 2000;
    if (observe && !spec.has_health_check()) {
      inter = cb.base_ejection_time_ms() > 0 ? cb.base_ejection_time_ms() : kDefaultEjectionMs;
    }
    params.push_back(absl::StrCat("check inter ", inter, " fall ", fall, " rise ", rise));
    if (cb.consecutive_5xx() > 0) {
      params.push_back(
          absl::StrCat("observe layer7 error-limit ", cb.consecutive_5xx(), " on-error mark-down"));
    } else if (cb.consecutive_failures() > 0) {
      params.push_back(absl::StrCat("observe layer4 error-limit ", cb.consecutive_failures(),
                                    " on-error mark-down"));
    }
  }
  // Envoy counts these per cluster; HAProxy limits each server. Meridian's limits are per
  // endpoint: beyond maxconn requests wait in the server's queue (maxqueue), then get 503.
  uint32_t maxconn = cb.max_connections();
  if (cb.max_requests() > 0 && (maxconn == 0 || cb.max_requests() < maxconn)) {
    maxconn = cb.max_requests();
  }
  if (maxconn > 0) params.push_back(absl::StrCat("maxconn ", maxconn));
  if (cb.max_pending_requests() > 0) {
    params.push_back(absl::StrCat("maxqueue ", cb.max_pending_requests()));
  }
  if (spec.timeouts().idle_ms() > 0) {
    params.push_back(absl::StrCat("pool-purge-delay ", spec.timeouts().idle_ms()));
  }
  if (!spec.ports().empty() &&
      (spec.ports(0).protocol() == v1::HTTP2 || spec.ports(0).protocol() == v1::GRPC)) {
    params.push_back(hc.path().empty() ? "proto h2" : "proto h2 check-proto h2");
  }
  return absl::StrJoin(params, " ");
}

struct EndpointPlacement {
  std::string name;
  const v1::EndpointSpec* spec;
  int weight;
};

std::vector<EndpointPlacement> EndpointsOf(const std::string& service,
                                           const ProxySnapshot& snapshot) {
  std::vector<EndpointPlacement> endpoints;
  int max_weight = 1;
  for (const auto& [name, endpoint] : snapshot.endpoints) {
    if (endpoint.spec().service() != service) continue;
    const int weight =
        endpoint.spec().weight() == 0 ? 1 : static_cast<int>(endpoint.spec().weight());
    max_weight = std::max(max_weight, weight);
    endpoints.push_back({name, &endpoint.spec(), weight});
  }
  // HAProxy weights stop at 256: scale the service's weights down together.
  if (max_weight > kMaxHaproxyWeight) {
    for (auto& endpoint : endpoints) {
      endpoint.weight =
          std::max(1, static_cast<int>((static_cast<int64_t>(endpoint.weight) * kMaxHaproxyWeight +
                                        max_weight / 2) /
                                       max_weight));
    }
  }
  return endpoints;
}

// Keeps each endpoint in its previous slot while the slot count suffices; new endpoints take
// the lowest free slots in name order.
SlotLayout::Backend AssignSlots(const std::vector<EndpointPlacement>& endpoints,
                                const SlotLayout::Backend* previous) {
  SlotLayout::Backend layout;
  const int count = static_cast<int>(endpoints.size());
  layout.size = previous != nullptr && previous->size >= count && previous->size > 0
                    ? previous->size
                    : SlotCountFor(count);
  std::vector<bool> taken(layout.size + 1, false);
  if (previous != nullptr) {
    for (const auto& endpoint : endpoints) {
      auto it = previous->slot_of_endpoint.find(endpoint.name);
      if (it != previous->slot_of_endpoint.end() && it->second <= layout.size &&
          !taken[it->second]) {
        layout.slot_of_endpoint[endpoint.name] = it->second;
        taken[it->second] = true;
      }
    }
  }
  int next = 1;
  for (const auto& endpoint : endpoints) {
    if (layout.slot_of_endpoint.count(endpoint.name)) continue;
    while (taken[next]) ++next;
    layout.slot_of_endpoint[endpoint.name] = next;
    taken[next] = true;
  }
  return layout;
}

std::string HostPort(const std::string& address, uint32_t port) {
  // HAProxy splits address and port at the last colon, IPv6 included.
  return absl::StrCat(address, ":", port);
}

void RenderSlots(const BackendPlan& plan, const ProxySnapshot& snapshot,
                 const SlotLayout& previous_layout, RenderedConfig& result, ConfigWriter& out) {
  const std::vector<EndpointPlacement> endpoints = EndpointsOf(plan.service, snapshot);
  auto previous = previous_layout.backends.find(plan.name);
  const SlotLayout::Backend layout = AssignSlots(
      endpoints, previous == previous_layout.backends.end() ? nullptr : &previous->second);

  std::vector<const EndpointPlacement*> by_slot(layout.size + 1, nullptr);
  for (const auto& endpoint : endpoints)
    by_slot[layout.slot_of_endpoint.at(endpoint.name)] = &endpoint;
  for (int slot = 1; slot <= layout.size; ++slot) {
    ServerSlot server;
    server.backend = plan.name;
    server.server = absl::StrCat("s", slot);
    const std::string empty = absl::StrCat("  server ", server.server, " 0.0.0.0:0 disabled");
    const EndpointPlacement* endpoint = by_slot[slot];
    if (endpoint == nullptr) {
      out.Line(empty, empty);
      result.slots.push_back(std::move(server));
      continue;
    }
    server.endpoint = endpoint->name;
    server.address = endpoint->spec->address();
    server.port = endpoint->spec->port();
    server.weight = endpoint->weight;
    std::string line =
        absl::StrCat("  server ", server.server, " ", HostPort(server.address, server.port));
    switch (endpoint->spec->health()) {
      case v1::DRAINING:
        // No `drain` keyword in a config: weight 0 is the same; the runtime API says drain.
        server.state = ServerState::kDrain;
        absl::StrAppend(&line, " weight 0  # draining: ", SafeName(endpoint->name));
        break;
      case v1::UNHEALTHY:
        server.state = ServerState::kMaint;
        absl::StrAppend(&line, " weight ", server.weight,
                        " disabled  # unhealthy: ", SafeName(endpoint->name));
        break;
      default:
        server.state = ServerState::kReady;
        absl::StrAppend(&line, " weight ", server.weight, "  # ", SafeName(endpoint->name));
        break;
    }
    // The runtime API only takes IP addresses: a DNS name is part of the structure.
    out.Line(line, IsIpLiteral(server.address) ? empty : line);
    result.slots.push_back(std::move(server));
  }
  result.layout.backends[plan.name] = layout;
}

}  // namespace

void ConfigWriter::Line(absl::string_view line) { Line(line, line); }

void ConfigWriter::Line(absl::string_view text_line, absl::string_view structure_line) {
  absl::StrAppend(&text_, text_line, "\n");
  absl::StrAppend(&structure_, structure_line, "\n");
}

RetryProfile RetryProfileOf(const v1::RouteRule& rule) {
  RetryProfile profile;
  std::set<std::string> conditions(rule.retries().retry_on().begin(),
                                   rule.retries().retry_on().end());
  profile.attempts = rule.retries().attempts();
  // Conditions without a count mean one retry (Envoy's default num_retries).
  if (profile.attempts == 0 && !conditions.empty()) profile.attempts = 1;
  if (profile.attempts > 0) profile.retry_on.assign(conditions.begin(), conditions.end());
  return profile;
}

std::string BackendName(const std::string& service, const RetryProfile& retry) {
  // ':' cannot appear in a Meridian name, so variant names never collide with a service's.
  std::string name = "svc_" + SafeName(service);
  if (retry.attempts > 0) {
    absl::StrAppend(&name, ":retry", retry.attempts);
    for (const std::string& condition : retry.retry_on)
      absl::StrAppend(&name, ":", SafeName(condition));
  }
  return name;
}

std::string RuleId(const std::string& route, int index) {
  return absl::StrCat(SafeName(route), "/", index);
}

std::string RuleMatched(const std::string& rule_id) {
  return absl::StrCat("{ var(txn.rule) -m str ", rule_id, " }");
}

std::string SafeName(absl::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      c = '_';
    }
  }
  return out.empty() ? "_" : out;
}

std::string QuoteLogFormat(const std::string& value) {
  return QuoteWord(absl::StrReplaceAll(value, {{"%", "%%"}}));
}

void RenderBackend(const BackendPlan& plan, const ProxySnapshot& snapshot,
                   const SlotLayout& previous_layout, RenderedConfig& result, ConfigWriter& out) {
  static const v1::ServiceSpec kDefaultSpec;
  auto service = snapshot.services.find(plan.service);
  const v1::ServiceSpec& spec =
      service == snapshot.services.end() ? kDefaultSpec : service->second.spec();

  out.Line("");
  out.Line(absl::StrCat("backend ", plan.name));
  if (service == snapshot.services.end()) {
    out.Line(absl::StrCat("  # service ", SafeName(plan.service), " is not in the snapshot"));
  }
  RenderBalance(spec.load_balancing(), out);
  if (spec.timeouts().connect_ms() > 0) {
    out.Line(absl::StrCat("  timeout connect ", spec.timeouts().connect_ms()));
  }
  if (spec.timeouts().request_ms() > 0) {
    out.Line(absl::StrCat("  timeout server ", spec.timeouts().request_ms()));
  }
  const std::string default_server = DefaultServerParams(spec, out);
  if (plan.retry.attempts > 0) {
    out.Line(absl::StrCat("  retries ", plan.retry.attempts));
    out.Line(absl::StrCat("  retry-on ", absl::StrJoin(RetryOnWords(plan.retry), " ")));
  }
  // A rule's timeout (per try when it retries) overrides the service's for its requests.
  for (const auto& [rule_id, timeout_ms] : plan.rule_timeouts) {
    out.Line(absl::StrCat("  http-request set-timeout server ", timeout_ms, " if ",
                          RuleMatched(rule_id)));
  }
  if (!default_server.empty()) out.Line(absl::StrCat("  default-server ", default_server));
  RenderSlots(plan, snapshot, previous_layout, result, out);
}

}  // namespace meridian::agent::haproxy::internal
