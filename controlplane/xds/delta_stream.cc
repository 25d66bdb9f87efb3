#include "controlplane/xds/delta_stream.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controlplane/xds/push_order.h"
#include "controlplane/xds/response_writer.h"
#include "controlplane/xds/shared_delta.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meridian::xds {
namespace {

constexpr char kWildcard[] = "*";
// Unanswered responses a stream remembers. A conforming client answers each response soon;
// one that never does must not grow the map (each entry may hold a shared response).
constexpr size_t kMaxUnacked = 64;

// Meridian's resource versions are the revisions that changed them, in decimal. A version a
// client reports in another form (another server's, garbled) equals none of them: it is
// held as -1, and the resource is sent again.
int64_t HeldVersion(const std::string& version) {
  int64_t revision = 0;
  if (!absl::SimpleAtoi(version, &revision) || absl::StrCat(revision) != version) return -1;
  return revision;
}

template <typename Unacked, typename Visit>
void ForEachName(const Unacked& response, Visit visit) {
  if (response.shared != nullptr) {
    for (const auto& [name, version] : response.shared->updated) visit(name);
    for (const std::string& name : response.shared->removed) visit(name);
  }
  for (const std::string& name : response.names) visit(name);
}

}  // namespace

bool DeltaAdsStream::Wants(const TypeState& state, const std::string& name) const {
  return state.wildcard || state.names.contains(name);
}

absl::Status DeltaAdsStream::HandleRequest(const grpc::ByteBuffer& bytes) {
  envoy::service::discovery::v3::DeltaDiscoveryRequest request;
  if (!ParseByteBuffer(bytes, request)) {
    return absl::InvalidArgumentError("malformed DeltaDiscoveryRequest");
  }
  if (!identified()) {
    if (absl::Status status = IdentifyNode(request.node()); !status.ok()) return status;
  }
  if (request.type_url().empty()) return absl::InvalidArgumentError("type_url: is required");

  if (!request.response_nonce().empty()) {
    auto unacked = unacked_.find(request.response_nonce());
    if (unacked != unacked_.end()) {
      const Unacked response = std::move(unacked->second);
      unacked_.erase(unacked);
      if (request.has_error_detail()) {
        auto& rejected = rejected_names_[*response.type_url];
        ForEachName(response, [&rejected](const std::string& name) { rejected.insert(name); });
        RecordNack(*response.type_url, response.revision, request.error_detail().message());
      } else {
        Accept(response);
      }
      ForgetEarlier(response);
    }
  }

  maybe_due_ = true;
  auto [entry, first_request] = types_.try_emplace(request.type_url());
  TypeState& state = entry->second;
  if (first_request) {
    state.defers_removals = DefersRemovals(request.type_url());
    for (const auto& [name, version] : request.initial_resource_versions()) {
      state.client_versions[name] = HeldVersion(version);
    }
    // An empty first subscription means wildcard (the legacy form of "*").
    state.wildcard = request.resource_names_subscribe().empty();
    state.all_dirty = true;
  }
  for (const std::string& name : request.resource_names_subscribe()) {
    if (name == kWildcard) {
      state.wildcard = true;
      state.all_dirty = true;
      continue;
    }
    state.names.insert(name);
    state.dirty.insert(name);
    if (!first_request) state.must_send.insert(name);
  }
  for (const std::string& name : request.resource_names_unsubscribe()) {
    if (name == kWildcard) {
      state.wildcard = false;
      state.all_dirty = true;
      continue;
    }
    state.names.erase(name);
    state.must_send.erase(name);
    // Not wanted any more, so no longer rejected either.
    if (auto rejected = rejected_names_.find(request.type_url());
        rejected != rejected_names_.end() && rejected->second.erase(name) > 0 &&
        rejected->second.empty()) {
      rejected_names_.erase(rejected);
      ForgetRejection(request.type_url());
    }
    state.removals.erase(name);
    if (!state.wildcard) state.client_versions.erase(name);
  }
  return absl::OkStatus();
}

void DeltaAdsStream::MarkChanged(const IndexChange& change) {
  auto it = types_.find(change.type_url);
  if (it == types_.end()) return;
  TypeState& state = it->second;
  maybe_due_ = true;
  if (change.everything) state.all_dirty = true;
  for (const std::string& name : change.names) {
    if (Wants(state, name) || state.client_versions.contains(name)) state.dirty.insert(name);
  }
}

bool DeltaAdsStream::NothingDue() const {
  if (!maybe_due_) return true;
  for (const auto& [type_url, state] : types_) {
    if (state.all_dirty || !state.dirty.empty() || !state.must_send.empty() ||
        !state.removals.empty()) {
      return false;
    }
  }
  maybe_due_ = false;
  return true;
}

void DeltaAdsStream::Accept(const Unacked& response) {
  // Nothing rejected is the common case: skip hashing the type URL.
  if (auto rejected = rejected_names_.empty() ? rejected_names_.end()
                                              : rejected_names_.find(*response.type_url);
      rejected != rejected_names_.end()) {
    ForEachName(response, [&rejected](const std::string& name) { rejected->second.erase(name); });
    if (!rejected->second.empty()) return;  // it still runs without some rejected names
    rejected_names_.erase(rejected);
  }
  RecordAck(*response.type_url, response.revision);
}

void DeltaAdsStream::AddUnacked(const std::string& nonce, Unacked response) {
  response.sequence = ++sent_sequence_;
  if (unacked_.size() >= kMaxUnacked) {
    auto oldest = unacked_.begin();
    for (auto it = unacked_.begin(); it != unacked_.end(); ++it) {
      if (it->second.sequence < oldest->second.sequence) oldest = it;
    }
    unacked_.erase(oldest);
  }
  unacked_[nonce] = std::move(response);
}

void DeltaAdsStream::ForgetEarlier(const Unacked& answered) {
  if (unacked_.empty()) return;  // the common case
  absl::erase_if(unacked_, [&answered](const auto& entry) {
    return entry.second.type_url == answered.type_url &&
           entry.second.sequence < answered.sequence;
  });
}

bool DeltaAdsStream::Settled() const { return unacked_.empty() && NothingDue(); }

const grpc::ByteBuffer* DeltaAdsStream::TakeSharedResponse(
    int64_t revision, const std::vector<const IndexChange*>& changes) {
  // Exactly one change of a subscribed type, so one response says everything.
  const IndexChange* subscribed = nullptr;
  const std::string* type_url = nullptr;
  TypeState* state = nullptr;
  for (const IndexChange* change : changes) {
    auto it = types_.find(change->type_url);
    if (it == types_.end()) continue;
    if (subscribed != nullptr) return nullptr;
    subscribed = change;
    type_url = &it->first;
    state = &it->second;
  }
  if (subscribed == nullptr || subscribed->shared == nullptr || !state->wildcard || !NothingDue()) {
    return nullptr;
  }
  const SharedDelta& shared = *subscribed->shared;
  if (state->defers_removals && !shared.removed.empty()) return nullptr;
  // The client must lack every update and hold every removed name, or the per-stream path
  // would send something else.
  for (const auto& [name, version] : shared.updated) {
    auto held = state->client_versions.find(name);
    if (held != state->client_versions.end() && held->second == version) return nullptr;
  }
  for (const std::string& name : shared.removed) {
    if (!state->client_versions.contains(name)) return nullptr;
  }
  for (const auto& [name, version] : shared.updated) state->client_versions[name] = version;
  for (const std::string& name : shared.removed) state->client_versions.erase(name);
  AddUnacked(shared.nonce, {type_url, revision, 0, subscribed->shared, {}});
  RecordSent(revision);
  return &shared.response;
}

std::optional<std::string> DeltaAdsStream::NextResponse() {
  if (NothingDue()) return std::nullopt;  // the common case after an ACK: skip the ordering
  for (auto* entry : InPushOrder(types_)) {
    if (auto response = BuildResponse(entry->first, entry->second)) return response;
  }
  // Nothing left to add or update, and the client has processed what was (ACK or NACK):
  // removals, referrers first.
  if (!unacked_.empty()) return std::nullopt;
  for (auto* entry : InRemovalOrder(types_)) {
    if (entry->second.removals.empty()) continue;
    if (auto response = BuildRemovals(entry->first, entry->second)) return response;
  }
  return std::nullopt;
}

std::optional<std::string> DeltaAdsStream::BuildResponse(const std::string& type_url,
                                                         TypeState& state) {
  if (!state.all_dirty && state.dirty.empty() && state.must_send.empty()) return std::nullopt;
  // Read and labelled at one index revision: the fan-out of a revision newer than
  // seen_revision_ may still be on its way, and finding nothing new it would never relabel.
  const ResourceIndex::View index(context_.index);
  const int64_t revision = index.revision();
  absl::flat_hash_set<std::string> candidates = std::move(state.dirty);
  candidates.insert(state.must_send.begin(), state.must_send.end());
  if (state.all_dirty) {
    for (const auto& entry : index.List(node_.environment, type_url)) {
      candidates.insert(entry->name);
    }
    for (const auto& [name, version] : state.client_versions) candidates.insert(name);
    candidates.insert(state.names.begin(), state.names.end());
  }
  ResponseWriter writer;
  std::vector<std::string> updated;
  std::vector<std::string> removed;
  for (const std::string& name : candidates) {
    if (!Wants(state, name)) {
      // No longer subscribed: the client forgets it without being told.
      state.client_versions.erase(name);
      continue;
    }
    XdsEntryPtr entry = index.Get(node_.environment, type_url, name);
    auto held = state.client_versions.find(name);
    if (entry != nullptr) {
      if (held != state.client_versions.end() && held->second == entry->revision &&
          !state.must_send.contains(name)) {
        continue;
      }
      writer.AddBytes(2, entry->resource_bytes);
      state.client_versions[name] = entry->revision;
      updated.push_back(name);
    } else if (held != state.client_versions.end() || state.must_send.contains(name)) {
      if (state.defers_removals && held != state.client_versions.end() &&
          !state.must_send.contains(name)) {
        state.removals.insert(name);  // deleted: told in the removal pass
        maybe_due_ = true;
        continue;
      }
      // Deleted, or explicitly requested and absent: tell the client it does not exist.
      removed.push_back(name);
      state.client_versions.erase(name);
    }
  }
  state.dirty = {};
  state.must_send.clear();
  state.all_dirty = false;
  if (updated.empty() && removed.empty()) return std::nullopt;
  return SealResponse(writer, type_url, revision, std::move(updated), removed);
}

std::optional<std::string> DeltaAdsStream::BuildRemovals(const std::string& type_url,
                                                         TypeState& state) {
  std::vector<std::string> removed;
  const ResourceIndex::View index(context_.index);
  for (const std::string& name : state.removals) {
    if (!Wants(state, name)) {
      state.client_versions.erase(name);  // unsubscribed meanwhile: forgotten untold
      continue;
    }
    // Back in the index since: it went out as an update in the first pass.
    if (index.Get(node_.environment, type_url, name) != nullptr) continue;
    if (state.client_versions.erase(name) > 0) removed.push_back(name);
  }
  state.removals.clear();
  if (removed.empty()) return std::nullopt;
  ResponseWriter writer;
  return SealResponse(writer, type_url, index.revision(), {}, removed);
}

std::string DeltaAdsStream::SealResponse(ResponseWriter& writer, const std::string& type_url,
                                         int64_t revision, std::vector<std::string> updated,
                                         const std::vector<std::string>& removed) {
  const std::string nonce = NextNonce();
  writer.AddString(1, absl::StrCat(revision));
  writer.AddString(4, type_url);
  writer.AddString(5, nonce);
  for (const std::string& name : removed) writer.AddString(6, name);
  updated.insert(updated.end(), removed.begin(), removed.end());
  AddUnacked(nonce, {&type_url, revision, 0, nullptr, std::move(updated)});
  RecordSent(revision);
  return writer.Take();
}

}  // namespace meridian::xds
