#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/model/resource_key.h"
#include "meridian/v1/config_service.pb.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::store {

using model::ResourceKey;

// One resource change inside a change set.
struct Mutation {
  enum class Operation { kPut, kDelete };
  Operation operation = Operation::kPut;
  ResourceKey key;
  v1::Resource resource;          // for kPut: labels + spec (metadata is assigned by the store)
  int64_t expected_version = 0;   // 0 = unconditional
  bool create_only = false;       // kPut only: fail with AlreadyExists if present
};

// An atomic change set: it becomes exactly one revision, or nothing.
struct ChangeSet {
  std::vector<Mutation> mutations;
  std::string actor = "anonymous";
  std::string comment;
  int64_t rollback_to = 0;        // >0 marks the revision as a rollback in history
};

struct CommitResult {
  int64_t revision = 0;
  std::vector<v1::Resource> resources;  // state after the write, one per put (secrets intact)
};

struct ListQuery {
  v1::Kind kind = v1::KIND_UNSPECIFIED;  // unspecified = every kind
  std::string environment;               // required
  std::string label_selector;
  int32_t page_size = 100;
  std::string page_token;                // opaque; empty = first page
  int64_t at_revision = 0;               // 0 = current
};

struct ListResult {
  std::vector<v1::Resource> resources;
  std::string next_page_token;
  int64_t revision = 0;
};

struct HistoryQuery {
  std::string environment;  // empty = any
  v1::Kind kind = v1::KIND_UNSPECIFIED;
  std::string name;         // empty = any
  int64_t since_revision = 0;
  int32_t limit = 100;
  // The newest `limit` entries (still returned oldest first) rather than the oldest ones after
  // since_revision: "what changed lately".
  bool newest = false;
};

struct RollbackSpec {
  int64_t to_revision = 0;
  std::string environment;               // required
  v1::Kind kind = v1::KIND_UNSPECIFIED;  // optional narrowing
  std::string name;                      // optional, requires kind
  std::string actor = "anonymous";
  std::string comment;
};

struct StateSnapshot {
  int64_t revision = 0;
  std::vector<v1::Resource> resources;
};

struct StoreRevisions {
  int64_t current = 0;
  int64_t compacted = 0;  // history at or below this revision is gone
};

// Receives the revisions this process committed, in commit order, on the writer thread.
// Must be quick and must not call back into the store.
using CommitListener = std::function<void(std::vector<v1::RevisionRecord> revisions)>;

// The versioned configuration store: every successful Commit is one new global revision,
// recorded with its audit record. Records returned by reads (history, diff, revisions) carry
// the full resource; callers redact before they leave the process.
// Implementations are thread-safe.
class ConfigStore {
 public:
  virtual ~ConfigStore() = default;

  // Errors: InvalidArgument (validation), NotFound (delete/expected_version of a missing
  // resource), AlreadyExists (create_only), FailedPrecondition (version mismatch, dangling
  // reference), Unavailable (database down).
  virtual absl::StatusOr<CommitResult> Commit(ChangeSet change_set) = 0;

  // at_revision 0 = current. OutOfRange if at_revision is compacted or in the future.
  virtual absl::StatusOr<v1::Resource> Get(const ResourceKey& key, int64_t at_revision) = 0;
  virtual absl::StatusOr<ListResult> List(const ListQuery& query) = 0;

  virtual absl::StatusOr<std::vector<v1::HistoryEntry>> History(const HistoryQuery& query) = 0;
  virtual absl::StatusOr<v1::RevisionRecord> GetRevision(int64_t revision) = 0;
  // Net changes between two revisions (to 0 = current); environment empty = all.
  virtual absl::StatusOr<std::vector<v1::ChangeRecord>> Diff(int64_t from_revision,
                                                             int64_t to_revision,
                                                             const std::string& environment) = 0;
  // Writes one new revision that makes the selection look as it did at to_revision.
  virtual absl::StatusOr<CommitResult> Rollback(const RollbackSpec& spec) = 0;

  // The change log from after_revision on, whole revisions, at most max_revisions of them.
  // OutOfRange if after_revision < compacted revision.
  virtual absl::StatusOr<std::vector<v1::RevisionRecord>> ReadChangeLog(int64_t after_revision,
                                                                        int32_t max_revisions) = 0;

  // Every current resource (all environments and kinds) and the revision they reflect, read
  // from one consistent snapshot. For building in-memory views such as the xDS index.
  virtual absl::StatusOr<StateSnapshot> Snapshot() = 0;

  virtual absl::StatusOr<StoreRevisions> Revisions() = 0;
  // Drops history at or below `revision` (must not exceed the current revision).
  virtual absl::Status Compact(int64_t revision) = 0;
  // One listener at a time; empty function = none. Lets the in-process change feed see local
  // commits without reading them back (it still reads what other replicas commit).
  virtual void SetCommitListener(CommitListener listener) = 0;
  // OK when the database is reachable and migrated.
  virtual absl::Status CheckReady() = 0;
};

}  // namespace meridian::store
