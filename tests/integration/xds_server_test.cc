// The ADS server over real gRPC streams against real Postgres: delta and state-of-the-world
// subscribe, ACK/NACK, scoping, deletes, reconnect, replicas, stream limits, stuck clients.
#include <atomic>
#include <map>
#include <thread>

#include "tests/integration/xds_replica.h"

namespace meridian::xds {
namespace {

using XdsServerTest = XdsReplicaTest;

TEST_F(XdsServerTest, DeltaWildcardGetsOwnEnvironmentThenChangesAndDeletes) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b")),
         Put(ServiceResource("staging", "secret-staging-only"))});
  auto client = replica_->Delta();
  ASSERT_TRUE(client->Send(DeltaSubscribe("node-1", "prod")));
  auto first = client->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->type_url(), kServiceType);
  EXPECT_EQ(Names(*first), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(first->system_version_info(), "1");
  ASSERT_TRUE(client->Send(DeltaAck(*first)));
  EXPECT_TRUE(replica_->tracker.WaitSynced("node-1", 1));

  Write({Put(ServiceResource("prod", "a", 9090))});
  auto update = client->Next();
  ASSERT_TRUE(update.has_value());
  ASSERT_EQ(Names(*update), std::vector<std::string>{"a"});  // only what changed
  EXPECT_EQ(FirstPort(update->resources(0)), 9090u);
  EXPECT_EQ(update->resources(0).version(), "2");
  ASSERT_TRUE(client->Send(DeltaAck(*update)));

  Write({Put(ServiceResource("staging", "other"))});  // not this node's environment
  Write({Delete({v1::SERVICE, "prod", "b"})});
  auto removal = client->Next();
  ASSERT_TRUE(removal.has_value());
  EXPECT_EQ(removal->resources_size(), 0);
  ASSERT_EQ(removal->removed_resources_size(), 1);
  EXPECT_EQ(removal->removed_resources(0), "b");
  ASSERT_TRUE(client->Send(DeltaAck(*removal)));
  EXPECT_TRUE(replica_->tracker.WaitSynced("node-1", last_revision_));
}

// In-step wildcard streams get the revision's one shared response; streams that need
// something else (a named subscription) get their own. Both say exactly what changed.
TEST_F(XdsServerTest, SharedAndPerStreamResponsesCarryExactlyWhatEachStreamLacks) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b"))});
  auto wildcard = replica_->Delta();
  ASSERT_TRUE(wildcard->Send(DeltaSubscribe("wildcard", "prod")));
  auto named = replica_->Delta();
  DeltaDiscoveryRequest only_a = DeltaSubscribe("named", "prod");
  only_a.add_resource_names_subscribe("a");
  ASSERT_TRUE(named->Send(only_a));
  for (auto* client : {wildcard.get(), named.get()}) {
    auto first = client->Next();
    ASSERT_TRUE(first.has_value());
    ASSERT_TRUE(client->Send(DeltaAck(*first)));
  }
  ASSERT_TRUE(replica_->tracker.WaitSynced("wildcard", last_revision_));
  ASSERT_TRUE(replica_->tracker.WaitSynced("named", last_revision_));

  Write({Put(ServiceResource("prod", "a", 9090)), Delete({v1::SERVICE, "prod", "b"})});
  auto shared = wildcard->Next();
  ASSERT_TRUE(shared.has_value());
  EXPECT_EQ(shared->nonce(), "shared-" + std::to_string(last_revision_)) << shared->nonce();
  EXPECT_EQ(shared->system_version_info(), std::to_string(last_revision_));
  ASSERT_EQ(Names(*shared), std::vector<std::string>{"a"});
  EXPECT_EQ(FirstPort(shared->resources(0)), 9090u);
  ASSERT_EQ(shared->removed_resources_size(), 1);
  EXPECT_EQ(shared->removed_resources(0), "b");
  auto own = named->Next();
  ASSERT_TRUE(own.has_value());
  EXPECT_NE(own->nonce().rfind("shared-", 0), 0u) << own->nonce();
  ASSERT_EQ(Names(*own), std::vector<std::string>{"a"});
  EXPECT_EQ(own->removed_resources_size(), 0);  // never subscribed to b

  // Both ACKs count, and the next revision reaches both again.
  ASSERT_TRUE(wildcard->Send(DeltaAck(*shared)));
  ASSERT_TRUE(named->Send(DeltaAck(*own)));
  EXPECT_TRUE(replica_->tracker.WaitSynced("wildcard", last_revision_));
  EXPECT_TRUE(replica_->tracker.WaitSynced("named", last_revision_));
  Write({Put(ServiceResource("prod", "a", 9191))});
  auto again = wildcard->Next();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(Names(*again), std::vector<std::string>{"a"});
  EXPECT_NE(again->nonce(), shared->nonce());
  auto own_again = named->Next();
  ASSERT_TRUE(own_again.has_value());
  EXPECT_EQ(FirstPort(own_again->resources(0)), 9191u);
}

TEST_F(XdsServerTest, NackIsRecordedAndTheRejectedConfigIsNotResent) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b"))});
  auto client = replica_->Delta();
  ASSERT_TRUE(client->Send(DeltaSubscribe("node-1", "prod")));
  auto first = client->Next();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(client->Send(DeltaAck(*first)));

  Write({Put(ServiceResource("prod", "a", 1))});
  auto bad = client->Next();
  ASSERT_TRUE(bad.has_value());
  DeltaDiscoveryRequest nack = DeltaAck(*bad);
  nack.mutable_error_detail()->set_code(3);
  nack.mutable_error_detail()->set_message("port 1 is privileged on this node");
  ASSERT_TRUE(client->Send(nack));
  EXPECT_FALSE(client->Next(absl::Milliseconds(500)).has_value()) << "NACKed config was resent";
  for (int attempt = 0; attempt < 50 && replica_->tracker.nacks().empty(); ++attempt) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(replica_->tracker.nacks().size(), 1u);
  EXPECT_NE(replica_->tracker.nacks()[0].find("port 1 is privileged"), std::string::npos);

  // An unrelated change sends only that resource, not the rejected one again.
  Write({Put(ServiceResource("prod", "b", 7070))});
  auto next = client->Next();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(Names(*next), std::vector<std::string>{"b"});
  // A newer revision of the rejected resource is sent.
  Write({Put(ServiceResource("prod", "a", 8081))});
  auto fixed = client->Next();
  ASSERT_TRUE(fixed.has_value());
  EXPECT_EQ(Names(*fixed), std::vector<std::string>{"a"});
}

TEST_F(XdsServerTest, ReconnectWithInitialVersionsGetsOnlyWhatItLacks) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b")),
         Put(ServiceResource("prod", "c"))});
  DeltaDiscoveryResponse first;
  {
    auto client = replica_->Delta();
    ASSERT_TRUE(client->Send(DeltaSubscribe("node-1", "prod")));
    auto response = client->Next();
    ASSERT_TRUE(response.has_value());
    first = *response;
  }
  Write({Put(ServiceResource("prod", "b", 9999))});
  Write({Delete({v1::SERVICE, "prod", "c"})});

  auto client = replica_->Delta();
  DeltaDiscoveryRequest resume = DeltaSubscribe("node-1", "prod");
  for (const auto& resource : first.resources()) {
    (*resume.mutable_initial_resource_versions())[resource.name()] = resource.version();
  }
  ASSERT_TRUE(client->Send(resume));
  auto response = client->Next();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(Names(*response), std::vector<std::string>{"b"});
  ASSERT_EQ(response->removed_resources_size(), 1);
  EXPECT_EQ(response->removed_resources(0), "c");

  // Versions are compared as Meridian spells them: "01" is not revision 1, so "a" is sent
  // again; "b" at its current version is not.
  auto other = replica_->Delta();
  DeltaDiscoveryRequest foreign = DeltaSubscribe("node-2", "prod");
  for (const auto& resource : first.resources()) {
    if (resource.name() == "a") {
      (*foreign.mutable_initial_resource_versions())["a"] = "0" + resource.version();
    }
  }
  ASSERT_EQ(foreign.initial_resource_versions().size(), 1u);
  (*foreign.mutable_initial_resource_versions())["b"] = response->resources(0).version();
  ASSERT_TRUE(other->Send(foreign));
  auto resent = other->Next();
  ASSERT_TRUE(resent.has_value());
  EXPECT_EQ(Names(*resent), std::vector<std::string>{"a"});
  EXPECT_EQ(resent->removed_resources_size(), 0);
}

TEST_F(XdsServerTest, NamedSubscriptionGetsOnlyThoseAndIsToldAboutMissingOnes) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b"))});
  auto client = replica_->Delta();
  DeltaDiscoveryRequest request = DeltaSubscribe("node-1", "prod");
  request.add_resource_names_subscribe("a");
  ASSERT_TRUE(client->Send(request));
  auto first = client->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(Names(*first), std::vector<std::string>{"a"});
  ASSERT_TRUE(client->Send(DeltaAck(*first)));

  Write({Put(ServiceResource("prod", "b", 1234))});
  EXPECT_FALSE(client->Next(absl::Milliseconds(300)).has_value());

  DeltaDiscoveryRequest more;
  more.set_type_url(kServiceType);
  more.add_resource_names_subscribe("b");
  more.add_resource_names_subscribe("nope");
  ASSERT_TRUE(client->Send(more));
  auto second = client->Next();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(Names(*second), std::vector<std::string>{"b"});
  ASSERT_EQ(second->removed_resources_size(), 1);
  EXPECT_EQ(second->removed_resources(0), "nope");
}

TEST_F(XdsServerTest, StateOfTheWorldSendsFullSetAndIgnoresStaleNonces) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b"))});
  auto client = replica_->Sotw();
  DiscoveryRequest request;
  *request.mutable_node() = MakeNode("envoy-1", "prod");
  request.set_type_url(kServiceType);
  ASSERT_TRUE(client->Send(request));
  auto first = client->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->resources_size(), 2);
  EXPECT_EQ(first->version_info(), "1");

  DiscoveryRequest ack;
  ack.set_type_url(kServiceType);
  ack.set_version_info(first->version_info());
  ack.set_response_nonce(first->nonce());
  ASSERT_TRUE(client->Send(ack));
  EXPECT_TRUE(replica_->tracker.WaitSynced("envoy-1", 1));
  EXPECT_FALSE(client->Next(absl::Milliseconds(300)).has_value()) << "ACK must not be answered";

  Write({Delete({v1::SERVICE, "prod", "b"})});
  auto second = client->Next();
  ASSERT_TRUE(second.has_value());
  ASSERT_EQ(second->resources_size(), 1);  // b is absent: removed
  v1::Service service;
  ASSERT_TRUE(second->resources(0).UnpackTo(&service));
  EXPECT_EQ(service.name(), "a");
  EXPECT_EQ(second->version_info(), "2");

  // A NACK of an old nonce is stale and ignored; a NACK of the current one is recorded.
  DiscoveryRequest stale = ack;
  stale.mutable_error_detail()->set_message("stale");
  ASSERT_TRUE(client->Send(stale));
  DiscoveryRequest nack;
  nack.set_type_url(kServiceType);
  nack.set_version_info(first->version_info());
  nack.set_response_nonce(second->nonce());
  nack.mutable_error_detail()->set_message("rejected");
  ASSERT_TRUE(client->Send(nack));
  EXPECT_FALSE(client->Next(absl::Milliseconds(300)).has_value());
  for (int attempt = 0; attempt < 50 && replica_->tracker.nacks().empty(); ++attempt) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(replica_->tracker.nacks().size(), 1u);
  EXPECT_NE(replica_->tracker.nacks()[0].find("rejected"), std::string::npos);
}

TEST_F(XdsServerTest, FirstRequestWithoutEnvironmentIsRejected) {
  auto client = replica_->Delta();
  DeltaDiscoveryRequest request;
  request.mutable_node()->set_id("anonymous-node");
  request.set_type_url(kServiceType);
  ASSERT_TRUE(client->Send(request));
  grpc::Status status = client->AwaitClose();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("environment"), std::string::npos);
}

// Streams of one connection share a fan-out slot keyed by the client's address; once they
// end they must leave it (gRPC no longer reports the address of an ended call), and the
// connection's next streams are reached as before.
TEST_F(XdsServerTest, EndedStreamsLeaveTheFanOut) {
  Write({Put(ServiceResource("prod", "a"))});
  std::vector<std::unique_ptr<DeltaClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(replica_->Delta());
    ASSERT_TRUE(clients.back()->Send(DeltaSubscribe(absl::StrCat("node-", i), "prod")));
    ASSERT_TRUE(clients.back()->Next().has_value());
  }
  EXPECT_EQ(replica_->xds->fanout_stream_count(), 3u);
  clients.clear();
  for (int i = 0; i < 100 && replica_->xds->fanout_stream_count() > 0; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(replica_->xds->fanout_stream_count(), 0u);
  EXPECT_EQ(replica_->xds->stream_count(), 0u);

  Write({Put(ServiceResource("prod", "b"))});  // nobody left to push to
  auto late = replica_->Delta();
  ASSERT_TRUE(late->Send(DeltaSubscribe("node-late", "prod")));
  auto first = late->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(Names(*first), (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(late->Send(DeltaAck(*first)));
  Write({Put(ServiceResource("prod", "c"))});
  auto update = late->Next();
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ(Names(*update), std::vector<std::string>{"c"});
}

TEST_F(XdsServerTest, StreamsAboveTheLimitGetResourceExhausted) {
  Replica limited(url_, XdsServerOptions{1, absl::Milliseconds(2)});
  auto first = limited.Delta();
  ASSERT_TRUE(first->Send(DeltaSubscribe("node-1", "prod")));
  absl::SleepFor(absl::Milliseconds(200));
  auto second = limited.Delta();
  second->Send(DeltaSubscribe("node-2", "prod"));
  EXPECT_EQ(second->AwaitClose().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// With a debounce window, a burst of writes becomes few pushes, while the write that starts
// the burst (nothing pushed for longer than the window) still goes out at once.
TEST_F(XdsServerTest, DebounceTurnsABurstIntoFewPushesWithoutDelayingItsFirstWrite) {
  Write({Put(ServiceResource("prod", "burst"))});
  constexpr absl::Duration kWindow = absl::Seconds(1);
  Replica batching(url_, XdsServerOptions{20000, kWindow});
  auto client = batching.Delta();
  ASSERT_TRUE(client->Send(DeltaSubscribe("batched", "prod")));
  auto first = client->Next();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(client->Send(DeltaAck(*first)));
  ASSERT_TRUE(batching.tracker.WaitSynced("batched", last_revision_));
  auto commit_port = [&batching](uint32_t port) -> int64_t {
    auto result = batching.store->Commit(Changes({Put(ServiceResource("prod", "burst", port))}));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->revision : -1;
  };

  const absl::Time start = absl::Now();
  const int64_t leading_revision = commit_port(9000);
  auto leading = client->Next();
  const absl::Duration leading_latency = absl::Now() - start;
  ASSERT_TRUE(leading.has_value());
  EXPECT_EQ(leading->system_version_info(), std::to_string(leading_revision));
  EXPECT_LT(leading_latency, kWindow / 2);
  ASSERT_TRUE(client->Send(DeltaAck(*leading)));

  constexpr int kBurst = 20;
  int64_t newest_written = 0;
  for (int i = 1; i <= kBurst; ++i) newest_written = commit_port(9000 + i);
  int responses = 0;
  std::optional<DeltaDiscoveryResponse> newest;
  while (responses < kBurst &&
         (!newest || newest->system_version_info() != std::to_string(newest_written))) {
    newest = client->Next();
    if (!newest) break;
    ++responses;
    ASSERT_TRUE(client->Send(DeltaAck(*newest)));
  }
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->system_version_info(), std::to_string(newest_written));
  ASSERT_EQ(Names(*newest), std::vector<std::string>{"burst"});
  EXPECT_EQ(FirstPort(newest->resources(0)), 9000u + kBurst);
  // One push for the burst, or two if a slow machine stretched it past the window.
  EXPECT_LE(responses, 2) << kBurst << " writes";
}

TEST_F(XdsServerTest, WriteThroughOneReplicaReachesStreamOnAnother) {
  Replica other(url_);
  auto client = other.Delta();
  ASSERT_TRUE(client->Send(DeltaSubscribe("node-b", "prod")));
  Write({Put(ServiceResource("prod", "from-a"))});
  std::optional<DeltaDiscoveryResponse> response;
  for (int attempt = 0; attempt < 3 && (!response || response->resources_size() == 0); ++attempt) {
    response = client->Next();
  }
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(Names(*response), std::vector<std::string>{"from-a"});
}

// A replica shutting down finishes its streams with UNAVAILABLE; the agents reconnect to the
// other replica with the versions they hold, get only what changed meanwhile, and keep
// receiving; the restarted replica serves new streams from Postgres.
TEST_F(XdsServerTest, ReplicaRestartedWhileClientsReconnectElsewhere) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b"))});
  auto other = std::make_unique<Replica>(url_);
  constexpr int kClients = 5;
  std::vector<std::unique_ptr<DeltaClient>> clients;
  std::vector<std::map<std::string, std::string>> held(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(other->Delta());
    ASSERT_TRUE(clients.back()->Send(DeltaSubscribe("node-" + std::to_string(i), "prod")));
    auto first = clients.back()->Next();
    ASSERT_TRUE(first.has_value());
    ASSERT_EQ(Names(*first), (std::vector<std::string>{"a", "b"}));
    for (const auto& resource : first->resources()) held[i][resource.name()] = resource.version();
    ASSERT_TRUE(clients.back()->Send(DeltaAck(*first)));
  }

  other.reset();  // SIGTERM path: Stop, gRPC shutdown, drain
  for (auto& client : clients) {
    EXPECT_EQ(client->AwaitClose().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  Write({Put(ServiceResource("prod", "b", 7070))});  // while the agents are away

  std::vector<std::unique_ptr<DeltaClient>> reconnected;
  for (int i = 0; i < kClients; ++i) {
    reconnected.push_back(replica_->Delta());
    DeltaDiscoveryRequest resume = DeltaSubscribe("node-" + std::to_string(i), "prod");
    for (const auto& [name, version] : held[i]) {
      (*resume.mutable_initial_resource_versions())[name] = version;
    }
    ASSERT_TRUE(reconnected.back()->Send(resume));
    auto missed = reconnected.back()->Next();
    ASSERT_TRUE(missed.has_value());
    EXPECT_EQ(Names(*missed), std::vector<std::string>{"b"});  // only what changed meanwhile
    ASSERT_TRUE(reconnected.back()->Send(DeltaAck(*missed)));
  }
  Write({Put(ServiceResource("prod", "a", 9090))});
  for (auto& client : reconnected) {
    auto update = client->Next();
    ASSERT_TRUE(update.has_value());
    EXPECT_EQ(Names(*update), std::vector<std::string>{"a"});
  }

  Replica restarted(url_);  // same database: serves the current state to new streams
  auto fresh = restarted.Delta();
  ASSERT_TRUE(fresh->Send(DeltaSubscribe("node-new", "prod")));
  auto state = fresh->Next();
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(Names(*state), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(state->system_version_info(), std::to_string(last_revision_));
}

TEST_F(XdsServerTest, StuckClientDoesNotDelayOthers) {
  // The stuck client subscribes, then stops reading: its writes back up in flow control.
  // It has a connection of its own with a fixed 64 KiB window (gRPC's window growth would
  // otherwise let the client's transport take in megabytes the application never reads).
  grpc::ChannelArguments small_window;
  small_window.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  small_window.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 * 1024);
  auto stuck_stub = AggregatedDiscoveryService::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", replica_->port),
                                grpc::InsecureChannelCredentials(), small_window));
  auto stuck = std::make_unique<DeltaClient>(
      [&stuck_stub](grpc::ClientContext* context) {
        return stuck_stub->DeltaAggregatedResources(context);
      },
      /*start_reading=*/false);
  ASSERT_TRUE(stuck->Send(DeltaSubscribe("stuck", "prod")));
  auto healthy = replica_->Delta();
  ASSERT_TRUE(healthy->Send(DeltaSubscribe("healthy", "prod")));

  // ~40 KB per revision: the stuck stream's window fills after a few.
  constexpr int kRevisions = 60;
  for (int i = 0; i < kRevisions; ++i) {
    v1::Resource resource = ServiceResource("prod", "big");
    (*resource.mutable_labels())["payload"] = std::string(1000, 'x');
    for (int port = 1; port <= 300; ++port) {
      auto* service_port = resource.mutable_service()->add_ports();
      service_port->set_port(10000 + port + i);
      service_port->set_name("p" + std::to_string(port));
    }
    resource.mutable_service()->mutable_ports()->DeleteSubrange(0, 1);
    Write({Put(resource)});
  }
  // The healthy client reaches the newest revision (bounded wait); coalescing may skip some.
  int64_t newest = 0;
  for (int attempt = 0; attempt < kRevisions + 5 && newest < last_revision_; ++attempt) {
    auto response = healthy->Next();
    if (!response) break;
    newest = std::stoll(response->system_version_info());
    healthy->Send(DeltaAck(*response));
  }
  EXPECT_EQ(newest, last_revision_);

  // Once the stuck client reads again it gets what was already on its way (about 640 KB
  // here), then the newest version in one response: latest wins, not a backlog of every
  // revision it missed.
  stuck->StartReading();
  std::vector<int64_t> received;
  std::optional<DeltaDiscoveryResponse> latest;
  while (static_cast<int>(received.size()) < kRevisions &&
         (received.empty() || received.back() != last_revision_)) {
    latest = stuck->Next();
    if (!latest) break;
    received.push_back(std::stoll(latest->system_version_info()));
  }
  ASSERT_GE(received.size(), 2u);
  EXPECT_EQ(received.back(), last_revision_);
  EXPECT_LT(received.size(), kRevisions / 2u);
  EXPECT_GT(received.back() - received[received.size() - 2], 1) << "no revision was skipped";
  ASSERT_EQ(latest->resources_size(), 1);
  EXPECT_EQ(FirstPort(latest->resources(0)), 10000u + 1 + kRevisions - 1);
}

// A node that unsubscribes from what it rejected is in sync again at once, without waiting
// for a later revision.
TEST_F(XdsServerTest, UnsubscribingTheRejectedResourceEndsTheRejection) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b"))});
  auto client = replica_->Delta();
  DeltaDiscoveryRequest subscribe = DeltaSubscribe("picky", "prod");
  subscribe.add_resource_names_subscribe("a");
  subscribe.add_resource_names_subscribe("b");
  ASSERT_TRUE(client->Send(subscribe));
  auto first = client->Next();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(client->Send(DeltaAck(*first)));
  ASSERT_TRUE(replica_->tracker.WaitSynced("picky", last_revision_));

  Write({Put(ServiceResource("prod", "a", 9090))});
  auto bad = client->Next();
  ASSERT_TRUE(bad.has_value());
  DeltaDiscoveryRequest nack = DeltaAck(*bad);
  nack.mutable_error_detail()->set_message("port 9090 is taken on this host");
  ASSERT_TRUE(client->Send(nack));
  DeltaDiscoveryRequest drop_a;
  drop_a.set_type_url(kServiceType);
  drop_a.add_resource_names_unsubscribe("a");
  ASSERT_TRUE(client->Send(drop_a));
  EXPECT_TRUE(replica_->tracker.WaitSynced("picky", last_revision_));
  EXPECT_EQ(replica_->tracker.nacks().size(), 1u);
}

// A client that answers only the newest of several responses of a type (answers come in
// order, so the earlier ones were processed too) is in sync once it has answered it.
TEST_F(XdsServerTest, AnswerToTheNewestResponseSettlesTheEarlierOnesOfItsType) {
  Write({Put(ServiceResource("prod", "a"))});
  auto client = replica_->Delta();
  ASSERT_TRUE(client->Send(DeltaSubscribe("lazy", "prod")));
  std::optional<DeltaDiscoveryResponse> newest = client->Next();
  ASSERT_TRUE(newest.has_value());
  int unanswered = 0;
  for (int port = 9001; port <= 9004; ++port) {
    Write({Put(ServiceResource("prod", "a", port))});
    auto next = client->Next();
    ASSERT_TRUE(next.has_value());
    newest = std::move(next);
    ++unanswered;
  }
  EXPECT_EQ(newest->system_version_info(), std::to_string(last_revision_));
  ASSERT_TRUE(client->Send(DeltaAck(*newest)));
  EXPECT_TRUE(replica_->tracker.WaitSynced("lazy", last_revision_))
      << unanswered << " earlier responses were left unanswered";
}

// Streams that subscribe while revisions are being applied: a response may read the index
// after a revision was applied but before the fan-out told the stream of it. It must then be
// labelled with that revision, not an older one, or the stream would hold the newest config
// under an old version for good (the fan-out, when it comes, finds nothing new to send).
// One queue thread and large revisions widen the window between applying and telling.
TEST_F(XdsServerTest, ResponsesAreNeverLabelledOlderThanTheResourcesTheyCarry) {
  replica_.reset();
  replica_ = std::make_unique<Replica>(url_, XdsServerOptions{.threads = 1});
  constexpr int kServices = 300;
  const auto all_services = [](int port) {
    std::vector<store::Mutation> mutations;
    for (int s = 0; s < kServices; ++s) {
      mutations.push_back(Put(ServiceResource("prod", absl::StrCat("s-", s), port)));
    }
    return mutations;
  };
  Write({Put(ServiceResource("prod", "anchor"))});
  Write(all_services(9000));
  constexpr int kWrites = 60;
  std::atomic<bool> writing = true;
  std::thread writer([&] {
    for (int i = 1; i <= kWrites; ++i) {
      EXPECT_TRUE(replica_->store->Commit(Changes(all_services(9000 + i))).ok());
    }
    writing = false;
  });
  const auto max_version = [](const auto& resources, const auto& version_of) {
    int64_t newest = 0;
    for (const auto& resource : resources) newest = std::max<int64_t>(newest, version_of(resource));
    return newest;
  };
  int checked = 0;
  for (int i = 0; i < 1000 && writing; ++i, ++checked) {
    // Delta: a named subscription first, then the wildcard on the same stream.
    auto delta = replica_->Delta();
    DeltaDiscoveryRequest named = DeltaSubscribe(absl::StrCat("delta-", i), "prod");
    named.add_resource_names_subscribe("anchor");
    ASSERT_TRUE(delta->Send(named));
    auto anchor = delta->Next();
    ASSERT_TRUE(anchor.has_value());
    DeltaDiscoveryRequest wildcard;
    wildcard.set_type_url(kServiceType);
    wildcard.set_response_nonce(anchor->nonce());
    wildcard.add_resource_names_subscribe("*");
    ASSERT_TRUE(delta->Send(wildcard));
    auto everything = delta->Next();
    ASSERT_TRUE(everything.has_value());
    ASSERT_EQ(everything->resources_size(), kServices);
    const int64_t newest_resource =
        max_version(everything->resources(), [](const auto& r) { return std::stoll(r.version()); });
    EXPECT_LE(newest_resource, std::stoll(everything->system_version_info()));

    // State of the world: one name first, then all of them.
    auto sotw = replica_->Sotw();
    DiscoveryRequest request;
    *request.mutable_node() = MakeNode(absl::StrCat("sotw-", i), "prod");
    request.set_type_url(kServiceType);
    request.add_resource_names("anchor");
    ASSERT_TRUE(sotw->Send(request));
    auto first = sotw->Next();
    ASSERT_TRUE(first.has_value());
    request.set_response_nonce(first->nonce());
    request.set_version_info(first->version_info());
    for (int s = 0; s < kServices; ++s) request.add_resource_names(absl::StrCat("s-", s));
    ASSERT_TRUE(sotw->Send(request));
    auto all = sotw->Next();
    ASSERT_TRUE(all.has_value());
    ASSERT_EQ(all->resources_size(), kServices + 1);
    const int64_t newest_service = max_version(all->resources(), [](const auto& any) {
      v1::Service service;
      EXPECT_TRUE(any.UnpackTo(&service));
      return service.mod_revision();
    });
    EXPECT_LE(newest_service, std::stoll(all->version_info()));
  }
  writer.join();
  EXPECT_GT(checked, 5) << "streams subscribed while revisions were applied";
}

}  // namespace
}  // namespace meridian::xds
