// What a stream knows of its client's resources, over real gRPC streams against real
// Postgres: a wildcard delta stream that mirrors the index (it records only where its client
// may differ) must still send each client exactly what it lacks, through per-stream and
// shared responses, subscription changes, and a resync after the change log was compacted;
// delta and state-of-the-world clients under concurrent writes end with what a new client
// gets.
#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "controlplane/xds/envoy_resources.h"
#include "spdlog/sinks/ringbuffer_sink.h"
#include "spdlog/spdlog.h"
#include "tests/integration/xds_replica.h"

namespace meridian::xds {
namespace {

using ::meridian::testing::RouteResource;

using XdsClientStateTest = XdsReplicaTest;

const std::string kRouteType = TypeUrlOf(v1::ROUTE);

// The responses of one or more types that a step produced, each ACKed.
struct Received {
  std::map<std::string, std::set<std::string>> updated;  // type URL -> names
  std::map<std::string, std::set<std::string>> removed;
  std::vector<std::string> nonces;
  std::vector<std::string> types;  // each response's, in the order received
};

// Reads (and ACKs) responses until one has come for each of `types`, then for 300 ms more to
// catch anything extra.
Received ReceiveEach(DeltaClient& client, const std::set<std::string>& types) {
  Received received;
  std::set<std::string> pending = types;
  for (int i = 0; i < 20; ++i) {
    auto response = client.Next(pending.empty() ? absl::Milliseconds(300) : absl::Seconds(10));
    if (!response.has_value()) break;
    for (const auto& resource : response->resources()) {
      received.updated[response->type_url()].insert(resource.name());
    }
    for (const auto& name : response->removed_resources()) {
      received.removed[response->type_url()].insert(name);
    }
    received.nonces.push_back(response->nonce());
    received.types.push_back(response->type_url());
    pending.erase(response->type_url());
    EXPECT_TRUE(client.Send(DeltaAck(*response)));
  }
  EXPECT_TRUE(pending.empty()) << "no response for " << *pending.begin();
  return received;
}

using NameSet = std::set<std::string>;

TEST_F(XdsClientStateTest, WildcardStreamGetsExactlyWhatItLacksThroughEveryKindOfChange) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b")),
         Put(ServiceResource("prod", "c")), Put(RouteResource("prod", "r1", {{"a", 100}}))});
  auto client = replica_->Delta();
  ASSERT_TRUE(client->Send(DeltaSubscribe("node-1", "prod")));
  DeltaDiscoveryRequest routes;
  routes.set_type_url(kRouteType);
  ASSERT_TRUE(client->Send(routes));
  Received initial = ReceiveEach(*client, {kServiceType, kRouteType});
  EXPECT_EQ(initial.updated[kServiceType], (NameSet{"a", "b", "c"}));
  EXPECT_EQ(initial.updated[kRouteType], NameSet{"r1"});
  ASSERT_TRUE(replica_->tracker.WaitSynced("node-1", last_revision_));

  // Two types in one revision: both types' shared responses, services before the routes
  // that point at them (whatever the order of the change set).
  Write({Put(RouteResource("prod", "r2", {{"a", 100}})), Put(ServiceResource("prod", "a", 9001)),
         Delete({v1::SERVICE, "prod", "c"})});
  Received both = ReceiveEach(*client, {kServiceType, kRouteType});
  EXPECT_EQ(both.updated[kServiceType], NameSet{"a"});
  EXPECT_EQ(both.removed[kServiceType], NameSet{"c"});
  EXPECT_EQ(both.updated[kRouteType], NameSet{"r2"});
  EXPECT_TRUE(both.removed[kRouteType].empty());
  EXPECT_EQ(both.types, (std::vector<std::string>{kServiceType, kRouteType}));
  ASSERT_EQ(both.nonces.size(), 2u);
  for (const std::string& nonce : both.nonces) {
    EXPECT_TRUE(absl::StartsWith(nonce, absl::StrCat("shared-", last_revision_))) << nonce;
  }
  EXPECT_NE(both.nonces[0], both.nonces[1]);

  // Two types again, but the client names its routes now, so no shared route response fits:
  // the stream builds its own for both types, whatever the service's shared response.
  DeltaDiscoveryRequest named_routes;
  named_routes.set_type_url(kRouteType);
  named_routes.add_resource_names_unsubscribe("*");
  named_routes.add_resource_names_subscribe("r1");
  named_routes.add_resource_names_subscribe("r2");
  ASSERT_TRUE(client->Send(named_routes));
  EXPECT_EQ(ReceiveEach(*client, {kRouteType}).updated[kRouteType], (NameSet{"r1", "r2"}));
  Write({Put(ServiceResource("prod", "a", 9006)), Put(RouteResource("prod", "r2", {{"a", 50}}))});
  Received own = ReceiveEach(*client, {kServiceType, kRouteType});
  EXPECT_EQ(own.updated[kServiceType], NameSet{"a"});
  EXPECT_EQ(own.updated[kRouteType], NameSet{"r2"});
  for (const std::string& nonce : own.nonces) {
    EXPECT_FALSE(absl::StartsWith(nonce, "shared-")) << nonce;
  }
  DeltaDiscoveryRequest all_routes;
  all_routes.set_type_url(kRouteType);
  all_routes.add_resource_names_subscribe("*");
  ASSERT_TRUE(client->Send(all_routes));
  EXPECT_TRUE(ReceiveEach(*client, {}).updated[kRouteType].empty()) << "it holds every route";

  // One type: the shared response, carrying only the change.
  Write({Put(ServiceResource("prod", "b", 9002))});
  Received one = ReceiveEach(*client, {kServiceType});
  EXPECT_EQ(one.updated[kServiceType], NameSet{"b"});
  EXPECT_TRUE(one.removed[kServiceType].empty());
  ASSERT_EQ(one.nonces.size(), 1u);
  EXPECT_EQ(one.nonces[0], absl::StrCat("shared-", last_revision_));

  // Deleted and created again: the new one arrives, with nothing else.
  Write({Delete({v1::SERVICE, "prod", "b"})});
  EXPECT_EQ(ReceiveEach(*client, {kServiceType}).removed[kServiceType], NameSet{"b"});
  Write({Put(ServiceResource("prod", "b", 9003))});
  Received back = ReceiveEach(*client, {kServiceType});
  EXPECT_EQ(back.updated[kServiceType], NameSet{"b"});
  EXPECT_TRUE(back.removed[kServiceType].empty());

  // From the wildcard to names: "a" and the absent "c" are answered, "b" is forgotten, and
  // only changes to "a" come after.
  DeltaDiscoveryRequest narrow;
  narrow.set_type_url(kServiceType);
  narrow.add_resource_names_unsubscribe("*");
  narrow.add_resource_names_subscribe("a");
  narrow.add_resource_names_subscribe("c");
  ASSERT_TRUE(client->Send(narrow));
  Received named = ReceiveEach(*client, {kServiceType});
  EXPECT_EQ(named.updated[kServiceType], NameSet{"a"});
  EXPECT_EQ(named.removed[kServiceType], NameSet{"c"});
  Write({Put(ServiceResource("prod", "b", 9004))});
  EXPECT_FALSE(client->Next(absl::Milliseconds(300)).has_value()) << "b is not subscribed";
  Write({Put(ServiceResource("prod", "a", 9005))});
  EXPECT_EQ(ReceiveEach(*client, {kServiceType}).updated[kServiceType], NameSet{"a"});

  // Back to the wildcard: only what the client lacks ("a" it holds at its newest version).
  DeltaDiscoveryRequest widen;
  widen.set_type_url(kServiceType);
  widen.add_resource_names_subscribe("*");
  ASSERT_TRUE(client->Send(widen));
  Received wide = ReceiveEach(*client, {kServiceType});
  EXPECT_EQ(wide.updated[kServiceType], NameSet{"b"});
  EXPECT_TRUE(wide.removed[kServiceType].empty());
  Write({Delete({v1::SERVICE, "prod", "b"})});
  Received gone = ReceiveEach(*client, {kServiceType});
  EXPECT_TRUE(gone.updated[kServiceType].empty());
  EXPECT_EQ(gone.removed[kServiceType], NameSet{"b"});
  EXPECT_TRUE(replica_->tracker.WaitSynced("node-1", last_revision_));
}

// A client that resumes with initial_resource_versions is sent what it lacks; from then on
// its stream mirrors the index like any other.
TEST_F(XdsClientStateTest, ResumedStreamMirrorsTheIndexOnceItHasEverything) {
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b"))});
  const std::string held_a = absl::StrCat(last_revision_);
  Write({Put(ServiceResource("prod", "b", 9001)), Put(ServiceResource("prod", "c"))});
  auto client = replica_->Delta();
  DeltaDiscoveryRequest resume = DeltaSubscribe("node-1", "prod");
  (*resume.mutable_initial_resource_versions())["a"] = held_a;
  (*resume.mutable_initial_resource_versions())["b"] = held_a;  // older than b's version
  (*resume.mutable_initial_resource_versions())["gone"] = held_a;
  ASSERT_TRUE(client->Send(resume));
  Received first = ReceiveEach(*client, {kServiceType});
  EXPECT_EQ(first.updated[kServiceType], (NameSet{"b", "c"}));
  EXPECT_EQ(first.removed[kServiceType], NameSet{"gone"});

  Write({Put(ServiceResource("prod", "a", 9002)), Delete({v1::SERVICE, "prod", "c"})});
  Received next = ReceiveEach(*client, {kServiceType});
  EXPECT_EQ(next.updated[kServiceType], NameSet{"a"});
  EXPECT_EQ(next.removed[kServiceType], NameSet{"c"});
}

// Type URL -> name -> version: what a client holds.
using Holdings = std::map<std::string, std::map<std::string, std::string>>;

// A client that, on its own thread, applies every response to what it holds (`apply`) and
// answers it (`answer`) after `delay`, so the server's next revision may find the stream busy,
// until stopped.
template <typename Request, typename Response, typename Held>
class Mirror {
 public:
  using Client = ::meridian::testing::AdsTestClient<Request, Response>;
  using Apply = std::function<void(const Response&, Held&)>;
  using Answer = std::function<Request(const Response&)>;

  Mirror(std::unique_ptr<Client> client, const std::vector<Request>& subscriptions,
         absl::Duration delay, Held held, Apply apply, Answer answer)
      : client_(std::move(client)),
        delay_(delay),
        apply_(std::move(apply)),
        answer_(std::move(answer)),
        held_(std::move(held)) {
    for (const Request& subscription : subscriptions) EXPECT_TRUE(client_->Send(subscription));
    reader_ = std::thread([this] { Read(); });
  }
  ~Mirror() { Stop(); }
  void Stop() {
    stopping_ = true;
    if (reader_.joinable()) reader_.join();
  }
  Held held() {
    absl::MutexLock lock(&mu_);
    return held_;
  }

 private:
  void Read() {
    while (!stopping_) {
      auto response = client_->Next(absl::Milliseconds(50));
      if (!response.has_value()) continue;
      {
        absl::MutexLock lock(&mu_);
        apply_(*response, held_);
      }
      absl::SleepFor(delay_);
      EXPECT_TRUE(client_->Send(answer_(*response)));
    }
  }

  std::unique_ptr<Client> client_;
  const absl::Duration delay_;
  const Apply apply_;
  const Answer answer_;
  std::atomic<bool> stopping_ = false;
  absl::Mutex mu_;
  Held held_ ABSL_GUARDED_BY(mu_);
  std::thread reader_;
};

using DeltaMirror = Mirror<DeltaDiscoveryRequest, DeltaDiscoveryResponse, Holdings>;
// Type URL -> the newest response's resources, serialized.
using SotwHoldings = std::map<std::string, std::set<std::string>>;
using SotwMirror = Mirror<DiscoveryRequest, DiscoveryResponse, SotwHoldings>;

// A delta client resuming with `held` (initial_resource_versions), keeping its own copy of
// the resources.
std::unique_ptr<DeltaMirror> StartDeltaMirror(Replica& replica, const std::string& node_id,
                                              const std::vector<std::string>& types,
                                              absl::Duration delay, Holdings held = {}) {
  std::vector<DeltaDiscoveryRequest> subscriptions;
  for (const std::string& type_url : types) {
    subscriptions.push_back(DeltaSubscribe(node_id, "prod", type_url));
    for (const auto& [name, version] : held[type_url]) {
      (*subscriptions.back().mutable_initial_resource_versions())[name] = version;
    }
  }
  auto apply = [](const DeltaDiscoveryResponse& response, Holdings& holdings) {
    auto& held = holdings[response.type_url()];
    for (const auto& resource : response.resources()) held[resource.name()] = resource.version();
    for (const auto& name : response.removed_resources()) held.erase(name);
  };
  return std::make_unique<DeltaMirror>(replica.Delta(), subscriptions, delay, std::move(held),
                                       apply, DeltaAck);
}

// A state-of-the-world client keeping the newest response of each type.
std::unique_ptr<SotwMirror> StartSotwMirror(Replica& replica, const std::string& node_id,
                                            const std::vector<std::string>& types,
                                            absl::Duration delay) {
  std::vector<DiscoveryRequest> subscriptions;
  for (const std::string& type_url : types) {
    subscriptions.emplace_back();
    *subscriptions.back().mutable_node() = MakeNode(node_id, "prod");
    subscriptions.back().set_type_url(type_url);
  }
  auto apply = [](const DiscoveryResponse& response, SotwHoldings& holdings) {
    auto& held = holdings[response.type_url()];
    held.clear();
    for (const auto& any : response.resources()) held.insert(any.SerializeAsString());
  };
  auto answer = [](const DiscoveryResponse& response) {
    DiscoveryRequest ack;
    ack.set_type_url(response.type_url());
    ack.set_version_info(response.version_info());
    ack.set_response_nonce(response.nonce());
    return ack;
  };
  return std::make_unique<SotwMirror>(replica.Sotw(), subscriptions, delay, SotwHoldings{}, apply,
                                      answer);
}

// Streams fast and slow, of one type or of several (a service change also changes its Envoy
// cluster: a shared response per type, or the stream's own when one does not fit), delta and
// state-of-the-world, joining and resuming while revisions (single and several changes,
// deletes, re-creations) keep coming: once the writes stop, every client holds exactly what a
// client subscribing afresh is sent.
TEST_F(XdsClientStateTest, EveryClientEndsHoldingExactlyTheServersResourcesUnderConcurrentWrites) {
  constexpr int kNames = 40;
  constexpr int kRevisions = 150;
  const std::vector<std::string> one_type = {kServiceType};
  const std::vector<std::string> several_types = {kServiceType, kEnvoyClusterType,
                                                  kEnvoyLoadAssignmentType};
  std::vector<store::Mutation> initial;
  for (int i = 0; i < kNames; i += 2) {
    initial.push_back(Put(ServiceResource("prod", absl::StrCat("s", i))));
  }
  Write(std::move(initial));
  std::vector<std::unique_ptr<DeltaMirror>> mirrors;
  std::vector<std::string> nodes;
  auto add = [&](const std::vector<std::string>& types, absl::Duration delay, Holdings held = {}) {
    nodes.push_back(absl::StrCat("node-", nodes.size()));
    mirrors.push_back(StartDeltaMirror(*replica_, nodes.back(), types, delay, std::move(held)));
  };
  add(one_type, absl::ZeroDuration());
  add(one_type, absl::Milliseconds(3));
  add(several_types, absl::ZeroDuration());
  add(several_types, absl::Milliseconds(3));
  add(several_types, absl::Milliseconds(10));
  std::vector<std::unique_ptr<SotwMirror>> sotw;
  for (absl::Duration delay : {absl::ZeroDuration(), absl::Milliseconds(5)}) {
    nodes.push_back(absl::StrCat("sotw-", sotw.size()));
    sotw.push_back(StartSotwMirror(*replica_, nodes.back(), several_types, delay));
  }

  std::mt19937 random(7);  // fixed seed: the same sequence of change sets every run
  std::set<std::string> present;
  for (int i = 0; i < kNames; i += 2) present.insert(absl::StrCat("s", i));
  for (int revision = 0; revision < kRevisions; ++revision) {
    std::vector<store::Mutation> mutations;
    std::set<std::string> touched;
    const int changes = random() % 4 == 0 ? 1 + random() % 5 : 1;
    for (int c = 0; c < changes; ++c) {
      const std::string name = absl::StrCat("s", random() % kNames);
      if (!touched.insert(name).second) continue;
      if (present.contains(name) && random() % 3 == 0) {
        mutations.push_back(Delete({v1::SERVICE, "prod", name}));
        present.erase(name);
      } else {
        mutations.push_back(Put(ServiceResource("prod", name, 1000 + revision)));
        present.insert(name);
      }
    }
    auto committed = replica_->store->Commit(Changes(std::move(mutations)));
    ASSERT_TRUE(committed.ok()) << committed.status();
    last_revision_ = committed->revision;
    if (revision == kRevisions / 3) add(several_types, absl::ZeroDuration());  // joins late
    if (revision == kRevisions / 2) {
      // Resumes with what a busy client holds now, as a reconnecting agent would.
      add(several_types, absl::Milliseconds(1), mirrors[3]->held());
    }
    if (revision % 10 == 0) absl::SleepFor(absl::Milliseconds(5));
  }

  for (const std::string& node : nodes) {
    EXPECT_TRUE(replica_->tracker.WaitSynced(node, last_revision_)) << node;
  }
  // The Services must be the store's; the Envoy types, what a new client gets.
  auto snapshot = replica_->store->Snapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  std::map<std::string, std::string> services;
  for (const auto& resource : snapshot->resources) {
    services[resource.name()] = absl::StrCat(resource.mod_revision());
  }
  ASSERT_EQ(services.size(), present.size());
  add(several_types, absl::ZeroDuration());
  EXPECT_TRUE(replica_->tracker.WaitSynced(nodes.back(), last_revision_));
  auto fresh_sotw = StartSotwMirror(*replica_, "sotw-fresh", several_types, absl::ZeroDuration());
  EXPECT_TRUE(replica_->tracker.WaitSynced("sotw-fresh", last_revision_));
  fresh_sotw->Stop();
  std::map<std::string, std::string> sotw_services;
  const auto fresh_sotw_held = fresh_sotw->held();
  for (const std::string& bytes : fresh_sotw_held.at(kServiceType)) {
    google::protobuf::Any any;
    v1::Service service;
    ASSERT_TRUE(any.ParseFromString(bytes) && any.UnpackTo(&service));
    sotw_services[service.name()] = absl::StrCat(service.mod_revision());
  }
  EXPECT_EQ(sotw_services, services);
  for (auto& mirror : sotw) {
    mirror->Stop();
    EXPECT_EQ(mirror->held(), fresh_sotw_held);
  }
  for (auto& mirror : mirrors) mirror->Stop();
  const Holdings expected = mirrors.back()->held();
  ASSERT_EQ(expected.at(kServiceType), services);
  ASSERT_EQ(expected.at(kEnvoyClusterType).size(), present.size());
  for (size_t i = 0; i + 1 < mirrors.size(); ++i) {
    Holdings held = mirrors[i]->held();
    EXPECT_EQ(held[kServiceType], expected.at(kServiceType)) << nodes[i];
    if (held.size() > 1) {
      EXPECT_EQ(held, expected) << nodes[i];
    }
  }
}

// The server fell behind (a debounce window here) while the change log it needed was
// compacted away: it rebuilds its index from a snapshot and sends streams the difference.
TEST_F(XdsClientStateTest, ChangesCompactedAwayBeforeTheServerReadThemStillReachStreams) {
  replica_.reset();
  auto log = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
  spdlog::default_logger()->sinks().push_back(log);
  store::ChangeFeed::Options feed_options;
  feed_options.retained_revisions = 1;  // so the feed cannot serve what the log lost
  replica_ =
      std::make_unique<Replica>(url_, XdsServerOptions{.debounce = absl::Seconds(2)}, feed_options);
  Write({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b")),
         Put(ServiceResource("prod", "c"))});
  auto delta = replica_->Delta();
  ASSERT_TRUE(delta->Send(DeltaSubscribe("node-1", "prod")));
  EXPECT_EQ(ReceiveEach(*delta, {kServiceType}).updated[kServiceType], (NameSet{"a", "b", "c"}));
  auto sotw = replica_->Sotw();
  DiscoveryRequest subscribe;
  *subscribe.mutable_node() = MakeNode("node-2", "prod");
  subscribe.set_type_url(kServiceType);
  ASSERT_TRUE(sotw->Send(subscribe));
  ASSERT_TRUE(sotw->Next().has_value());

  // Within the window of the first push: the server takes this revision, then waits.
  ASSERT_TRUE(replica_->store->Commit(Changes({Put(ServiceResource("prod", "a", 9001))})).ok());
  absl::SleepFor(absl::Milliseconds(100));
  ASSERT_TRUE(replica_->store->Commit(Changes({Delete({v1::SERVICE, "prod", "b"})})).ok());
  auto last = replica_->store->Commit(Changes({Put(ServiceResource("prod", "d"))}));
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(replica_->store->Compact(last->revision).ok());

  Received received;
  for (int i = 0; i < 10 && !received.updated[kServiceType].contains("d"); ++i) {
    Received step = ReceiveEach(*delta, {kServiceType});
    for (const auto& name : step.updated[kServiceType]) received.updated[kServiceType].insert(name);
    for (const auto& name : step.removed[kServiceType]) received.removed[kServiceType].insert(name);
  }
  EXPECT_EQ(received.updated[kServiceType], (NameSet{"a", "d"}));  // "c" unchanged: not resent
  EXPECT_EQ(received.removed[kServiceType], NameSet{"b"});

  std::optional<DiscoveryResponse> newest;
  for (int i = 0; i < 10; ++i) {
    auto response = sotw->Next(newest.has_value() ? absl::Milliseconds(300) : absl::Seconds(10));
    if (!response.has_value()) break;
    newest = response;
  }
  ASSERT_TRUE(newest.has_value());
  NameSet sotw_names;
  for (const auto& any : newest->resources()) {
    v1::Service service;
    ASSERT_TRUE(any.UnpackTo(&service));
    sotw_names.insert(service.name());
  }
  EXPECT_EQ(sotw_names, (NameSet{"a", "c", "d"}));

  bool resynced = false;
  for (const std::string& line : log->last_formatted()) {
    resynced = resynced || line.find("xds: resynced from a snapshot") != std::string::npos;
  }
  replica_.reset();
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), log), sinks.end());
  EXPECT_TRUE(resynced) << "the log was read before it was compacted: nothing was resynced";
}

}  // namespace
}  // namespace meridian::xds
