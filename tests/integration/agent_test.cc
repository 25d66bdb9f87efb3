// meridian-agent against a real meridian-cp (in-process: store on real PostgreSQL, change feed,
// xDS on the gRPC port, convergence tracking) with a recording FakeProxyDriver: config arrives
// and is ACKed, a rejected change is NACKed with the proxy's error, reconnects resend only what
// changed, and a restart while the control plane is down serves the disk snapshot.
#include "agent/agent.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/store/postgres_config_store.h"
#include "tests/integration/control_plane_fixture.h"
#include "tests/support/fake_proxy_driver.h"
#include "tests/support/resource_builders.h"

namespace meridian::testing {
namespace {

using agent::Agent;
using agent::ProxySnapshot;

v1::Resource EndpointResource(const std::string& name, const std::string& service,
                              uint32_t port = 9000) {
  v1::Resource resource;
  resource.set_kind(v1::ENDPOINT);
  resource.set_environment("prod");
  resource.set_name(name);
  resource.mutable_endpoint()->set_service(service);
  resource.mutable_endpoint()->set_address("127.0.0.1");
  resource.mutable_endpoint()->set_port(port);
  return resource;
}

v1::Resource CertificateResource(const std::string& name) {
  const TestCertificate certificate = MakeSelfSignedCertificate("shop.example.com");
  v1::Resource resource;
  resource.set_kind(v1::CERTIFICATE);
  resource.set_environment("prod");
  resource.set_name(name);
  resource.mutable_certificate()->set_certificate_chain(certificate.chain_pem);
  resource.mutable_certificate()->set_private_key(certificate.key_pem);
  return resource;
}

uint32_t PortOf(const ProxySnapshot& snapshot, const std::string& service) {
  auto it = snapshot.services.find(service);
  return it == snapshot.services.end() ? 0 : it->second.spec().ports(0).port();
}

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = SharedPostgres().CreateDatabase("agent");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    auto writer = store::PostgresConfigStore::Open({url_, 2});
    ASSERT_TRUE(writer.ok()) << writer.status();
    writer_ = std::move(*writer);
    std::string dir = (std::filesystem::temp_directory_path() / "agent-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(dir.data()), nullptr);
    work_dir_ = dir + "/work";  // the agent creates it
    temp_dir_ = dir;
    grpc_port_ = FreePort();
    StartControlPlane();
  }
  void TearDown() override {
    agent_.reset();
    StopControlPlane();
    std::filesystem::remove_all(temp_dir_);
  }

  // A replica of meridian-cp on `port` (default: the fixed one, so restarts keep the address).
  std::unique_ptr<server::ControlPlane> StartReplica(int port) {
    auto control_plane = server::ControlPlane::Start(LoopbackControlPlaneOptions(url_, port));
    EXPECT_TRUE(control_plane.ok()) << control_plane.status();
    return control_plane.ok() ? std::move(*control_plane) : nullptr;
  }
  void StartControlPlane() { control_plane_ = StartReplica(grpc_port_); }
  void StopControlPlane() {
    if (control_plane_ != nullptr) control_plane_->Shutdown();
    control_plane_.reset();
  }

  agent::AgentOptions Options(std::vector<int> ports = {}) {
    if (ports.empty()) ports.push_back(grpc_port_);
    agent::AgentOptions options;
    for (int port : ports) options.xds.control_planes.push_back(absl::StrCat("127.0.0.1:", port));
    options.xds.node_id = "node-1";
    options.xds.environment = "prod";
    options.xds.zone = "eu-1a";
    options.xds.initial_backoff = absl::Milliseconds(20);
    options.xds.max_backoff = absl::Milliseconds(300);
    options.xds.connect_timeout = absl::Seconds(2);
    options.work_dir = work_dir_;
    options.admin_address = "127.0.0.1:0";
    return options;
  }
  // Drivers outlive the agents that use them: the fixture owns both.
  template <typename Driver = FakeProxyDriver>
  Driver& NewDriver() {
    auto driver = std::make_unique<Driver>();
    Driver& ref = *driver;
    drivers_.push_back(std::move(driver));
    return ref;
  }
  void StartAgent(FakeProxyDriver& driver, agent::AgentOptions options) {
    agent_ = std::make_unique<Agent>(std::move(options), driver);
    absl::Status started = agent_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  // Commits through a store of its own, so writes work while meridian-cp is down.
  int64_t Write(std::vector<store::Mutation> mutations) {
    auto result = writer_->Commit(Changes(std::move(mutations)));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->revision : -1;
  }

  // The control plane's view of node-1 (GET /api/v1/nodes/node-1).
  json NodeStatus() {
    httplib::Client http("127.0.0.1", control_plane_->http_port());
    auto result = http.Get("/api/v1/nodes/node-1");
    if (!result || result->status != 200) return json();
    return json::parse(result->body, nullptr, false);
  }
  // Polls (bounded) until the control plane's view of node-1 satisfies `done`.
  json WaitForNode(const std::function<bool(const json&)>& done) {
    json node = NodeStatus();
    for (int i = 0; i < 500 && !done(node); ++i) {
      absl::SleepFor(absl::Milliseconds(20));
      node = NodeStatus();
    }
    return node;
  }
  agent::AgentStatus WaitForAgent(const std::function<bool(const agent::AgentStatus&)>& done) {
    agent::AgentStatus status = agent_->status();
    for (int i = 0; i < 500 && !done(status); ++i) {
      absl::SleepFor(absl::Milliseconds(20));
      status = agent_->status();
    }
    return status;
  }
  httplib::Result Admin(const std::string& path) {
    httplib::Client http("127.0.0.1", agent_->admin_port());
    return http.Get(path.c_str());
  }

  std::string url_;
  std::unique_ptr<store::PostgresConfigStore> writer_;
  std::string temp_dir_;
  std::string work_dir_;
  int grpc_port_ = 0;
  std::unique_ptr<server::ControlPlane> control_plane_;
  std::vector<std::unique_ptr<FakeProxyDriver>> drivers_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, AppliesTheEnvironmentsConfigAcksItAndPersistsIt) {
  Write({Put(ServiceResource("prod", "checkout")), Put(EndpointResource("checkout-1", "checkout")),
         Put(ServiceResource("staging", "not-mine"))});
  Write({Put(CertificateResource("shop-tls"))});
  const int64_t revision = Write({Put(RouteResource("prod", "shop", {{"checkout", 100}}))});

  FakeProxyDriver& driver = NewDriver();
  StartAgent(driver, Options());
  ASSERT_TRUE(driver.WaitUntil([&](const ProxySnapshot& snapshot) {
    return snapshot.routes.contains("shop") && snapshot.services.contains("checkout") &&
           snapshot.endpoints.contains("checkout-1") && snapshot.certificates.contains("shop-tls");
  }));
  const ProxySnapshot current = driver.current();
  EXPECT_EQ(current.revision, revision);
  EXPECT_EQ(current.services.size(), 1u) << "another environment's service leaked in";
  EXPECT_FALSE(current.certificates.at("shop-tls").spec().private_key().empty());
  ASSERT_EQ(driver.started().size(), 1u);
  EXPECT_TRUE(driver.started()[0].services.empty());  // first boot: nothing on disk

  // ACKed: the control plane counts the node as having applied the revision.
  json node =
      WaitForNode([&](const json& n) { return n.value("applied_revision", 0) >= revision; });
  EXPECT_EQ(node.value("applied_revision", 0), revision) << node.dump();
  EXPECT_EQ(node.value("user_agent", "").rfind("meridian-agent", 0), 0u) << node.dump();
  EXPECT_EQ(node.value("zone", ""), "eu-1a");

  struct stat info {};
  ASSERT_EQ(::stat((work_dir_ + "/snapshot.pb").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);

  auto healthz = Admin("/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 200);
  auto readyz = Admin("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 200);
  auto status = Admin("/status");
  ASSERT_TRUE(status);
  json body = json::parse(status->body, nullptr, false);
  EXPECT_EQ(body.value("node_id", ""), "node-1");
  EXPECT_EQ(body.value("environment", ""), "prod");
  EXPECT_EQ(body.value("last_applied_revision", 0), revision);
  EXPECT_EQ(body.value("snapshot_source", ""), "control_plane");
  EXPECT_EQ(body["control_plane"].value("address", ""), absl::StrCat("127.0.0.1:", grpc_port_));
  EXPECT_TRUE(body["control_plane"].value("connected", false));
}

TEST_F(AgentTest, RejectedChangeIsNackedWithTheProxysErrorAndTheNextGoodOneApplies) {
  const std::string error =
      "[ALERT] (77) : config : parsing [haproxy.cfg:40] : 'bind *:1' : cannot bind socket";
  FakeProxyDriver& driver = NewDriver();
  driver.RejectWhen([&](const ProxySnapshot& snapshot) {
    return PortOf(snapshot, "checkout") == 1 ? error : std::string();
  });
  Write({Put(ServiceResource("prod", "checkout", 8080))});
  StartAgent(driver, Options());
  ASSERT_TRUE(
      driver.WaitUntil([](const ProxySnapshot& s) { return PortOf(s, "checkout") == 8080; }));

  const int64_t bad = Write({Put(ServiceResource("prod", "checkout", 1))});
  ASSERT_TRUE(driver.WaitForRejections(1));
  json node = WaitForNode([&](const json& n) { return n.value("nacked_revision", 0) >= bad; });
  EXPECT_EQ(node.value("nacked_revision", 0), bad) << node.dump();
  EXPECT_EQ(node.value("nack_error", ""), error);
  EXPECT_LT(node.value("applied_revision", 0), bad);
  EXPECT_EQ(PortOf(driver.current(), "checkout"), 8080u) << "the proxy keeps its last good config";
  EXPECT_EQ(WaitForAgent([](const auto& s) { return !s.last_error.empty(); }).last_error, error);

  // An unrelated change applies on top of the last good state, not the rejected one.
  Write({Put(ServiceResource("prod", "cart", 7070))});
  ASSERT_TRUE(driver.WaitUntil([](const ProxySnapshot& s) { return s.services.contains("cart"); }));
  EXPECT_EQ(PortOf(driver.current(), "checkout"), 8080u);

  // A newer good revision of the rejected resource applies and the node converges.
  const int64_t fixed = Write({Put(ServiceResource("prod", "checkout", 9090))});
  ASSERT_TRUE(
      driver.WaitUntil([](const ProxySnapshot& s) { return PortOf(s, "checkout") == 9090; }));
  node = WaitForNode([&](const json& n) { return n.value("applied_revision", 0) >= fixed; });
  EXPECT_EQ(node.value("applied_revision", 0), fixed) << node.dump();
  EXPECT_EQ(driver.rejected().size(), 1u);
}

TEST_F(AgentTest, ReconnectAfterControlPlaneRestartReceivesOnlyWhatChanged) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b")),
         Put(ServiceResource("prod", "c"))});
  FakeProxyDriver& driver = NewDriver();
  StartAgent(driver, Options());
  ASSERT_TRUE(driver.WaitUntil([](const ProxySnapshot& s) { return s.services.size() == 3; }));
  EXPECT_EQ(WaitForAgent([](const auto& s) { return s.xds.acks >= 1; }).xds.resources_received, 3u);

  StopControlPlane();
  WaitForAgent([](const auto& s) { return !s.xds.connected; });
  Write({Put(ServiceResource("prod", "b", 9999))});
  Write({Delete({v1::SERVICE, "prod", "c"})});
  StartControlPlane();

  ASSERT_TRUE(driver.WaitUntil(
      [](const ProxySnapshot& s) { return PortOf(s, "b") == 9999 && !s.services.contains("c"); }));
  const agent::AgentStatus status = WaitForAgent([](const auto& s) { return s.xds.acks >= 2; });
  EXPECT_GE(status.xds.streams, 2u);
  EXPECT_EQ(status.xds.resources_received, 3u + 1u) << "only b was resent";
  EXPECT_EQ(status.xds.removals_received, 1u);
  EXPECT_TRUE(driver.current().services.contains("a"));
  EXPECT_EQ(driver.started().size(), 1u) << "the proxy kept running";
  EXPECT_EQ(driver.stops(), 0);
}

TEST_F(AgentTest, FailsOverToAnotherReplicaWhenItsControlPlaneStops) {
  const int other_port = FreePort();
  std::unique_ptr<server::ControlPlane> other = StartReplica(other_port);
  ASSERT_NE(other, nullptr);
  Write({Put(ServiceResource("prod", "a"))});
  FakeProxyDriver& driver = NewDriver();
  StartAgent(driver, Options({grpc_port_, other_port}));
  ASSERT_TRUE(driver.WaitUntil([](const ProxySnapshot& s) { return s.services.contains("a"); }));
  EXPECT_EQ(agent_->status().xds.control_plane, absl::StrCat("127.0.0.1:", grpc_port_));

  StopControlPlane();
  Write({Put(ServiceResource("prod", "b"))});
  ASSERT_TRUE(driver.WaitUntil([](const ProxySnapshot& s) { return s.services.contains("b"); }));
  const agent::AgentStatus status = agent_->status();
  EXPECT_EQ(status.xds.control_plane, absl::StrCat("127.0.0.1:", other_port));
  EXPECT_EQ(status.xds.resources_received, 2u) << "a was not resent by the other replica";
  agent_.reset();
  other->Shutdown();
}

TEST_F(AgentTest, RestartWhileTheControlPlaneIsDownStartsTheProxyFromDisk) {
  Write({Put(ServiceResource("prod", "a")), Put(EndpointResource("a-1", "a"))});
  const int64_t revision = Write({Put(CertificateResource("shop-tls"))});
  ProxySnapshot applied;
  {
    FakeProxyDriver& driver = NewDriver();
    StartAgent(driver, Options());
    ASSERT_TRUE(driver.WaitUntil([&](const ProxySnapshot& s) {
      return s.revision == revision && s.endpoints.contains("a-1") && s.services.contains("a") &&
             s.certificates.contains("shop-tls");
    }));
    agent_->Stop();  // waits for the write and ACK in progress
    applied = driver.current();
    EXPECT_EQ(driver.stops(), 1);
    agent_.reset();
  }
  StopControlPlane();
  Write({Put(ServiceResource("prod", "b"))});

  FakeProxyDriver& driver = NewDriver();
  StartAgent(driver, Options());
  ASSERT_EQ(driver.started().size(), 1u);
  const ProxySnapshot from_disk = driver.started()[0];
  EXPECT_EQ(from_disk.revision, applied.revision);
  EXPECT_EQ(from_disk.services.size(), 1u);
  EXPECT_EQ(from_disk.endpoints.size(), 1u);
  ASSERT_EQ(from_disk.certificates.size(), 1u);
  EXPECT_EQ(from_disk.certificates.at("shop-tls").spec().private_key(),
            applied.certificates.at("shop-tls").spec().private_key());
  EXPECT_TRUE(agent_->ready());
  auto readyz = Admin("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 200);
  WaitForAgent([](const auto& s) { return !s.last_error.empty(); });
  json body = json::parse(Admin("/status")->body, nullptr, false);
  EXPECT_EQ(body.value("snapshot_source", ""), "disk");
  EXPECT_EQ(body.value("last_applied_revision", 0), revision);
  EXPECT_FALSE(body["control_plane"].value("connected", true));
  EXPECT_FALSE(body["last_error"].is_null()) << "the unreachable control plane is reported";

  // Back online: the agent catches up, receiving only what it lacks.
  StartControlPlane();
  ASSERT_TRUE(driver.WaitUntil([](const ProxySnapshot& s) { return s.services.contains("b"); }));
  EXPECT_TRUE(driver.current().services.contains("a"));
  EXPECT_EQ(agent_->status().xds.resources_received, 1u);
}

TEST_F(AgentTest, WithNeitherSnapshotNorControlPlaneItIsHealthyButNotReady) {
  StopControlPlane();
  FakeProxyDriver& driver = NewDriver();
  StartAgent(driver, Options());
  EXPECT_TRUE(driver.running());
  EXPECT_EQ(Admin("/healthz")->status, 200);
  EXPECT_EQ(Admin("/readyz")->status, 503);
  EXPECT_FALSE(agent_->ready());
}

TEST_F(AgentTest, ProxyThatRefusesTheDiskSnapshotStartsEmptyAndRefetches) {
  Write({Put(ServiceResource("prod", "a"))});
  {
    FakeProxyDriver& driver = NewDriver();
    StartAgent(driver, Options());
    ASSERT_TRUE(driver.WaitUntil([](const ProxySnapshot& s) { return s.services.contains("a"); }));
    agent_.reset();
  }
  class RefusesNonEmptyStart : public FakeProxyDriver {
   public:
    absl::Status Start(const ProxySnapshot& snapshot) override {
      FakeProxyDriver::Start(snapshot).IgnoreError();
      if (snapshot.services.empty()) return absl::OkStatus();
      return absl::InvalidArgumentError("haproxy 2.6 refuses this config");
    }
  };
  auto& driver = NewDriver<RefusesNonEmptyStart>();
  StartAgent(driver, Options());
  ASSERT_EQ(driver.started().size(), 2u);
  EXPECT_TRUE(driver.started()[1].services.empty());
  ASSERT_TRUE(driver.WaitUntil([](const ProxySnapshot& s) { return s.services.contains("a"); }));
  EXPECT_EQ(agent_->status().xds.resources_received, 1u) << "nothing held, everything resent";
}

}  // namespace
}  // namespace meridian::testing
