// PostgresConfigStore against a real PostgreSQL: revisions, versions, history, point-in-time
// reads, diff, rollback, compaction, group commit under concurrency.
#include <atomic>
#include <thread>

#include "controlplane/store/postgres_config_store.h"
#include "gtest/gtest.h"
#include "tests/integration/store_test_util.h"

namespace meridian::store {
namespace {

using ::meridian::testing::Changes;
using ::meridian::testing::Delete;
using ::meridian::testing::OpenFreshStore;
using ::meridian::testing::OpenTwoReplicas;
using ::meridian::testing::Put;
using ::meridian::testing::RouteResource;
using ::meridian::testing::ServiceResource;

// Adds one to the "count" label of prod/services/counter with an optimistic write (expected
// version), retrying when another writer got there first. False on any other failure.
bool IncrementCounter(PostgresConfigStore& store) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto current = store.Get({v1::SERVICE, "prod", "counter"}, 0);
    if (!current.ok()) return false;
    v1::Resource next = *current;
    const int count = next.labels().contains("count") ? std::stoi(next.labels().at("count")) : 0;
    (*next.mutable_labels())["count"] = std::to_string(count + 1);
    auto written = store.Commit(Changes({Put(next, current->version())}));
    if (written.ok()) return true;
    if (!absl::IsFailedPrecondition(written.status())) return false;
  }
  return false;
}

class PostgresConfigStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenFreshStore("store");
    ASSERT_NE(store_, nullptr);
  }

  int64_t CurrentRevision() {
    auto revisions = store_->Revisions();
    EXPECT_TRUE(revisions.ok()) << revisions.status();
    return revisions.ok() ? revisions->current : -1;
  }

  std::unique_ptr<PostgresConfigStore> store_;
};

TEST_F(PostgresConfigStoreTest, CreateUpdateDeleteAssignVersionsAndRevisions) {
  auto created = store_->Commit(Changes({Put(ServiceResource("prod", "checkout"))}));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->revision, 1);
  ASSERT_EQ(created->resources.size(), 1u);
  EXPECT_EQ(created->resources[0].version(), 1);
  EXPECT_EQ(created->resources[0].create_revision(), 1);

  auto updated = store_->Commit(Changes({Put(ServiceResource("prod", "checkout", 9090), 1)}));
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->revision, 2);

  auto got = store_->Get({v1::SERVICE, "prod", "checkout"}, 0);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version(), 2);
  EXPECT_EQ(got->create_revision(), 1);
  EXPECT_EQ(got->mod_revision(), 2);
  EXPECT_EQ(got->service().ports(0).port(), 9090u);

  auto deleted = store_->Commit(Changes({Delete({v1::SERVICE, "prod", "checkout"}, 2)}));
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->revision, 3);
  EXPECT_TRUE(absl::IsNotFound(store_->Get({v1::SERVICE, "prod", "checkout"}, 0).status()));
}

TEST_F(PostgresConfigStoreTest, RejectsWriteWithStaleVersionAndChangesNothing) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "checkout"))})).ok());
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "checkout", 81))})).ok());
  auto stale = store_->Commit(Changes({Put(ServiceResource("prod", "checkout", 82), 1)}));
  EXPECT_TRUE(absl::IsFailedPrecondition(stale.status())) << stale.status();
  EXPECT_EQ(CurrentRevision(), 2);
  EXPECT_EQ(store_->Get({v1::SERVICE, "prod", "checkout"}, 0)->service().ports(0).port(), 81u);
}

TEST_F(PostgresConfigStoreTest, CreateOnlyFailsWhenPresent) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "checkout"))})).ok());
  Mutation again = Put(ServiceResource("prod", "checkout"));
  again.create_only = true;
  EXPECT_TRUE(absl::IsAlreadyExists(store_->Commit(Changes({again})).status()));
}

TEST_F(PostgresConfigStoreTest, BatchIsAllOrNothing) {
  auto bad = store_->Commit(Changes({Put(ServiceResource("prod", "a")),
                                     Put(RouteResource("prod", "shop", {{"missing", 100}}))}));
  EXPECT_TRUE(absl::IsFailedPrecondition(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("missing"), absl::string_view::npos);
  EXPECT_EQ(CurrentRevision(), 0);
  EXPECT_TRUE(absl::IsNotFound(store_->Get({v1::SERVICE, "prod", "a"}, 0).status()));

  auto good = store_->Commit(Changes({Put(ServiceResource("prod", "a")),
                                      Put(ServiceResource("prod", "b")),
                                      Put(RouteResource("prod", "shop", {{"a", 90}, {"b", 10}}))}));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->revision, 1);
  auto record = store_->GetRevision(1);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->changes_size(), 3);
}

TEST_F(PostgresConfigStoreTest, RefusesToDeleteServiceARouteStillUses) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a")), Put(ServiceResource("prod", "b")),
                                      Put(RouteResource("prod", "shop", {{"a", 90}, {"b", 10}}))}))
                  .ok());
  auto refused = store_->Commit(Changes({Delete({v1::SERVICE, "prod", "b"})}));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("shop"), absl::string_view::npos);
  // Moving the route off the service in the same change set makes the delete valid.
  auto moved = store_->Commit(Changes({Put(RouteResource("prod", "shop", {{"a", 100}})),
                                       Delete({v1::SERVICE, "prod", "b"})}));
  EXPECT_TRUE(moved.ok()) << moved.status();
}

TEST_F(PostgresConfigStoreTest, RejectsInvalidSpecWithFieldName) {
  auto bad = store_->Commit(Changes({Put(ServiceResource("prod", "checkout", 70000))}));
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status()));
  EXPECT_NE(bad.status().message().find("spec.ports[0].port"), absl::string_view::npos)
      << bad.status();
  v1::Resource bad_name = ServiceResource("prod", "Bad_Name");
  EXPECT_TRUE(absl::IsInvalidArgument(store_->Commit(Changes({Put(bad_name)})).status()));
  EXPECT_EQ(CurrentRevision(), 0);
}

TEST_F(PostgresConfigStoreTest, HistoryRecordsActorCommentAndBeforeAfter) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "checkout"))}, "alice", "create"))
                  .ok());
  ASSERT_TRUE(
      store_->Commit(Changes({Put(ServiceResource("prod", "checkout", 81))}, "bob", "port")).ok());
  auto history = store_->History({"prod", v1::SERVICE, "checkout", 0, 10});
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ((*history)[1].actor(), "bob");
  EXPECT_EQ((*history)[1].comment(), "port");
  EXPECT_EQ((*history)[1].change().before().service().ports(0).port(), 8080u);
  EXPECT_EQ((*history)[1].change().after().service().ports(0).port(), 81u);
  EXPECT_FALSE((*history)[0].change().has_before());

  HistoryQuery latest{"prod", v1::SERVICE, "checkout", 0, 1};
  latest.newest = true;
  auto newest = store_->History(latest);
  ASSERT_TRUE(newest.ok()) << newest.status();
  ASSERT_EQ(newest->size(), 1u);
  EXPECT_EQ((*newest)[0].actor(), "bob");
}

TEST_F(PostgresConfigStoreTest, ReadsStateAsOfPastRevision) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a"))})).ok());       // 1
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "b"))})).ok());       // 2
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a", 81))})).ok());   // 3
  ASSERT_TRUE(store_->Commit(Changes({Delete({v1::SERVICE, "prod", "b"})})).ok());      // 4

  auto at2 = store_->List({v1::SERVICE, "prod", "", 100, "", 2});
  ASSERT_TRUE(at2.ok()) << at2.status();
  ASSERT_EQ(at2->resources.size(), 2u);
  EXPECT_EQ(at2->resources[0].service().ports(0).port(), 8080u);
  auto now = store_->List({v1::SERVICE, "prod", "", 100, "", 0});
  ASSERT_EQ(now->resources.size(), 1u);
  EXPECT_EQ(now->resources[0].service().ports(0).port(), 81u);
  EXPECT_EQ(store_->Get({v1::SERVICE, "prod", "b"}, 3)->name(), "b");
  EXPECT_TRUE(absl::IsOutOfRange(store_->Get({v1::SERVICE, "prod", "a"}, 99).status()));
}

TEST_F(PostgresConfigStoreTest, ListPaginatesAndFiltersByLabels) {
  for (int i = 0; i < 5; ++i) {
    v1::Resource resource = ServiceResource("prod", "svc-" + std::to_string(i));
    (*resource.mutable_labels())["tier"] = i % 2 ? "web" : "db";
    ASSERT_TRUE(store_->Commit(Changes({Put(resource)})).ok());
  }
  auto page1 = store_->List({v1::SERVICE, "prod", "tier=web", 1, "", 0});
  ASSERT_TRUE(page1.ok()) << page1.status();
  ASSERT_EQ(page1->resources.size(), 1u);
  EXPECT_EQ(page1->resources[0].name(), "svc-1");
  auto page2 = store_->List({v1::SERVICE, "prod", "tier=web", 1, page1->next_page_token, 0});
  ASSERT_EQ(page2->resources.size(), 1u);
  EXPECT_EQ(page2->resources[0].name(), "svc-3");
  EXPECT_TRUE(page2->next_page_token.empty());
  EXPECT_EQ(store_->List({v1::SERVICE, "prod", "tier!=web", 100, "", 0})->resources.size(), 3u);
  EXPECT_TRUE(absl::IsInvalidArgument(store_->List({v1::SERVICE, "prod", "a=b=c=", 1, "", 0}).status()));
}

TEST_F(PostgresConfigStoreTest, DiffShowsNetChangesBetweenRevisions) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a"))})).ok());      // 1
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a", 81))})).ok());  // 2
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a", 82))})).ok());  // 3
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("staging", "x"))})).ok());   // 4
  auto diff = store_->Diff(1, 0, "prod");
  ASSERT_TRUE(diff.ok()) << diff.status();
  ASSERT_EQ(diff->size(), 1u);
  EXPECT_EQ((*diff)[0].before().service().ports(0).port(), 8080u);
  EXPECT_EQ((*diff)[0].after().service().ports(0).port(), 82u);
  EXPECT_EQ(store_->Diff(0, 0, "")->size(), 2u);
}

TEST_F(PostgresConfigStoreTest, RollbackOneResourceWritesInverseRevision) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a"))})).ok());      // 1
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "b"))})).ok());      // 2
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a", 81))})).ok());  // 3
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "b", 91))})).ok());  // 4
  auto rolled = store_->Rollback({1, "prod", v1::SERVICE, "a", "carol", ""});
  ASSERT_TRUE(rolled.ok()) << rolled.status();
  EXPECT_EQ(rolled->revision, 5);
  auto a = store_->Get({v1::SERVICE, "prod", "a"}, 0);
  EXPECT_EQ(a->service().ports(0).port(), 8080u);
  EXPECT_EQ(a->version(), 3);  // a new version, not a rewind
  EXPECT_EQ(store_->Get({v1::SERVICE, "prod", "b"}, 0)->service().ports(0).port(), 91u);
  auto record = store_->GetRevision(5);
  EXPECT_EQ(record->rollback_to(), 1);
  EXPECT_EQ(record->actor(), "carol");
}

TEST_F(PostgresConfigStoreTest, RollbackEnvironmentRestoresDeletesAndRemovesCreates) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a"))})).ok());     // 1
  ASSERT_TRUE(store_->Commit(Changes({Delete({v1::SERVICE, "prod", "a"})})).ok());    // 2
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "new"))})).ok());   // 3
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("staging", "s"))})).ok());  // 4
  auto rolled = store_->Rollback({1, "prod", v1::KIND_UNSPECIFIED, "", "carol", "undo"});
  ASSERT_TRUE(rolled.ok()) << rolled.status();
  auto prod = store_->List({v1::KIND_UNSPECIFIED, "prod", "", 100, "", 0});
  ASSERT_EQ(prod->resources.size(), 1u);
  EXPECT_EQ(prod->resources[0].name(), "a");
  EXPECT_TRUE(store_->Get({v1::SERVICE, "staging", "s"}, 0).ok());
}

TEST_F(PostgresConfigStoreTest, CompactionMakesOldRevisionsOutOfRange) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "a", 1000 + i))})).ok());
  }
  ASSERT_TRUE(store_->Compact(4).ok());
  EXPECT_TRUE(absl::IsOutOfRange(store_->ReadChangeLog(2, 10).status()));
  EXPECT_TRUE(absl::IsOutOfRange(store_->Get({v1::SERVICE, "prod", "a"}, 2).status()));
  auto tail = store_->ReadChangeLog(4, 10);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->size(), 2u);
  // State at the compaction point is still readable.
  EXPECT_EQ(store_->Get({v1::SERVICE, "prod", "a"}, 4)->service().ports(0).port(), 1003u);
}

TEST_F(PostgresConfigStoreTest, ConcurrentWritersNeverLoseAnUpdate) {
  ASSERT_TRUE(store_->Commit(Changes({Put(ServiceResource("prod", "counter"))})).ok());
  constexpr int kThreads = 8;
  constexpr int kIncrements = 25;
  std::atomic<int> failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        if (!IncrementCounter(*store_)) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  auto counter = store_->Get({v1::SERVICE, "prod", "counter"}, 0);
  EXPECT_EQ(counter->labels().at("count"), std::to_string(kThreads * kIncrements));
  EXPECT_EQ(counter->version(), 1 + kThreads * kIncrements);
}

// Two replicas (two stores, each with its own writer) on one database: each writer reads the
// current rows after it holds the writers' lock, so neither works from a stale copy. A stale
// read would let an increment overwrite the other replica's, or reuse a revision number.
TEST(PostgresConfigStoreReplicasTest, WritersOnTwoReplicasNeverLoseAnUpdate) {
  auto replicas = OpenTwoReplicas("replicas");
  ASSERT_TRUE(replicas.ok());
  ASSERT_TRUE(replicas.a->Commit(Changes({Put(ServiceResource("prod", "counter"))})).ok());
  constexpr int kThreadsPerReplica = 4;
  constexpr int kIncrements = 25;
  std::atomic<int> failures = 0;
  std::vector<std::thread> threads;
  for (PostgresConfigStore* store : {replicas.a.get(), replicas.b.get()}) {
    for (int t = 0; t < kThreadsPerReplica; ++t) {
      threads.emplace_back([&failures, store] {
        for (int i = 0; i < kIncrements; ++i) {
          if (!IncrementCounter(*store)) ++failures;
        }
      });
    }
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  const int total = 2 * kThreadsPerReplica * kIncrements;
  auto counter = replicas.b->Get({v1::SERVICE, "prod", "counter"}, 0);
  ASSERT_TRUE(counter.ok()) << counter.status();
  EXPECT_EQ(counter->labels().at("count"), std::to_string(total));
  EXPECT_EQ(counter->version(), 1 + total);
  auto revisions = replicas.a->Revisions();
  ASSERT_TRUE(revisions.ok()) << revisions.status();
  EXPECT_EQ(revisions->current, 1 + total);  // dense: no revision lost or reused
}

// Each replica's writer remembers the state it last wrote or read and plans the next write
// on it in one round trip; a write from another replica in between must send it back to the
// database, even when compaction has removed the revisions a stale plan would reuse.
TEST(PostgresConfigStoreReplicasTest, AReplicaWritesOnTopOfTheOtherReplicasWrites) {
  auto replicas = OpenTwoReplicas("replicas");
  ASSERT_TRUE(replicas.ok());
  PostgresConfigStore& a = *replicas.a;
  PostgresConfigStore& b = *replicas.b;
  auto put = [](PostgresConfigStore& store, uint32_t port, int64_t expected_version = 0) {
    return store.Commit(
        Changes({Put(ServiceResource("prod", "checkout", port), expected_version)}));
  };

  // Comments: the revision written, the version it leaves, and what the writer last saw.
  ASSERT_TRUE(put(a, 1).ok());                                // 1, v1
  ASSERT_TRUE(put(b, 2).ok());                                // 2, v2
  auto on_top = put(a, 3, /*expected_version=*/2);            // 3, v3 (a saw v1)
  ASSERT_TRUE(on_top.ok()) << on_top.status();
  ASSERT_TRUE(put(a, 4).ok());                                // 4, v4
  auto deleted = b.Commit(Changes({Delete({v1::SERVICE, "prod", "checkout"}, 4)}));
  ASSERT_TRUE(deleted.ok()) << deleted.status();              // 5, gone (b saw v2)
  auto created = a.Commit(Changes({Put(ServiceResource("prod", "checkout", 6))}));
  ASSERT_TRUE(created.ok()) << created.status();              // 6, v1 (a saw v4)
  EXPECT_EQ(created->resources[0].version(), 1);
  EXPECT_EQ(created->resources[0].create_revision(), 6);
  ASSERT_TRUE(put(a, 7).ok());                                // 7, v2
  // b last saw "absent at revision 5"; revisions 1-7 are compacted away.
  ASSERT_TRUE(a.Compact(7).ok());
  auto stale = put(b, 8);
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_EQ(stale->revision, 8);
  EXPECT_EQ(stale->resources[0].version(), 3);
  EXPECT_EQ(stale->resources[0].create_revision(), 6);

  for (PostgresConfigStore* store : {&a, &b}) {
    auto current = store->Get({v1::SERVICE, "prod", "checkout"}, 0);
    ASSERT_TRUE(current.ok()) << current.status();
    EXPECT_EQ(current->version(), 3);
    EXPECT_EQ(current->service().ports(0).port(), 8u);
    auto revisions = store->Revisions();
    ASSERT_TRUE(revisions.ok()) << revisions.status();
    EXPECT_EQ(revisions->current, 8);
  }
  auto log = a.ReadChangeLog(7, 10);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].revision(), 8);
}

// A writer plans keys it has never seen as absent (creates cost one round trip); when such a
// key exists after all (written before this writer started, at the revision it knows), the
// write must still land as an update of it, and a create-only write must still fail.
TEST(PostgresConfigStoreReplicasTest, AKeyTheWriterHasNotSeenIsUpdatedNotRecreated) {
  auto replicas = OpenTwoReplicas("unseen");
  ASSERT_TRUE(replicas.ok());
  PostgresConfigStore& a = *replicas.a;
  PostgresConfigStore& b = *replicas.b;
  ASSERT_TRUE(a.Commit(Changes({Put(ServiceResource("prod", "checkout", 1))})).ok());  // 1
  // b's writer learns revision 1 (and "orders is absent"), not checkout.
  ASSERT_TRUE(b.Commit(Changes({Put(ServiceResource("prod", "orders", 2))})).ok());  // 2

  auto updated = b.Commit(Changes({Put(ServiceResource("prod", "checkout", 3))}));  // 3
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->revision, 3);
  EXPECT_EQ(updated->resources[0].version(), 2);
  EXPECT_EQ(updated->resources[0].create_revision(), 1);
  auto log = b.ReadChangeLog(2, 10);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->size(), 1u);
  ASSERT_EQ((*log)[0].changes_size(), 1);
  ASSERT_TRUE((*log)[0].changes(0).has_before());  // an update, not a create
  EXPECT_EQ((*log)[0].changes(0).before().service().ports(0).port(), 1u);

  // Unseen by b's writer until now: payments, created by a; then a create-only write of it.
  ASSERT_TRUE(a.Commit(Changes({Put(ServiceResource("prod", "payments", 4))})).ok());  // 4
  ASSERT_TRUE(b.Commit(Changes({Put(ServiceResource("prod", "orders", 5))})).ok());    // 5
  store::Mutation create = Put(ServiceResource("prod", "payments", 6));
  create.create_only = true;
  auto duplicate = b.Commit(Changes({create}));
  EXPECT_TRUE(absl::IsAlreadyExists(duplicate.status())) << duplicate.status();
  // A key that is absent is created, and the revisions stay dense.
  store::Mutation fresh = Put(ServiceResource("prod", "shipping", 7));
  fresh.create_only = true;
  auto created = b.Commit(Changes({fresh}));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->revision, 6);
  EXPECT_EQ(created->resources[0].version(), 1);
  EXPECT_EQ(created->resources[0].create_revision(), 6);
  auto payments = a.Get({v1::SERVICE, "prod", "payments"}, 0);
  ASSERT_TRUE(payments.ok()) << payments.status();
  EXPECT_EQ(payments->version(), 1);
  EXPECT_EQ(payments->service().ports(0).port(), 4u);
}

TEST_F(PostgresConfigStoreTest, ConcurrentIndependentWritesGetDistinctDenseRevisions) {
  constexpr int kThreads = 16;
  constexpr int kWrites = 20;
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> revisions(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        auto result = store_->Commit(Changes(
            {Put(ServiceResource("prod", "s-" + std::to_string(t) + "-" + std::to_string(i)))}));
        if (result.ok()) revisions[t].push_back(result->revision);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::vector<int64_t> all;
  for (const auto& per_thread : revisions) all.insert(all.end(), per_thread.begin(), per_thread.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kWrites));
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], static_cast<int64_t>(i + 1));
  auto log = store_->ReadChangeLog(0, 1000);
  EXPECT_EQ(log->size(), all.size());
}

TEST_F(PostgresConfigStoreTest, LargeBatchIsOneRevision) {
  std::vector<Mutation> mutations;
  for (int i = 0; i < 10000; ++i) {
    v1::Resource endpoint;
    endpoint.set_kind(v1::ENDPOINT);
    endpoint.set_environment("prod");
    endpoint.set_name("checkout-" + std::to_string(i));
    endpoint.mutable_endpoint()->set_service("checkout");
    endpoint.mutable_endpoint()->set_address("10.0.0.1");
    endpoint.mutable_endpoint()->set_port(1 + i);
    mutations.push_back(Put(endpoint));
  }
  auto result = store_->Commit(Changes(std::move(mutations)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->revision, 1);
  auto list = store_->List({v1::ENDPOINT, "prod", "", 1000, "", 0});
  EXPECT_EQ(list->resources.size(), 1000u);
  EXPECT_FALSE(list->next_page_token.empty());
  // A second batch over the same keys updates all of them in one more revision.
  std::vector<Mutation> updates;
  for (const auto& resource : result->resources) updates.push_back(Put(resource, 1));
  auto second = store_->Commit(Changes(std::move(updates)));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->revision, 2);
  EXPECT_EQ(second->resources.back().version(), 2);
}

}  // namespace
}  // namespace meridian::store
