#include "agent/driver/haproxy/haproxy_config.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/driver/haproxy/haproxy_config_parts.h"
#include "controlplane/common/status_macros.h"

namespace meridian::agent::haproxy {
namespace {

using internal::ConfigWriter;
using internal::RuleId;
using internal::RuleMatched;
using internal::SafeName;

std::string Sha256Prefix(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), std::min(length, 8u)));
}

std::string WithNewline(const std::string& pem) {
  return pem.empty() || pem.back() == '\n' ? pem : pem + "\n";
}

// Path and header regexes match the whole value (as Envoy's safe_regex does); HAProxy's `-m reg`
// searches, so anchor them.
std::string Anchored(const std::string& regex) { return absl::StrCat("^(?:", regex, ")$"); }

std::string EscapeRegex(absl::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (absl::StrContains("\\^$.|?*+()[]{}", c)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

void RenderGlobalAndDefaults(const RenderOptions& options, ConfigWriter& out) {
  out.Line("# Rendered by meridian-agent. Do not edit: the agent rewrites it.");
  out.Line("global");
  out.Line("  master-worker");
  // The agent drives endpoint changes through this socket (admin level, owner only).
  out.Line(absl::StrCat("  stats socket ", QuoteWord(options.work_dir + "/haproxy.sock"),
                        " mode 600 level admin expose-fd listeners"));
  out.Line("  stats timeout 30s");
  // Dumped by the agent before each reload so health states survive it.
  out.Line(absl::StrCat("  server-state-file ", QuoteWord(options.work_dir + "/server-state")));
  // A worker replaced by a reload finishes its requests, but not forever.
  out.Line("  hard-stop-after 30s");
  out.Line("");
  out.Line("defaults");
  out.Line("  mode http");
  out.Line("  option forwardfor");
  // A failed connection is retried on another server.
  out.Line("  option redispatch 1");
  out.Line("  retries 3");
  out.Line("  timeout connect 5s");
  out.Line("  timeout client 60s");
  out.Line("  timeout server 60s");
  out.Line("  timeout http-request 10s");
  out.Line("  timeout http-keep-alive 60s");
  out.Line("  timeout queue 5s");
  out.Line("  timeout check 5s");
  out.Line("  load-server-state-from-file global");
  out.Line("  default-server init-addr libc,none");
}

// The ACL terms of a rule's match (without the host, which is a named ACL per route).
std::string MatchTerms(const v1::RouteMatch& match) {
  std::vector<std::string> terms;
  switch (match.path_case()) {
    case v1::RouteMatch::kPathPrefix:
      terms.push_back(absl::StrCat("{ path -m beg ", QuoteWord(match.path_prefix()), " }"));
      break;
    case v1::RouteMatch::kPathExact:
      terms.push_back(absl::StrCat("{ path -m str ", QuoteWord(match.path_exact()), " }"));
      break;
    case v1::RouteMatch::kPathRegex:
      terms.push_back(
          absl::StrCat("{ path -m reg ", QuoteWord(Anchored(match.path_regex())), " }"));
      break;
    case v1::RouteMatch::PATH_NOT_SET:
      break;
  }
  if (!match.methods().empty()) {
    std::vector<std::string> methods;
    for (const auto& method : match.methods()) methods.push_back(SafeName(method));
    terms.push_back(absl::StrCat("{ method ", absl::StrJoin(methods, " "), " }"));
  }
  for (const auto& header : match.headers()) {
    const std::string fetch = absl::StrCat("req.hdr(", SafeName(header.name()), ")");
    switch (header.match_case()) {
      case v1::HeaderMatch::kExact:
        terms.push_back(absl::StrCat("{ ", fetch, " -m str ", QuoteWord(header.exact()), " }"));
        break;
      case v1::HeaderMatch::kPrefix:
        terms.push_back(absl::StrCat("{ ", fetch, " -m beg ", QuoteWord(header.prefix()), " }"));
        break;
      case v1::HeaderMatch::kRegex:
        terms.push_back(
            absl::StrCat("{ ", fetch, " -m reg ", QuoteWord(Anchored(header.regex())), " }"));
        break;
      case v1::HeaderMatch::kPresent:
        // present: false asks for the header to be absent.
        terms.push_back(absl::StrCat(header.present() ? "" : "!", "{ ", fetch, " -m found }"));
        break;
      case v1::HeaderMatch::MATCH_NOT_SET:
        break;
    }
  }
  return absl::StrJoin(terms, " ");
}

// "acl host:<route> ..." lines; empty when the route matches any host.
std::vector<std::string> HostAcls(const std::string& route_name, const v1::RouteSpec& spec) {
  std::vector<std::string> exact;
  std::vector<std::string> suffixes;
  for (const auto& host : spec.hosts()) {
    if (host == "*") return {};
    std::string lower = absl::AsciiStrToLower(host);
    if (absl::StartsWith(lower, "*.")) {
      suffixes.push_back(QuoteWord(lower.substr(1)));
    } else {
      exact.push_back(QuoteWord(lower));
    }
  }
  const std::string acl =
      absl::StrCat("  acl host:", SafeName(route_name), " req.hdr(host),field(1,:),lower");
  std::vector<std::string> lines;
  if (!exact.empty()) lines.push_back(absl::StrCat(acl, " -m str ", absl::StrJoin(exact, " ")));
  if (!suffixes.empty()) {
    lines.push_back(absl::StrCat(acl, " -m end ", absl::StrJoin(suffixes, " ")));
  }
  return lines;
}

struct WeightedBackend {
  std::string backend;
  uint32_t weight;
};

// The rule's destinations with a share of traffic, weights divided by their gcd.
std::vector<WeightedBackend> SplitOf(const v1::RouteRule& rule) {
  const internal::RetryProfile retry = internal::RetryProfileOf(rule);
  std::vector<WeightedBackend> split;
  for (const auto& destination : rule.destinations()) {
    if (rule.destinations_size() > 1 && destination.weight() == 0) continue;
    split.push_back({internal::BackendName(destination.service(), retry),
                     std::max<uint32_t>(destination.weight(), 1)});
  }
  uint32_t divisor = 0;
  for (const auto& entry : split) divisor = std::gcd(divisor, entry.weight);
  for (auto& entry : split) entry.weight /= std::max<uint32_t>(divisor, 1);
  return split;
}

// A multiplier coprime with `total` near total/phi: multiplying the request counter by it
// permutes 0..total-1, spreading each destination's slice evenly over the cycle.
uint64_t SpreadMultiplier(uint64_t total) {
  uint64_t multiplier = std::max<uint64_t>(1, static_cast<uint64_t>(total * 0.618));
  while (std::gcd(multiplier, total) != 1) ++multiplier;
  return multiplier;
}

struct FrontendTables {
  std::vector<std::string> lines;  // backend sections holding stick tables
};

void RenderRuleActions(const std::string& route_name, int index, const v1::RouteRule& rule,
                       ConfigWriter& out, FrontendTables& tables) {
  const std::string rule_id = RuleId(route_name, index);
  const std::string matched = RuleMatched(rule_id);
  const std::string table_suffix = absl::StrCat(SafeName(route_name), ":", index);

  if (rule.has_rate_limit() && rule.rate_limit().requests_per_second() > 0) {
    const auto& limit = rule.rate_limit();
    const bool global = limit.scope() == v1::GLOBAL;
    const std::string table = "rl:" + table_suffix;
    out.Line(absl::StrCat("  http-request track-sc0 ", global ? "int(0)" : "src", " table ", table,
                          " if ", matched));
    out.Line(absl::StrCat("  http-request deny deny_status 429 if ", matched,
                          " { sc_http_req_rate(0) gt ", limit.requests_per_second() + limit.burst(),
                          " }"));
    tables.lines.push_back(absl::StrCat("backend ", table));
    tables.lines.push_back(absl::StrCat("  stick-table type ",
                                        global ? "integer size 1" : "ipv6 size 100k",
                                        " expire 10s store http_req_rate(1s)"));
  }

  const std::vector<WeightedBackend> split = SplitOf(rule);
  if (split.size() > 1) {
    uint64_t total = 0;
    for (const auto& entry : split) total += entry.weight;
    const std::string table = "split:" + table_suffix;
    out.Line(absl::StrCat("  http-request track-sc1 int(0) table ", table, " if ", matched));
    out.Line(absl::StrCat("  http-request set-var(txn.split) sc_inc_gpc0(1),mul(",
                          SpreadMultiplier(total), "),mod(", total, ") if ", matched));
    tables.lines.push_back(absl::StrCat("backend ", table));
    tables.lines.push_back("  stick-table type integer size 1 store gpc0");
  }

  const auto& rewrite = rule.rewrite();
  std::map<std::string, std::string> set_request(rewrite.set_request_headers().begin(),
                                                 rewrite.set_request_headers().end());
  for (const auto& [name, value] : set_request) {
    out.Line(absl::StrCat("  http-request set-header ", SafeName(name), " ",
                          internal::QuoteLogFormat(value), " if ", matched));
  }
  for (const auto& name : rewrite.remove_request_headers()) {
    out.Line(absl::StrCat("  http-request del-header ", SafeName(name), " if ", matched));
  }
  if (!rewrite.prefix_rewrite().empty()) {
    const auto& match = rule.match();
    if (match.has_path_exact()) {
      out.Line(absl::StrCat("  http-request set-path ",
                            internal::QuoteLogFormat(rewrite.prefix_rewrite()), " if ", matched));
    } else if (match.has_path_regex()) {
      out.Line("  # prefix_rewrite ignored: a regex match has no prefix to replace");
    } else {
      const std::string prefix = match.has_path_prefix() ? match.path_prefix() : "/";
      out.Line(absl::StrCat(
          "  http-request replace-path ", QuoteWord(absl::StrCat("^", EscapeRegex(prefix), "(.*)")),
          " ", internal::QuoteLogFormat(rewrite.prefix_rewrite() + "\\1"), " if ", matched));
    }
  }
  std::map<std::string, std::string> set_response(rewrite.set_response_headers().begin(),
                                                  rewrite.set_response_headers().end());
  for (const auto& [name, value] : set_response) {
    out.Line(absl::StrCat("  http-response set-header ", SafeName(name), " ",
                          internal::QuoteLogFormat(value), " if ", matched));
  }
  for (const auto& name : rewrite.remove_response_headers()) {
    out.Line(absl::StrCat("  http-response del-header ", SafeName(name), " if ", matched));
  }
}

// A weighted split picks its backend from a per-rule request counter (a stick-table gpc0,
// incremented atomically by sc_inc_gpc0): counter x multiplier mod total falls into each
// destination's slice exactly weight times per `total` requests, so 90/10 is exactly 900/100
// over 1,000 requests. rand() would only be right on average (about +-1 point at 1,000
// requests), and mixing the services' servers in one backend would lose each service's own
// balancing, health checks and circuit breaking, and tie the split to endpoint counts.
void RenderUseBackends(const std::string& route_name, int index, const v1::RouteRule& rule,
                       ConfigWriter& out) {
  const std::string matched = RuleMatched(RuleId(route_name, index));
  const std::vector<WeightedBackend> split = SplitOf(rule);
  uint64_t upper = 0;
  for (size_t i = 0; i < split.size(); ++i) {
    upper += split[i].weight;
    if (i + 1 < split.size()) {
      out.Line(absl::StrCat("  use_backend ", split[i].backend, " if ", matched,
                            " { var(txn.split) -m int lt ", upper, " }"));
    } else {
      out.Line(absl::StrCat("  use_backend ", split[i].backend, " if ", matched));
    }
  }
}

absl::Status RenderFrontend(uint32_t port, const std::vector<const v1::Route*>& routes,
                            const ProxySnapshot& snapshot, const RenderOptions& options,
                            const std::string& cert_dir, RenderedConfig& result, ConfigWriter& out,
                            FrontendTables& tables) {
  std::map<std::string, std::string> certificates;  // name -> file contents
  for (const v1::Route* route : routes) {
    const std::string& name = route->spec().tls_certificate();
    if (name.empty()) continue;
    auto it = snapshot.certificates.find(name);  // present: RenderHaproxyConfig checked
    certificates[name] = WithNewline(it->second.spec().certificate_chain()) +
                         WithNewline(it->second.spec().private_key());
  }

  out.Line("");
  out.Line(absl::StrCat("frontend fe_", port));
  std::string bind = absl::StrCat("  bind ", options.bind_address, ":", port);
  if (!certificates.empty()) {
    absl::StrAppend(&bind, " ssl");
    for (const auto& [name, contents] : certificates) {
      const std::string file = SafeName(name) + ".pem";
      absl::StrAppend(&bind, " crt ", QuoteWord(cert_dir + "/" + file));
      result.certificate_files[file] = contents;
    }
    absl::StrAppend(&bind, " alpn h2,http/1.1");
  }
  out.Line(bind);
  // The fingerprints make a rotated certificate a config change (HAProxy reads it on reload).
  for (const auto& [name, contents] : certificates) {
    out.Line(absl::StrCat("  # certificate ", SafeName(name), " sha256:", Sha256Prefix(contents)));
  }

  // First matching rule wins: routes by name, rules in order. txn.rule records the winner so
  // rate limits, splits, rewrites and use_backend all refer to one decision.
  for (const v1::Route* route : routes) {
    for (const std::string& line : HostAcls(route->name(), route->spec())) out.Line(line);
  }
  for (const v1::Route* route : routes) {
    const bool any_host = HostAcls(route->name(), route->spec()).empty();
    for (int i = 0; i < route->spec().rules_size(); ++i) {
      std::string line = absl::StrCat("  http-request set-var(txn.rule) str(",
                                      RuleId(route->name(), i), ") if !{ var(txn.rule) -m found }");
      if (!any_host) absl::StrAppend(&line, " host:", SafeName(route->name()));
      const std::string terms = MatchTerms(route->spec().rules(i).match());
      if (!terms.empty()) absl::StrAppend(&line, " ", terms);
      out.Line(line);
    }
  }
  out.Line("  http-request deny deny_status 404 unless { var(txn.rule) -m found }");
  for (const v1::Route* route : routes) {
    for (int i = 0; i < route->spec().rules_size(); ++i) {
      RenderRuleActions(route->name(), i, route->spec().rules(i), out, tables);
    }
  }
  for (const v1::Route* route : routes) {
    for (int i = 0; i < route->spec().rules_size(); ++i) {
      RenderUseBackends(route->name(), i, route->spec().rules(i), out);
    }
  }
  return absl::OkStatus();
}

}  // namespace

int SlotCountFor(int endpoints) {
  int slots = 8;
  while (slots < 2 * endpoints) slots *= 2;
  return slots;
}

std::string QuoteWord(const std::string& value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c == '\\' || c == '"' || c == '$') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

absl::StatusOr<RenderedConfig> RenderHaproxyConfig(const ProxySnapshot& snapshot,
                                                   const RenderOptions& options) {
  RenderedConfig result;
  ConfigWriter out;
  RenderGlobalAndDefaults(options, out);
  const std::string cert_dir =
      options.cert_dir.empty() ? options.work_dir + "/certs" : options.cert_dir;

  std::map<uint32_t, std::vector<const v1::Route*>> routes_by_port;
  std::map<std::string, internal::BackendPlan> backends;
  for (const auto& [name, route] : snapshot.routes) {
    // A TLS route whose certificate has not arrived yet waits for it: rejecting the snapshot
    // would NACK config the control plane then considers delivered and never resends.
    const std::string& certificate = route.spec().tls_certificate();
    if (!certificate.empty() && !snapshot.certificates.contains(certificate)) continue;
    routes_by_port[route.spec().port()].push_back(&route);
    for (int i = 0; i < route.spec().rules_size(); ++i) {
      const v1::RouteRule& rule = route.spec().rules(i);
      const internal::RetryProfile retry = internal::RetryProfileOf(rule);
      const uint32_t timeout_ms = rule.retries().per_try_timeout_ms() > 0
                                      ? rule.retries().per_try_timeout_ms()
                                      : rule.timeout_ms();
      for (const auto& destination : rule.destinations()) {
        if (rule.destinations_size() > 1 && destination.weight() == 0) continue;
        const std::string backend = internal::BackendName(destination.service(), retry);
        internal::BackendPlan& plan = backends[backend];
        plan.name = backend;
        plan.service = destination.service();
        plan.retry = retry;
        if (timeout_ms > 0 &&
            (plan.rule_timeouts.empty() || plan.rule_timeouts.back().first != RuleId(name, i))) {
          plan.rule_timeouts.emplace_back(RuleId(name, i), timeout_ms);
        }
      }
    }
  }

  FrontendTables tables;
  for (const auto& [port, routes] : routes_by_port) {
    MERIDIAN_RETURN_IF_ERROR(
        RenderFrontend(port, routes, snapshot, options, cert_dir, result, out, tables));
  }
  if (!tables.lines.empty()) {
    out.Line("");
    out.Line("# Stick tables of rate limits (http_req_rate) and weighted splits (gpc0 counter).");
    for (const std::string& line : tables.lines) out.Line(line);
  }
  for (const auto& [name, plan] : backends) {
    internal::RenderBackend(plan, snapshot, options.previous_layout, result, out);
  }
  result.text = std::move(out.text());
  result.structure = std::move(out.structure());
  return result;
}

}  // namespace meridian::agent::haproxy
