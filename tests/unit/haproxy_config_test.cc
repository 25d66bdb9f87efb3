#include "agent/driver/haproxy/haproxy_config.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/driver/haproxy/haproxy_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/proxy_snapshot_builders.h"
#include "tests/support/self_signed_cert.h"

namespace meridian::agent::haproxy {
namespace {

using ::meridian::testing::AddEndpoint;
using ::meridian::testing::AddRoute;
using ::meridian::testing::AddService;
using ::testing::HasSubstr;
using ::testing::Not;

RenderOptions Options() {
  RenderOptions options;
  options.work_dir = "/run/meridian";
  options.bind_address = "127.0.0.1";
  return options;
}

RenderedConfig Render(const ProxySnapshot& snapshot, const RenderOptions& options = Options()) {
  absl::StatusOr<RenderedConfig> rendered = RenderHaproxyConfig(snapshot, options);
  EXPECT_TRUE(rendered.ok()) << rendered.status();
  return rendered.ok() ? *rendered : RenderedConfig{};
}

// Lines of `text` that contain `needle`, in order.
std::vector<std::string> LinesWith(const std::string& text, const std::string& needle) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (absl::StrContains(line, needle)) lines.push_back(line);
  }
  return lines;
}

ProxySnapshot TwoEndpointShop() {
  ProxySnapshot snapshot;
  AddService(snapshot, "checkout");
  AddEndpoint(snapshot, "checkout-1", "checkout", "10.0.0.1", 8080);
  AddEndpoint(snapshot, "checkout-2", "checkout", "10.0.0.2", 8080, 3);
  AddRoute(snapshot, "shop", 80, {{"checkout", 0}}, "/", {"shop.example.com"});
  return snapshot;
}

TEST(HaproxyConfigTest, GlobalRunsMasterWorkerWithAdminSocketAndServerState) {
  const std::string text = Render(ProxySnapshot{}).text;
  EXPECT_THAT(text, HasSubstr("  master-worker\n"));
  EXPECT_THAT(text, HasSubstr("  stats socket \"/run/meridian/haproxy.sock\" mode 600 level admin "
                              "expose-fd listeners\n"));
  EXPECT_THAT(text, HasSubstr("  server-state-file \"/run/meridian/server-state\"\n"));
  EXPECT_THAT(text, HasSubstr("  load-server-state-from-file global\n"));
  EXPECT_THAT(text, HasSubstr("defaults\n  mode http\n"));
  EXPECT_THAT(text, Not(HasSubstr("frontend")));
}

TEST(HaproxyConfigTest, RendersOneFrontendPerListenerPort) {
  ProxySnapshot snapshot = TwoEndpointShop();
  AddRoute(snapshot, "admin", 9090, {{"checkout", 0}});
  AddRoute(snapshot, "api", 80, {{"checkout", 0}}, "/api");
  const std::string text = Render(snapshot).text;
  EXPECT_EQ(LinesWith(text, "frontend ").size(), 2u);
  EXPECT_THAT(text, HasSubstr("frontend fe_80\n  bind 127.0.0.1:80\n"));
  EXPECT_THAT(text, HasSubstr("frontend fe_9090\n  bind 127.0.0.1:9090\n"));
}

TEST(HaproxyConfigTest, MatchesRulesInOrderOfRouteNameThenRuleIndex) {
  ProxySnapshot snapshot = TwoEndpointShop();
  v1::Route& route = AddRoute(snapshot, "api", 80, {{"checkout", 0}}, "/api");
  auto* second = route.mutable_spec()->add_rules();
  *second = route.spec().rules(0);
  second->mutable_match()->set_path_exact("/api/v2");
  const std::vector<std::string> selections = LinesWith(Render(snapshot).text, "set-var(txn.rule)");
  ASSERT_EQ(selections.size(), 3u);
  EXPECT_THAT(selections[0], HasSubstr("str(api/0) if !{ var(txn.rule) -m found }"));
  EXPECT_THAT(selections[0], HasSubstr("{ path -m beg \"/api\" }"));
  EXPECT_THAT(selections[1], HasSubstr("str(api/1)"));
  EXPECT_THAT(selections[1], HasSubstr("{ path -m str \"/api/v2\" }"));
  EXPECT_THAT(selections[2], HasSubstr("str(shop/0)"));
  EXPECT_THAT(selections[2], HasSubstr(" host:shop "));
}

TEST(HaproxyConfigTest, MatchesHostsMethodsAndHeaders) {
  ProxySnapshot snapshot = TwoEndpointShop();
  v1::Route& route = snapshot.routes["shop"];
  route.mutable_spec()->add_hosts("*.shop.example.org");
  auto* match = route.mutable_spec()->mutable_rules(0)->mutable_match();
  match->set_path_regex("/items/[0-9]+");
  match->add_methods("GET");
  match->add_methods("HEAD");
  auto* exact = match->add_headers();
  exact->set_name("x-tenant");
  exact->set_exact("acme \"corp\" $HOME");
  auto* prefix = match->add_headers();
  prefix->set_name("user-agent");
  prefix->set_prefix("curl/");
  auto* regex = match->add_headers();
  regex->set_name("x-version");
  regex->set_regex("v[0-9]");
  auto* absent = match->add_headers();
  absent->set_name("x-debug");
  absent->set_present(false);

  const std::string text = Render(snapshot).text;
  EXPECT_THAT(text, HasSubstr("  acl host:shop req.hdr(host),field(1,:),lower -m str "
                              "\"shop.example.com\"\n"));
  EXPECT_THAT(text, HasSubstr("  acl host:shop req.hdr(host),field(1,:),lower -m end "
                              "\".shop.example.org\"\n"));
  const std::string selection = LinesWith(text, "set-var(txn.rule)").at(0);
  EXPECT_THAT(selection, HasSubstr("{ path -m reg \"^(?:/items/[0-9]+)\\$\" }"));
  EXPECT_THAT(selection, HasSubstr("{ method GET HEAD }"));
  EXPECT_THAT(selection, HasSubstr("{ req.hdr(x-tenant) -m str \"acme \\\"corp\\\" \\$HOME\" }"));
  EXPECT_THAT(selection, HasSubstr("{ req.hdr(user-agent) -m beg \"curl/\" }"));
  EXPECT_THAT(selection, HasSubstr("{ req.hdr(x-version) -m reg \"^(?:v[0-9])\\$\" }"));
  EXPECT_THAT(selection, HasSubstr("!{ req.hdr(x-debug) -m found }"));
}

TEST(HaproxyConfigTest, AnyHostRouteHasNoHostAclAndUnmatchedRequestsGet404) {
  ProxySnapshot snapshot;
  AddRoute(snapshot, "all", 80, {{"web", 0}});
  const std::string text = Render(snapshot).text;
  EXPECT_THAT(text, Not(HasSubstr("acl host:")));
  EXPECT_THAT(text,
              HasSubstr("http-request deny deny_status 404 unless { var(txn.rule) -m found }"));
  EXPECT_THAT(text, HasSubstr("  use_backend svc_web if { var(txn.rule) -m str all/0 }\n"));
}

TEST(HaproxyConfigTest, WeightedSplitTakesExactSlicesOfARequestCounter) {
  ProxySnapshot snapshot;
  AddService(snapshot, "checkout");
  AddService(snapshot, "checkout-canary");
  AddRoute(snapshot, "shop", 80, {{"checkout", 90}, {"checkout-canary", 10}});
  const std::string text = Render(snapshot).text;
  // 90/10 reduces to 9/1: a cycle of 10 requests, permuted by x7 mod 10.
  EXPECT_THAT(text, HasSubstr("  http-request track-sc1 int(0) table split:shop:0 if "
                              "{ var(txn.rule) -m str shop/0 }\n"));
  EXPECT_THAT(text, HasSubstr("  http-request set-var(txn.split) sc_inc_gpc0(1),mul(7),mod(10) "
                              "if { var(txn.rule) -m str shop/0 }\n"));
  EXPECT_THAT(text, HasSubstr("  use_backend svc_checkout if { var(txn.rule) -m str shop/0 } "
                              "{ var(txn.split) -m int lt 9 }\n"));
  EXPECT_THAT(text, HasSubstr("  use_backend svc_checkout-canary if "
                              "{ var(txn.rule) -m str shop/0 }\n"));
  EXPECT_THAT(text,
              HasSubstr("backend split:shop:0\n  stick-table type integer size 1 store gpc0\n"));
  // Each service keeps its own backend.
  EXPECT_THAT(text, HasSubstr("backend svc_checkout\n"));
  EXPECT_THAT(text, HasSubstr("backend svc_checkout-canary\n"));

  // What HAProxy computes for counters 1..1000.
  int to_checkout = 0;
  for (int counter = 1; counter <= 1000; ++counter) to_checkout += (counter * 7) % 10 < 9;
  EXPECT_EQ(to_checkout, 900);
}

TEST(HaproxyConfigTest, ZeroWeightDestinationGetsNoTraffic) {
  ProxySnapshot snapshot;
  AddRoute(snapshot, "shop", 80, {{"blue", 100}, {"green", 0}});
  const std::string text = Render(snapshot).text;
  EXPECT_THAT(text, Not(HasSubstr("green")));
  EXPECT_THAT(text, Not(HasSubstr("txn.split")));
}

TEST(HaproxyConfigTest, MapsLoadBalancingPolicies) {
  struct Case {
    v1::LoadBalancingPolicy policy;
    std::string header, cookie;
    bool source_ip;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {v1::LOAD_BALANCING_POLICY_UNSPECIFIED, "", "", false, "  balance roundrobin\n"},
      {v1::ROUND_ROBIN, "", "", false, "  balance roundrobin\n"},
      {v1::LEAST_REQUEST, "", "", false, "  balance leastconn\n"},
      {v1::RANDOM, "", "", false, "  balance random\n"},
      {v1::RING_HASH, "x-user", "", false, "  balance hdr(x-user)\n  hash-type consistent\n"},
      {v1::RING_HASH, "", "session", false,
       "  balance hash req.cook(session)\n  hash-type consistent\n"},
      {v1::RING_HASH, "", "", true, "  balance source\n  hash-type consistent\n"},
  };
  for (const Case& c : cases) {
    ProxySnapshot snapshot;
    auto* lb = AddService(snapshot, "web").mutable_spec()->mutable_load_balancing();
    lb->set_policy(c.policy);
    if (!c.header.empty()) lb->mutable_hash()->set_header(c.header);
    if (!c.cookie.empty()) lb->mutable_hash()->set_cookie(c.cookie);
    if (c.source_ip) lb->mutable_hash()->set_source_ip(true);
    AddRoute(snapshot, "web", 80, {{"web", 0}});
    EXPECT_THAT(Render(snapshot).text, HasSubstr("backend svc_web\n" + c.expected)) << c.expected;
  }
}

TEST(HaproxyConfigTest, HealthCheckAndServiceTimeouts) {
  ProxySnapshot snapshot = TwoEndpointShop();
  auto* spec = snapshot.services["checkout"].mutable_spec();
  auto* hc = spec->mutable_health_check();
  hc->set_path("/healthz");
  hc->set_interval_ms(500);
  hc->set_timeout_ms(200);
  hc->set_healthy_threshold(3);
  hc->set_unhealthy_threshold(4);
  spec->mutable_timeouts()->set_connect_ms(1500);
  spec->mutable_timeouts()->set_request_ms(20000);
  spec->mutable_timeouts()->set_idle_ms(30000);
  const std::string text = Render(snapshot).text;
  EXPECT_THAT(text, HasSubstr("  timeout connect 1500\n  timeout server 20000\n"));
  EXPECT_THAT(text, HasSubstr("  option httpchk\n  http-check send meth GET uri \"/healthz\"\n"));
  EXPECT_THAT(text, HasSubstr("  timeout check 200\n"));
  EXPECT_THAT(text, HasSubstr("  default-server check inter 500 fall 4 rise 3 "
                              "pool-purge-delay 30000\n"));
}

TEST(HaproxyConfigTest, CircuitBreakerLimitsAndEjects) {
  ProxySnapshot snapshot = TwoEndpointShop();
  auto* cb = snapshot.services["checkout"].mutable_spec()->mutable_circuit_breaker();
  cb->set_max_connections(100);
  cb->set_max_requests(50);
  cb->set_max_pending_requests(10);
  cb->set_consecutive_5xx(5);
  cb->set_base_ejection_time_ms(10000);
  const std::string text = Render(snapshot).text;
  // No health check configured: a TCP probe every base_ejection_time readmits the server.
  EXPECT_THAT(text, HasSubstr("  default-server check inter 10000 fall 3 rise 2 observe layer7 "
                              "error-limit 5 on-error mark-down maxconn 50 maxqueue 10\n"));

  // With a health check, its interval is the probe's.
  auto* hc = snapshot.services["checkout"].mutable_spec()->mutable_health_check();
  hc->set_interval_ms(1000);
  EXPECT_THAT(Render(snapshot).text, HasSubstr("check inter 1000 fall 3 rise 2 observe layer7"));

  cb->set_consecutive_5xx(0);
  cb->set_consecutive_failures(3);
  EXPECT_THAT(Render(snapshot).text, HasSubstr("observe layer4 error-limit 3 on-error mark-down"));
}

TEST(HaproxyConfigTest, RetriesGetTheirOwnBackendWithRetryOn) {
  ProxySnapshot snapshot = TwoEndpointShop();
  auto* rule = snapshot.routes["shop"].mutable_spec()->mutable_rules(0);
  rule->mutable_retries()->set_attempts(3);
  rule->mutable_retries()->add_retry_on("5xx");
  rule->mutable_retries()->add_retry_on("connect-failure");
  rule->mutable_retries()->set_per_try_timeout_ms(2000);
  rule->set_timeout_ms(6000);
  AddRoute(snapshot, "status", 80, {{"checkout", 0}}, "/status");
  auto* gateway = snapshot.routes["status"].mutable_spec()->mutable_rules(0);
  gateway->mutable_retries()->add_retry_on("gateway-error");
  gateway->mutable_retries()->add_retry_on("retriable-4xx");

  const std::string text = Render(snapshot).text;
  EXPECT_THAT(text, HasSubstr("  use_backend svc_checkout:retry3:5xx:connect-failure if "
                              "{ var(txn.rule) -m str shop/0 }\n"));
  EXPECT_THAT(text, HasSubstr("backend svc_checkout:retry3:5xx:connect-failure\n"));
  EXPECT_THAT(text, HasSubstr("  retries 3\n  retry-on conn-failure empty-response "
                              "response-timeout 500 502 503 504\n"));
  EXPECT_THAT(text, HasSubstr("  http-request set-timeout server 2000 if "
                              "{ var(txn.rule) -m str shop/0 }\n"));
  // Conditions without attempts mean one retry.
  EXPECT_THAT(text, HasSubstr("backend svc_checkout:retry1:gateway-error:retriable-4xx\n"));
  EXPECT_THAT(text, HasSubstr("  retries 1\n  retry-on 408 425 502 503 504\n"));
}

TEST(HaproxyConfigTest, RateLimitsPerSourceIpOrGloballyWith429) {
  ProxySnapshot snapshot = TwoEndpointShop();
  auto* limit = snapshot.routes["shop"].mutable_spec()->mutable_rules(0)->mutable_rate_limit();
  limit->set_requests_per_second(5);
  limit->set_burst(2);
  std::string text = Render(snapshot).text;
  EXPECT_THAT(text, HasSubstr("  http-request track-sc0 src table rl:shop:0 if "
                              "{ var(txn.rule) -m str shop/0 }\n"));
  EXPECT_THAT(text, HasSubstr("  http-request deny deny_status 429 if { var(txn.rule) -m str "
                              "shop/0 } { sc_http_req_rate(0) gt 7 }\n"));
  EXPECT_THAT(text, HasSubstr("backend rl:shop:0\n  stick-table type ipv6 size 100k expire 10s "
                              "store http_req_rate(1s)\n"));

  limit->set_scope(v1::GLOBAL);
  text = Render(snapshot).text;
  EXPECT_THAT(text, HasSubstr("  http-request track-sc0 int(0) table rl:shop:0 if"));
  EXPECT_THAT(text,
              HasSubstr("stick-table type integer size 1 expire 10s store http_req_rate(1s)"));
}

TEST(HaproxyConfigTest, RewritesHeadersAndPathPrefix) {
  ProxySnapshot snapshot;
  AddRoute(snapshot, "api", 80, {{"api", 0}}, "/api/v1");
  auto* rewrite = snapshot.routes["api"].mutable_spec()->mutable_rules(0)->mutable_rewrite();
  (*rewrite->mutable_set_request_headers())["x-served-by"] = "meridian 100%";
  rewrite->add_remove_request_headers("cookie");
  (*rewrite->mutable_set_response_headers())["cache-control"] = "no-store";
  rewrite->add_remove_response_headers("server");
  rewrite->set_prefix_rewrite("/v1");
  const std::string text = Render(snapshot).text;
  const std::string matched = " if { var(txn.rule) -m str api/0 }\n";
  EXPECT_THAT(text,
              HasSubstr("  http-request set-header x-served-by \"meridian 100%%\"" + matched));
  EXPECT_THAT(text, HasSubstr("  http-request del-header cookie" + matched));
  EXPECT_THAT(text,
              HasSubstr("  http-request replace-path \"^/api/v1(.*)\" \"/v1\\\\1\"" + matched));
  EXPECT_THAT(text, HasSubstr("  http-response set-header cache-control \"no-store\"" + matched));
  EXPECT_THAT(text, HasSubstr("  http-response del-header server" + matched));
}

TEST(HaproxyConfigTest, TlsRouteWaitsForItsCertificateInsteadOfFailing) {
  ProxySnapshot snapshot = TwoEndpointShop();
  snapshot.routes["shop"].mutable_spec()->set_port(443);
  snapshot.routes["shop"].mutable_spec()->set_tls_certificate("not-yet-here");
  const RenderedConfig rendered = Render(snapshot);
  EXPECT_THAT(rendered.text, Not(HasSubstr("frontend fe_443")));
}

TEST(HaproxyConfigTest, TerminatesTlsWithCertificateFiles) {
  ProxySnapshot snapshot = TwoEndpointShop();
  snapshot.routes["shop"].mutable_spec()->set_port(443);
  snapshot.routes["shop"].mutable_spec()->set_tls_certificate("shop-cert");
  v1::Certificate& cert = snapshot.certificates["shop-cert"];
  cert.set_name("shop-cert");
  cert.mutable_spec()->set_certificate_chain("-----CHAIN-----");
  cert.mutable_spec()->set_private_key("-----KEY-----\n");
  const RenderedConfig rendered = Render(snapshot);
  EXPECT_THAT(rendered.text, HasSubstr("  bind 127.0.0.1:443 ssl crt "
                                       "\"/run/meridian/certs/shop-cert.pem\" alpn h2,http/1.1\n"));
  EXPECT_THAT(rendered.text, HasSubstr("  # certificate shop-cert sha256:"));
  ASSERT_EQ(rendered.certificate_files.count("shop-cert.pem"), 1u);
  EXPECT_EQ(rendered.certificate_files.at("shop-cert.pem"), "-----CHAIN-----\n-----KEY-----\n");

  // A rotated certificate changes the config (HAProxy loads certificates on reload).
  cert.mutable_spec()->set_certificate_chain("-----CHAIN 2-----");
  EXPECT_NE(Render(snapshot).structure, rendered.structure);
}

TEST(HaproxyConfigTest, RendersEndpointsIntoPowerOfTwoSlots) {
  EXPECT_EQ(SlotCountFor(0), 8);
  EXPECT_EQ(SlotCountFor(4), 8);
  EXPECT_EQ(SlotCountFor(5), 16);
  EXPECT_EQ(SlotCountFor(9), 32);

  ProxySnapshot snapshot = TwoEndpointShop();
  AddEndpoint(snapshot, "checkout-3", "checkout", "10.0.0.3", 8080, 1, v1::DRAINING);
  AddEndpoint(snapshot, "checkout-4", "checkout", "fd00::4", 8080, 1, v1::UNHEALTHY);
  const RenderedConfig rendered = Render(snapshot);
  EXPECT_THAT(rendered.text,
              HasSubstr("  server s1 10.0.0.1:8080 weight 1  # checkout-1\n"
                        "  server s2 10.0.0.2:8080 weight 3  # checkout-2\n"
                        "  server s3 10.0.0.3:8080 weight 0  # draining: checkout-3\n"
                        "  server s4 fd00::4:8080 weight 1 disabled  # unhealthy: "
                        "checkout-4\n"
                        "  server s5 0.0.0.0:0 disabled\n"));
  EXPECT_EQ(LinesWith(rendered.text, "  server s").size(), 8u);
  ASSERT_EQ(rendered.slots.size(), 8u);
  EXPECT_EQ(rendered.slots[2].state, ServerState::kDrain);
  EXPECT_EQ(rendered.slots[2].weight, 1);
  EXPECT_EQ(rendered.slots[3].state, ServerState::kMaint);
  EXPECT_TRUE(rendered.slots[4].endpoint.empty());
  // The structure leaves the slots empty.
  EXPECT_EQ(LinesWith(rendered.structure, "0.0.0.0:0 disabled").size(), 8u);
}

TEST(HaproxyConfigTest, ScalesWeightsAbove256) {
  ProxySnapshot snapshot;
  AddEndpoint(snapshot, "a", "web", "10.0.0.1", 80, 10000);
  AddEndpoint(snapshot, "b", "web", "10.0.0.2", 80, 100);
  AddRoute(snapshot, "web", 80, {{"web", 0}});
  const RenderedConfig rendered = Render(snapshot);
  EXPECT_EQ(rendered.slots[0].weight, 256);
  EXPECT_EQ(rendered.slots[1].weight, 3);
}

TEST(HaproxyConfigTest, EndpointOnlyChangesKeepTheStructureAndTheSlots) {
  ProxySnapshot before = TwoEndpointShop();
  AddEndpoint(before, "checkout-3", "checkout", "10.0.0.3", 8080);
  const RenderedConfig first = Render(before);

  ProxySnapshot after = before;
  after.endpoints.erase("checkout-1");
  after.endpoints["checkout-2"].mutable_spec()->set_weight(7);
  after.endpoints["checkout-3"].mutable_spec()->set_health(v1::DRAINING);
  AddEndpoint(after, "checkout-9", "checkout", "10.0.0.9", 9090);
  RenderOptions options = Options();
  options.previous_layout = first.layout;
  const RenderedConfig second = Render(after, options);

  EXPECT_NE(second.text, first.text);
  EXPECT_EQ(second.structure, first.structure);
  const auto& slots = second.layout.backends.at("svc_checkout").slot_of_endpoint;
  EXPECT_EQ(slots.at("checkout-2"), 2);
  EXPECT_EQ(slots.at("checkout-3"), 3);
  EXPECT_EQ(slots.at("checkout-9"), 1);  // the slot checkout-1 left

  // Outgrowing the slots is structural.
  ProxySnapshot grown = after;
  for (int i = 10; i < 19; ++i) {
    AddEndpoint(grown, absl::StrCat("checkout-", i), "checkout", absl::StrCat("10.0.1.", i), 80);
  }
  options.previous_layout = second.layout;
  const RenderedConfig third = Render(grown, options);
  EXPECT_NE(third.structure, second.structure);
  EXPECT_EQ(third.layout.backends.at("svc_checkout").size, 32);
  EXPECT_EQ(third.layout.backends.at("svc_checkout").slot_of_endpoint.at("checkout-2"), 2);
}

TEST(HaproxyConfigTest, DnsNamedEndpointsAreStructural) {
  ProxySnapshot before = TwoEndpointShop();
  const RenderedConfig first = Render(before);
  ProxySnapshot after = before;
  after.endpoints["checkout-2"].mutable_spec()->set_address("checkout.internal");
  RenderOptions options = Options();
  options.previous_layout = first.layout;
  EXPECT_NE(Render(after, options).structure, first.structure);
}

TEST(HaproxyConfigTest, RenderingIsDeterministic) {
  ProxySnapshot snapshot = TwoEndpointShop();
  (*snapshot.routes["shop"]
        .mutable_spec()
        ->mutable_rules(0)
        ->mutable_rewrite()
        ->mutable_set_request_headers())["b"] = "2";
  (*snapshot.routes["shop"]
        .mutable_spec()
        ->mutable_rules(0)
        ->mutable_rewrite()
        ->mutable_set_request_headers())["a"] = "1";
  EXPECT_EQ(Render(snapshot).text, Render(snapshot).text);
  EXPECT_EQ(Render(snapshot).structure, Render(snapshot).structure);
}

TEST(HaproxyConfigTest, QuotesWordsForHaproxy) {
  EXPECT_EQ(QuoteWord("plain"), "\"plain\"");
  EXPECT_EQ(QuoteWord("a \"b\" \\ $c"), "\"a \\\"b\\\" \\\\ \\$c\"");
  EXPECT_EQ(QuoteWord("line\nbreak"), "\"line\\x0abreak\"");
}

// The rendered text of every feature at once is a config HAProxy itself accepts.
TEST(HaproxyConfigTest, HaproxyAcceptsAConfigUsingEveryFeature) {
  const std::string haproxy = "/usr/sbin/haproxy";
  if (access(haproxy.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << haproxy;
  char dir_template[] = "/tmp/meridian-haproxy-unit-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;

  ProxySnapshot snapshot = TwoEndpointShop();
  auto* spec = snapshot.services["checkout"].mutable_spec();
  spec->mutable_health_check()->set_path("/healthz");
  spec->mutable_circuit_breaker()->set_consecutive_5xx(5);
  spec->mutable_circuit_breaker()->set_max_connections(10);
  spec->mutable_circuit_breaker()->set_max_pending_requests(10);
  spec->mutable_load_balancing()->set_policy(v1::RING_HASH);
  spec->mutable_load_balancing()->mutable_hash()->set_cookie("session");
  AddService(snapshot, "grpc").mutable_spec()->mutable_ports(0)->set_protocol(v1::GRPC);
  AddEndpoint(snapshot, "grpc-1", "grpc", "::1", 9000);
  AddEndpoint(snapshot, "dns-1", "grpc", "localhost", 9001);
  AddRoute(snapshot, "split", 80, {{"checkout", 90}, {"grpc", 10}}, "/split");
  auto* rule = snapshot.routes["shop"].mutable_spec()->mutable_rules(0);
  rule->mutable_retries()->set_attempts(2);
  rule->mutable_retries()->add_retry_on("5xx");
  rule->mutable_retries()->add_retry_on("reset");
  rule->set_timeout_ms(3000);
  rule->mutable_rate_limit()->set_requests_per_second(5);
  rule->mutable_match()->add_methods("GET");
  auto* header = rule->mutable_match()->add_headers();
  header->set_name("x-v");
  header->set_regex("a|b");
  (*rule->mutable_rewrite()->mutable_set_response_headers())["x-a"] = "1";
  rule->mutable_rewrite()->set_prefix_rewrite("/x");
  snapshot.routes["shop"].mutable_spec()->set_port(8443);
  snapshot.routes["shop"].mutable_spec()->set_tls_certificate("shop");
  const auto pem = testing::SelfSignedCertificate("shop.example.com");
  snapshot.certificates["shop"].mutable_spec()->set_certificate_chain(pem.certificate_chain);
  snapshot.certificates["shop"].mutable_spec()->set_private_key(pem.private_key);

  RenderOptions options = Options();
  options.work_dir = dir;
  const RenderedConfig rendered = Render(snapshot, options);
  std::filesystem::create_directories(dir + "/certs");
  for (const auto& [file, contents] : rendered.certificate_files) {
    ASSERT_TRUE(WriteFileAtomically(dir + "/certs/" + file, contents, 0600).ok());
  }
  ASSERT_TRUE(WriteFileAtomically(dir + "/haproxy.cfg", rendered.text, 0600).ok());
  const absl::Status status = CheckHaproxyConfig(haproxy, dir + "/haproxy.cfg");
  EXPECT_TRUE(status.ok()) << status << "\n" << rendered.text;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace meridian::agent::haproxy
