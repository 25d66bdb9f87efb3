#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/store/change_feed.h"
#include "controlplane/store/config_store.h"
#include "controlplane/xds/envoy_projection.h"
#include "controlplane/xds/xds_entry.h"

namespace meridian::xds {

struct SharedDelta;

// The names of one (environment, type) that an update touched, each once.
struct IndexChange {
  std::string environment;
  std::string type_url;
  std::vector<std::string> names;
  // Per name, the revision of the entry the update replaced (kAbsentRevision: it had none),
  // so a stream that held the index as it was can tell what its client holds.
  std::vector<int64_t> previous;
  // Set by the fan-out: the response in-sync wildcard delta streams get (shared_delta.h).
  std::shared_ptr<const SharedDelta> shared;
};

struct IndexUpdate {
  int64_t base_revision = 0;  // the index's revision before the update
  int64_t revision = 0;
  std::vector<IndexChange> changes;
};

// Meridian's resources, per environment and xDS type, as serialized xDS entries, next to their
// Envoy projection (Cluster, ClusterLoadAssignment, Listener, RouteConfiguration, Secret) under
// the Envoy type URLs. Built from a store snapshot, then advanced revision by revision from the
// change log, so a change costs one serialization however many streams receive it.
// Thread-safe: one writer (the xDS server's follower) calls Reset and Apply; many readers
// (streams).
class ResourceIndex {
 public:
  // Rebuilds the index from a snapshot; returns every name whose entry differs from before.
  IndexUpdate Reset(const store::StateSnapshot& snapshot);
  // Applies whole revisions newer than revision(); returns what they touched.
  IndexUpdate Apply(const std::vector<store::RevisionPtr>& revisions);

  // A consistent read: everything read through one View is the index at exactly revision(),
  // so a response built from it can be labelled with that revision. Apply waits while a View
  // is held: hold it only to build one response.
  class View {
   public:
    explicit View(const ResourceIndex& index) : index_(index), lock_(&index.mu_) {}
    int64_t revision() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return index_.revision_; }
    XdsEntryPtr Get(const std::string& environment, const std::string& type_url,
                    const std::string& name) const;
    std::vector<XdsEntryPtr> List(const std::string& environment,
                                  const std::string& type_url) const;

   private:
    const ResourceIndex& index_;
    absl::ReaderMutexLock lock_;
  };

  int64_t revision() const;
  XdsEntryPtr Get(const std::string& environment, const std::string& type_url,
                  const std::string& name) const {
    return View(*this).Get(environment, type_url, name);
  }

  static XdsEntryPtr MakeEntry(const v1::Resource& resource);

 private:
  using Names = absl::flat_hash_map<std::string, XdsEntryPtr>;
  using TypeKey = std::pair<std::string, std::string>;  // (environment, type_url)

  EnvoyProjection projection_;  // touched only by the writer, outside mu_
  mutable absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<TypeKey, Names> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meridian::xds
