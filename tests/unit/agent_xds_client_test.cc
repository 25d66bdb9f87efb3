// The agent's xDS client against a scripted ADS server over an in-process channel: apply then
// ACK, NACK with the exact error and last-good state, reconnect with held versions, fail over.
#include <deque>

#include "absl/synchronization/mutex.h"
#include "agent/xds_client.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "tests/unit/agent_xds_test_util.h"

namespace meridian::agent {
namespace {

using ::envoy::service::discovery::v3::AggregatedDiscoveryService;
using ::envoy::service::discovery::v3::DeltaDiscoveryRequest;
using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;
using ::meridian::testing::AgentEndpoint;
using ::meridian::testing::AgentService;
using ::meridian::testing::DeltaResponse;
using ::meridian::testing::ServicesResponse;

// An ADS server driven by the test: it records every request (with the number of the stream it
// came on), writes what the test queues, and ends the current stream when told.
class ScriptedAdsService final : public AggregatedDiscoveryService::Service {
 public:
  grpc::Status DeltaAggregatedResources(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<DeltaDiscoveryResponse, DeltaDiscoveryRequest>* stream) override {
    int stream_number = 0;
    {
      absl::MutexLock lock(&mu_);
      stream_number = ++streams_;
      end_stream_ = false;
      outbox_.clear();
    }
    bool reader_done = false;
    std::thread reader([&] {
      DeltaDiscoveryRequest request;
      while (stream->Read(&request)) {
        absl::MutexLock lock(&mu_);
        requests_.push_back({stream_number, request});
      }
      absl::MutexLock lock(&mu_);
      reader_done = true;
    });
    for (;;) {
      DeltaDiscoveryResponse response;
      {
        absl::MutexLock lock(&mu_);
        auto due = [&] { return !outbox_.empty() || end_stream_ || reader_done; };
        mu_.Await(absl::Condition(&due));
        if (end_stream_ || reader_done) break;
        response = std::move(outbox_.front());
        outbox_.pop_front();
      }
      stream->Write(response);
    }
    context->TryCancel();
    reader.join();
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "scripted end");
  }

  void Send(DeltaDiscoveryResponse response) {
    absl::MutexLock lock(&mu_);
    outbox_.push_back(std::move(response));
  }
  void EndStream() {
    absl::MutexLock lock(&mu_);
    end_stream_ = true;
  }
  // Waits (bounded) for the request after the first `index` ones and returns it.
  std::optional<std::pair<int, DeltaDiscoveryRequest>> Request(size_t index) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&] { return requests_.size() > index; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(10))) return std::nullopt;
    return requests_[index];
  }
  size_t request_count() {
    absl::MutexLock lock(&mu_);
    return requests_.size();
  }

 private:
  absl::Mutex mu_;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  bool end_stream_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<DeltaDiscoveryResponse> outbox_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int, DeltaDiscoveryRequest>> requests_ ABSL_GUARDED_BY(mu_);
};

// Records what the client applies, and rejects what `reject` objects to.
class RecordingApply {
 public:
  absl::Status operator()(const ProxySnapshot& snapshot) {
    absl::MutexLock lock(&mu_);
    if (reject && !reject(snapshot).empty()) return absl::InvalidArgumentError(reject(snapshot));
    applied_.push_back(snapshot);
    return absl::OkStatus();
  }
  std::optional<ProxySnapshot> Applied(size_t index) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&] { return applied_.size() > index; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(10))) return std::nullopt;
    return applied_[index];
  }
  size_t count() {
    absl::MutexLock lock(&mu_);
    return applied_.size();
  }
  std::function<std::string(const ProxySnapshot&)> reject;

 private:
  absl::Mutex mu_;
  std::vector<ProxySnapshot> applied_ ABSL_GUARDED_BY(mu_);
};

class XdsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  void TearDown() override {
    if (client_) client_->Stop();
    service_.EndStream();
    server_->Shutdown();
  }

  // "up" reaches the scripted server in-process; any other address refuses connections.
  XdsClientOptions Options(std::vector<std::string> control_planes = {"up"}) {
    XdsClientOptions options;
    options.control_planes = std::move(control_planes);
    options.node_id = "node-1";
    options.environment = "prod";
    options.zone = "eu-1a";
    options.initial_backoff = absl::Milliseconds(10);
    options.max_backoff = absl::Milliseconds(50);
    options.connect_timeout = absl::Milliseconds(300);
    options.channel_factory = [this](const std::string& address) {
      if (address == "up") return server_->InProcessChannel(grpc::ChannelArguments());
      return grpc::CreateChannel("unix:/nonexistent/meridian-test.sock",
                                 grpc::InsecureChannelCredentials());
    };
    return options;
  }
  void StartClient(XdsClientOptions options, AppliedState initial = {}) {
    client_ = std::make_unique<XdsClient>(
        std::move(options), std::move(initial),
        [this](const ProxySnapshot& snapshot) { return apply_(snapshot); });
    client_->Start();
  }
  // Polls (bounded) until the client's status satisfies `done`.
  XdsClientStatus WaitForStatus(const std::function<bool(const XdsClientStatus&)>& done) {
    XdsClientStatus status = client_->status();
    for (int i = 0; i < 1000 && !done(status); ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      status = client_->status();
    }
    return status;
  }
  // The next request on the server after `index` ones (skipping nothing).
  DeltaDiscoveryRequest RequestAt(size_t index) {
    auto request = service_.Request(index);
    EXPECT_TRUE(request.has_value()) << "no request #" << index;
    return request ? request->second : DeltaDiscoveryRequest();
  }

  ScriptedAdsService service_;
  std::unique_ptr<grpc::Server> server_;
  RecordingApply apply_;
  std::unique_ptr<XdsClient> client_;
};

TEST_F(XdsClientTest, SubscribesWildcardToFourTypesAsItsNode) {
  StartClient(Options());
  const DeltaDiscoveryRequest first = RequestAt(0);
  EXPECT_EQ(first.node().id(), "node-1");
  EXPECT_EQ(first.node().cluster(), "prod");
  EXPECT_EQ(first.node().metadata().fields().at("environment").string_value(), "prod");
  EXPECT_EQ(first.node().metadata().fields().at("zone").string_value(), "eu-1a");
  EXPECT_EQ(first.node().user_agent_name(), "meridian-agent");
  for (size_t i = 0; i < 4; ++i) {
    const DeltaDiscoveryRequest request = RequestAt(i);
    EXPECT_TRUE(request.resource_names_subscribe().empty());
    EXPECT_TRUE(request.response_nonce().empty());
  }
  EXPECT_EQ(RequestAt(3).type_url(), kRouteTypeUrl);
}

TEST_F(XdsClientTest, AppliesEachResponseThenAcksItsNonce) {
  StartClient(Options());
  RequestAt(3);
  service_.Send(ServicesResponse(3, {AgentService("a", 2), AgentService("b", 3)}, {}, "n-1"));
  auto applied = apply_.Applied(0);
  ASSERT_TRUE(applied.has_value());
  EXPECT_EQ(applied->revision, 3);
  EXPECT_EQ(applied->services.size(), 2u);
  const DeltaDiscoveryRequest ack = RequestAt(4);
  EXPECT_EQ(ack.response_nonce(), "n-1");
  EXPECT_EQ(ack.type_url(), kServiceTypeUrl);
  EXPECT_FALSE(ack.has_error_detail());

  service_.Send(
      DeltaResponse<v1::Endpoint>(kEndpointTypeUrl, 4, {AgentEndpoint("a-1", "a", 4)}, {}, "n-2"));
  auto second = apply_.Applied(1);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->services.size(), 2u);  // the other types are kept
  EXPECT_EQ(second->endpoints.size(), 1u);
  EXPECT_EQ(RequestAt(5).response_nonce(), "n-2");
  EXPECT_EQ(client_->status().acks, 2u);
  EXPECT_EQ(client_->status().revision, 4);
}

TEST_F(XdsClientTest, RejectedResponseIsNackedWithTheExactErrorAndLastGoodStateIsKept) {
  const std::string error = "[ALERT] (1) : config : parsing [haproxy.cfg:31] : bad 'path_reg'";
  apply_.reject = [&](const ProxySnapshot& snapshot) {
    return snapshot.services.contains("bad") ? error : std::string();
  };
  StartClient(Options());
  RequestAt(3);
  service_.Send(ServicesResponse(3, {AgentService("a", 3)}, {}, "n-1"));
  ASSERT_TRUE(apply_.Applied(0).has_value());
  ASSERT_EQ(RequestAt(4).response_nonce(), "n-1");

  service_.Send(ServicesResponse(4, {AgentService("bad", 4)}, {"a"}, "n-2"));
  const DeltaDiscoveryRequest nack = RequestAt(5);
  EXPECT_EQ(nack.response_nonce(), "n-2");
  ASSERT_TRUE(nack.has_error_detail());
  EXPECT_EQ(nack.error_detail().message(), error);
  EXPECT_EQ(nack.error_detail().code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(client_->status().last_error, error);
  EXPECT_EQ(client_->status().revision, 3);

  // The next response is merged into the last good state: "a" is back, "bad" never was.
  service_.Send(
      DeltaResponse<v1::Endpoint>(kEndpointTypeUrl, 5, {AgentEndpoint("a-1", "a", 5)}, {}, "n-3"));
  auto next = apply_.Applied(1);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->revision, 5);
  EXPECT_TRUE(next->services.contains("a"));
  EXPECT_FALSE(next->services.contains("bad"));
  EXPECT_EQ(next->endpoints.size(), 1u);
  const DeltaDiscoveryRequest ack = RequestAt(6);
  EXPECT_EQ(ack.response_nonce(), "n-3");
  EXPECT_FALSE(ack.has_error_detail());
}

TEST_F(XdsClientTest, MalformedResponseIsNackedWithoutApplying) {
  StartClient(Options());
  RequestAt(3);
  service_.Send(ServicesResponse(3, {AgentService("a", 3)}, {"a"}, "n-1"));
  const DeltaDiscoveryRequest nack = RequestAt(4);
  EXPECT_EQ(nack.response_nonce(), "n-1");
  EXPECT_NE(nack.error_detail().message().find("duplicate name"), std::string::npos);
  EXPECT_EQ(apply_.count(), 0u);
  EXPECT_EQ(client_->status().nacks, 1u);
}

TEST_F(XdsClientTest, ReconnectAnnouncesHeldVersions) {
  StartClient(Options());
  RequestAt(3);
  service_.Send(ServicesResponse(3, {AgentService("a", 2), AgentService("b", 3)}, {}, "n-1"));
  RequestAt(4);  // ACK
  service_.EndStream();
  auto resumed = service_.Request(5);
  ASSERT_TRUE(resumed.has_value());
  EXPECT_EQ(resumed->first, 2);  // on the second stream
  EXPECT_EQ(resumed->second.type_url(), kServiceTypeUrl);
  EXPECT_EQ(resumed->second.node().id(), "node-1");
  const auto& versions = resumed->second.initial_resource_versions();
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions.at("a"), "2");
  EXPECT_EQ(versions.at("b"), "3");
  EXPECT_TRUE(RequestAt(6).initial_resource_versions().empty());  // endpoints: none held
  EXPECT_EQ(WaitForStatus([](const auto& s) { return s.streams >= 2; }).streams, 2u);
}

TEST_F(XdsClientTest, StateFromDiskIsAnnouncedOnTheFirstStream) {
  AppliedState disk;
  disk.snapshot.revision = 9;
  disk.snapshot.services["a"] = AgentService("a", 9);
  disk.versions[kServiceTypeUrl]["a"] = "9";
  StartClient(Options(), disk);
  const DeltaDiscoveryRequest first = RequestAt(0);
  ASSERT_EQ(first.initial_resource_versions().size(), 1u);
  EXPECT_EQ(first.initial_resource_versions().at("a"), "9");
  EXPECT_EQ(client_->status().revision, 9);

  // A change to another type is applied on top of the disk state.
  service_.Send(DeltaResponse<v1::Endpoint>(kEndpointTypeUrl, 10, {AgentEndpoint("a-1", "a", 10)}));
  auto applied = apply_.Applied(0);
  ASSERT_TRUE(applied.has_value());
  EXPECT_TRUE(applied->services.contains("a"));
  EXPECT_EQ(applied->endpoints.size(), 1u);
}

TEST_F(XdsClientTest, FailsOverToTheNextControlPlane) {
  StartClient(Options({"down", "up"}));
  const DeltaDiscoveryRequest first = RequestAt(0);
  EXPECT_EQ(first.node().id(), "node-1");
  auto status = WaitForStatus([](const auto& s) { return s.connected; });
  EXPECT_EQ(status.control_plane, "up");
  EXPECT_TRUE(status.connected);
  EXPECT_NE(status.last_error.find("down"), std::string::npos) << status.last_error;
}

TEST_F(XdsClientTest, StopInterruptsTheBackoffWait) {
  auto options = Options({"down"});
  options.initial_backoff = absl::Seconds(30);
  options.max_backoff = absl::Seconds(30);
  StartClient(options);
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time start = absl::Now();
  client_->Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));  // not the 15..30 s backoff
  EXPECT_FALSE(client_->running());
}

}  // namespace
}  // namespace meridian::agent
