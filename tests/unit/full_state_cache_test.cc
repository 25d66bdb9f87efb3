// FullStateCache: one whole-type response per (environment, type, revision), shared, and
// forgotten as soon as the type changes.
#include "controlplane/xds/ads_stream.h"
#include "controlplane/xds/shared_delta.h"
#include "controlplane/xds/type_urls.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "gtest/gtest.h"
#include "meridian/v1/xds_types.pb.h"
#include "tests/support/resource_builders.h"

namespace meridian::xds {
namespace {

using ::envoy::service::discovery::v3::DeltaDiscoveryResponse;
using ::envoy::service::discovery::v3::DiscoveryResponse;
using ::meridian::testing::ServiceResource;

const std::string kServiceType = TypeUrlOf(v1::SERVICE);

v1::Resource AtRevision(v1::Resource resource, int64_t revision) {
  resource.set_mod_revision(revision);
  return resource;
}

template <typename Message>
Message Parse(const grpc::ByteBuffer& buffer) {
  Message message;
  EXPECT_TRUE(ParseByteBuffer(buffer, message));
  return message;
}

class FullStateCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::StateSnapshot snapshot;
    snapshot.revision = 5;
    snapshot.resources = {AtRevision(ServiceResource("prod", "b"), 4),
                          AtRevision(ServiceResource("prod", "a"), 5),
                          AtRevision(ServiceResource("staging", "c"), 3)};
    index_.Reset(snapshot);
  }

  ResourceIndex index_;
  FullStateCache cache_;
};

TEST_F(FullStateCacheTest, DeltaIsTheWholeTypeBuiltOnce) {
  const ResourceIndex::View index(index_);
  auto full = cache_.Delta(index, "prod", kServiceType);
  EXPECT_EQ(cache_.Delta(index, "prod", kServiceType), full) << "built again";
  EXPECT_EQ(full->nonce, "full-5-" + kServiceType);
  auto response = Parse<DeltaDiscoveryResponse>(full->response);
  EXPECT_EQ(response.system_version_info(), "5");
  EXPECT_EQ(response.type_url(), kServiceType);
  EXPECT_EQ(response.nonce(), full->nonce);
  std::map<std::string, std::string> versions;
  for (const auto& resource : response.resources()) versions[resource.name()] = resource.version();
  EXPECT_EQ(versions, (std::map<std::string, std::string>{{"a", "5"}, {"b", "4"}}));
  EXPECT_EQ(full->updated.size(), 2u);
}

TEST_F(FullStateCacheTest, StateOfTheWorldIsSortedAndTakesTheStreamsNonce) {
  const ResourceIndex::View index(index_);
  SotwState whole = cache_.StateOfTheWorld(index, "prod", kServiceType);
  EXPECT_EQ(cache_.StateOfTheWorld(index, "prod", kServiceType).entries, whole.entries);
  ASSERT_EQ(whole.entries->size(), 2u);
  EXPECT_EQ((*whole.entries)[0]->name, "a");
  EXPECT_EQ((*whole.entries)[1]->name, "b");
  auto response = Parse<DiscoveryResponse>(SealSotwResponse(whole.body, "n-1"));
  EXPECT_EQ(response.version_info(), "5");
  EXPECT_EQ(response.nonce(), "n-1");
  ASSERT_EQ(response.resources_size(), 2);
  v1::Service first;
  ASSERT_TRUE(response.resources(0).UnpackTo(&first));
  EXPECT_EQ(first.name(), "a");
}

TEST_F(FullStateCacheTest, AChangeToTheTypeDropsItsResponsesAndNoOtherOnes) {
  const ResourceIndex::View index(index_);
  auto prod = cache_.Delta(index, "prod", kServiceType);
  auto staging = cache_.Delta(index, "staging", kServiceType);
  auto prod_sotw = cache_.StateOfTheWorld(index, "prod", kServiceType).entries;
  cache_.Forget({IndexChange{"prod", kServiceType, {"a"}, {4}, nullptr}});
  EXPECT_NE(cache_.Delta(index, "prod", kServiceType), prod);
  EXPECT_NE(cache_.StateOfTheWorld(index, "prod", kServiceType).entries, prod_sotw);
  EXPECT_EQ(cache_.Delta(index, "staging", kServiceType), staging);
}

}  // namespace
}  // namespace meridian::xds
