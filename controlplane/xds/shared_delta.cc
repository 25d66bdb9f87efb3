#include "controlplane/xds/shared_delta.h"

#include "absl/strings/str_cat.h"
#include "controlplane/xds/response_writer.h"

namespace meridian::xds {

void AddDeltaResponseFields(ResponseWriter& writer, int64_t revision, const std::string& type_url,
                            const std::string& nonce, const std::vector<std::string>& removed) {
  // Field numbers of envoy.service.discovery.v3.DeltaDiscoveryResponse.
  writer.AddString(1, absl::StrCat(revision));
  writer.AddString(4, type_url);
  writer.AddString(5, nonce);
  for (const std::string& name : removed) writer.AddString(6, name);
}

std::shared_ptr<const SharedDelta> BuildSharedDelta(const ResourceIndex& index,
                                                    const IndexChange& change, int64_t revision,
                                                    size_t position) {
  auto shared = std::make_shared<SharedDelta>();
  shared->nonce = position == 0 ? absl::StrCat("shared-", revision)
                                : absl::StrCat("shared-", revision, "-", position);
  ResponseWriter writer;
  for (size_t i = 0; i < change.names.size(); ++i) {
    const std::string& name = change.names[i];
    XdsEntryPtr entry = index.Get(change.environment, change.type_url, name);
    if (entry != nullptr) {
      writer.AddBytes(2, entry->resource_bytes);
      shared->updated.emplace_back(name, entry->revision);
    } else {
      shared->removed.push_back(name);
      if (change.previous[i] == kAbsentRevision) shared->removes_only_existing = false;
    }
  }
  AddDeltaResponseFields(writer, revision, change.type_url, shared->nonce, shared->removed);
  shared->response = writer.TakeBuffer();
  return shared;
}

grpc::Slice BuildSotwBody(int64_t revision, const SortedEntries& entries,
                          const std::string& type_url) {
  // Field numbers of envoy.service.discovery.v3.DiscoveryResponse.
  ResponseWriter writer;
  writer.AddString(1, absl::StrCat(revision));
  for (const XdsEntryPtr& entry : entries) writer.AddBytes(2, entry->any_bytes);
  writer.AddString(4, type_url);
  return grpc::Slice(writer.Take());
}

grpc::ByteBuffer SealSotwResponse(const grpc::Slice& body, const std::string& nonce) {
  ResponseWriter writer;
  writer.AddString(5, nonce);  // DiscoveryResponse.nonce
  grpc::Slice slices[] = {body, grpc::Slice(writer.Take())};
  return grpc::ByteBuffer(slices, 2);
}

SotwState FullStateCache::StateOfTheWorld(const ResourceIndex::View& index,
                                          const std::string& environment,
                                          const std::string& type_url) {
  absl::MutexLock lock(&mu_);
  Entry<SotwState>& cached = sotw_[{environment, type_url}];
  if (cached.response.entries != nullptr && cached.revision == index.revision()) {
    return cached.response;
  }
  auto entries = std::make_shared<SortedEntries>(index.List(environment, type_url));
  std::sort(entries->begin(), entries->end(), NameLess);
  grpc::Slice body = BuildSotwBody(index.revision(), *entries, type_url);
  cached = {index.revision(), {std::move(entries), std::move(body)}};
  return cached.response;
}

void FullStateCache::Forget(const std::vector<IndexChange>& changes) {
  absl::MutexLock lock(&mu_);
  for (const IndexChange& change : changes) {
    const Key key{change.environment, change.type_url};
    delta_.erase(key);
    sotw_.erase(key);
  }
}

std::shared_ptr<const SharedDelta> FullStateCache::Delta(const ResourceIndex::View& index,
                                                         const std::string& environment,
                                                         const std::string& type_url) {
  absl::MutexLock lock(&mu_);
  auto& cached = delta_[{environment, type_url}];
  if (cached.response != nullptr && cached.revision == index.revision()) return cached.response;
  auto full = std::make_shared<SharedDelta>();
  full->nonce = absl::StrCat("full-", index.revision(), "-", type_url);
  ResponseWriter writer;
  for (const XdsEntryPtr& entry : index.List(environment, type_url)) {
    writer.AddBytes(2, entry->resource_bytes);
    full->updated.emplace_back(entry->name, entry->revision);
  }
  AddDeltaResponseFields(writer, index.revision(), type_url, full->nonce, {});
  full->response = writer.TakeBuffer();
  cached = {index.revision(), full};
  return full;
}

}  // namespace meridian::xds
