#pragma once

// A scripted xDS node for end-to-end tests: one delta ADS stream to a control plane's gRPC
// port, subscribed to services of its environment; the test decides what it ACKs or NACKs.
#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "controlplane/xds/type_urls.h"
#include "envoy/service/discovery/v3/ads.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/integration/ads_test_client.h"

namespace meridian::testing {

class XdsTestNode {
 public:
  using Response = envoy::service::discovery::v3::DeltaDiscoveryResponse;

  XdsTestNode(const std::shared_ptr<grpc::Channel>& channel, const std::string& id,
              const std::string& environment, const std::string& zone = "")
      : stub_(envoy::service::discovery::v3::AggregatedDiscoveryService::NewStub(channel)),
        client_([this](grpc::ClientContext* context) {
          return stub_->DeltaAggregatedResources(context);
        }) {
    envoy::service::discovery::v3::DeltaDiscoveryRequest subscribe;
    subscribe.mutable_node()->set_id(id);
    subscribe.mutable_node()->set_user_agent_name("xds-test-node");
    auto& metadata = *subscribe.mutable_node()->mutable_metadata()->mutable_fields();
    metadata["environment"].set_string_value(environment);
    if (!zone.empty()) metadata["zone"].set_string_value(zone);
    subscribe.set_type_url(xds::TypeUrlOf(v1::SERVICE));
    subscribed_ = client_.Send(subscribe);
  }

  // A node whose subscription went out (a test expectation fails otherwise).
  static std::unique_ptr<XdsTestNode> Connect(const std::shared_ptr<grpc::Channel>& channel,
                                              const std::string& id, const std::string& environment,
                                              const std::string& zone = "") {
    auto node = std::make_unique<XdsTestNode>(channel, id, environment, zone);
    EXPECT_TRUE(node->subscribed()) << id;
    return node;
  }

  bool subscribed() const { return subscribed_; }

  // The next response, or nothing within `timeout`.
  std::optional<Response> Next(absl::Duration timeout = absl::Seconds(10)) {
    return client_.Next(timeout);
  }

  bool Ack(const Response& response) { return client_.Send(Reply(response, "")); }
  // Waits until the control plane ends the stream; its status.
  grpc::Status AwaitClose() { return client_.AwaitClose(); }
  bool Nack(const Response& response, const std::string& error) {
    return client_.Send(Reply(response, error));
  }

  // Waits for the next response and ACKs it; false when none came.
  bool AckNext() {
    std::optional<Response> response = Next();
    return response.has_value() && Ack(*response);
  }

 private:
  static envoy::service::discovery::v3::DeltaDiscoveryRequest Reply(const Response& response,
                                                                    const std::string& error) {
    envoy::service::discovery::v3::DeltaDiscoveryRequest reply;
    reply.set_type_url(response.type_url());
    reply.set_response_nonce(response.nonce());
    if (!error.empty()) reply.mutable_error_detail()->set_message(error);
    return reply;
  }

  std::unique_ptr<envoy::service::discovery::v3::AggregatedDiscoveryService::Stub> stub_;
  DeltaClient client_;
  bool subscribed_ = false;
};

}  // namespace meridian::testing
