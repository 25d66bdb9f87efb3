#pragma once

#include <pqxx/connection>

#include <deque>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/store/change_planner.h"
#include "controlplane/store/config_store.h"

namespace meridian::store {

// Writes change sets to Postgres, coalescing the ones that arrive together into a single
// transaction (the way etcd batches proposals): each change set still gets its own
// revision, version checks and result, but the group shares one fsync. A change set that
// fails its checks is left out of the group; the others commit. A group costs one round
// trip when the writer knows the revision the database is at (no other replica has committed
// since its last write or read) and the group's checks pass on what it knows: keys it wrote or
// read last have that state, keys it has not seen are taken for absent (creates). The lock,
// the revision check, a check that those keys are absent, the writes and the commit travel as
// one query. Otherwise it costs two: lock and read, then write and commit (three when a key
// taken for absent exists: the failed attempt, then the two). Thread-safe; one writer thread
// owns the connection.
class GroupCommitter {
 public:
  struct Options {
    std::string database_url;
    size_t max_group_mutations = 20000;
  };

  explicit GroupCommitter(Options options);
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Blocks until the change set is committed or rejected. The change set's puts must
  // already be normalized and validated.
  absl::StatusOr<CommitResult> Commit(ChangeSet change_set);

  void SetCommitListener(CommitListener listener);

 private:
  struct Pending {
    ChangeSet change_set;
    std::promise<absl::StatusOr<CommitResult>> result;
  };

  using Group = std::vector<std::unique_ptr<Pending>>;
  // Beyond this many, known_ starts afresh: it is a cache of the keys being written, not a
  // copy of the database.
  static constexpr size_t kMaxKnownResources = 10000;

  // What the writer thread knows of the database without asking: the state (nullopt =
  // absent) of the keys it last loaded or wrote, as of `revision`. True only while no other
  // replica commits, so a write planned on it checks the revision inside its transaction.
  struct KnownState {
    int64_t revision = -1;  // -1: nothing known
    absl::flat_hash_map<ResourceKey, std::optional<v1::Resource>> resources;
    void Forget() {
      revision = -1;
      resources.clear();
    }
  };

  void WriterLoop();
  void CommitGroup(Group& group);
  absl::Status RunGroupTransaction(Group& group);
  // Plans the group on known_ (keys it lacks as absent) and commits it in one round trip,
  // the revision and absence checks included. nullopt when it cannot: nothing is known yet,
  // a service is deleted (its routes are looked up by reference), a change set fails its
  // checks (known_ may be stale, so the verdict must come from the database), the database
  // was at another revision, or a key taken for absent exists; the caller then takes the
  // two-round-trip path. Errors only when the outcome is unknown.
  std::optional<absl::Status> TryCommitOnKnownState(Group& group,
                                                    const std::vector<ResourceKey>& keys);
  // Records what the slow path read as of `revision` (taken from the planner once it is
  // done, not copied); false if it is too much to keep.
  bool RememberLoaded(int64_t revision, const std::vector<ResourceKey>& keys,
                      absl::flat_hash_map<ResourceKey, v1::Resource> loaded);
  // Records what a committed (or checked) plan leaves in the database.
  void Remember(const ChangePlanner& plan);
  // Hands the results to the writers and the committed revisions to the listener.
  void Deliver(Group& group, std::vector<absl::StatusOr<CommitResult>> results,
               std::vector<v1::RevisionRecord> committed);

  const Options options_;
  std::unique_ptr<pqxx::connection> connection_;  // writer thread only
  KnownState known_;                              // writer thread only
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex listener_mu_;
  CommitListener listener_ ABSL_GUARDED_BY(listener_mu_);
  std::thread writer_;
};

}  // namespace meridian::store
