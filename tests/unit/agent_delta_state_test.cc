// The agent's delta-xDS state without transport: first requests, merging, validation, and the
// backoff between reconnects.
#include "agent/backoff.h"
#include "agent/delta_subscription_state.h"
#include "gtest/gtest.h"
#include "tests/unit/agent_xds_test_util.h"

namespace meridian::agent {
namespace {

using ::meridian::testing::AgentEndpoint;
using ::meridian::testing::AgentService;
using ::meridian::testing::DeltaResponse;
using ::meridian::testing::ServicesResponse;

envoy::config::core::v3::Node TestNode() {
  envoy::config::core::v3::Node node;
  node.set_id("node-1");
  return node;
}

TEST(DeltaSubscriptionStateTest, FirstRequestsAreWildcardPerTypeAndOnlyTheFirstNamesTheNode) {
  DeltaSubscriptionState state("prod");
  auto requests = state.InitialRequests(TestNode());
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].node().id(), "node-1");
  std::vector<std::string> types;
  for (size_t i = 0; i < requests.size(); ++i) {
    types.push_back(requests[i].type_url());
    EXPECT_TRUE(requests[i].resource_names_subscribe().empty());
    EXPECT_TRUE(requests[i].initial_resource_versions().empty());
    EXPECT_TRUE(requests[i].response_nonce().empty());
    if (i > 0) {
      EXPECT_FALSE(requests[i].has_node());
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{kServiceTypeUrl, kEndpointTypeUrl, kCertificateTypeUrl,
                                             kRouteTypeUrl}));
}

TEST(DeltaSubscriptionStateTest, HeldResourcesAreAnnouncedAsInitialResourceVersions) {
  DeltaSubscriptionState state("prod");
  auto staged = state.Stage(ServicesResponse(5, {AgentService("a", 4), AgentService("b", 5)}));
  ASSERT_TRUE(staged.ok()) << staged.status();
  state.Commit(*std::move(staged));
  auto requests = state.InitialRequests(TestNode());
  ASSERT_EQ(requests[0].type_url(), kServiceTypeUrl);
  EXPECT_EQ(requests[0].initial_resource_versions().size(), 2u);
  EXPECT_EQ(requests[0].initial_resource_versions().at("a"), "4");
  EXPECT_EQ(requests[0].initial_resource_versions().at("b"), "5");
  EXPECT_TRUE(requests[1].initial_resource_versions().empty());
}

TEST(DeltaSubscriptionStateTest, StageMergesAddsUpdatesRemovalsAndCountsThem) {
  DeltaSubscriptionState state("prod");
  auto first = state.Stage(ServicesResponse(2, {AgentService("a", 1), AgentService("b", 2)}));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->change.added, 2u);
  state.Commit(*std::move(first));

  auto second =
      state.Stage(ServicesResponse(7, {AgentService("a", 7, 9090), AgentService("c", 7)}, {"b"}));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->change.revision, 7);
  EXPECT_EQ(second->change.added, 1u);
  EXPECT_EQ(second->change.updated, 1u);
  EXPECT_EQ(second->change.removed, 1u);
  const ProxySnapshot& snapshot = second->state.snapshot;
  EXPECT_EQ(snapshot.revision, 7);
  ASSERT_EQ(snapshot.services.size(), 2u);
  EXPECT_EQ(snapshot.services.at("a").spec().ports(0).port(), 9090u);
  EXPECT_TRUE(snapshot.services.contains("c"));
  EXPECT_EQ(second->state.versions.at(kServiceTypeUrl).size(), 2u);
  // Staging does not touch what is held.
  EXPECT_EQ(state.held().snapshot.services.size(), 2u);
  EXPECT_TRUE(state.held().snapshot.services.contains("b"));
}

TEST(DeltaSubscriptionStateTest, TypesMergeIntoTheirOwnMapsAndKeepTheOthers) {
  DeltaSubscriptionState state("prod");
  auto services = state.Stage(ServicesResponse(1, {AgentService("a", 1)}));
  ASSERT_TRUE(services.ok());
  state.Commit(*std::move(services));
  auto endpoints = state.Stage(DeltaResponse<v1::Endpoint>(
      kEndpointTypeUrl, 2, {AgentEndpoint("a-1", "a", 2), AgentEndpoint("orphan-1", "nope", 2)}));
  ASSERT_TRUE(endpoints.ok()) << endpoints.status();  // dangling references are the driver's
  EXPECT_EQ(endpoints->state.snapshot.services.size(), 1u);
  EXPECT_EQ(endpoints->state.snapshot.endpoints.size(), 2u);
  EXPECT_EQ(endpoints->state.snapshot.revision, 2);
}

TEST(DeltaSubscriptionStateTest, RemovingWhatIsNotHeldIsHarmless) {
  DeltaSubscriptionState state("prod");
  auto staged = state.Stage(ServicesResponse(3, {}, {"never-had-it"}));
  ASSERT_TRUE(staged.ok());
  EXPECT_EQ(staged->change.removed, 0u);
  EXPECT_TRUE(staged->state.versions.empty());
}

TEST(DeltaSubscriptionStateTest, RejectsANameRepeatedAcrossAddedAndRemoved) {
  DeltaSubscriptionState state("prod");
  auto staged = state.Stage(ServicesResponse(3, {AgentService("a", 3)}, {"a"}));
  ASSERT_EQ(staged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(staged.status().message().find("duplicate name \"a\""), std::string::npos);
  auto twice = state.Stage(ServicesResponse(3, {AgentService("a", 3), AgentService("a", 3)}));
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DeltaSubscriptionStateTest, RejectsPayloadsOfAnotherTypeOrEnvironmentOrName) {
  DeltaSubscriptionState state("prod");
  auto wrong_type = ServicesResponse(3, {AgentService("a", 3)});
  wrong_type.mutable_resources(0)->mutable_resource()->PackFrom(AgentEndpoint("a", "a", 3));
  EXPECT_EQ(state.Stage(wrong_type).status().code(), absl::StatusCode::kInvalidArgument);

  auto staging = state.Stage(ServicesResponse(3, {AgentService("a", 3, 80, "staging")}));
  ASSERT_FALSE(staging.ok());
  EXPECT_NE(staging.status().message().find("environment \"staging\""), std::string::npos);

  auto renamed = ServicesResponse(3, {AgentService("a", 3)});
  renamed.mutable_resources(0)->set_name("b");
  EXPECT_FALSE(state.Stage(renamed).ok());

  auto empty = ServicesResponse(3, {AgentService("a", 3)});
  empty.mutable_resources(0)->clear_resource();
  EXPECT_FALSE(state.Stage(empty).ok());

  auto unsubscribed = ServicesResponse(3, {});
  unsubscribed.set_type_url("type.googleapis.com/meridian.v1.ConfigEntry");
  EXPECT_FALSE(state.Stage(unsubscribed).ok());
}

TEST(DeltaSubscriptionStateTest, UnparsableSystemVersionKeepsTheHeldRevision) {
  DeltaSubscriptionState state("prod");
  auto first = state.Stage(ServicesResponse(4, {AgentService("a", 4)}));
  ASSERT_TRUE(first.ok());
  state.Commit(*std::move(first));
  auto response = ServicesResponse(0, {AgentService("b", 5)});
  response.set_system_version_info("not-a-number");
  auto staged = state.Stage(response);
  ASSERT_TRUE(staged.ok());
  EXPECT_EQ(staged->state.snapshot.revision, 4);
}

TEST(DeltaSubscriptionStateTest, NackCarriesNonceAndTheExactError) {
  auto response = ServicesResponse(3, {}, {}, "nonce-7");
  auto nack = DeltaSubscriptionState::Nack(
      response, absl::InvalidArgumentError("[ALERT] parsing [haproxy.cfg:12]: bad regex"));
  EXPECT_EQ(nack.type_url(), kServiceTypeUrl);
  EXPECT_EQ(nack.response_nonce(), "nonce-7");
  EXPECT_EQ(nack.error_detail().code(), 3);
  EXPECT_EQ(nack.error_detail().message(), "[ALERT] parsing [haproxy.cfg:12]: bad regex");
  auto ack = DeltaSubscriptionState::Ack(response);
  EXPECT_EQ(ack.response_nonce(), "nonce-7");
  EXPECT_FALSE(ack.has_error_detail());
}

TEST(JitteredBackoffTest, GrowsExponentiallyWithinJitterBoundsUpToTheMaximum) {
  JitteredBackoff backoff(absl::Milliseconds(100), absl::Seconds(10), /*seed=*/42);
  absl::Duration ceiling = absl::Milliseconds(100);
  for (int attempt = 0; attempt < 20; ++attempt) {
    const absl::Duration delay = backoff.NextDelay();
    EXPECT_GE(delay, ceiling / 2) << attempt;
    EXPECT_LE(delay, ceiling) << attempt;
    ceiling = std::min(ceiling * 2, absl::Seconds(10));
  }
  backoff.Reset();
  EXPECT_LE(backoff.NextDelay(), absl::Milliseconds(100));
}

TEST(JitteredBackoffTest, AgentsWithDifferentSeedsDoNotRetryInLockstep) {
  JitteredBackoff a(absl::Milliseconds(100), absl::Seconds(10), 1);
  JitteredBackoff b(absl::Milliseconds(100), absl::Seconds(10), 2);
  int same = 0;
  for (int attempt = 0; attempt < 10; ++attempt) same += a.NextDelay() == b.NextDelay();
  EXPECT_LT(same, 10);
}

}  // namespace
}  // namespace meridian::agent
