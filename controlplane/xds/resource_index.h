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

namespace meridian::xds {

// One resource as xDS sends it, serialized once and shared by every stream.
struct XdsEntry {
  std::string name;
  std::string version;         // the resource's mod_revision, as xDS resource version
  std::string any_bytes;       // serialized google.protobuf.Any (state-of-the-world)
  std::string resource_bytes;  // serialized envoy.service.discovery.v3.Resource (delta)
};
using XdsEntryPtr = std::shared_ptr<const XdsEntry>;

// The names of one (environment, type) that a revision touched.
struct IndexChange {
  std::string environment;
  std::string type_url;
  std::vector<std::string> names;
  bool everything = false;  // the index was rebuilt: reconsider every name of the type
};

struct IndexUpdate {
  int64_t revision = 0;
  std::vector<IndexChange> changes;
};

// Meridian's resources, per environment and xDS type, as serialized xDS entries. Built from a
// store snapshot, then advanced revision by revision from the change log, so a change costs
// one serialization however many streams receive it. Thread-safe: one writer (the xDS
// server's follower), many readers (streams).
class ResourceIndex {
 public:
  void Reset(const store::StateSnapshot& snapshot);
  // Applies whole revisions newer than revision(); returns what they touched.
  IndexUpdate Apply(const std::vector<store::RevisionPtr>& revisions);

  int64_t revision() const;
  XdsEntryPtr Get(const std::string& environment, const std::string& type_url,
                  const std::string& name) const;
  std::vector<XdsEntryPtr> List(const std::string& environment, const std::string& type_url) const;

  static XdsEntryPtr MakeEntry(const v1::Resource& resource);

 private:
  using Names = absl::flat_hash_map<std::string, XdsEntryPtr>;
  using TypeKey = std::pair<std::string, std::string>;  // (environment, type_url)

  mutable absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<TypeKey, Names> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meridian::xds
