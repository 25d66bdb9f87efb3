// NodeRegistry's write cadence: connects, disconnects and NACKs go out on the next flush;
// progress alone (sent/applied revisions) waits for the progress interval or an explicit
// Flush(), so ACK traffic from many nodes does not rewrite every node row per revision.
#include "controlplane/convergence/node_registry.h"

#include <functional>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace meridian::convergence {
namespace {

class RecordingStore : public NodeStatusStore {
 public:
  absl::Status Upsert(const std::vector<NodeRecord>& records) override {
    absl::MutexLock lock(&mu_);
    for (const NodeRecord& record : records) written_.push_back(record);
    return absl::OkStatus();
  }
  absl::Status UpdateProgress(const std::vector<NodeRecord>& records) override {
    absl::MutexLock lock(&mu_);
    for (const NodeRecord& record : records) {
      // Only the progress columns reach the table: record nothing else.
      NodeRecord progress;
      progress.identity.id = record.identity.id;
      progress.replica = record.replica;
      progress.streams = -1;  // "not written"
      progress.last_sent_revision = record.last_sent_revision;
      progress.applied_revision = record.applied_revision;
      progress.answered_revision = record.answered_revision;
      written_.push_back(progress);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<v1::NodeStatus>> List(const std::vector<std::string>&,
                                                   absl::Duration) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::NodeStatus> Get(const std::string&, absl::Duration) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<std::vector<std::string>> RevisionScope(int64_t) override {
    return absl::UnimplementedError("not used");
  }

  // Polls (bounded) until a record matching `pred` was written; returns it.
  std::optional<NodeRecord> WaitFor(const std::function<bool(const NodeRecord&)>& pred,
                                    absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        for (const NodeRecord& record : written_) {
          if (pred(record)) return record;
        }
      }
      if (absl::Now() >= deadline) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

 private:
  absl::Mutex mu_;
  std::vector<NodeRecord> written_ ABSL_GUARDED_BY(mu_);
};

xds::NodeIdentity Node(const std::string& id) {
  xds::NodeIdentity node;
  node.id = id;
  node.environment = "prod";
  return node;
}

NodeRegistry::Options FastStateSlowProgress() {
  NodeRegistry::Options options;
  options.replica_id = "replica-1";
  options.flush_interval = absl::Milliseconds(10);
  options.heartbeat_interval = absl::Hours(1);
  options.progress_flush_interval = absl::Hours(1);
  return options;
}

TEST(NodeRegistryTest, ConnectsAndNacksAreWrittenAtOnceProgressWaitsForItsInterval) {
  RecordingStore store;
  NodeRegistry registry(store, FastStateSlowProgress());
  registry.Start();
  registry.StreamOpened(Node("n1"), 1);
  auto opened =
      store.WaitFor([](const NodeRecord& r) { return r.identity.id == "n1" && r.streams == 1; },
                    absl::Seconds(5));
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->replica, "replica-1");
  EXPECT_EQ(opened->identity.environment, "prod");

  registry.Sent(Node("n1"), 7);
  registry.Synced(Node("n1"), 7);
  // Twenty flush intervals: progress alone is not written by the loop.
  EXPECT_FALSE(store
                   .WaitFor([](const NodeRecord& r) { return r.applied_revision == 7; },
                            absl::Milliseconds(200))
                   .has_value());
  // A query's Flush() writes it.
  ASSERT_TRUE(registry.Flush().ok());
  auto progressed = store.WaitFor(
      [](const NodeRecord& r) { return r.applied_revision == 7 && r.last_sent_revision == 7; },
      absl::Seconds(1));
  ASSERT_TRUE(progressed.has_value());
  EXPECT_EQ(progressed->streams, -1) << "progress went out as a full row";

  registry.Nacked(Node("n1"), "type.googleapis.com/meridian.v1.Service", 8, "bad port");
  auto nacked =
      store.WaitFor([](const NodeRecord& r) { return r.nacked_revision == 8; }, absl::Seconds(5));
  ASSERT_TRUE(nacked.has_value());
  EXPECT_EQ(nacked->nack_error, "bad port");
  EXPECT_EQ(nacked->applied_revision, 7);
  EXPECT_EQ(nacked->answered_revision, 7) << "applied implies answered";

  // Still rejecting, it answers revision 9: answered moves, applied stays.
  registry.Answered(Node("n1"), 9);
  ASSERT_TRUE(registry.Flush().ok());
  auto answered = store.WaitFor([](const NodeRecord& r) { return r.answered_revision == 9; },
                                absl::Seconds(1));
  ASSERT_TRUE(answered.has_value());
  EXPECT_EQ(answered->applied_revision, 7);

  registry.StreamClosed(Node("n1"), 1);
  EXPECT_TRUE(store.WaitFor([](const NodeRecord& r) { return r.streams == 0; }, absl::Seconds(5))
                  .has_value());
  registry.Stop();
}

TEST(NodeRegistryTest, ProgressIsWrittenWithinItsInterval) {
  RecordingStore store;
  NodeRegistry::Options options = FastStateSlowProgress();
  options.progress_flush_interval = absl::Milliseconds(50);
  NodeRegistry registry(store, options);
  registry.Start();
  registry.StreamOpened(Node("n1"), 1);
  registry.Synced(Node("n1"), 3);
  EXPECT_TRUE(
      store.WaitFor([](const NodeRecord& r) { return r.applied_revision == 3; }, absl::Seconds(5))
          .has_value());
  // Revisions never move backwards (a late ACK of an older response).
  registry.Synced(Node("n1"), 2);
  ASSERT_TRUE(registry.Flush().ok());
  EXPECT_FALSE(store
                   .WaitFor([](const NodeRecord& r) { return r.applied_revision == 2; },
                            absl::Milliseconds(100))
                   .has_value());
  registry.Stop();
}

// Progress every 50 ms, held back by a running fan-out for at most `max_deferral`.
NodeRegistry::Options FastProgressDeferredUpTo(absl::Duration max_deferral) {
  NodeRegistry::Options options = FastStateSlowProgress();
  options.progress_flush_interval = absl::Milliseconds(50);
  options.max_progress_deferral = max_deferral;
  return options;
}

// Progress rows wait while a fan-out runs (it shares the cores with them), then go out, all
// the slices that fell due at once; connects are not held back.
TEST(NodeRegistryTest, ProgressWaitsForARunningFanOut) {
  RecordingStore store;
  const NodeRegistry::Options options = FastProgressDeferredUpTo(absl::Hours(1));
  NodeRegistry registry(store, options);
  registry.Start();
  registry.FanOutStarted();
  registry.StreamOpened(Node("n1"), 1);
  registry.StreamOpened(Node("n2"), 2);
  EXPECT_TRUE(
      store.WaitFor([](const NodeRecord& r) { return r.identity.id == "n2"; }, absl::Seconds(5))
          .has_value());
  registry.Synced(Node("n1"), 3);
  registry.Synced(Node("n2"), 3);
  // Four progress intervals.
  EXPECT_FALSE(store
                   .WaitFor([](const NodeRecord& r) { return r.applied_revision == 3; },
                            absl::Milliseconds(200))
                   .has_value());
  registry.FanOutFinished();
  for (const char* id : {"n1", "n2"}) {
    EXPECT_TRUE(store
                    .WaitFor(
                        [id](const NodeRecord& r) {
                          return r.identity.id == id && r.applied_revision == 3;
                        },
                        absl::Seconds(5))
                    .has_value())
        << id;
  }
  registry.Stop();
}

TEST(NodeRegistryTest, ProgressWaitsForAFanOutOnlyUpToTheDeferralLimit) {
  RecordingStore store;
  const NodeRegistry::Options options = FastProgressDeferredUpTo(absl::Milliseconds(100));
  NodeRegistry registry(store, options);
  registry.Start();
  const absl::Time fan_out_started = absl::Now();
  registry.FanOutStarted();  // and never finishes
  registry.StreamOpened(Node("n1"), 1);
  ASSERT_TRUE(
      store.WaitFor([](const NodeRecord& r) { return r.identity.id == "n1"; }, absl::Seconds(5))
          .has_value());
  registry.Synced(Node("n1"), 4);
  EXPECT_TRUE(
      store.WaitFor([](const NodeRecord& r) { return r.applied_revision == 4; }, absl::Seconds(5))
          .has_value());
  EXPECT_GE(absl::Now() - fan_out_started, options.max_progress_deferral);
  registry.FanOutFinished();
  registry.Stop();
}

}  // namespace
}  // namespace meridian::convergence
