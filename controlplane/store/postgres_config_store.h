#pragma once

#include <memory>
#include <string>

#include "controlplane/store/config_store.h"
#include "controlplane/store/pg_connection_pool.h"
#include "controlplane/store/postgres_group_commit.h"

namespace meridian::store {

// ConfigStore on PostgreSQL: current state in `resources`, audit history and outbox in
// `revisions` + `changes`, written in one transaction per group of change sets. Reads use
// a small connection pool; writes go through the GroupCommitter. Thread-safe.
class PostgresConfigStore : public ConfigStore {
 public:
  struct Options {
    std::string database_url;
    int pool_size = 8;
  };

  // Connects and applies pending migrations.
  static absl::StatusOr<std::unique_ptr<PostgresConfigStore>> Open(const Options& options);

  absl::StatusOr<CommitResult> Commit(ChangeSet change_set) override;
  absl::StatusOr<v1::Resource> Get(const ResourceKey& key, int64_t at_revision) override;
  absl::StatusOr<ListResult> List(const ListQuery& query) override;
  absl::StatusOr<std::vector<v1::HistoryEntry>> History(const HistoryQuery& query) override;
  absl::StatusOr<v1::RevisionRecord> GetRevision(int64_t revision) override;
  absl::StatusOr<std::vector<v1::ChangeRecord>> Diff(int64_t from_revision, int64_t to_revision,
                                                     const std::string& environment) override;
  absl::StatusOr<CommitResult> Rollback(const RollbackSpec& spec) override;
  absl::StatusOr<std::vector<v1::RevisionRecord>> ReadChangeLog(int64_t after_revision,
                                                                int32_t max_revisions) override;
  absl::StatusOr<StateSnapshot> Snapshot() override;
  absl::StatusOr<StoreRevisions> Revisions() override;
  absl::Status Compact(int64_t revision) override;
  absl::Status CheckReady() override;
  void SetCommitListener(CommitListener listener) override {
    committer_.SetCommitListener(std::move(listener));
  }

  const std::string& database_url() const { return options_.database_url; }

 private:
  explicit PostgresConfigStore(Options options);

  const Options options_;
  PgConnectionPool pool_;
  GroupCommitter committer_;
};

}  // namespace meridian::store
