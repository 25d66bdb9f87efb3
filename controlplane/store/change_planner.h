#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "controlplane/store/config_store.h"

namespace meridian::store {

// Decides what a sequence of change sets does to the current state, without I/O: checks
// expected versions, create-only, deletes of missing resources and route references,
// assigns revisions and per-resource metadata, and records the change-log rows. A change
// set that fails leaves the plan untouched. The store loads the state, plans, then writes
// the plan in one transaction. Not thread-safe.
class ChangePlanner {
 public:
  struct PlannedChange {
    int64_t revision;
    int32_t seq;
    ResourceKey key;
    v1::Operation operation;
    std::optional<v1::Resource> before;
    std::optional<v1::Resource> after;
  };
  struct PlannedRevision {
    int64_t revision;
    std::string actor;
    std::string comment;
    int64_t rollback_to;
  };

  // `loaded` holds the current resource for every key in KeysToLoad that exists.
  ChangePlanner(int64_t base_revision, absl::flat_hash_map<ResourceKey, v1::Resource> loaded);

  // Every key whose current state the change sets depend on: the keys they write and the
  // services their routes point at.
  static std::vector<ResourceKey> KeysToLoad(const std::vector<const ChangeSet*>& change_sets);
  // Services the change sets delete: the routes that reference them must be loaded too, so
  // a service still in use cannot be deleted.
  static std::vector<ResourceKey> DeletedServices(const std::vector<const ChangeSet*>& change_sets);
  // The services a route sends traffic to, each once.
  static std::vector<std::string> ReferencedServices(const v1::Resource& route);

  absl::StatusOr<CommitResult> Apply(const ChangeSet& change_set);

  int64_t revision() const { return revision_; }
  // The planned revisions as change-log records (what a follower would read back).
  std::vector<v1::RevisionRecord> ToRevisionRecords(int64_t commit_unix_micros) const;
  const std::vector<PlannedChange>& changes() const { return changes_; }
  const std::vector<PlannedRevision>& revisions() const { return revisions_; }
  // Hands over the loaded state the plan was made on; nothing may be planned afterwards.
  absl::flat_hash_map<ResourceKey, v1::Resource> TakeLoaded() { return std::move(loaded_); }
  // The final state of every key written: nullopt = deleted.
  const absl::flat_hash_map<ResourceKey, std::optional<v1::Resource>>& written() const {
    return written_;
  }

 private:
  using Staged = absl::flat_hash_map<ResourceKey, std::optional<v1::Resource>>;

  const v1::Resource* Lookup(const ResourceKey& key, const Staged& staged) const;
  absl::Status CheckNotReferenced(const ResourceKey& service, const Staged& staged) const;
  absl::Status CheckRouteReferences(const v1::Resource& route, const Staged& staged) const;

  int64_t revision_;
  absl::flat_hash_map<ResourceKey, v1::Resource> loaded_;
  absl::flat_hash_map<ResourceKey, std::optional<v1::Resource>> written_;
  std::vector<PlannedChange> changes_;
  std::vector<PlannedRevision> revisions_;
};

}  // namespace meridian::store
