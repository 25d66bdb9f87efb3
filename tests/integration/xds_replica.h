#pragma once

// One xDS server replica over real gRPC and real Postgres, with a tracker that records what
// its streams report, and helpers for delta and state-of-the-world requests.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/store/change_feed.h"
#include "controlplane/store/postgres_config_store.h"
#include "controlplane/xds/type_urls.h"
#include "controlplane/xds/xds_server.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "meridian/v1/xds_types.pb.h"
#include "tests/integration/ads_test_client.h"
#include "tests/integration/store_test_util.h"

namespace meridian::xds {

using ::envoy::service::discovery::v3::AggregatedDiscoveryService;
using ::envoy::service::discovery::v3::DeltaDiscoveryRequest;
using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;
using ::envoy::service::discovery::v3::DiscoveryRequest;
using ::envoy::service::discovery::v3::DiscoveryResponse;
using ::meridian::testing::Changes;
using ::meridian::testing::Delete;
using ::meridian::testing::DeltaClient;
using ::meridian::testing::Put;
using ::meridian::testing::ServiceResource;
using ::meridian::testing::SotwClient;

inline const std::string kServiceType = TypeUrlOf(v1::SERVICE);

// Records what streams report, for assertions.
class RecordingTracker : public NodeTracker {
 public:
  void StreamOpened(const NodeIdentity&, uint64_t) override {}
  void StreamClosed(const NodeIdentity&, uint64_t) override {}
  void Sent(const NodeIdentity&, int64_t) override {}
  void Answered(const NodeIdentity&, int64_t) override {}
  void Synced(const NodeIdentity& node, int64_t revision) override {
    absl::MutexLock lock(&mu_);
    synced_[node.id] = revision;
  }
  void Nacked(const NodeIdentity& node, const std::string& type_url, int64_t revision,
              const std::string& error) override {
    absl::MutexLock lock(&mu_);
    nacks_.push_back(absl::StrCat(node.id, " ", type_url, " ", revision, " ", error));
  }
  // Waits (bounded) until the node has synced at least `revision`.
  bool WaitSynced(const std::string& node_id, int64_t revision) {
    absl::MutexLock lock(&mu_);
    struct Args {
      RecordingTracker* self;
      const std::string* id;
      int64_t revision;
    } args{this, &node_id, revision};
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                      auto it = a->self->synced_.find(*a->id);
                                      return it != a->self->synced_.end() &&
                                             it->second >= a->revision;
                                    },
                                    &args),
                                absl::Seconds(10));
  }
  std::vector<std::string> nacks() {
    absl::MutexLock lock(&mu_);
    return nacks_;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int64_t> synced_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> nacks_ ABSL_GUARDED_BY(mu_);
};

// One control-plane replica: store, change feed, xDS server on a free port.
struct Replica {
  Replica(const std::string& url, XdsServerOptions options = {},
          store::ChangeFeed::Options feed_options = {}) {
    auto opened = store::PostgresConfigStore::Open({url, 4});
    EXPECT_TRUE(opened.ok()) << opened.status();
    store = std::move(*opened);
    feed_options.listen_database_url = url;
    feed = std::make_unique<store::ChangeFeed>(*store, feed_options);
    EXPECT_TRUE(feed->Start().ok());
    xds = std::make_unique<XdsServer>(*store, *feed, tracker, options);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    xds->AddTo(builder);
    server = builder.BuildAndStart();
    EXPECT_TRUE(xds->Start().ok());
    channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
    stub = AggregatedDiscoveryService::NewStub(channel);
  }
  ~Replica() {
    xds->Stop();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    xds->Drain();
    feed->Stop();
  }

  std::unique_ptr<DeltaClient> Delta() {
    return std::make_unique<DeltaClient>(
        [this](grpc::ClientContext* context) { return stub->DeltaAggregatedResources(context); });
  }
  std::unique_ptr<SotwClient> Sotw() {
    return std::make_unique<SotwClient>(
        [this](grpc::ClientContext* context) { return stub->StreamAggregatedResources(context); });
  }

  RecordingTracker tracker;
  std::unique_ptr<store::PostgresConfigStore> store;
  std::unique_ptr<store::ChangeFeed> feed;
  std::unique_ptr<XdsServer> xds;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<AggregatedDiscoveryService::Stub> stub;
};

inline envoy::config::core::v3::Node MakeNode(const std::string& id,
                                              const std::string& environment) {
  envoy::config::core::v3::Node node;
  node.set_id(id);
  (*node.mutable_metadata()->mutable_fields())["environment"].set_string_value(environment);
  return node;
}

inline DeltaDiscoveryRequest DeltaSubscribe(const std::string& node_id,
                                            const std::string& environment,
                                            const std::string& type_url = kServiceType) {
  DeltaDiscoveryRequest request;
  *request.mutable_node() = MakeNode(node_id, environment);
  request.set_type_url(type_url);
  return request;
}

inline DeltaDiscoveryRequest DeltaAck(const DeltaDiscoveryResponse& response) {
  DeltaDiscoveryRequest ack;
  ack.set_type_url(response.type_url());
  ack.set_response_nonce(response.nonce());
  return ack;
}

inline std::vector<std::string> Names(const DeltaDiscoveryResponse& response) {
  std::vector<std::string> names;
  for (const auto& resource : response.resources()) names.push_back(resource.name());
  std::sort(names.begin(), names.end());
  return names;
}

inline uint32_t FirstPort(const envoy::service::discovery::v3::Resource& resource) {
  v1::Service service;
  EXPECT_TRUE(resource.resource().UnpackTo(&service));
  return service.spec().ports(0).port();
}

class XdsReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = meridian::testing::SharedPostgres().CreateDatabase("xds");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    replica_ = std::make_unique<Replica>(url_);
  }
  void Write(std::vector<store::Mutation> mutations) {
    auto result = replica_->store->Commit(Changes(std::move(mutations)));
    ASSERT_TRUE(result.ok()) << result.status();
    last_revision_ = result->revision;
    // Streams opened after Write() see the write in their first response.
    for (int attempt = 0; attempt < 500 && replica_->xds->revision() < last_revision_; ++attempt) {
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  std::string url_;
  std::unique_ptr<Replica> replica_;
  int64_t last_revision_ = 0;
};

}  // namespace meridian::xds
