// End to end through the real stack: an in-process meridian-cp (real PostgreSQL), the real
// meridian-agent binary, the real HAProxy it runs (/usr/sbin/haproxy), and small HTTP backends
// on 127.0.0.1 that answer with their own name. Config is written through the REST API.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/driver/haproxy/haproxy_runtime.h"
#include "controlplane/store/postgres_config_store.h"
#include "tests/integration/control_plane_fixture.h"
#include "tests/support/http_test_backend.h"
#include "tests/support/resource_builders.h"

#ifndef MERIDIAN_AGENT_PATH
#error "MERIDIAN_AGENT_PATH must name the meridian-agent binary"
#endif

extern char** environ;

namespace meridian::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kHaproxy[] = "/usr/sbin/haproxy";

std::string ServiceBody() {
  return R"({"spec":{"ports":[{"name":"http","port":8080,"protocol":"HTTP"}]}})";
}

std::string EndpointBody(const std::string& service, int port) {
  return absl::StrCat(R"({"spec":{"service":")", service,
                      R"(","address":"127.0.0.1","port":)", port, "}}");
}

// A route on `port` with one rule: `path_prefix` to `destinations` (service, weight), plus
// `rule_extra` (JSON members, leading comma) in the rule.
std::string RouteBody(int port, const std::vector<std::pair<std::string, int>>& destinations,
                      const std::string& path_prefix = "/", const std::string& rule_extra = "",
                      const std::string& match_extra = "") {
  std::string list;
  for (const auto& [service, weight] : destinations) {
    if (!list.empty()) list += ",";
    absl::StrAppend(&list, R"({"service":")", service, R"(","weight":)", weight, "}");
  }
  return absl::StrCat(R"({"spec":{"hosts":["*"],"port":)", port,
                      R"(,"rules":[{"match":{"path_prefix":")", path_prefix, "\"", match_extra,
                      R"(},"destinations":[)", list, "]", rule_extra, "}]}}");
}

class AgentHaproxyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kHaproxy, X_OK) != 0) GTEST_SKIP() << "no " << kHaproxy;
    auto url = SharedPostgres().CreateDatabase("e2e");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    // Short: HAProxy's unix sockets live under it.
    char dir[] = "/tmp/mhe-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    temp_dir_ = dir;
    work_dir_ = temp_dir_ + "/work";
    log_path_ = temp_dir_ + "/agent.log";
    grpc_port_ = FreePort();
    admin_port_ = FreePort();
    proxy_port_ = FreePort();
    StartControlPlane();
    ASSERT_NE(control_plane_, nullptr);
    StartAgent();
  }

  void TearDown() override {
    StopAgent();
    KillLeftoverHaproxy();
    StopControlPlane();
    if ((HasFailure() || getenv("E2E_DUMP")) && !log_path_.empty()) {
      std::ifstream log(log_path_);
      std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      if (text.size() > 8000) text = text.substr(text.size() - 8000);
      std::cerr << "---- meridian-agent log (tail) ----\n" << text << "\n----\n";
    }
    backends_.clear();
    if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_);
  }

  // --- control plane
  void StartControlPlane() {
    auto control_plane =
        server::ControlPlane::Start(LoopbackControlPlaneOptions(url_, grpc_port_));
    ASSERT_TRUE(control_plane.ok()) << control_plane.status();
    control_plane_ = std::move(*control_plane);
  }
  void StopControlPlane() {
    if (control_plane_ != nullptr) control_plane_->Shutdown();
    control_plane_.reset();
  }

  // --- the meridian-agent process
  void StartAgent() {
    const std::vector<std::string> args = {
        MERIDIAN_AGENT_PATH,
        "--control-plane", absl::StrCat("127.0.0.1:", grpc_port_),
        "--node-id", "node-1",
        "--environment", "prod",
        "--zone", "eu-1a",
        "--bind-address", "127.0.0.1",
        "--work-dir", work_dir_,
        "--admin-address", absl::StrCat("127.0.0.1:", admin_port_)};
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    const int error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(error, 0) << "spawning " << argv[0];
    agent_pid_ = pid;
    // Up when its admin server answers (bounded: 10 s).
    const auto deadline = Clock::now() + seconds(10);
    while (Clock::now() < deadline) {
      httplib::Client admin("127.0.0.1", admin_port_);
      admin.set_connection_timeout(1);
      if (auto result = admin.Get("/healthz"); result && result->status == 200) return;
      int status = 0;
      ASSERT_EQ(waitpid(agent_pid_, &status, WNOHANG), 0) << "meridian-agent exited";
      std::this_thread::sleep_for(milliseconds(50));
    }
    FAIL() << "meridian-agent did not come up";
  }

  // SIGTERM (the agent stops HAProxy), SIGKILL after 15 s.
  void StopAgent() {
    if (agent_pid_ <= 0) return;
    kill(agent_pid_, SIGTERM);
    const auto deadline = Clock::now() + seconds(15);
    int status = 0;
    while (waitpid(agent_pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ADD_FAILURE() << "meridian-agent ignored SIGTERM";
        kill(agent_pid_, SIGKILL);
        waitpid(agent_pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    agent_pid_ = -1;
  }

  // HAProxy's master runs in a process group of its own, with its workers.
  void KillLeftoverHaproxy() {
    if (work_dir_.empty()) return;
    std::ifstream pid_file(work_dir_ + "/haproxy/haproxy.pid");
    int pid = 0;
    if (!(pid_file >> pid) || pid <= 1) return;
    std::ifstream comm(absl::StrCat("/proc/", pid, "/comm"));
    std::string name;
    if (!(comm >> name) || name.rfind("haproxy", 0) != 0) return;
    ADD_FAILURE() << "HAProxy " << pid << " survived the agent";
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
  }

  json AgentStatus() {
    httplib::Client admin("127.0.0.1", admin_port_);
    admin.set_connection_timeout(1);
    admin.set_read_timeout(2);
    auto result = admin.Get("/status");
    if (!result || result->status != 200) return json();
    return json::parse(result->body, nullptr, false);
  }
  int64_t AppliedRevision() {
    const json status = AgentStatus();
    return status.is_object() ? status.value("last_applied_revision", int64_t{0}) : 0;
  }
  // The control plane's view of node-1: the revision it has applied, every resource type
  // included. (The agent's own last_applied_revision moves with the first type's response of a
  // revision, before the other types of that revision have arrived.)
  int64_t NodeAppliedRevision() {
    const json node = RestGet("/api/v1/nodes/node-1");
    return node.is_object() ? node.value("applied_revision", int64_t{0}) : 0;
  }
  // Bounded: until the control plane sees node-1 apply `revision` (or later), at most `timeout`.
  bool WaitApplied(int64_t revision, std::chrono::milliseconds timeout = seconds(15)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (NodeAppliedRevision() >= revision) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return NodeAppliedRevision() >= revision;
  }

  int WorkerPid() {
    agent::haproxy::HaproxyRuntimeClient client(work_dir_ + "/haproxy/master.sock");
    auto processes = client.ShowProc();
    if (!processes.ok() || processes->workers.empty()) return -1;
    return processes->workers.front();
  }

  // --- REST writes; each returns the revision it made, or -1.
  int64_t Write(const std::string& kind, const std::string& name, const std::string& body) {
    httplib::Client http("127.0.0.1", control_plane_->http_port());
    http.set_read_timeout(10);
    auto result = http.Put(("/api/v1/environments/prod/" + kind + "/" + name).c_str(), body,
                           "application/json");
    EXPECT_TRUE(result) << "PUT " << kind << "/" << name;
    if (!result) return -1;
    EXPECT_TRUE(result->status == 200 || result->status == 201)
        << kind << "/" << name << ": " << result->status << " " << result->body;
    return json::parse(result->body, nullptr, false).value("revision", int64_t{-1});
  }
  int64_t Remove(const std::string& kind, const std::string& name) {
    httplib::Client http("127.0.0.1", control_plane_->http_port());
    http.set_read_timeout(10);
    auto result = http.Delete(("/api/v1/environments/prod/" + kind + "/" + name).c_str());
    EXPECT_TRUE(result && result->status == 200) << "DELETE " << kind << "/" << name;
    if (!result) return -1;
    return json::parse(result->body, nullptr, false).value("revision", int64_t{-1});
  }
  json RestGet(const std::string& path) {
    httplib::Client http("127.0.0.1", control_plane_->http_port());
    http.set_read_timeout(10);
    auto result = http.Get(path.c_str());
    if (!result) return json();
    return json::parse(result->body, nullptr, false);
  }

  // A service "name" with one endpoint per backend (name-1, name-2, ...).
  int64_t ServiceWith(const std::string& name, const std::vector<const TestBackend*>& backends) {
    int64_t revision = Write("services", name, ServiceBody());
    for (size_t i = 0; i < backends.size(); ++i) {
      revision = Write("endpoints", absl::StrCat(name, "-", i + 1),
                       EndpointBody(name, backends[i]->port()));
    }
    return revision;
  }

  // --- traffic, only to 127.0.0.1
  Reply Get(const std::string& path = "/") const { return GetReply(proxy_port_, path); }
  // Bodies of `count` requests on one keep-alive connection, counted.
  std::map<std::string, int> Tally(int count, const std::string& path = "/") const {
    return TallyReplies(proxy_port_, count, path);
  }
  // Bounded: until `count` requests all answer `expected` (status and body), at most `timeout`.
  bool WaitForTraffic(const std::map<std::string, int>& expected, int count,
                      std::chrono::milliseconds timeout = seconds(10),
                      const std::string& path = "/") {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (Tally(count, path) == expected) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

  TestBackend& Backend(const std::string& name) {
    backends_.push_back(std::make_unique<TestBackend>(name));
    return *backends_.back();
  }

  // A web service over `backends`, routed on the proxy port; waits until the agent applied it.
  void SetUpWeb(const std::vector<const TestBackend*>& backends) {
    ServiceWith("web", backends);
    const int64_t revision = Write("routes", "web", RouteBody(proxy_port_, {{"web", 0}}));
    ASSERT_GT(revision, 0);
    ASSERT_TRUE(WaitApplied(revision)) << AgentStatus().dump();
  }

  std::string url_;
  std::string temp_dir_;
  std::string work_dir_;
  std::string log_path_;
  int grpc_port_ = 0;
  int admin_port_ = 0;
  int proxy_port_ = 0;
  pid_t agent_pid_ = -1;
  std::unique_ptr<server::ControlPlane> control_plane_;
  std::vector<std::unique_ptr<TestBackend>> backends_;
};

// 1. A service with two endpoints and a route: requests through HAProxy reach both backends.
TEST_F(AgentHaproxyE2eTest, ServiceWithTwoEndpointsAndARouteReachesBoth) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  SetUpWeb({&b1, &b2});
  const auto tally = Tally(20);
  EXPECT_EQ(tally, (std::map<std::string, int>{{"200 b1", 10}, {"200 b2", 10}}));
  const json status = AgentStatus();
  EXPECT_EQ(status.value("snapshot_source", ""), "control_plane") << status.dump();
}

// 2. A 90/10 split between checkout and checkout-canary holds within 4 points over 1,000.
TEST_F(AgentHaproxyE2eTest, WeightedSplitOf1000RequestsHoldsWithinFourPoints) {
  TestBackend& stable = Backend("checkout");
  TestBackend& canary = Backend("canary");
  ServiceWith("checkout", {&stable});
  ServiceWith("checkout-canary", {&canary});
  const int64_t revision = Write(
      "routes", "shop", RouteBody(proxy_port_, {{"checkout", 90}, {"checkout-canary", 10}}));
  ASSERT_TRUE(WaitApplied(revision)) << AgentStatus().dump();
  const auto tally = Tally(1000);
  ASSERT_EQ(tally.count("error"), 0u);
  ASSERT_EQ(tally.count("200 checkout") + tally.count("200 canary"), tally.size());
  EXPECT_NEAR(tally.at("200 checkout"), 900, 40);
  EXPECT_NEAR(tally.at("200 canary"), 100, 40);
}

// 3. Removing an endpoint: traffic stops reaching it within 1 s, with no reload.
TEST_F(AgentHaproxyE2eTest, RemovedEndpointStopsGettingTrafficWithinASecondWithoutReload) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  SetUpWeb({&b1, &b2});
  ASSERT_GT(Tally(10)["200 b2"], 0);
  const int worker = WorkerPid();
  ASSERT_GT(worker, 0);

  const auto start = Clock::now();
  const int64_t removed = Remove("endpoints", "web-2");
  ASSERT_GT(removed, 0);
  // Gone once 10 requests in a row reach b1 only; bounded at 3 s to report how late it was.
  bool gone = false;
  while (!gone && Clock::now() - start < seconds(3)) {
    gone = Tally(10) == std::map<std::string, int>{{"200 b1", 10}};
    if (!gone) std::this_thread::sleep_for(milliseconds(10));
  }
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(gone);
  EXPECT_LT(elapsed, seconds(1)) << elapsed.count() << " ms";
  EXPECT_EQ(Tally(20), (std::map<std::string, int>{{"200 b1", 20}}));
  EXPECT_EQ(WorkerPid(), worker) << "HAProxy reloaded for an endpoint change";
  // Traffic moves as soon as HAProxy has the command; the agent records the apply (mode,
  // revision) only after it has also saved the snapshot.
  ASSERT_TRUE(WaitApplied(removed)) << AgentStatus().dump();
  EXPECT_EQ(AgentStatus().value("last_apply_mode", json()), "runtime_api");
}

// 4. A new route (a reload) under steady load from a bounded client: no request fails.
TEST_F(AgentHaproxyE2eTest, NewRouteUnderLoadFailsNoRequest) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  SetUpWeb({&b1});
  ServiceWith("api", {&b2});
  const int worker = WorkerPid();
  ASSERT_GT(worker, 0);

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed{0};
  std::string first_failure;
  std::thread client([&] {
    // Bounded: at most 20,000 requests or 30 s; a new connection each time.
    const auto deadline = Clock::now() + seconds(30);
    while (!stop && sent < 20000 && Clock::now() < deadline) {
      const Reply reply = Get("/");
      ++sent;
      if ((reply.status != 200 || reply.body != "b1") && failed++ == 0) {
        first_failure = absl::StrCat(reply.status, " ", reply.body);
      }
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  const int64_t revision = Write("routes", "api", RouteBody(proxy_port_, {{"api", 0}}, "/api"));
  const bool applied = WaitApplied(revision);
  const bool answers = WaitForTraffic({{"200 b2", 3}}, 3, seconds(10), "/api");
  std::this_thread::sleep_for(milliseconds(300));
  stop = true;
  client.join();
  EXPECT_TRUE(applied) << AgentStatus().dump();
  EXPECT_TRUE(answers);
  EXPECT_NE(WorkerPid(), worker) << "a new route reloads HAProxy";
  EXPECT_GT(sent.load(), 50);
  EXPECT_EQ(failed.load(), 0) << "of " << sent.load() << "; first failure: " << first_failure;
}

// 5. A rate limit of 5 rps per source IP: the excess gets 429.
TEST_F(AgentHaproxyE2eTest, RateLimitPerSourceIpAnswers429) {
  TestBackend& b1 = Backend("b1");
  ServiceWith("web", {&b1});
  const int64_t revision =
      Write("routes", "web",
            RouteBody(proxy_port_, {{"web", 0}}, "/", R"(,"rate_limit":{"requests_per_second":5})"));
  ASSERT_TRUE(WaitApplied(revision)) << AgentStatus().dump();
  std::this_thread::sleep_for(milliseconds(1100));  // a fresh one-second window
  std::map<int, int> statuses;
  const auto start = Clock::now();
  for (int i = 0; i < 20; ++i) ++statuses[Get("/").status];
  const auto elapsed = Clock::now() - start;
  ASSERT_LT(elapsed, seconds(1)) << "too slow to exceed 5 rps meaningfully";
  EXPECT_GE(statuses[200], 5);
  EXPECT_LE(statuses[200], 7);
  EXPECT_GE(statuses[429], 13);
  EXPECT_EQ(statuses[200] + statuses[429], 20);
}

// 6. A backend that starts failing is taken out by the health check; traffic goes to the
// healthy one.
TEST_F(AgentHaproxyE2eTest, FailingBackendIsEjectedAndTrafficGoesToTheHealthyOne) {
  TestBackend& healthy = Backend("healthy");
  TestBackend& failing = Backend("failing");
  Write("services", "web",
        R"({"spec":{"ports":[{"name":"http","port":8080,"protocol":"HTTP"}],
            "health_check":{"path":"/health","interval_ms":100,"unhealthy_threshold":2}}})");
  Write("endpoints", "web-1", EndpointBody("web", healthy.port()));
  Write("endpoints", "web-2", EndpointBody("web", failing.port()));
  const int64_t revision = Write("routes", "web", RouteBody(proxy_port_, {{"web", 0}}));
  ASSERT_TRUE(WaitApplied(revision)) << AgentStatus().dump();
  ASSERT_TRUE(WaitForTraffic({{"200 healthy", 5}, {"200 failing", 5}}, 10, seconds(5)));

  failing.set_failing(true);
  // Two failed checks 100 ms apart; give it up to 5 s.
  EXPECT_TRUE(WaitForTraffic({{"200 healthy", 10}}, 10, seconds(5)));
  EXPECT_EQ(Tally(20), (std::map<std::string, int>{{"200 healthy", 20}}));
}

// 7. A change HAProxy rejects but the API accepted is NACKed with the reason, visible in the
// revision's status, and the old config keeps serving.
TEST_F(AgentHaproxyE2eTest, ChangeHaproxyRejectsIsNackedWithTheReasonAndOldConfigServes) {
  TestBackend& b1 = Backend("b1");
  SetUpWeb({&b1});
  const int worker = WorkerPid();
  const int64_t good = NodeAppliedRevision();

  // std::regex (ECMAScript, the API's check) takes \u0041; PCRE2 does not.
  const int64_t bad = Write(
      "routes", "bad",
      RouteBody(proxy_port_, {{"web", 0}}, "/bad", "",
                R"(,"headers":[{"name":"x-letter","regex":"\\u0041"}])"));
  ASSERT_GT(bad, 0) << "the API accepts the regex";

  json status;
  const auto deadline = Clock::now() + seconds(15);
  while (Clock::now() < deadline) {
    status = RestGet(absl::StrCat("/api/v1/revisions/", bad, "/status"));
    if (status.is_object() && status.value("nacked_count", 0) >= 1) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(status.value("nacked_count", 0), 1) << status.dump();
  // "converged" means nothing pending: a NACK settles the node too, but nothing applied it.
  EXPECT_EQ(status.value("applied_count", -1), 0) << status.dump();
  const json& nacked = status["nacked"][0];
  EXPECT_EQ(nacked.value("id", ""), "node-1");
  EXPECT_EQ(nacked.value("nacked_revision", int64_t{0}), bad);
  EXPECT_NE(nacked.value("nack_error", "").find("PCRE2"), std::string::npos) << nacked.dump();

  EXPECT_EQ(Get("/").body, "b1");
  EXPECT_EQ(Get("/bad").body, "b1") << "served by the old config's / route";
  EXPECT_EQ(WorkerPid(), worker);
  EXPECT_EQ(NodeAppliedRevision(), good);
  EXPECT_EQ(AppliedRevision(), good);
  const json agent = AgentStatus();
  EXPECT_NE(agent.value("last_error", json()).dump().find("PCRE2"), std::string::npos)
      << agent.dump();
}

// 8. Control plane stopped: traffic keeps flowing. Agent restarted meanwhile: traffic flows from
// the disk snapshot. Control plane back (same database, same gRPC port): the agent catches up.
TEST_F(AgentHaproxyE2eTest, SurvivesControlPlaneOutageAndAgentRestartThenCatchesUp) {
  TestBackend& b1 = Backend("b1");
  TestBackend& b2 = Backend("b2");
  SetUpWeb({&b1});
  const int64_t before = NodeAppliedRevision();
  ASSERT_EQ(AppliedRevision(), before);

  StopControlPlane();
  EXPECT_EQ(Tally(10), (std::map<std::string, int>{{"200 b1", 10}}));

  // Written while meridian-cp is down, straight into its database.
  auto writer = store::PostgresConfigStore::Open({url_, 1});
  ASSERT_TRUE(writer.ok()) << writer.status();
  v1::Resource late_service = ServiceResource("prod", "late");
  v1::Resource late_endpoint;
  late_endpoint.set_kind(v1::ENDPOINT);
  late_endpoint.set_environment("prod");
  late_endpoint.set_name("late-1");
  late_endpoint.mutable_endpoint()->set_service("late");
  late_endpoint.mutable_endpoint()->set_address("127.0.0.1");
  late_endpoint.mutable_endpoint()->set_port(b2.port());
  v1::Resource late_route = RouteResource("prod", "late", {{"late", 0}});
  late_route.mutable_route()->clear_hosts();
  late_route.mutable_route()->add_hosts("*");
  late_route.mutable_route()->set_port(proxy_port_);
  late_route.mutable_route()->mutable_rules(0)->mutable_match()->set_path_prefix("/late");
  auto committed = (*writer)->Commit(
      Changes({Put(late_service), Put(late_endpoint), Put(late_route)}));
  ASSERT_TRUE(committed.ok()) << committed.status();
  const int64_t latest = committed->revision;
  ASSERT_GT(latest, before);

  StopAgent();
  EXPECT_EQ(Get("/").status, 0) << "the agent stops HAProxy on SIGTERM";
  StartAgent();
  EXPECT_TRUE(WaitForTraffic({{"200 b1", 10}}, 10, seconds(10)));
  json status = AgentStatus();
  EXPECT_EQ(status.value("snapshot_source", ""), "disk") << status.dump();
  EXPECT_EQ(status.value("last_applied_revision", int64_t{0}), before) << status.dump();
  EXPECT_EQ(Get("/late").body, "b1") << "not known before the control plane is back";

  StartControlPlane();
  ASSERT_NE(control_plane_, nullptr);
  // The control plane sees node-1 converge on the latest revision; so does the agent.
  EXPECT_TRUE(WaitApplied(latest, seconds(30))) << RestGet("/api/v1/nodes/node-1").dump();
  status = AgentStatus();
  EXPECT_EQ(status.value("last_applied_revision", int64_t{0}), latest) << status.dump();
  EXPECT_EQ(status.value("snapshot_source", ""), "control_plane") << status.dump();
  EXPECT_TRUE(WaitForTraffic({{"200 b2", 5}}, 5, seconds(5), "/late"));
  EXPECT_EQ(Tally(10), (std::map<std::string, int>{{"200 b1", 10}}));
}

}  // namespace
}  // namespace meridian::testing
