#pragma once

#include <pqxx/connection>

#include <deque>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/store/config_store.h"

namespace meridian::store {

// Writes change sets to Postgres, coalescing the ones that arrive together into a single
// transaction (the way etcd batches proposals): each change set still gets its own
// revision, version checks and result, but the group shares one fsync. A change set that
// fails its checks is left out of the group; the others commit. Thread-safe; one writer
// thread owns the connection.
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

  void WriterLoop();
  void CommitGroup(Group& group);
  absl::Status RunGroupTransaction(Group& group);

  const Options options_;
  std::unique_ptr<pqxx::connection> connection_;  // writer thread only
  absl::Mutex mu_;
  std::deque<std::unique_ptr<Pending>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex listener_mu_;
  CommitListener listener_ ABSL_GUARDED_BY(listener_mu_);
  std::thread writer_;
};

}  // namespace meridian::store
