// Convergence tracking through the public APIs: the whole control plane in-process on a fresh
// database, xDS nodes on real ADS streams over its gRPC port, writes and queries over REST,
// and the same questions asked of the gRPC ConvergenceService.
#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "meridian/v1/convergence.grpc.pb.h"
#include "tests/integration/control_plane_fixture.h"
#include "tests/integration/xds_test_node.h"

namespace meridian::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kServiceTypeUrl[] = "type.googleapis.com/meridian.v1.Service";
constexpr absl::Duration kAwait = absl::Seconds(10);

std::vector<std::string> Ids(const json& nodes) {
  std::vector<std::string> ids;
  for (const json& node : nodes) ids.push_back(node.value("id", ""));
  return ids;
}

std::string StatusPath(int64_t revision) {
  return absl::StrCat("/api/v1/revisions/", revision, "/status");
}

std::string WaitPath(int64_t revision, const std::string& timeout) {
  return absl::StrCat("/api/v1/revisions/", revision, "/wait?timeout=", timeout);
}

class ConvergenceApiTest : public ControlPlaneTest {
 protected:
  void ConfigureOptions(server::ControlPlaneOptions& options) override {
    options.replica_id = "replica-a";
    options_ = options;
  }

  // Stops the control plane and starts a new one on the same database, as after a redeploy.
  void Restart(const std::string& replica_id) {
    control_plane_->Shutdown();
    options_.replica_id = replica_id;
    auto restarted = server::ControlPlane::Start(options_);
    ASSERT_TRUE(restarted.ok()) << restarted.status();
    control_plane_ = std::move(*restarted);
    http_ = std::make_unique<httplib::Client>("127.0.0.1", control_plane_->http_port());
    http_->set_read_timeout(10, 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", control_plane_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::ConfigService::NewStub(channel_);
  }

  int64_t PutService(const std::string& environment, const std::string& name, int port) {
    const std::string body =
        json({{"spec", {{"ports", {{{"name", "http"}, {"port", port}, {"protocol", "HTTP"}}}}}}})
            .dump();
    auto result = Put(absl::StrCat("/api/v1/environments/", environment, "/services/", name), body);
    EXPECT_TRUE(result && (result->status == 200 || result->status == 201))
        << (result ? result->body : "");
    return Body(result).value("revision", int64_t{0});
  }

  std::unique_ptr<XdsTestNode> Connect(const std::string& id, const std::string& environment,
                                       const std::string& zone = "") {
    return XdsTestNode::Connect(channel_, id, environment, zone);
  }

  // GETs `path` until `done(body)` holds or kAwait passes; returns the last body.
  template <typename Predicate>
  json AwaitJson(const std::string& path, Predicate done) {
    const absl::Time deadline = absl::Now() + kAwait;
    json body = Body(Get(path));
    while (!done(body) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      body = Body(Get(path));
    }
    return body;
  }

  json AwaitNodeCount(const std::string& query, size_t count) {
    return AwaitJson("/api/v1/nodes" + query,
                     [count](json body) { return body["nodes"].size() == count; });
  }

  void ExpectError(const httplib::Result& result, int status, const std::string& code,
                   const std::string& mention) {
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, status) << result->body;
    EXPECT_EQ(result->get_header_value("Content-Type"), "application/json");
    const json body = Body(result);
    ASSERT_TRUE(body.is_object()) << result->body;
    EXPECT_EQ(body.value("code", ""), code) << result->body;
    EXPECT_THAT(body.value("message", ""), HasSubstr(mention)) << result->body;
  }

  server::ControlPlaneOptions options_;
};

TEST_F(ConvergenceApiTest, RevisionStatusShowsAppliedNackedAndPendingNodesInScope) {
  const int64_t staging_revision = PutService("staging", "web", 80);
  const int64_t first = PutService("prod", "checkout", 8080);
  auto good = Connect("good", "prod", "zone-a");
  auto picky = Connect("picky", "prod");
  auto slow = Connect("slow", "prod");
  auto staging = Connect("staging-1", "staging");
  for (XdsTestNode* node : {good.get(), picky.get(), slow.get(), staging.get()}) {
    ASSERT_TRUE(node->AckNext());
  }
  json initial = Body(Post(WaitPath(first, "10s"), ""));
  EXPECT_EQ(initial["converged"], true) << initial.dump(2);
  EXPECT_EQ(initial["environments"], json::array({"prod"}));
  EXPECT_EQ(initial["nodes_in_scope"], 3);
  EXPECT_THAT(Ids(initial["applied"]), ElementsAre("good", "picky", "slow"));

  const int64_t second = PutService("prod", "checkout", 9090);
  auto update = good->Next();
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ(update->system_version_info(), absl::StrCat(second));
  good->Ack(*update);
  auto rejected = picky->Next();
  ASSERT_TRUE(rejected.has_value());
  picky->Nack(*rejected, "port 9090 is taken on this host");
  auto unanswered = slow->Next();
  ASSERT_TRUE(unanswered.has_value());

  json status = AwaitJson(StatusPath(second), [](json body) {
    return body["applied_count"] == 1 && body["nacked_count"] == 1;
  });
  EXPECT_EQ(status["revision"], second);
  EXPECT_EQ(status["environments"], json::array({"prod"}));
  EXPECT_EQ(status["converged"], false) << status.dump(2);
  EXPECT_EQ(status["nodes_in_scope"], 3);  // staging-1 is not in the revision's scope
  EXPECT_THAT(Ids(status["applied"]), ElementsAre("good"));
  ASSERT_THAT(Ids(status["nacked"]), ElementsAre("picky"));
  EXPECT_EQ(status["nacked"][0]["nack_error"], "port 9090 is taken on this host");
  EXPECT_EQ(status["nacked"][0]["nack_type_url"], kServiceTypeUrl);
  EXPECT_EQ(status["nacked"][0]["nacked_revision"], second);
  EXPECT_EQ(status["nacked"][0]["applied_revision"], first);  // it keeps its last good config
  ASSERT_THAT(Ids(status["pending"]), ElementsAre("slow"));
  EXPECT_EQ(status["pending_count"], 1);
  EXPECT_EQ(status["pending"][0]["last_sent_revision"], second);
  EXPECT_THAT(Ids(status["disconnected"]), IsEmpty());
  EXPECT_EQ(status["disconnected_count"], 0);

  // A short wait gives up while "slow" has not answered: 200, converged false.
  auto gave_up = Post(WaitPath(second, "300ms"), "");
  ASSERT_TRUE(gave_up);
  EXPECT_EQ(gave_up->status, 200) << gave_up->body;
  EXPECT_EQ(Body(gave_up)["converged"], false);
  EXPECT_THAT(Ids(Body(gave_up)["pending"]), ElementsAre("slow"));

  // A waiter returns once the last node has answered (a NACK counts as an answer).
  auto waiter = std::async(std::launch::async, [this, second] {
    httplib::Client client("127.0.0.1", control_plane_->http_port());
    client.set_read_timeout(30, 0);
    auto result = client.Post(WaitPath(second, "20s").c_str(), "", "application/json");
    return result ? Body(result) : json();
  });
  slow->Ack(*unanswered);
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  json converged = waiter.get();
  EXPECT_EQ(converged["converged"], true) << converged.dump(2);
  EXPECT_EQ(converged["applied_count"], 2);
  EXPECT_EQ(converged["nacked_count"], 1);
  EXPECT_EQ(converged["pending_count"], 0);

  // The staging write has its own scope: only the staging node.
  json staging_status = Body(Get(StatusPath(staging_revision)));
  EXPECT_EQ(staging_status["environments"], json::array({"staging"}));
  EXPECT_EQ(staging_status["nodes_in_scope"], 1);
  EXPECT_THAT(Ids(staging_status["applied"]), ElementsAre("staging-1"));
}

TEST_F(ConvergenceApiTest, NodesAreListedAndFilteredByEnvironmentAndStatus) {
  const int64_t revision = PutService("prod", "checkout", 8080);
  auto prod_a = Connect("prod-a", "prod", "zone-a");
  auto prod_b = Connect("prod-b", "prod", "zone-b");
  ASSERT_TRUE(prod_a->AckNext());
  ASSERT_TRUE(prod_b->AckNext());
  {
    auto gone = Connect("staging-1", "staging");
    ASSERT_EQ(AwaitNodeCount("?environment=staging&status=connected", 1)["nodes"].size(), 1u);
  }
  // Its stream has ended: still listed, as disconnected.
  json disconnected = AwaitNodeCount("?status=disconnected", 1);
  EXPECT_THAT(Ids(disconnected["nodes"]), ElementsAre("staging-1"));
  EXPECT_EQ(disconnected["nodes"][0]["connected"], false);

  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes"))["nodes"]),
              ElementsAre("prod-a", "prod-b", "staging-1"));
  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes?status=all"))["nodes"]),
              ElementsAre("prod-a", "prod-b", "staging-1"));
  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes?status=connected"))["nodes"]),
              ElementsAre("prod-a", "prod-b"));
  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes?environment=prod"))["nodes"]),
              ElementsAre("prod-a", "prod-b"));
  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes?environment=staging"))["nodes"]),
              ElementsAre("staging-1"));
  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes?environment=staging&status=connected"))["nodes"]),
              IsEmpty());
  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes?environment=nowhere"))["nodes"]), IsEmpty());

  json node = AwaitJson("/api/v1/nodes/prod-a", [revision](json body) {
    return body.value("applied_revision", int64_t{0}) >= revision;
  });
  EXPECT_EQ(node["id"], "prod-a");
  EXPECT_EQ(node["environment"], "prod");
  EXPECT_EQ(node["zone"], "zone-a");
  EXPECT_EQ(node["replica"], "replica-a");
  EXPECT_EQ(node["connected"], true);
  EXPECT_EQ(node["applied_revision"], revision);
  EXPECT_EQ(node["last_sent_revision"], revision);
  EXPECT_EQ(node["nacked_revision"], 0);
  EXPECT_FALSE(node.contains("nack_error"));
  EXPECT_THAT(node.value("user_agent", ""), HasSubstr("xds-test-node"));
  for (const char* time : {"first_seen", "connected_since", "last_seen"}) {
    EXPECT_TRUE(node.contains(time) && node[time].is_string()) << time << ": " << node.dump(2);
  }

  ExpectError(Get("/api/v1/nodes/nobody"), 404, "NOT_FOUND", "nobody");
}

TEST_F(ConvergenceApiTest, BadInputsAreJsonErrors) {
  const int64_t first = PutService("prod", "checkout", 8080);
  const int64_t second = PutService("prod", "checkout", 9090);

  ExpectError(Get("/api/v1/nodes?status=bogus"), 400, "INVALID_ARGUMENT", "status");
  ExpectError(Post(WaitPath(second, "abc"), ""), 400, "INVALID_ARGUMENT", "timeout");
  ExpectError(Post(WaitPath(second, "-1s"), ""), 400, "INVALID_ARGUMENT", "timeout");
  ExpectError(Post(WaitPath(second, "11m"), ""), 400, "INVALID_ARGUMENT", "timeout");
  ExpectError(Get(StatusPath(0)), 400, "INVALID_ARGUMENT", "revision");
  ExpectError(Post(WaitPath(0, "1s"), ""), 400, "INVALID_ARGUMENT", "revision");
  ExpectError(Get(StatusPath(second + 100)), 404, "NOT_FOUND", "not found");
  ExpectError(Post(WaitPath(second + 100, "1s"), ""), 404, "NOT_FOUND", "not found");
  ExpectError(Get("/api/v1/revisions/abc/status"), 404, "NOT_FOUND", "no such endpoint");

  // A compacted revision's scope is gone: the answer says so instead of guessing.
  ASSERT_EQ(Post("/api/v1/compact", json({{"revision", first}}).dump())->status, 200);
  ExpectError(Get(StatusPath(first)), 400, "OUT_OF_RANGE", "compacted");
  EXPECT_EQ(Get(StatusPath(second))->status, 200);
}

TEST_F(ConvergenceApiTest, GrpcConvergenceServiceAnswersTheSameQuestions) {
  auto convergence = v1::ConvergenceService::NewStub(channel_);
  auto call = [](grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  };
  PutService("staging", "web", 80);
  const int64_t first = PutService("prod", "checkout", 8080);
  auto good = Connect("good", "prod", "zone-a");
  auto picky = Connect("picky", "prod");
  auto slow = Connect("slow", "prod");
  auto staging = Connect("staging-1", "staging");
  for (XdsTestNode* node : {good.get(), picky.get(), slow.get(), staging.get()}) {
    ASSERT_TRUE(node->AckNext());
  }
  {
    grpc::ClientContext context;
    call(context);
    v1::WaitForRevisionRequest request;
    request.set_revision(first);
    request.set_timeout_ms(10000);
    v1::RevisionStatus status;
    ASSERT_TRUE(convergence->WaitForRevision(&context, request, &status).ok());
    EXPECT_TRUE(status.converged());
    EXPECT_EQ(status.nodes_in_scope(), 3);
    EXPECT_EQ(status.applied_count(), 3);
  }

  const int64_t second = PutService("prod", "checkout", 9090);
  auto update = good->Next();
  ASSERT_TRUE(update.has_value());
  good->Ack(*update);
  auto rejected = picky->Next();
  ASSERT_TRUE(rejected.has_value());
  picky->Nack(*rejected, "no listener on 9090");
  auto unanswered = slow->Next();
  ASSERT_TRUE(unanswered.has_value());

  v1::RevisionStatus status;
  for (const absl::Time deadline = absl::Now() + kAwait; absl::Now() < deadline;) {
    grpc::ClientContext context;
    call(context);
    v1::GetRevisionStatusRequest request;
    request.set_revision(second);
    ASSERT_TRUE(convergence->GetRevisionStatus(&context, request, &status).ok());
    if (status.applied_size() == 1 && status.nacked_size() == 1) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(status.converged());
  EXPECT_THAT(status.environments(), ElementsAre("prod"));
  EXPECT_EQ(status.nodes_in_scope(), 3);
  ASSERT_EQ(status.applied_size(), 1);
  EXPECT_EQ(status.applied(0).id(), "good");
  ASSERT_EQ(status.nacked_size(), 1);
  EXPECT_EQ(status.nacked(0).id(), "picky");
  EXPECT_EQ(status.nacked(0).nack_error(), "no listener on 9090");
  ASSERT_EQ(status.pending_size(), 1);
  EXPECT_EQ(status.pending(0).id(), "slow");

  auto wait = [&](int64_t timeout_ms, v1::RevisionStatus* out) {
    grpc::ClientContext context;
    call(context);
    v1::WaitForRevisionRequest request;
    request.set_revision(second);
    request.set_timeout_ms(timeout_ms);
    return convergence->WaitForRevision(&context, request, out);
  };
  v1::RevisionStatus timed_out;
  ASSERT_TRUE(wait(300, &timed_out).ok());
  EXPECT_FALSE(timed_out.converged());
  ASSERT_EQ(timed_out.pending_size(), 1);
  EXPECT_EQ(timed_out.pending(0).id(), "slow");
  slow->Ack(*unanswered);
  v1::RevisionStatus converged;
  ASSERT_TRUE(wait(10000, &converged).ok());
  EXPECT_TRUE(converged.converged());
  EXPECT_EQ(converged.applied_count(), 2);
  EXPECT_EQ(converged.nacked_size(), 1);

  auto list = [&](const std::string& environment, v1::NodeState state) {
    grpc::ClientContext context;
    call(context);
    v1::ListNodesRequest request;
    request.set_environment(environment);
    request.set_state(state);
    v1::ListNodesResponse response;
    EXPECT_TRUE(convergence->ListNodes(&context, request, &response).ok());
    std::vector<std::string> ids;
    for (const auto& node : response.nodes()) ids.push_back(node.id());
    return ids;
  };
  EXPECT_THAT(list("", v1::NODE_STATE_UNSPECIFIED),
              ElementsAre("good", "picky", "slow", "staging-1"));
  EXPECT_THAT(list("staging", v1::CONNECTED), ElementsAre("staging-1"));
  EXPECT_THAT(list("prod", v1::DISCONNECTED), IsEmpty());
  {
    grpc::ClientContext context;
    call(context);
    v1::GetNodeRequest request;
    request.set_id("good");
    v1::NodeStatus node;
    ASSERT_TRUE(convergence->GetNode(&context, request, &node).ok());
    EXPECT_EQ(node.zone(), "zone-a");
    EXPECT_EQ(node.applied_revision(), second);
    EXPECT_TRUE(node.connected());
  }

  // Errors carry the same codes as REST.
  grpc::ClientContext unknown_node_context;
  call(unknown_node_context);
  v1::GetNodeRequest unknown_node;
  unknown_node.set_id("nobody");
  v1::NodeStatus ignored_node;
  EXPECT_EQ(convergence->GetNode(&unknown_node_context, unknown_node, &ignored_node).error_code(),
            grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext unknown_revision_context;
  call(unknown_revision_context);
  v1::GetRevisionStatusRequest unknown_revision;
  unknown_revision.set_revision(second + 100);
  v1::RevisionStatus ignored_status;
  EXPECT_EQ(
      convergence->GetRevisionStatus(&unknown_revision_context, unknown_revision, &ignored_status)
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext zero_revision_context;
  call(zero_revision_context);
  v1::GetRevisionStatusRequest zero_revision;
  EXPECT_EQ(convergence->GetRevisionStatus(&zero_revision_context, zero_revision, &ignored_status)
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(wait(-1, &ignored_status).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(wait(600001, &ignored_status).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ConvergenceApiTest, NodeStateSurvivesAControlPlaneRestart) {
  const int64_t first = PutService("prod", "checkout", 8080);
  auto node = Connect("edge-1", "prod", "zone-a");
  ASSERT_TRUE(node->AckNext());
  ASSERT_EQ(Body(Post(WaitPath(first, "10s"), ""))["converged"], true);
  json before = Body(Get("/api/v1/nodes/edge-1"));
  ASSERT_EQ(before["connected"], true) << before.dump(2);

  ASSERT_NO_FATAL_FAILURE(Restart("replica-b"));
  node.reset();  // its stream ended with the old control plane; it has not come back

  json listed = Body(Get("/api/v1/nodes"));
  ASSERT_THAT(Ids(listed["nodes"]), ElementsAre("edge-1")) << listed.dump(2);
  json& remembered = listed["nodes"][0];
  EXPECT_EQ(remembered["connected"], false);
  EXPECT_EQ(remembered["applied_revision"], first);
  EXPECT_EQ(remembered["replica"], "replica-a");  // the replica that last held its stream
  EXPECT_EQ(remembered["zone"], "zone-a");
  EXPECT_EQ(remembered["first_seen"], before["first_seen"]);
  EXPECT_THAT(Ids(Body(Get("/api/v1/nodes?status=disconnected"))["nodes"]), ElementsAre("edge-1"));
  EXPECT_THAT(Ids(Body(Get(StatusPath(first)))["applied"]), ElementsAre("edge-1"));

  // Written while it is away: it has never reported this revision. Disconnected nodes do not
  // hold up convergence, but they are named.
  const int64_t later = PutService("prod", "checkout", 9090);
  json status = Body(Get(StatusPath(later)));
  EXPECT_EQ(status["converged"], true) << status.dump(2);
  EXPECT_THAT(Ids(status["disconnected"]), ElementsAre("edge-1"));
  EXPECT_EQ(status["disconnected"][0]["applied_revision"], first);

  // It comes back to the new replica and catches up.
  auto back = Connect("edge-1", "prod", "zone-a");
  ASSERT_TRUE(back->AckNext());
  // The new replica's index may trail the write, so `later` can come in a second push.
  for (int i = 0; i < 5; ++i) {
    auto more = back->Next(absl::Milliseconds(300));
    if (!more) break;
    ASSERT_TRUE(back->Ack(*more));
  }
  json caught_up = AwaitJson("/api/v1/nodes/edge-1", [later](json body) {
    return body["connected"] == true && body.value("applied_revision", int64_t{0}) >= later;
  });
  EXPECT_EQ(caught_up["replica"], "replica-b");
  EXPECT_EQ(caught_up["applied_revision"], later);
  EXPECT_EQ(caught_up["first_seen"], before["first_seen"]);
  EXPECT_EQ(Body(Post(WaitPath(later, "10s"), ""))["converged"], true);
}

}  // namespace
}  // namespace meridian::testing
