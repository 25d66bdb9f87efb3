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
//
// This process's own commits arrive through Publish, and their notifications then name a
// revision the feed already holds: those are not read back from the log, so a commit costs
// the committing replica no extra query at the moment its fan-out starts.
class ChangeFeed {
 public:
  struct Options {
    std::string listen_database_url;  // empty = poll only
    // How often to read the log when nothing woke the feed: `poll_interval` without a LISTEN
    // connection, `listening_poll_interval` while one is subscribed (PostgreSQL delivers
    // every notification to a connected listener, so that poll is only a safety net).
    absl::Duration poll_interval = absl::Milliseconds(500);
    size_t retained_revisions = 4096;  // in memory
    absl::Duration listening_poll_interval = absl::Seconds(5);
    // How long a notification waits for this process's own commit to be handed over before
    // the log is read (another replica's commit is read this much later).
    absl::Duration publish_grace = absl::Milliseconds(5);
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
  // Asks the follower to read the log up to `revision` (kUnknownRevision: whatever is there).
  void Wake(int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static constexpr int64_t kUnknownRevision = INT64_MAX;

  ConfigStore& store_;
  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<RevisionPtr> recent_ ABSL_GUARDED_BY(mu_);
  int64_t latest_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool poke_ ABSL_GUARDED_BY(mu_) = false;
  int64_t wanted_ ABSL_GUARDED_BY(mu_) = 0;  // the newest revision a wake-up asked for
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  std::thread follower_;
  std::thread listener_;
};

}  // namespace meridian::store
