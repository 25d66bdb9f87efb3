#include "controlplane/store/change_planner.h"

#include "gtest/gtest.h"
#include "tests/support/resource_builders.h"

namespace meridian::store {
namespace {

using ::meridian::testing::Changes;
using ::meridian::testing::Delete;
using ::meridian::testing::Put;
using ::meridian::testing::RouteResource;
using ::meridian::testing::ServiceResource;

TEST(ChangePlannerTest, AssignsConsecutiveRevisionsAndVersions) {
  ChangePlanner plan(41, {});
  auto first = plan.Apply(Changes({Put(ServiceResource("prod", "a"))}));
  auto second = plan.Apply(Changes({Put(ServiceResource("prod", "a", 81))}));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->revision, 42);
  EXPECT_EQ(second->revision, 43);
  EXPECT_EQ(second->resources[0].version(), 2);
  EXPECT_EQ(second->resources[0].create_revision(), 42);
  EXPECT_EQ(plan.changes().size(), 2u);
  EXPECT_EQ(plan.written().size(), 1u);
}

TEST(ChangePlannerTest, FailedChangeSetLeavesPlanUntouched) {
  v1::Resource existing = ServiceResource("prod", "a");
  existing.set_version(3);
  ChangePlanner plan(10, {{model::KeyOf(existing), existing}});
  auto stale = plan.Apply(Changes({Put(ServiceResource("prod", "b")), Put(ServiceResource("prod", "a"), 2)}));
  EXPECT_TRUE(absl::IsFailedPrecondition(stale.status()));
  EXPECT_EQ(plan.revision(), 10);
  EXPECT_TRUE(plan.changes().empty());
  auto ok = plan.Apply(Changes({Put(ServiceResource("prod", "a"), 3)}));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->resources[0].version(), 4);
}

TEST(ChangePlannerTest, RouteMayReferenceServiceCreatedInSameChangeSet) {
  ChangePlanner plan(0, {});
  EXPECT_TRUE(plan.Apply(Changes({Put(RouteResource("prod", "r", {{"a", 1}})),
                                  Put(ServiceResource("prod", "a"))}))
                  .ok());
  auto dangling = plan.Apply(Changes({Delete({v1::SERVICE, "prod", "a"}),
                                      Put(RouteResource("prod", "r2", {{"a", 1}}))}));
  EXPECT_TRUE(absl::IsFailedPrecondition(dangling.status())) << dangling.status();
}

TEST(ChangePlannerTest, RejectsDuplicateKeyAndDeleteOfMissing) {
  ChangePlanner plan(0, {});
  EXPECT_TRUE(absl::IsInvalidArgument(
      plan.Apply(Changes({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "a"))}))
          .status()));
  EXPECT_TRUE(absl::IsNotFound(plan.Apply(Changes({Delete({v1::SERVICE, "prod", "x"})})).status()));
}

TEST(ChangePlannerTest, KeysToLoadIncludesRouteDestinations) {
  ChangeSet change_set = Changes({Put(RouteResource("prod", "r", {{"a", 1}, {"b", 1}}))});
  auto keys = ChangePlanner::KeysToLoad({&change_set});
  EXPECT_EQ(keys.size(), 3u);
}

}  // namespace
}  // namespace meridian::store
