// ChangeFeed and store resilience against a real PostgreSQL: replicas see each other's writes
// through LISTEN/NOTIFY plus the change log, and a Postgres restart heals without reopening.
#include "controlplane/store/change_feed.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/store_test_util.h"

namespace meridian::store {
namespace {

using ::meridian::testing::Changes;
using ::meridian::testing::OpenFreshStore;
using ::meridian::testing::OpenTwoReplicas;
using ::meridian::testing::Put;
using ::meridian::testing::ServiceResource;

TEST(ChangeFeedTest, ReplicaSeesWriteCommittedThroughAnotherReplica) {
  auto replicas = OpenTwoReplicas("feed");
  ASSERT_TRUE(replicas.ok());
  // Long poll intervals: only the notification can deliver the write quickly.
  ChangeFeed feed(*replicas.a, {replicas.url, absl::Seconds(30), 16, absl::Seconds(30)});
  ASSERT_TRUE(feed.Start().ok());
  absl::SleepFor(absl::Milliseconds(300));  // let the listener subscribe

  ASSERT_TRUE(replicas.b->Commit(Changes({Put(ServiceResource("prod", "a"))})).ok());
  auto revisions = feed.WaitForRevisions(0, absl::Seconds(10));
  ASSERT_TRUE(revisions.ok()) << revisions.status();
  ASSERT_EQ(revisions->size(), 1u);
  EXPECT_EQ((*revisions)[0]->revision(), 1);
  EXPECT_EQ((*revisions)[0]->changes(0).key().name(), "a");
}

// Counts the feed's reads of the change log; everything goes on to the real store.
class ChangeLogReadCounter final : public ConfigStore {
 public:
  explicit ChangeLogReadCounter(ConfigStore& store) : store_(store) {}
  int reads() const { return reads_.load(); }

  absl::StatusOr<std::vector<v1::RevisionRecord>> ReadChangeLog(int64_t after_revision,
                                                                int32_t max_revisions) override {
    reads_.fetch_add(1);
    return store_.ReadChangeLog(after_revision, max_revisions);
  }
  absl::StatusOr<CommitResult> Commit(ChangeSet change_set) override {
    return store_.Commit(std::move(change_set));
  }
  absl::StatusOr<v1::Resource> Get(const ResourceKey& key, int64_t at_revision) override {
    return store_.Get(key, at_revision);
  }
  absl::StatusOr<ListResult> List(const ListQuery& query) override { return store_.List(query); }
  absl::StatusOr<std::vector<v1::HistoryEntry>> History(const HistoryQuery& query) override {
    return store_.History(query);
  }
  absl::StatusOr<v1::RevisionRecord> GetRevision(int64_t revision) override {
    return store_.GetRevision(revision);
  }
  absl::StatusOr<std::vector<v1::ChangeRecord>> Diff(int64_t from_revision, int64_t to_revision,
                                                     const std::string& environment) override {
    return store_.Diff(from_revision, to_revision, environment);
  }
  absl::StatusOr<CommitResult> Rollback(const RollbackSpec& spec) override {
    return store_.Rollback(spec);
  }
  absl::StatusOr<StateSnapshot> Snapshot() override { return store_.Snapshot(); }
  absl::StatusOr<StoreRevisions> Revisions() override { return store_.Revisions(); }
  absl::Status Compact(int64_t revision) override { return store_.Compact(revision); }
  void SetCommitListener(CommitListener listener) override {
    store_.SetCommitListener(std::move(listener));
  }
  absl::Status CheckReady() override { return store_.CheckReady(); }

 private:
  ConfigStore& store_;
  std::atomic<int> reads_{0};
};

// A replica's own commits reach its feed directly; their notifications must not send the feed
// back to the database for what it already holds (that read used to land on every commit,
// just as the fan-out started). Another replica's commits are still read from the log.
TEST(ChangeFeedTest, OwnCommitsAreNotReadBackButOtherReplicasCommitsAre) {
  auto replicas = OpenTwoReplicas("feed");
  ASSERT_TRUE(replicas.ok());
  ChangeLogReadCounter counted(*replicas.a);
  ChangeFeed feed(counted, {replicas.url, absl::Seconds(30), 64, absl::Seconds(30)});
  ASSERT_TRUE(feed.Start().ok());
  // Subscribing reads the log once (whatever came before the LISTEN).
  for (int i = 0; i < 100 && counted.reads() == 0; ++i) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_GE(counted.reads(), 1);
  const int reads_before = counted.reads();

  constexpr int kCommits = 20;
  for (int i = 0; i < kCommits; ++i) {
    ASSERT_TRUE(
        replicas.a->Commit(Changes({Put(ServiceResource("prod", absl::StrCat("s", i)))})).ok());
    absl::SleepFor(absl::Milliseconds(20));  // each notification arrives on its own
  }
  EXPECT_EQ(feed.LatestRevision(), kCommits);
  absl::SleepFor(absl::Milliseconds(200));  // the last notifications
  // A notification may still beat its commit's return to the writer now and then; reading
  // back every commit would be 20.
  EXPECT_LE(counted.reads() - reads_before, 3);

  ASSERT_TRUE(replicas.b->Commit(Changes({Put(ServiceResource("prod", "from-b"))})).ok());
  auto revisions = feed.WaitForRevisions(kCommits, absl::Seconds(10));
  ASSERT_TRUE(revisions.ok()) << revisions.status();
  ASSERT_EQ(revisions->size(), 1u);
  EXPECT_EQ((*revisions)[0]->changes(0).key().name(), "from-b");
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
