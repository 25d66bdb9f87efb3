// Meridian's Envoy projection proven with an independent client: gRPC's own xDS client (in
// Debian's libgrpc++ 1.51) on channels "xds:///<host>", against a real meridian-cp on real
// Postgres, with small gRPC servers on 127.0.0.1 registered as Endpoints. Each server answers
// every call with its own name, so the client sees where each call went.
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/xds/envoy_resources.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/integration/ads_test_client.h"
#include "tests/integration/control_plane_fixture.h"

namespace meridian::testing {
namespace {

using ::envoy::service::discovery::v3::AggregatedDiscoveryService;
using ::envoy::service::discovery::v3::DeltaDiscoveryRequest;
using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;
using ::envoy::service::discovery::v3::DiscoveryRequest;
using ::envoy::service::discovery::v3::DiscoveryResponse;

constexpr char kNodeId[] = "grpc-xds-client";
constexpr char kMethod[] = "/meridian.test.Identity/Who";
constexpr int kRoutePort = 8080;

// Read by gRPC when it initializes (before any test runs): an idle xDS client polls its ADS
// stream every 5 s by default, which would make pushes look slow.
const bool kPollQuickly = [] {
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", 1);
  return true;
}();

// A gRPC server on 127.0.0.1 that answers every unary call with its name. Generic (raw bytes),
// so the test needs no generated stubs.
class IdentityServer : public grpc::CallbackGenericService {
 public:
  explicit IdentityServer(std::string name) : name_(std::move(name)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterCallbackGenericService(this);
    server_ = builder.BuildAndStart();
  }
  ~IdentityServer() override {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  int port() const { return port_; }

 private:
  class Reply : public grpc::ServerGenericBidiReactor {
   public:
    explicit Reply(const std::string& name) {
      grpc::Slice slice(name);
      reply_ = grpc::ByteBuffer(&slice, 1);
      StartRead(&request_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no request"));
      StartWriteAndFinish(&reply_, grpc::WriteOptions(), grpc::Status::OK);
    }
    void OnDone() override { delete this; }

   private:
    grpc::ByteBuffer request_;
    grpc::ByteBuffer reply_;
  };

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    return new Reply(name_);
  }

  const std::string name_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A proxyless gRPC client of `host`: resolved and balanced by gRPC's xDS client.
class IdentityClient {
 public:
  explicit IdentityClient(const std::string& host)
      : channel_(grpc::CreateChannel("xds:///" + host, grpc::InsecureChannelCredentials())),
        stub_(channel_) {}

  // The name of the server that answered one call.
  absl::StatusOr<std::string> Call() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::Slice slice(std::string("who"));
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    stub_.UnaryCall(&context, kMethod, grpc::StubOptions(), &request, &response,
                    [&done](grpc::Status status) { done.set_value(std::move(status)); });
    grpc::Status status = done.get_future().get();  // bounded by the deadline
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    std::string name;
    for (const auto& part : slices) {
      name.append(reinterpret_cast<const char*>(part.begin()), part.size());
    }
    return name;
  }

  // Calls until every one of `names` has answered, within `timeout`. Failures are allowed
  // here: the channel is still resolving.
  bool WaitForAll(const std::set<std::string>& names, absl::Duration timeout = absl::Seconds(20)) {
    std::set<std::string> seen;
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      auto answer = Call();
      if (answer.ok()) seen.insert(*answer);
      if (std::includes(seen.begin(), seen.end(), names.begin(), names.end())) return true;
      if (!answer.ok()) absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  struct Tally {
    std::map<std::string, int> by_server;
    int failures = 0;
    std::string last_error;
  };
  Tally CallMany(int calls) {
    Tally tally;
    for (int i = 0; i < calls; ++i) {
      auto answer = Call();
      if (answer.ok()) {
        ++tally.by_server[*answer];
      } else {
        ++tally.failures;
        tally.last_error = answer.status().ToString();
      }
    }
    return tally;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
};

// One meridian-cp for the suite: gRPC keeps a single xDS client per process, built from the
// bootstrap the first time a channel needs it.
class EnvoyXdsGrpcClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto url = SharedPostgres().CreateDatabase("envoy_xds");
    ASSERT_TRUE(url.ok()) << url.status();
    auto started = server::ControlPlane::Start(LoopbackControlPlaneOptions(*url));
    ASSERT_TRUE(started.ok()) << started.status();
    control_plane_ = started->release();
    bootstrap_path_ = new std::string(
        absl::StrCat(::testing::TempDir(), "meridian-xds-bootstrap-", getpid(), ".json"));
    const json bootstrap = {
        {"xds_servers",
         {{{"server_uri", absl::StrCat("127.0.0.1:", control_plane_->grpc_port())},
           {"channel_creds", {{{"type", "insecure"}}}},
           {"server_features", {"xds_v3"}}}}},
        {"node",
         {{"id", kNodeId},
          {"cluster", "grpc-tests"},
          {"metadata", {{"environment", "prod"}}},
          {"locality", {{"zone", "zone-a"}}}}}};
    std::ofstream(*bootstrap_path_) << bootstrap.dump(2);
    setenv("GRPC_XDS_BOOTSTRAP", bootstrap_path_->c_str(), 1);
  }

  static void TearDownTestSuite() {
    if (control_plane_ != nullptr) control_plane_->Shutdown();
    delete control_plane_;
    control_plane_ = nullptr;
    if (bootstrap_path_ != nullptr) std::remove(bootstrap_path_->c_str());
    delete bootstrap_path_;
    bootstrap_path_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(control_plane_, nullptr) << "the control plane did not start";
    http_ = std::make_unique<httplib::Client>("127.0.0.1", control_plane_->http_port());
    http_->set_read_timeout(10, 0);
  }

  static std::string Path(const std::string& kind, const std::string& name) {
    return absl::StrCat("/api/v1/environments/prod/", kind, "/", name);
  }

  // Writes a resource; returns the revision of the write.
  int64_t Put(const std::string& kind, const std::string& name, const json& spec) {
    auto result =
        http_->Put(Path(kind, name).c_str(), json({{"spec", spec}}).dump(), "application/json");
    EXPECT_TRUE(result && (result->status == 200 || result->status == 201))
        << kind << "/" << name << ": " << (result ? result->body : "no response");
    if (!result) return 0;
    return json::parse(result->body, nullptr, false).value("revision", int64_t{0});
  }

  int64_t PutService(const std::string& name, const std::string& policy = "ROUND_ROBIN") {
    return Put("services", name,
               {{"ports", {{{"name", "grpc"}, {"port", 50051}, {"protocol", "GRPC"}}}},
                {"load_balancing", {{"policy", policy}}}});
  }

  int64_t PutEndpoint(const std::string& name, const std::string& service, int port,
                      const std::string& zone = "zone-a", int weight = 0) {
    json spec = {{"service", service}, {"address", "127.0.0.1"}, {"port", port}, {"zone", zone}};
    if (weight > 0) spec["weight"] = weight;
    return Put("endpoints", name, spec);
  }

  static json Rule(const std::vector<std::pair<std::string, int>>& destinations) {
    json list = json::array();
    for (const auto& [service, weight] : destinations) {
      list.push_back({{"service", service}, {"weight", weight}});
    }
    return {{"match", {{"path_prefix", "/"}}}, {"destinations", list}};
  }

  int64_t PutRoute(const std::string& name, const std::string& host, const json& rule) {
    return Put("routes", name, {{"hosts", {host}}, {"port", kRoutePort}, {"rules", {rule}}});
  }

  // This test's gRPC client in GET /api/v1/revisions/{revision}/status, once it is listed
  // under `group` ("applied" or "nacked"); null if it never is within the bound.
  json WaitForNodeIn(int64_t revision, const std::string& group) {
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    json status;
    while (absl::Now() < deadline) {
      auto result = http_->Get(absl::StrCat("/api/v1/revisions/", revision, "/status").c_str());
      if (result && result->status == 200) {
        status = json::parse(result->body, nullptr, false);
        for (const json& node : status.value(group, json::array())) {
          if (node.value("id", "") == kNodeId) return node;
        }
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "node " << kNodeId << " never listed as " << group << " for revision "
                  << revision << "; last status: " << status.dump();
    return json();
  }

  // A delta ADS stream to the control plane, as an Envoy opens it; on the test's channel.
  std::unique_ptr<DeltaClient> OpenDelta() {
    if (ads_stub_ == nullptr) {
      ads_stub_ = AggregatedDiscoveryService::NewStub(
          grpc::CreateChannel(absl::StrCat("127.0.0.1:", control_plane_->grpc_port()),
                              grpc::InsecureChannelCredentials()));
    }
    return std::make_unique<DeltaClient>([this](grpc::ClientContext* context) {
      return ads_stub_->DeltaAggregatedResources(context);
    });
  }

  // Subscribes node `node_id` of environment prod to `names` of `type_url` (none: wildcard).
  static void SubscribeDelta(DeltaClient& delta, const std::string& node_id,
                             const std::string& type_url, std::vector<std::string> names) {
    DeltaDiscoveryRequest request;
    request.mutable_node()->set_id(node_id);
    (*request.mutable_node()->mutable_metadata()->mutable_fields())["environment"].set_string_value(
        "prod");
    request.set_type_url(type_url);
    for (auto& name : names) request.add_resource_names_subscribe(std::move(name));
    ASSERT_TRUE(delta.Send(request));
  }

  // Reads and ACKs responses until the stream is quiet; returns them in arrival order.
  static std::vector<DeltaDiscoveryResponse> DrainInOrder(DeltaClient& delta) {
    std::vector<DeltaDiscoveryResponse> responses;
    while (auto response = delta.Next(absl::Milliseconds(700))) {
      DeltaDiscoveryRequest ack;
      ack.set_type_url(response->type_url());
      ack.set_response_nonce(response->nonce());
      EXPECT_TRUE(delta.Send(ack));
      responses.push_back(std::move(*response));
    }
    return responses;
  }

  std::unique_ptr<httplib::Client> http_;
  std::unique_ptr<AggregatedDiscoveryService::Stub> ads_stub_;
  static server::ControlPlane* control_plane_;
  static std::string* bootstrap_path_;
};

server::ControlPlane* EnvoyXdsGrpcClientTest::control_plane_ = nullptr;
std::string* EnvoyXdsGrpcClientTest::bootstrap_path_ = nullptr;

TEST_F(EnvoyXdsGrpcClientTest, BalancesAcrossEndpointsAndDrainsADeletedOneWithoutAFailedCall) {
  IdentityServer a("rr-a"), b("rr-b"), c("rr-c");
  PutService("rr");
  // Two zones: gRPC weighs localities by load_balancing_weight (2 endpoints : 1), then round
  // robins inside each, so every endpoint still gets a third.
  PutEndpoint("rr-a", "rr", a.port(), "zone-a");
  PutEndpoint("rr-b", "rr", b.port(), "zone-a");
  PutEndpoint("rr-c", "rr", c.port(), "zone-b");
  PutRoute("rr", "rr.example.com", Rule({{"rr", 0}}));
  IdentityClient client("rr.example.com");
  ASSERT_TRUE(client.WaitForAll({"rr-a", "rr-b", "rr-c"}));

  IdentityClient::Tally balanced = client.CallMany(600);
  EXPECT_EQ(balanced.failures, 0) << balanced.last_error;
  for (const char* server : {"rr-a", "rr-b", "rr-c"}) {
    EXPECT_GE(balanced.by_server[server], 150) << server;
    EXPECT_LE(balanced.by_server[server], 250) << server;
  }

  const absl::Time deleted_at = absl::Now();
  auto deleted = http_->Delete(Path("endpoints", "rr-c").c_str());
  ASSERT_TRUE(deleted && deleted->status == 200);
  absl::Time last_on_deleted = deleted_at;
  int failures = 0;
  std::string last_error;
  while (absl::Now() < deleted_at + absl::Seconds(2)) {
    auto answer = client.Call();
    if (!answer.ok()) {
      ++failures;
      last_error = answer.status().ToString();
    } else if (*answer == "rr-c") {
      last_on_deleted = absl::Now();
    }
  }
  EXPECT_EQ(failures, 0) << last_error;
  EXPECT_LT(last_on_deleted - deleted_at, absl::Seconds(1))
      << "the deleted endpoint still took calls " << (last_on_deleted - deleted_at)
      << " after the delete";
  IdentityClient::Tally after = client.CallMany(200);
  EXPECT_EQ(after.failures, 0) << after.last_error;
  EXPECT_EQ(after.by_server["rr-c"], 0);
  EXPECT_GT(after.by_server["rr-a"], 0);
  EXPECT_GT(after.by_server["rr-b"], 0);
}

TEST_F(EnvoyXdsGrpcClientTest, SplitsTrafficEightyTwentyBetweenTwoServices) {
  IdentityServer stable("split-stable"), canary("split-canary");
  PutService("split-stable");
  PutService("split-canary");
  PutEndpoint("split-stable-1", "split-stable", stable.port());
  PutEndpoint("split-canary-1", "split-canary", canary.port());
  PutRoute("split", "split.example.com", Rule({{"split-stable", 80}, {"split-canary", 20}}));
  IdentityClient client("split.example.com");
  ASSERT_TRUE(client.WaitForAll({"split-stable", "split-canary"}));

  IdentityClient::Tally tally = client.CallMany(500);
  EXPECT_EQ(tally.failures, 0) << tally.last_error;
  const double stable_percent = tally.by_server["split-stable"] * 100.0 / 500;
  EXPECT_NEAR(stable_percent, 80.0, 5.0) << "stable " << tally.by_server["split-stable"]
                                         << ", canary " << tally.by_server["split-canary"];
}

TEST_F(EnvoyXdsGrpcClientTest, ClientAcksShowInTheRevisionStatus) {
  IdentityServer server("ack-1");
  PutService("ack");
  PutEndpoint("ack-1", "ack", server.port());
  PutRoute("ack", "ack.example.com", Rule({{"ack", 0}}));
  IdentityClient client("ack.example.com");
  ASSERT_TRUE(client.WaitForAll({"ack-1"}));

  // A change to something the client subscribes to (its ClusterLoadAssignment).
  const int64_t revision = PutEndpoint("ack-1", "ack", server.port(), "zone-a", /*weight=*/5);
  json node = WaitForNodeIn(revision, "applied");
  ASSERT_FALSE(node.is_null());
  EXPECT_GE(node.value("last_sent_revision", int64_t{0}), revision) << node.dump();
  EXPECT_TRUE(absl::StrContains(node.value("user_agent", ""), "gRPC")) << node.dump();
  EXPECT_TRUE(node.value("connected", false));
  EXPECT_TRUE(client.Call().ok());
}

TEST_F(EnvoyXdsGrpcClientTest, ClientNackOfLeastRequestShowsItsReasonAndALaterRevisionConverges) {
  IdentityServer server("nack-1");
  PutService("nack");
  PutEndpoint("nack-1", "nack", server.port());
  PutRoute("nack", "nack.example.com", Rule({{"nack", 0}}));
  IdentityClient client("nack.example.com");
  ASSERT_TRUE(client.WaitForAll({"nack-1"}));

  // Meridian accepts LEAST_REQUEST (Envoy supports it); gRPC 1.51 rejects the Cluster.
  const int64_t rejected = PutService("nack", "LEAST_REQUEST");
  json nacked = WaitForNodeIn(rejected, "nacked");
  ASSERT_FALSE(nacked.is_null());
  EXPECT_EQ(nacked.value("nack_type_url", ""), xds::kEnvoyClusterType) << nacked.dump();
  EXPECT_TRUE(absl::StrContains(nacked.value("nack_error", ""), "LB policy")) << nacked.dump();
  // The client keeps its last good Cluster.
  auto answer = client.Call();
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(*answer, "nack-1");

  const int64_t fixed = PutService("nack", "ROUND_ROBIN");
  json applied = WaitForNodeIn(fixed, "applied");
  ASSERT_FALSE(applied.is_null());
  auto status = http_->Get(absl::StrCat("/api/v1/revisions/", fixed, "/status").c_str());
  ASSERT_TRUE(status && status->status == 200);
  EXPECT_TRUE(json::parse(status->body)["converged"].get<bool>()) << status->body;
  EXPECT_TRUE(client.Call().ok());
}

// Make before break: one revision creates a service, points the route at it and deletes the
// old one. Clusters go out before the route moves, and the old Cluster is removed only after
// the route stopped naming it, so a client calling throughout never fails.
TEST_F(EnvoyXdsGrpcClientTest, MovingARouteToANewServiceAndDeletingTheOldFailsNoCall) {
  IdentityServer old_server("move-old"), new_server("move-new");
  PutService("move-old");
  PutEndpoint("move-old-1", "move-old", old_server.port());
  PutRoute("move", "move.example.com", Rule({{"move-old", 0}}));
  IdentityClient client("move.example.com");
  ASSERT_TRUE(client.WaitForAll({"move-old"}));

  // Several callers, so calls are in flight at every moment of the switch.
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> on_new{0};
  absl::Mutex error_mu;
  std::string last_error;
  std::vector<std::thread> callers;
  for (int i = 0; i < 4; ++i) {
    callers.emplace_back([&] {
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (!stop && absl::Now() < deadline) {
        auto answer = client.Call();
        if (!answer.ok()) {
          ++failures;
          absl::MutexLock lock(&error_mu);
          last_error = answer.status().ToString();
        } else if (*answer == "move-new") {
          ++on_new;
        }
      }
    });
  }
  auto put = [](const std::string& kind, const std::string& name, const json& spec) {
    return json{{"put", {{"kind", kind}, {"environment", "prod"}, {"name", name}, {"spec", spec}}}};
  };
  auto remove = [](const std::string& kind, const std::string& name) {
    return json{{"delete", {{"kind", kind}, {"environment", "prod"}, {"name", name}}}};
  };
  const json batch = {
      {"changes",
       {put("services", "move-new",
            {{"ports", {{{"name", "grpc"}, {"port", 50051}, {"protocol", "GRPC"}}}}}),
        put("endpoints", "move-new-1",
            {{"service", "move-new"}, {"address", "127.0.0.1"}, {"port", new_server.port()}}),
        put("routes", "move",
            {{"hosts", {"move.example.com"}},
             {"port", kRoutePort},
             {"rules", {Rule({{"move-new", 0}})}}}),
        remove("endpoints", "move-old-1"), remove("services", "move-old")}}};
  auto applied = http_->Post("/api/v1/changes", batch.dump(), "application/json");
  const bool committed = applied && applied->status == 200;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (committed && on_new < 100 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::SleepFor(absl::Milliseconds(500));  // keep calling after the removals went out
  stop = true;
  for (std::thread& caller : callers) caller.join();
  ASSERT_TRUE(committed) << (applied ? applied->body : "no response");
  EXPECT_EQ(failures, 0) << last_error;
  EXPECT_GE(on_new, 100);
}

// The same move through a raw state-of-the-world stream subscribed the way gRPC subscribes (by
// name), which sees the order of responses: the RouteConfiguration naming the new Cluster comes
// before the Cluster response that drops the old one.
TEST_F(EnvoyXdsGrpcClientTest, StateOfTheWorldDropsTheOldClusterOnlyAfterTheRouteMoved) {
  PutService("order-old");
  PutEndpoint("order-old-1", "order-old", 1);
  const int64_t written = PutRoute("order", "order.example.com", Rule({{"order-old", 0}}));
  // Connect once the xDS server has these, so the first responses are the only ones.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (control_plane_->xds().revision() < written && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }

  auto stub = AggregatedDiscoveryService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", control_plane_->grpc_port()), grpc::InsecureChannelCredentials()));
  SotwClient sotw(
      [&](grpc::ClientContext* context) { return stub->StreamAggregatedResources(context); });
  const std::map<std::string, std::vector<std::string>> subscriptions = {
      {xds::kEnvoyListenerType, {"order.example.com"}},
      {xds::kEnvoyRouteConfigurationType, {"order"}},
      {xds::kEnvoyClusterType, {"order-old"}},
      {xds::kEnvoyLoadAssignmentType, {"order-old"}}};
  for (const auto& [type_url, names] : subscriptions) {
    DiscoveryRequest request;
    request.mutable_node()->set_id("sotw-probe");
    (*request.mutable_node()->mutable_metadata()->mutable_fields())["environment"].set_string_value(
        "prod");
    request.set_type_url(type_url);
    for (const std::string& name : names) request.add_resource_names(name);
    ASSERT_TRUE(sotw.Send(request));
  }
  // Reads and ACKs (same names) until quiet; returns the responses in arrival order.
  auto drain = [&] {
    std::vector<DiscoveryResponse> responses;
    while (auto response = sotw.Next(absl::Milliseconds(700))) {
      DiscoveryRequest ack;
      ack.set_type_url(response->type_url());
      ack.set_version_info(response->version_info());
      ack.set_response_nonce(response->nonce());
      for (const std::string& name : subscriptions.at(response->type_url())) {
        ack.add_resource_names(name);
      }
      EXPECT_TRUE(sotw.Send(ack));
      responses.push_back(std::move(*response));
    }
    return responses;
  };
  ASSERT_EQ(drain().size(), 4u);

  auto put = [](const std::string& kind, const std::string& name, const json& spec) {
    return json{{"put", {{"kind", kind}, {"environment", "prod"}, {"name", name}, {"spec", spec}}}};
  };
  auto remove = [](const std::string& kind, const std::string& name) {
    return json{{"delete", {{"kind", kind}, {"environment", "prod"}, {"name", name}}}};
  };
  const json batch = {
      {"changes",
       {put("services", "order-new", {{"ports", {{{"name", "grpc"}, {"port", 50051}}}}}),
        put("endpoints", "order-new-1",
            {{"service", "order-new"}, {"address", "127.0.0.1"}, {"port", 2}}),
        put("routes", "order",
            {{"hosts", {"order.example.com"}},
             {"port", kRoutePort},
             {"rules", {Rule({{"order-new", 0}})}}}),
        remove("endpoints", "order-old-1"), remove("services", "order-old")}}};
  auto applied = http_->Post("/api/v1/changes", batch.dump(), "application/json");
  ASSERT_TRUE(applied && applied->status == 200) << (applied ? applied->body : "no response");

  std::vector<std::string> order;
  for (const DiscoveryResponse& response : drain()) {
    if (response.type_url() == xds::kEnvoyRouteConfigurationType) {
      envoy::config::route::v3::RouteConfiguration config;
      ASSERT_EQ(response.resources_size(), 1);
      ASSERT_TRUE(response.resources(0).UnpackTo(&config));
      order.push_back("route->" + config.virtual_hosts(0).routes(0).route().cluster());
    } else if (response.type_url() == xds::kEnvoyClusterType) {
      order.push_back(absl::StrCat("clusters:", response.resources_size()));
    }
  }
  EXPECT_EQ(order, (std::vector<std::string>{"route->order-new", "clusters:0"}));
}

// The Envoy types through a raw delta ADS stream, as an Envoy would see them: an endpoint
// change resends only its service's ClusterLoadAssignment (no Cluster), and a TLS route gets a
// socket Listener with an SNI filter chain whose certificate comes by SDS.
TEST_F(EnvoyXdsGrpcClientTest, DeltaStreamGetsOnlyChangedEnvoyResourcesAndTlsListeners) {
  PutService("probe-a");
  PutService("probe-b");
  PutEndpoint("probe-a-1", "probe-a", 1);
  PutEndpoint("probe-b-1", "probe-b", 2);
  const TestCertificate cert = MakeSelfSignedCertificate("secure.example.com");
  Put("certificates", "secure-tls",
      {{"certificate_chain", cert.chain_pem}, {"private_key", cert.key_pem}});
  Put("routes", "secure",
      {{"hosts", {"secure.example.com"}},
       {"port", 8443},
       {"tls_certificate", "secure-tls"},
       {"rules", {Rule({{"probe-a", 0}})}}});

  std::unique_ptr<DeltaClient> delta_client = OpenDelta();
  DeltaClient& delta = *delta_client;
  auto subscribe = [&](const std::string& type_url, std::vector<std::string> names) {
    SubscribeDelta(delta, "delta-probe", type_url, std::move(names));
  };
  auto drain_in_order = [&] { return DrainInOrder(delta); };
  auto drain = [&] {
    std::map<std::string, std::vector<DeltaDiscoveryResponse>> by_type;
    for (auto& response : drain_in_order()) {
      by_type[response.type_url()].push_back(std::move(response));
    }
    return by_type;
  };
  subscribe(xds::kEnvoyClusterType, {"probe-a", "probe-b"});
  subscribe(xds::kEnvoyLoadAssignmentType, {"probe-a", "probe-b"});
  subscribe(xds::kEnvoyListenerType, {xds::SocketListenerName(8443)});
  subscribe(xds::kEnvoySecretType, {"secure-tls"});
  auto initial = drain();
  ASSERT_EQ(initial[xds::kEnvoyClusterType].size(), 1u);
  EXPECT_EQ(initial[xds::kEnvoyClusterType][0].resources_size(), 2);
  ASSERT_EQ(initial[xds::kEnvoyListenerType].size(), 1u);
  ASSERT_EQ(initial[xds::kEnvoySecretType].size(), 1u);

  envoy::config::listener::v3::Listener listener;
  ASSERT_TRUE(initial[xds::kEnvoyListenerType][0].resources(0).resource().UnpackTo(&listener));
  EXPECT_EQ(listener.address().socket_address().port_value(), 8443u);
  ASSERT_EQ(listener.filter_chains_size(), 1);
  EXPECT_EQ(listener.filter_chains(0).filter_chain_match().server_names(0), "secure.example.com");
  EXPECT_EQ(listener.filter_chains(0).transport_socket().name(), "envoy.transport_sockets.tls");
  envoy::extensions::transport_sockets::tls::v3::Secret secret;
  ASSERT_TRUE(initial[xds::kEnvoySecretType][0].resources(0).resource().UnpackTo(&secret));
  EXPECT_EQ(secret.tls_certificate().certificate_chain().inline_string(), cert.chain_pem);

  const int64_t revision = PutEndpoint("probe-a-2", "probe-a", 3);
  auto changed = drain();
  EXPECT_EQ(changed.count(xds::kEnvoyClusterType), 0u) << "no Cluster changed";
  ASSERT_EQ(changed[xds::kEnvoyLoadAssignmentType].size(), 1u);
  const DeltaDiscoveryResponse& update = changed[xds::kEnvoyLoadAssignmentType][0];
  ASSERT_EQ(update.resources_size(), 1);
  EXPECT_EQ(update.resources(0).name(), "probe-a");
  EXPECT_EQ(update.resources(0).version(), absl::StrCat(revision));
  envoy::config::endpoint::v3::ClusterLoadAssignment assignment;
  ASSERT_TRUE(update.resources(0).resource().UnpackTo(&assignment));
  ASSERT_EQ(assignment.endpoints_size(), 1);
  EXPECT_EQ(assignment.endpoints(0).lb_endpoints_size(), 2);
  EXPECT_EQ(assignment.endpoints(0).load_balancing_weight().value(), 2u);

  // Deleting a service: its Cluster goes before its ClusterLoadAssignment.
  auto deleted_endpoint = http_->Delete(Path("endpoints", "probe-b-1").c_str());
  auto deleted_service = http_->Delete(Path("services", "probe-b").c_str());
  ASSERT_TRUE(deleted_endpoint && deleted_endpoint->status == 200);
  ASSERT_TRUE(deleted_service && deleted_service->status == 200);
  std::vector<std::string> removals;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (removals.size() < 2 && absl::Now() < deadline) {
    for (const auto& response : drain_in_order()) {
      for (const std::string& name : response.removed_resources()) {
        removals.push_back(absl::StrCat(
            response.type_url() == xds::kEnvoyClusterType ? "Cluster " : "CLA ", name));
      }
    }
  }
  EXPECT_EQ(removals, (std::vector<std::string>{"Cluster probe-b", "CLA probe-b"}));
}

// A new service changes two Envoy types in one revision: a wildcard delta stream gets each
// type's response as the one serialized for every such stream (shared nonce), the Cluster
// before the ClusterLoadAssignment that fills it.
TEST_F(EnvoyXdsGrpcClientTest, WildcardDeltaStreamGetsEachChangedTypeSharedAndInPushOrder) {
  PutService("shared-probe-first");  // so the initial state says the stream is up
  std::unique_ptr<DeltaClient> delta = OpenDelta();
  SubscribeDelta(*delta, "delta-wildcard", xds::kEnvoyLoadAssignmentType, {});
  SubscribeDelta(*delta, "delta-wildcard", xds::kEnvoyClusterType, {});
  ASSERT_EQ(DrainInOrder(*delta).size(), 2u) << "the initial state of each type";

  const int64_t revision = PutService("shared-probe");
  std::vector<DeltaDiscoveryResponse> responses = DrainInOrder(*delta);
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0].type_url(), xds::kEnvoyClusterType);
  EXPECT_EQ(responses[1].type_url(), xds::kEnvoyLoadAssignmentType);
  for (const DeltaDiscoveryResponse& response : responses) {
    EXPECT_EQ(response.system_version_info(), absl::StrCat(revision));
    EXPECT_TRUE(absl::StartsWith(response.nonce(), absl::StrCat("shared-", revision)))
        << response.nonce();
    ASSERT_EQ(response.resources_size(), 1);
    EXPECT_EQ(response.resources(0).name(), "shared-probe");
  }
  EXPECT_NE(responses[0].nonce(), responses[1].nonce());
}

}  // namespace
}  // namespace meridian::testing
