#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/xds/resource_index.h"
#include "controlplane/xds/response_writer.h"
#include "grpcpp/support/byte_buffer.h"

namespace meridian::xds {

// The delta response for one revision of one (environment, type): every changed resource at
// its new version, every deleted name removed. A wildcard stream that held exactly the
// previous revision's resources needs precisely these bytes, so they are built once per
// revision and written to all such streams as one shared, reference-counted buffer: the
// per-stream cost of a push is then bookkeeping, not building and copying a response.
struct SharedDelta {
  // "shared-<revision>" for the revision's first changed (environment, type), then
  // "shared-<revision>-<k>" for the k-th: unique on a stream that takes several types' shared
  // responses of one revision, never colliding with per-stream "<id>-<n>" nonces, and for the
  // common single change short enough for std::string's inline buffer (copied per stream).
  std::string nonce;
  std::vector<std::pair<std::string, int64_t>> updated;  // (name, revision that changed it)
  std::vector<std::string> removed;
  // False when a name was created and deleted within the update: a stream in step with the
  // index never held it, so the shared response would remove what its client lacks.
  bool removes_only_existing = true;
  grpc::ByteBuffer response;  // serialized DeltaDiscoveryResponse
};

// Adds the DeltaDiscoveryResponse fields besides the resources: what a delta response says of
// itself (its revision, type and nonce) and the names it removes.
void AddDeltaResponseFields(ResponseWriter& writer, int64_t revision, const std::string& type_url,
                            const std::string& nonce, const std::vector<std::string>& removed);

// Reads the changed names' current entries from `index` (already at `revision`). `position`:
// the change's place among the revision's changes, which makes the nonce unique.
std::shared_ptr<const SharedDelta> BuildSharedDelta(const ResourceIndex& index,
                                                    const IndexChange& change, int64_t revision,
                                                    size_t position);

// Resources sorted by name: what a state-of-the-world response carried.
using SortedEntries = std::vector<XdsEntryPtr>;
inline bool NameLess(const XdsEntryPtr& a, const XdsEntryPtr& b) { return a->name < b->name; }

// A whole (environment, type) at one index revision, as a state-of-the-world response.
struct SotwState {
  std::shared_ptr<const SortedEntries> entries;
  // DiscoveryResponse version_info, resources and type_url; a stream adds its nonce.
  grpc::Slice body;
};

// The body of a DiscoveryResponse carrying `entries` at `revision`: all but the nonce.
grpc::Slice BuildSotwBody(int64_t revision, const SortedEntries& entries,
                          const std::string& type_url);
// The whole DiscoveryResponse: `body` (shared, not copied), then the stream's `nonce`.
grpc::ByteBuffer SealSotwResponse(const grpc::Slice& body, const std::string& nonce);

// Whole types at the index's newest revision, built once and shared by every wildcard stream:
// a reconnect storm of N agents, or a push to N state-of-the-world proxies, costs one
// response instead of N copies of the environment. Thread-safe.
class FullStateCache {
 public:
  // For a wildcard delta client holding nothing of the type: a SharedDelta with nonce
  // "full-<revision>-<type URL>", every resource as `index` (the caller's View) has it.
  std::shared_ptr<const SharedDelta> Delta(const ResourceIndex::View& index,
                                           const std::string& environment,
                                           const std::string& type_url);
  // For a wildcard state-of-the-world stream.
  SotwState StateOfTheWorld(const ResourceIndex::View& index, const std::string& environment,
                            const std::string& type_url);
  // Drops what `changes` made stale, so the cache never keeps a type's whole state longer
  // than the type stays unchanged (an environment deleted leaves nothing behind).
  void Forget(const std::vector<IndexChange>& changes);

 private:
  using Key = std::pair<std::string, std::string>;  // (environment, type URL)
  template <typename Response>
  struct Entry {
    int64_t revision = -1;
    Response response;
  };
  absl::Mutex mu_;
  // Only the newest revision's responses per (environment, type URL).
  absl::flat_hash_map<Key, Entry<std::shared_ptr<const SharedDelta>>> delta_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, Entry<SotwState>> sotw_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meridian::xds
