#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/store/config_store.h"

namespace meridian::store {

using RevisionPtr = std::shared_ptr<const v1::RevisionRecord>;

// Follows the store's change log (the outbox) and hands whole revisions to waiters in this
// process. A Postgres LISTEN connection wakes it on every commit (from any replica); a
// periodic poll catches what a lost notification would miss. Keeps the newest revisions in
// memory so watchers do not each query the database. Thread-safe.
class ChangeFeed {
 public:
  struct Options {
    std::string listen_database_url;  // empty = poll only
    absl::Duration poll_interval = absl::Milliseconds(500);
    size_t retained_revisions = 4096;  // in memory
  };

  ChangeFeed(ConfigStore& store, Options options);
  ~ChangeFeed();
  ChangeFeed(const ChangeFeed&) = delete;
  ChangeFeed& operator=(const ChangeFeed&) = delete;

  // Starts the follower thread at the store's current revision.
  absl::Status Start();
  void Stop();

  // Revisions newer than after_revision (at most max_revisions), waiting up to `timeout` for
  // the first. Empty on timeout or Stop. OutOfRange if after_revision is compacted.
  absl::StatusOr<std::vector<RevisionPtr>> WaitForRevisions(int64_t after_revision,
                                                            absl::Duration timeout,
                                                            size_t max_revisions = 256);

  int64_t LatestRevision() const;

  // Revisions committed by this process, handed over directly (the store's commit listener).
  // Accepted only when they continue the feed without a gap; otherwise the follower reads
  // the log, which also carries other replicas' revisions.
  void Publish(std::vector<v1::RevisionRecord> revisions);

 private:
  void FollowLoop();
  void ListenLoop();
  absl::Status CatchUp();
  void Append(v1::RevisionRecord record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ConfigStore& store_;
  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<RevisionPtr> recent_ ABSL_GUARDED_BY(mu_);
  int64_t latest_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool poke_ ABSL_GUARDED_BY(mu_) = false;
  std::thread follower_;
  std::thread listener_;
};

}  // namespace meridian::store
