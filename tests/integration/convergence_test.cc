// Convergence tracking end to end: real ADS streams ACK and NACK revisions, the node registry
// records them in Postgres, and the tracker answers per revision.
#include "controlplane/convergence/convergence_tracker.h"

#include <atomic>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "controlplane/convergence/postgres_node_status_store.h"
#include "controlplane/xds/type_urls.h"
#include "controlplane/xds/xds_server.h"
#include "gtest/gtest.h"
#include "tests/integration/ads_test_client.h"
#include "tests/integration/store_test_util.h"

namespace meridian::convergence {
namespace {

using ::envoy::service::discovery::v3::AggregatedDiscoveryService;
using ::envoy::service::discovery::v3::DeltaDiscoveryRequest;
using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;
using ::meridian::testing::Changes;
using ::meridian::testing::DeltaClient;
using ::meridian::testing::Put;
using ::meridian::testing::RouteResource;
using ::meridian::testing::ServiceResource;

class ConvergenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = meridian::testing::SharedPostgres().CreateDatabase("convergence");
    ASSERT_TRUE(url.ok()) << url.status();
    auto opened = store::PostgresConfigStore::Open({*url, 4});
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
    feed_ = std::make_unique<store::ChangeFeed>(
        *store_, store::ChangeFeed::Options{*url, absl::Milliseconds(200), 1024});
    ASSERT_TRUE(feed_->Start().ok());
    node_store_ = std::make_unique<PostgresNodeStatusStore>(*url, 2);
    registry_ = std::make_unique<NodeRegistry>(
        *node_store_, NodeRegistry::Options{"replica-1", absl::Milliseconds(20), absl::Seconds(1)});
    registry_->Start();
    tracker_ = std::make_unique<ConvergenceTracker>(*node_store_, *registry_);
    xds_ = std::make_unique<xds::XdsServer>(*store_, *feed_, *registry_, xds::XdsServerOptions{});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    xds_->AddTo(builder);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(xds_->Start().ok());
    stub_ = AggregatedDiscoveryService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    xds_->Stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    xds_->Drain();
    registry_->Stop();
    feed_->Stop();
  }

  int64_t Write(const std::string& environment, const std::string& name, uint32_t port) {
    auto result = store_->Commit(Changes({Put(ServiceResource(environment, name, port))}));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->revision : 0;
  }

  std::unique_ptr<DeltaClient> Connect(const std::string& node_id, const std::string& environment) {
    auto client = std::make_unique<DeltaClient>(
        [this](grpc::ClientContext* context) { return stub_->DeltaAggregatedResources(context); });
    DeltaDiscoveryRequest request;
    request.mutable_node()->set_id(node_id);
    (*request.mutable_node()->mutable_metadata()->mutable_fields())["environment"]
        .set_string_value(environment);
    request.set_type_url(xds::TypeUrlOf(v1::SERVICE));
    EXPECT_TRUE(client->Send(request));
    return client;
  }

  static DeltaDiscoveryRequest Reply(const DeltaDiscoveryResponse& response,
                                     const std::string& error = "") {
    DeltaDiscoveryRequest reply;
    reply.set_type_url(response.type_url());
    reply.set_response_nonce(response.nonce());
    if (!error.empty()) reply.mutable_error_detail()->set_message(error);
    return reply;
  }

  // Reads the client's next response and ACKs it, or NACKs it with `error`; false if none came.
  static bool AnswerNext(DeltaClient& client, const std::string& error = "") {
    auto response = client.Next();
    return response.has_value() && client.Send(Reply(*response, error));
  }

  std::unique_ptr<store::PostgresConfigStore> store_;
  std::unique_ptr<store::ChangeFeed> feed_;
  std::unique_ptr<PostgresNodeStatusStore> node_store_;
  std::unique_ptr<NodeRegistry> registry_;
  std::unique_ptr<ConvergenceTracker> tracker_;
  std::unique_ptr<xds::XdsServer> xds_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<AggregatedDiscoveryService::Stub> stub_;
};

TEST_F(ConvergenceTest, RevisionStatusShowsAppliedNackedAndPendingNodes) {
  Write("prod", "a", 8080);
  auto good = Connect("good", "prod");
  auto picky = Connect("picky", "prod");
  auto slow = Connect("slow", "prod");
  auto staging = Connect("staging-node", "staging");
  for (auto* client : {good.get(), picky.get()}) {
    auto first = client->Next();
    ASSERT_TRUE(first.has_value());
    client->Send(Reply(*first));
  }
  ASSERT_TRUE(slow->Next().has_value());  // received, never answers

  const int64_t revision = Write("prod", "a", 9090);
  auto update = good->Next();
  ASSERT_TRUE(update.has_value());
  good->Send(Reply(*update));
  auto rejected = picky->Next();
  ASSERT_TRUE(rejected.has_value());
  picky->Send(Reply(*rejected, "port 9090 is taken on this host"));

  auto status = tracker_->WaitForRevision(revision, absl::Seconds(2));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_FALSE(status->converged());  // "slow" never applied it
  EXPECT_EQ(status->nodes_in_scope(), 3);  // the staging node is out of scope
  ASSERT_EQ(status->applied_size(), 1);
  EXPECT_EQ(status->applied(0).id(), "good");
  ASSERT_EQ(status->nacked_size(), 1);
  EXPECT_EQ(status->nacked(0).id(), "picky");
  EXPECT_EQ(status->nacked(0).nack_error(), "port 9090 is taken on this host");
  ASSERT_EQ(status->pending_size(), 1);
  EXPECT_EQ(status->pending(0).id(), "slow");

  // Once the slow node goes away the revision converges (it is listed as disconnected).
  slow.reset();
  auto after = tracker_->WaitForRevision(revision, absl::Seconds(10));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->converged());
  ASSERT_EQ(after->disconnected_size(), 1);
  EXPECT_EQ(after->disconnected(0).id(), "slow");
}

// A node stuck on a rejected revision counts as nacked for a later revision once it has
// answered it (here one that sends it nothing): waiting will not change that. A revision
// that fixes what it rejected finds it pending until it answers, then applied.
TEST_F(ConvergenceTest, NodeStuckOnARejectionIsNackedForWhatItAnsweredAndPendingForTheFix) {
  Write("prod", "a", 8080);
  auto picky = Connect("picky", "prod");
  ASSERT_TRUE(AnswerNext(*picky));
  Write("prod", "a", 9090);
  ASSERT_TRUE(AnswerNext(*picky, "port 9090 is taken on this host"));

  // A route: the node subscribes to services only, so it is sent nothing.
  auto route = store_->Commit(Changes({Put(RouteResource("prod", "shop", {{"a", 100}}))}));
  ASSERT_TRUE(route.ok()) << route.status();
  auto unrelated = tracker_->WaitForRevision(route->revision, absl::Seconds(10));
  ASSERT_TRUE(unrelated.ok()) << unrelated.status();
  EXPECT_TRUE(unrelated->converged());
  ASSERT_EQ(unrelated->nacked_size(), 1);
  EXPECT_EQ(unrelated->nacked(0).answered_revision(), route->revision);
  EXPECT_EQ(unrelated->nacked(0).nack_error(), "port 9090 is taken on this host");

  const int64_t fix = Write("prod", "a", 8081);
  auto before_answer = tracker_->RevisionStatus(fix);
  ASSERT_TRUE(before_answer.ok()) << before_answer.status();
  EXPECT_FALSE(before_answer->converged());
  ASSERT_EQ(before_answer->pending_size(), 1) << before_answer->DebugString();
  EXPECT_EQ(before_answer->pending(0).id(), "picky");

  ASSERT_TRUE(AnswerNext(*picky));
  auto after = tracker_->WaitForRevision(fix, absl::Seconds(10));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_TRUE(after->converged());
  ASSERT_EQ(after->applied_size(), 1) << after->DebugString();
  EXPECT_EQ(after->applied(0).applied_revision(), fix);
}

// Delta responses carry only what changed: accepting one that carries another service says
// nothing about the service the node rejected, so it is still not applied; accepting the
// rejected name again is.
TEST_F(ConvergenceTest, AcceptingOtherResourcesOfTheRejectedTypeIsNotApplyingTheRejectedOne) {
  Write("prod", "a", 8080);
  auto picky = Connect("picky", "prod");
  ASSERT_TRUE(AnswerNext(*picky));
  const int64_t rejected = Write("prod", "a", 9090);
  ASSERT_TRUE(AnswerNext(*picky, "port 9090 is taken on this host"));
  const int64_t other = Write("prod", "b", 7070);
  ASSERT_TRUE(AnswerNext(*picky));  // carries only b

  for (int64_t revision : {rejected, other}) {
    auto status = tracker_->WaitForRevision(revision, absl::Seconds(10));
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_TRUE(status->converged()) << revision;
    EXPECT_EQ(status->applied_size(), 0) << revision << ": " << status->DebugString();
    ASSERT_EQ(status->nacked_size(), 1) << revision;
    EXPECT_EQ(status->nacked(0).applied_revision(), rejected - 1);
  }

  const int64_t fix = Write("prod", "a", 8081);
  ASSERT_TRUE(AnswerNext(*picky));
  auto fixed = tracker_->WaitForRevision(fix, absl::Seconds(10));
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  ASSERT_EQ(fixed->applied_size(), 1) << fixed->DebugString();
}

TEST_F(ConvergenceTest, NodesAreListedAndFilteredByEnvironmentAndState) {
  Write("prod", "a", 8080);
  auto prod = Connect("prod-1", "prod");
  ASSERT_TRUE(AnswerNext(*prod));
  {
    auto gone = Connect("staging-1", "staging");
    absl::SleepFor(absl::Milliseconds(200));
  }
  absl::StatusOr<v1::ListNodesResponse> connected;
  for (int attempt = 0; attempt < 100; ++attempt) {
    connected = tracker_->ListNodes("", v1::CONNECTED);
    ASSERT_TRUE(connected.ok()) << connected.status();
    if (connected->nodes_size() == 1) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(connected->nodes_size(), 1);
  EXPECT_EQ(connected->nodes(0).id(), "prod-1");
  EXPECT_EQ(connected->nodes(0).replica(), "replica-1");
  auto staging = tracker_->ListNodes("staging", v1::NODE_STATE_UNSPECIFIED);
  ASSERT_EQ(staging->nodes_size(), 1);
  EXPECT_FALSE(staging->nodes(0).connected());
  auto node = tracker_->GetNode("prod-1");
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_GE(node->applied_revision(), 1);
  EXPECT_TRUE(absl::IsNotFound(tracker_->GetNode("nobody").status()));
  EXPECT_TRUE(absl::IsNotFound(tracker_->RevisionStatus(999).status()));
}

// Progress rows travel as PostgreSQL arrays: node ids with quotes, backslashes, commas and
// braces must come back unchanged, and only the replica holding a node moves its progress.
TEST_F(ConvergenceTest, ProgressUpdatesKeepOddNodeIdsAndRespectTheHoldingReplica) {
  const std::string odd_id = "we\"ird\\node,{x} y";
  const absl::Time connected = absl::FromUnixSeconds(1'800'000'000);
  NodeRecord record;
  record.identity = {odd_id, "c", "prod", "z", "ua"};
  record.replica = "replica-9";
  record.streams = 1;
  record.connected_since = connected;
  record.last_seen = connected;
  NodeRecord other = record;
  other.identity.id = "plain";
  ASSERT_TRUE(node_store_->Upsert({record, other}).ok());

  record.last_sent_revision = 7;
  record.applied_revision = 6;
  record.last_seen = connected + absl::Seconds(30);
  other.replica = "replica-elsewhere";  // does not hold "plain": must be ignored
  other.applied_revision = 5;
  ASSERT_TRUE(node_store_->UpdateProgress({record, other}).ok());

  auto odd = node_store_->Get(odd_id, absl::Hours(1'000'000));
  ASSERT_TRUE(odd.ok()) << odd.status();
  EXPECT_EQ(odd->id(), odd_id);
  EXPECT_EQ(odd->last_sent_revision(), 7);
  EXPECT_EQ(odd->applied_revision(), 6);
  EXPECT_EQ(odd->last_seen().seconds(), 1'800'000'030);
  auto plain = node_store_->Get("plain", absl::Hours(1'000'000));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->applied_revision(), 0);

  record.last_seen = connected;  // an older heartbeat never moves last_seen back
  ASSERT_TRUE(node_store_->UpdateProgress({record}).ok());
  EXPECT_EQ(node_store_->Get(odd_id, absl::Hours(1'000'000))->last_seen().seconds(),
            1'800'000'030);
}

// A replica flushing ACK progress and another writing the same nodes' records (a takeover,
// a late "closed") lock the same rows; both must lock them in one order or PostgreSQL kills
// one of them as a deadlock.
TEST_F(ConvergenceTest, ProgressFlushesAndOtherReplicasRecordsOfTheSameNodesNeverDeadlock) {
  std::vector<NodeRecord> held;
  for (int i = 0; i < 200; ++i) {
    NodeRecord record;
    record.identity = {absl::StrFormat("node-%03d", i), "c", "prod", "z", "ua"};
    record.replica = "replica-a";
    record.streams = 1;
    record.connected_since = absl::Now();
    record.last_seen = absl::Now();
    held.push_back(record);
  }
  ASSERT_TRUE(node_store_->Upsert(held).ok());
  // replica-a's progress comes in reverse id order; replica-b's records (no streams, so they
  // take nothing over) lock the rows without changing them.
  std::vector<NodeRecord> progress(held.rbegin(), held.rend());
  std::vector<NodeRecord> closed = held;
  for (NodeRecord& record : closed) {
    record.replica = "replica-b";
    record.streams = 0;
  }

  constexpr int kRounds = 150;
  std::atomic<int> failures{0};
  std::string first_failure;
  absl::Mutex failure_mu;
  auto note = [&](const absl::Status& status) {
    if (status.ok()) return;
    failures.fetch_add(1);
    absl::MutexLock lock(&failure_mu);
    if (first_failure.empty()) first_failure = status.ToString();
  };
  std::thread flusher([&] {
    for (int round = 1; round <= kRounds; ++round) {
      for (NodeRecord& record : progress) record.applied_revision = round;
      note(node_store_->UpdateProgress(progress));
    }
  });
  for (int round = 1; round <= kRounds; ++round) note(node_store_->Upsert(closed));
  flusher.join();

  EXPECT_EQ(failures.load(), 0) << first_failure;
  auto last = node_store_->Get("node-000", absl::Hours(1));
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->replica(), "replica-a");
  EXPECT_EQ(last->applied_revision(), kRounds);
}

}  // namespace
}  // namespace meridian::convergence
