// HaproxyDriver against a real HAProxy 2.6 on 127.0.0.1, with small HTTP backends in threads
// that answer with their own name.
#include "agent/driver/haproxy/haproxy_driver.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/http_test_backend.h"
#include "tests/support/proxy_snapshot_builders.h"
#include "tests/support/self_signed_cert.h"

namespace meridian::agent::haproxy {
namespace {

using ::meridian::testing::AddEndpoint;
using ::meridian::testing::GetReply;
using ::meridian::testing::Reply;
using ::meridian::testing::TallyReplies;
using ::meridian::testing::TestBackend;
using ::meridian::testing::AddRoute;
using ::meridian::testing::AddService;
using ::testing::HasSubstr;

constexpr char kHaproxy[] = "/usr/sbin/haproxy";

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

class HaproxyDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kHaproxy, X_OK) != 0) GTEST_SKIP() << "no " << kHaproxy;
    // Short: unix socket paths live under it.
    char dir[] = "/tmp/mhx-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    work_dir_ = dir;
    port_ = FreePort();
  }
  void TearDown() override {
    // HAProxy first: it holds keep-alive connections the backends would wait out.
    driver_.reset();
    backends_.clear();
    if (!work_dir_.empty()) std::filesystem::remove_all(work_dir_);
  }

  HaproxyDriver::Options DriverOptions() const {
    HaproxyDriver::Options options;
    options.haproxy_bin = kHaproxy;
    options.work_dir = work_dir_;
    options.bind_address = "127.0.0.1";
    return options;
  }

  HaproxyDriver& StartDriver(const ProxySnapshot& snapshot) {
    driver_ = std::make_unique<HaproxyDriver>(DriverOptions());
    const absl::Status status = driver_->Start(snapshot);
    EXPECT_TRUE(status.ok()) << status;
    return *driver_;
  }

  Reply Get(const std::string& path = "/", int port = 0) const {
    return GetReply(port == 0 ? port_ : port, path);
  }

  // Bodies of `count` requests, counted.
  std::map<std::string, int> Tally(int count, const std::string& path = "/") const {
    return TallyReplies(port_, count, path);
  }

  TestBackend& Backend(const std::string& name) {
    backends_.push_back(std::make_unique<TestBackend>(name));
    return *backends_.back();
  }

  std::string work_dir_;
  int port_ = 0;
  std::unique_ptr<HaproxyDriver> driver_;
  std::vector<std::unique_ptr<TestBackend>> backends_;
};

ProxySnapshot WebSnapshot(int port, const std::vector<const TestBackend*>& backends) {
  ProxySnapshot snapshot;
  AddService(snapshot, "web");
  for (size_t i = 0; i < backends.size(); ++i) {
    AddEndpoint(snapshot, absl::StrCat("web-", i + 1), "web", "127.0.0.1", backends[i]->port());
  }
  AddRoute(snapshot, "web", port, {{"web", 0}});
  return snapshot;
}

TEST_F(HaproxyDriverTest, TwoEndpointsBothGetTraffic) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  StartDriver(WebSnapshot(port_, {&b1, &b2}));
  const auto tally = Tally(20);
  EXPECT_EQ(tally.at("200 b1"), 10);
  EXPECT_EQ(tally.at("200 b2"), 10);
}

TEST_F(HaproxyDriverTest, WeightedSplitOf1000RequestsHoldsWithinFourPoints) {
  TestBackend& stable = Backend("checkout");
  TestBackend& canary = Backend("canary");
  ProxySnapshot snapshot;
  AddEndpoint(snapshot, "checkout-1", "checkout", "127.0.0.1", stable.port());
  AddEndpoint(snapshot, "canary-1", "checkout-canary", "127.0.0.1", canary.port());
  AddRoute(snapshot, "shop", port_, {{"checkout", 90}, {"checkout-canary", 10}});
  StartDriver(snapshot);
  const auto tally = Tally(1000);
  ASSERT_EQ(tally.count("error"), 0u);
  EXPECT_NEAR(tally.at("200 checkout"), 900, 40);
  EXPECT_NEAR(tally.at("200 canary"), 100, 40);
}

TEST_F(HaproxyDriverTest, EndpointChangesGoThroughTheRuntimeApiWithoutReload) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  TestBackend& b3 = Backend("b3");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1, &b2});
  HaproxyDriver& driver = StartDriver(snapshot);
  const int worker = driver.worker_pid();
  ASSERT_GT(worker, 0);
  ASSERT_GT(Tally(10)["200 b2"], 0);

  snapshot.endpoints.erase("web-2");
  ASSERT_TRUE(driver.Apply(snapshot).ok());
  EXPECT_EQ(driver.last_apply_mode(), ApplyMode::kRuntimeApi);
  // Applied when Apply returns: well within a second, nothing reaches b2.
  EXPECT_EQ(Tally(20), (std::map<std::string, int>{{"200 b1", 20}}));
  EXPECT_EQ(driver.worker_pid(), worker);

  // New endpoint, weights, draining: all through the runtime API.
  AddEndpoint(snapshot, "web-3", "web", "127.0.0.1", b3.port(), 3);
  ASSERT_TRUE(driver.Apply(snapshot).ok());
  EXPECT_EQ(driver.last_apply_mode(), ApplyMode::kRuntimeApi);
  EXPECT_EQ(Tally(40), (std::map<std::string, int>{{"200 b1", 10}, {"200 b3", 30}}));
  snapshot.endpoints["web-1"].mutable_spec()->set_health(v1::DRAINING);
  ASSERT_TRUE(driver.Apply(snapshot).ok());
  EXPECT_EQ(Tally(10), (std::map<std::string, int>{{"200 b3", 10}}));
  EXPECT_EQ(driver.worker_pid(), worker);

  // Identical snapshot: nothing to do. The file on disk carries the endpoints for reloads.
  ASSERT_TRUE(driver.Apply(snapshot).ok());
  EXPECT_EQ(driver.last_apply_mode(), ApplyMode::kNoChange);
  std::ifstream config(driver.config_path());
  const std::string text((std::istreambuf_iterator<char>(config)),
                         std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr(absl::StrCat("127.0.0.1:", b3.port(), " weight 3")));
}

// HAProxy restores ports and weights from the server-state file across a reload; the driver
// makes sure what serves afterwards is the new snapshot.
TEST_F(HaproxyDriverTest, ReloadCarryingEndpointChangesServesTheNewEndpoints) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1, &b2});
  HaproxyDriver& driver = StartDriver(snapshot);
  snapshot.endpoints["web-2"].mutable_spec()->set_weight(3);
  ASSERT_TRUE(driver.Apply(snapshot).ok());
  ASSERT_EQ(driver.last_apply_mode(), ApplyMode::kRuntimeApi);

  // Same Apply: web-1 moves to b2's port, web-2's weight goes back to 1, and a new route.
  snapshot.endpoints["web-1"].mutable_spec()->set_port(b2.port());
  snapshot.endpoints["web-2"].mutable_spec()->set_weight(1);
  AddRoute(snapshot, "api", port_, {{"web", 0}}, "/api");
  ASSERT_TRUE(driver.Apply(snapshot).ok());
  ASSERT_EQ(driver.last_apply_mode(), ApplyMode::kReload);
  EXPECT_EQ(Tally(10), (std::map<std::string, int>{{"200 b2", 10}}));
  HaproxyRuntimeClient stats(work_dir_ + "/haproxy.sock");
  auto servers = stats.ShowServersState();
  ASSERT_TRUE(servers.ok()) << servers.status();
  for (const RuntimeServer& server : *servers) {
    if (server.server == "s1" || server.server == "s2") {
      EXPECT_EQ(server.port, static_cast<uint32_t>(b2.port())) << server.server;
      EXPECT_EQ(server.weight, 1) << server.server;
    }
  }
}

TEST_F(HaproxyDriverTest, StructuralChangesUnderLoadFailNoRequest) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1});
  AddEndpoint(snapshot, "api-1", "api", "127.0.0.1", b2.port());
  HaproxyDriver& driver = StartDriver(snapshot);

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed{0};
  std::string first_failure;
  std::thread client([&] {
    // Bounded: at most 20,000 requests or 30 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!stop && sent < 20000 && std::chrono::steady_clock::now() < deadline) {
      const Reply reply = Get("/");  // a new connection each time
      ++sent;
      if (reply.status != 200 && failed++ == 0) {
        first_failure = absl::StrCat(reply.status, " ", reply.body);
      }
    }
  });
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const int worker = driver.worker_pid();
    AddRoute(snapshot, absl::StrCat("api-", i), port_, {{"api", 0}}, absl::StrCat("/api", i));
    const absl::Status status = driver.Apply(snapshot);
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(driver.last_apply_mode(), ApplyMode::kReload);
    EXPECT_NE(driver.worker_pid(), worker);
    EXPECT_EQ(Get(absl::StrCat("/api", i)).body, "b2");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  client.join();
  EXPECT_GT(sent.load(), 50);
  EXPECT_EQ(failed.load(), 0) << "first failure: " << first_failure;
}

TEST_F(HaproxyDriverTest, RateLimitPerSourceIpAnswers429) {
  TestBackend& b1 = Backend("b1");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1});
  snapshot.routes["web"]
      .mutable_spec()
      ->mutable_rules(0)
      ->mutable_rate_limit()
      ->set_requests_per_second(5);
  StartDriver(snapshot);
  std::map<int, int> statuses;
  for (int i = 0; i < 20; ++i) ++statuses[Get("/").status];
  EXPECT_GE(statuses[200], 5);
  EXPECT_LE(statuses[200], 7);
  EXPECT_EQ(statuses[200] + statuses[429], 20);
}

TEST_F(HaproxyDriverTest, CircuitBreakerEjectsAFailingBackend) {
  TestBackend& healthy = Backend("healthy");
  TestBackend& failing = Backend("failing");
  ProxySnapshot snapshot = WebSnapshot(port_, {&healthy, &failing});
  auto* breaker = snapshot.services["web"].mutable_spec()->mutable_circuit_breaker();
  breaker->set_consecutive_5xx(3);
  breaker->set_base_ejection_time_ms(30000);
  StartDriver(snapshot);
  ASSERT_GT(Tally(10)["200 failing"], 0);

  failing.set_failing(true);
  // Three 500s in a row (every other request) eject it: observe layer7, no health check.
  const auto during = Tally(6);
  EXPECT_EQ(during.at("500 failing failing"), 3);
  EXPECT_EQ(Tally(20), (std::map<std::string, int>{{"200 healthy", 20}}));
}

TEST_F(HaproxyDriverTest, HealthCheckTakesAFailingBackendOut) {
  TestBackend& healthy = Backend("healthy");
  TestBackend& failing = Backend("failing");
  ProxySnapshot snapshot = WebSnapshot(port_, {&healthy, &failing});
  auto* check = snapshot.services["web"].mutable_spec()->mutable_health_check();
  check->set_path("/health");
  check->set_interval_ms(100);
  check->set_unhealthy_threshold(2);
  StartDriver(snapshot);
  ASSERT_GT(Tally(10)["200 failing"], 0);

  failing.set_failing(true);
  // Two failed checks 100 ms apart; give it up to 3 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline && Tally(4)["200 healthy"] != 4) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Tally(20), (std::map<std::string, int>{{"200 healthy", 20}}));
}

TEST_F(HaproxyDriverTest, ConfigHaproxyRejectsIsInvalidArgumentAndTheOldConfigKeepsServing) {
  TestBackend& b1 = Backend("b1");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1});
  HaproxyDriver& driver = StartDriver(snapshot);
  const int worker = driver.worker_pid();

  // std::regex (ECMAScript, the control plane's check) takes \u0041; PCRE2 does not.
  ProxySnapshot bad = snapshot;
  auto* header = AddRoute(bad, "bad", port_, {{"web", 0}}, "/bad")
                     .mutable_spec()
                     ->mutable_rules(0)
                     ->mutable_match()
                     ->add_headers();
  header->set_name("x-letter");
  header->set_regex("\\u0041");
  const absl::Status status = driver.Apply(bad);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr("PCRE2 does not support"));

  EXPECT_EQ(Get("/").body, "b1");
  EXPECT_EQ(driver.worker_pid(), worker);
  std::ifstream config(driver.config_path());
  const std::string text((std::istreambuf_iterator<char>(config)),
                         std::istreambuf_iterator<char>());
  EXPECT_THAT(text, ::testing::Not(HasSubstr("x-letter")));

  // An invalid certificate is rejected the same way.
  ProxySnapshot bad_cert = snapshot;
  bad_cert.routes["web"].mutable_spec()->set_tls_certificate("broken");
  bad_cert.certificates["broken"].mutable_spec()->set_certificate_chain("not a certificate");
  bad_cert.certificates["broken"].mutable_spec()->set_private_key("not a key");
  EXPECT_EQ(driver.Apply(bad_cert).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get("/").body, "b1");
  EXPECT_EQ(driver.worker_pid(), worker);
}

TEST_F(HaproxyDriverTest, ReloadThatFailsKeepsTheOldWorkerAndFiles) {
  TestBackend& b1 = Backend("b1");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1});
  HaproxyDriver& driver = StartDriver(snapshot);
  const int worker = driver.worker_pid();
  std::ifstream before_file(driver.config_path());
  const std::string before((std::istreambuf_iterator<char>(before_file)),
                           std::istreambuf_iterator<char>());

  // `haproxy -c` cannot know the port is taken; the reload fails to bind it.
  const int taken = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  socklen_t length = sizeof(address);
  getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length);
  AddRoute(snapshot, "other", ntohs(address.sin_port), {{"web", 0}});
  const absl::Status status = driver.Apply(snapshot);
  close(taken);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("reload failed"));

  EXPECT_EQ(Get("/").body, "b1");
  EXPECT_EQ(driver.worker_pid(), worker);
  std::ifstream after_file(driver.config_path());
  const std::string after((std::istreambuf_iterator<char>(after_file)),
                          std::istreambuf_iterator<char>());
  EXPECT_EQ(after, before);

  // The master recovers: the next structural change reloads normally.
  snapshot.routes.erase("other");
  AddRoute(snapshot, "more", port_, {{"web", 0}}, "/more");
  ASSERT_TRUE(driver.Apply(snapshot).ok());
  EXPECT_EQ(driver.last_apply_mode(), ApplyMode::kReload);
  EXPECT_NE(driver.worker_pid(), worker);
  EXPECT_EQ(Get("/more").body, "b1");
}

TEST_F(HaproxyDriverTest, TerminatesTlsWithPrivateCertificateFiles) {
  TestBackend& b1 = Backend("b1");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1});
  snapshot.routes["web"].mutable_spec()->set_tls_certificate("web-cert");
  const auto pem = testing::SelfSignedCertificate("localhost");
  snapshot.certificates["web-cert"].mutable_spec()->set_certificate_chain(pem.certificate_chain);
  snapshot.certificates["web-cert"].mutable_spec()->set_private_key(pem.private_key);
  StartDriver(snapshot);

  httplib::SSLClient client("127.0.0.1", port_);
  client.enable_server_certificate_verification(false);
  client.set_connection_timeout(2);
  auto result = client.Get("/");
  ASSERT_TRUE(result) << httplib::to_string(result.error());
  EXPECT_EQ(result->body, "b1");
  struct stat info {};
  ASSERT_EQ(stat((work_dir_ + "/certs/web-cert.pem").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST_F(HaproxyDriverTest, StartsAgainAfterHaproxyWasKilled) {
  TestBackend& b1 = Backend("b1");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1});
  HaproxyDriver::Options options = DriverOptions();
  options.stop_on_destruction = false;
  {
    HaproxyDriver first(options);
    ASSERT_TRUE(first.Start(snapshot).ok());
    // Master and workers share the process group the driver gave them.
    ASSERT_EQ(kill(-first.master_pid(), SIGKILL), 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (Get("/").status != 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    waitpid(first.master_pid(), nullptr, 0);
  }
  // Stale pid file and sockets are left behind.
  StartDriver(snapshot);
  EXPECT_EQ(Get("/").body, "b1");
}

TEST_F(HaproxyDriverTest, NextAgentAdoptsTheRunningHaproxy) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  ProxySnapshot snapshot = WebSnapshot(port_, {&b1});
  HaproxyDriver::Options options = DriverOptions();
  options.stop_on_destruction = false;
  int master = 0;
  {
    HaproxyDriver first(options);
    ASSERT_TRUE(first.Start(snapshot).ok());
    master = first.master_pid();
  }
  // The agent is gone; HAProxy still serves.
  EXPECT_EQ(Get("/").body, "b1");

  snapshot.endpoints["web-1"].mutable_spec()->set_port(b2.port());
  driver_ = std::make_unique<HaproxyDriver>(DriverOptions());
  ASSERT_TRUE(driver_->Start(snapshot).ok());
  EXPECT_EQ(driver_->master_pid(), master);
  EXPECT_EQ(Get("/").body, "b2");
}

}  // namespace
}  // namespace meridian::agent::haproxy
