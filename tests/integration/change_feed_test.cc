// ChangeFeed and store resilience against a real PostgreSQL: replicas see each other's writes
// through LISTEN/NOTIFY plus the change log, and a Postgres restart heals without reopening.
#include "controlplane/store/change_feed.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/store_test_util.h"

namespace meridian::store {
namespace {

using ::meridian::testing::Changes;
using ::meridian::testing::OpenFreshStore;
using ::meridian::testing::Put;
using ::meridian::testing::ServiceResource;

TEST(ChangeFeedTest, ReplicaSeesWriteCommittedThroughAnotherReplica) {
  std::string url;
  auto replica_a = OpenFreshStore("feed", &url);
  ASSERT_NE(replica_a, nullptr);
  auto replica_b = PostgresConfigStore::Open({url, 2});
  ASSERT_TRUE(replica_b.ok()) << replica_b.status();
  // A long poll interval: only the notification can deliver the write quickly.
  ChangeFeed feed(*replica_a, {url, absl::Seconds(30), 16});
  ASSERT_TRUE(feed.Start().ok());
  absl::SleepFor(absl::Milliseconds(300));  // let the listener subscribe

  ASSERT_TRUE((*replica_b)->Commit(Changes({Put(ServiceResource("prod", "a"))})).ok());
  auto revisions = feed.WaitForRevisions(0, absl::Seconds(10));
  ASSERT_TRUE(revisions.ok()) << revisions.status();
  ASSERT_EQ(revisions->size(), 1u);
  EXPECT_EQ((*revisions)[0]->revision(), 1);
  EXPECT_EQ((*revisions)[0]->changes(0).key().name(), "a");
}

TEST(ChangeFeedTest, ResumesFromRevisionAndReadsOlderOnesFromTheLog) {
  std::string url;
  auto store = OpenFreshStore("feed", &url);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store->Commit(Changes({Put(ServiceResource("prod", "s" + std::to_string(i)))})).ok());
  }
  ChangeFeed feed(*store, {"", absl::Milliseconds(20), 2});
  ASSERT_TRUE(feed.Start().ok());
  auto old = feed.WaitForRevisions(1, absl::Seconds(1));
  ASSERT_TRUE(old.ok()) << old.status();
  ASSERT_EQ(old->size(), 2u);
  EXPECT_EQ((*old)[0]->revision(), 2);

  for (int i = 3; i < 6; ++i) {
    ASSERT_TRUE(store->Commit(Changes({Put(ServiceResource("prod", "s" + std::to_string(i)))})).ok());
  }
  int64_t last = 3;
  for (int attempt = 0; attempt < 50 && last < 6; ++attempt) {
    auto batch = feed.WaitForRevisions(last, absl::Seconds(1));
    ASSERT_TRUE(batch.ok()) << batch.status();
    for (const auto& record : *batch) {
      EXPECT_EQ(record->revision(), last + 1);
      last = record->revision();
    }
  }
  EXPECT_EQ(last, 6);

  ASSERT_TRUE(store->Compact(5).ok());
  EXPECT_TRUE(absl::IsOutOfRange(feed.WaitForRevisions(1, absl::Seconds(1)).status()));
}

TEST(StoreResilienceTest, PostgresRestartFailsWritesCleanlyThenHeals) {
  meridian::testing::PostgresServer server;
  ASSERT_TRUE(server.Start().ok());
  auto url = server.CreateDatabase("restart");
  ASSERT_TRUE(url.ok()) << url.status();
  auto store = PostgresConfigStore::Open({*url, 2});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Commit(Changes({Put(ServiceResource("prod", "before"))})).ok());

  ASSERT_TRUE(server.Stop().ok());
  auto during = (*store)->Commit(Changes({Put(ServiceResource("prod", "during"))}));
  EXPECT_TRUE(absl::IsUnavailable(during.status())) << during.status();
  EXPECT_TRUE(absl::IsUnavailable((*store)->Get({v1::SERVICE, "prod", "before"}, 0).status()));
  EXPECT_FALSE((*store)->CheckReady().ok());

  ASSERT_TRUE(server.Start().ok());
  absl::StatusOr<CommitResult> after = absl::UnavailableError("not tried");
  for (int attempt = 0; attempt < 50 && !after.ok(); ++attempt) {
    after = (*store)->Commit(Changes({Put(ServiceResource("prod", "after"))}));
    if (!after.ok()) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->revision, 2);
  EXPECT_TRUE((*store)->Get({v1::SERVICE, "prod", "before"}, 0).ok());
  EXPECT_TRUE(absl::IsNotFound((*store)->Get({v1::SERVICE, "prod", "during"}, 0).status()));
  EXPECT_TRUE((*store)->CheckReady().ok());
}

}  // namespace
}  // namespace meridian::store
