#include "controlplane/xds/delta_stream.h"

#include "absl/container/inlined_vector.h"
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

template <typename Unacked, typename Visit>
void ForEachName(const Unacked& response, Visit visit) {
  if (response.shared != nullptr) {
    for (const auto& [name, version] : response.shared->updated) visit(name);
    for (const std::string& name : response.shared->removed) visit(name);
  }
  for (const std::string& name : response.names) visit(name);
}

}  // namespace

int64_t DeltaAdsStream::ParseHeldVersion(const std::string& version) {
  int64_t revision = 0;
  if (!absl::SimpleAtoi(version, &revision) || absl::StrCat(revision) != version ||
      revision <= kAbsentRevision) {
    return kUnknownRevision;
  }
  return revision;
}

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
      state.held[name] = ParseHeldVersion(version);
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
      StopMirroring(state, request.type_url());
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
    if (!state.wildcard) state.held.erase(name);
  }
  return absl::OkStatus();
}

void DeltaAdsStream::MarkChanged(const std::vector<const IndexChange*>& changes,
                                 bool already_seen) {
  for (const IndexChange* change : changes) {
    auto it = types_.find(change->type_url);
    if (it == types_.end()) continue;
    TypeState& state = it->second;
    maybe_due_ = true;
    for (size_t i = 0; i < change->names.size(); ++i) {
      const std::string& name = change->names[i];
      if (state.mirrors_index) {
        if (already_seen) continue;  // the index as of seen_revision_ includes it
        // Unless recorded otherwise, the client holds what the index held before.
        state.held.try_emplace(name, change->previous[i]);
        state.dirty.insert(name);
        continue;
      }
      const bool wanted = Wants(state, name);
      if (!wanted && !state.held.contains(name)) continue;
      state.dirty.insert(name);
      // Once the type mirrors the index, a name it does not record is held as the index has
      // it: record that the client lacks this one until it is sent.
      if (wanted && state.mirror_from != kNever) state.held.try_emplace(name, kAbsentRevision);
    }
  }
}

bool DeltaAdsStream::NothingDue() const {
  if (!queued_shared_.empty()) return false;
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

bool DeltaAdsStream::SharedFits(const TypeState& state, const SharedDelta& shared) const {
  if (!state.wildcard) return false;
  if (state.defers_removals && !shared.removed.empty()) return false;
  // The client must lack every update and hold every removed name, or the per-stream path
  // would send something else. Mirroring, it holds the index as it was before, where `held`
  // does not say otherwise.
  if (state.mirrors_index && !shared.removes_only_existing) return false;
  const int64_t unrecorded = state.mirrors_index ? kUnknownRevision : kAbsentRevision;
  auto held = [&state, unrecorded](const std::string& name) {
    auto it = state.held.find(name);
    return it == state.held.end() ? unrecorded : it->second;
  };
  for (const auto& [name, version] : shared.updated) {
    if (held(name) == version) return false;
  }
  for (const std::string& name : shared.removed) {
    if (held(name) == kAbsentRevision) return false;
  }
  return true;
}

void DeltaAdsStream::RecordSharedSent(const std::string& type_url, TypeState& state,
                                      int64_t revision,
                                      const std::shared_ptr<const SharedDelta>& shared) {
  if (state.mirrors_index) {
    // Now exactly as the index has it at `revision`, which this stream is about to have seen.
    if (!state.held.empty()) {
      for (const auto& [name, version] : shared->updated) state.held.erase(name);
      for (const std::string& name : shared->removed) state.held.erase(name);
    }
  } else {
    for (const auto& [name, version] : shared->updated) state.held[name] = version;
    for (const std::string& name : shared->removed) state.held.erase(name);
    if (state.mirror_from <= seen_revision_) {
      const ResourceIndex::View index(context_.index);
      SettleHeld(state, type_url, index);
    }
  }
  AddUnacked(shared->nonce, {&type_url, revision, 0, shared, {}});
}

const grpc::ByteBuffer* DeltaAdsStream::TakeSharedResponse(
    int64_t revision, const std::vector<const IndexChange*>& changes) {
  if (!NothingDue()) return nullptr;
  // Every change of a subscribed type must fit, or the stream builds its own responses for
  // all of them (one type's shared response must not overtake another's per-stream one).
  struct Subscribed {
    const std::string* type_url;  // a key of types_
    TypeState* state;
    const std::shared_ptr<const SharedDelta>* shared;
  };
  absl::InlinedVector<Subscribed, 2> subscribed;
  for (const IndexChange* change : changes) {
    auto it = types_.find(change->type_url);
    if (it == types_.end()) continue;
    if (change->shared == nullptr || !SharedFits(it->second, *change->shared)) return nullptr;
    subscribed.push_back({&it->first, &it->second, &change->shared});
  }
  if (subscribed.empty()) return nullptr;
  // Make-before-break across types, as NextResponse orders them.
  std::stable_sort(subscribed.begin(), subscribed.end(), [](const auto& a, const auto& b) {
    return PushRank(*a.type_url) < PushRank(*b.type_url);
  });
  for (const Subscribed& each : subscribed) {
    RecordSharedSent(*each.type_url, *each.state, revision, *each.shared);
  }
  for (size_t i = 1; i < subscribed.size(); ++i) queued_shared_.push_back(*subscribed[i].shared);
  RecordSent(revision);
  return &(*subscribed.front().shared)->response;
}

std::optional<grpc::ByteBuffer> DeltaAdsStream::NextResponse() {
  if (!queued_shared_.empty()) {
    // Recorded as sent already (TakeSharedResponse): goes out before anything newer.
    grpc::ByteBuffer next = queued_shared_.front()->response;
    queued_shared_.erase(queued_shared_.begin());
    return next;
  }
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

std::optional<grpc::ByteBuffer> DeltaAdsStream::BuildResponse(const std::string& type_url,
                                                              TypeState& state) {
  if (!state.all_dirty && state.dirty.empty() && state.must_send.empty()) return std::nullopt;
  // Read and labelled at one index revision: the fan-out of a revision newer than
  // seen_revision_ may still be on its way, and finding nothing new it would never relabel.
  const ResourceIndex::View index(context_.index);
  const int64_t revision = index.revision();
  // Every name the client may hold is compared: afterwards it holds the whole type as the
  // index has it.
  const bool whole_type = state.all_dirty && state.wildcard;
  if (whole_type && !state.mirrors_index && state.held.empty() && state.must_send.empty()) {
    return SendFullState(type_url, state, index);  // it holds nothing: send it everything
  }
  absl::flat_hash_set<std::string> candidates = std::move(state.dirty);
  candidates.insert(state.must_send.begin(), state.must_send.end());
  if (state.all_dirty) {
    for (const auto& entry : index.List(node_.environment, type_url)) {
      candidates.insert(entry->name);
    }
    for (const auto& [name, version] : state.held) candidates.insert(name);
    candidates.insert(state.names.begin(), state.names.end());
  }
  ResponseWriter writer;
  std::vector<std::string> updated;
  std::vector<std::string> removed;
  for (const std::string& name : candidates) {
    if (!Wants(state, name)) {
      // No longer subscribed: the client forgets it without being told.
      state.held.erase(name);
      continue;
    }
    XdsEntryPtr entry = index.Get(node_.environment, type_url, name);
    const int64_t held = HeldRevision(state, type_url, name, index);
    const bool must_send = state.must_send.contains(name);
    if (entry != nullptr) {
      if (held == entry->revision && !must_send) continue;
      writer.AddBytes(2, entry->resource_bytes);
      state.held[name] = entry->revision;
      updated.push_back(name);
    } else if (held != kAbsentRevision || must_send) {
      if (state.defers_removals && held != kAbsentRevision && !must_send) {
        state.held[name] = held;  // still held until the removal pass tells the client
        state.removals.insert(name);
        maybe_due_ = true;
        continue;
      }
      // Deleted, or explicitly requested and absent: tell the client it does not exist.
      removed.push_back(name);
      SetHeld(state, name, kAbsentRevision);
    } else {
      SetHeld(state, name, kAbsentRevision);  // created and deleted before it was sent
    }
  }
  state.dirty = {};
  state.must_send.clear();
  state.all_dirty = false;
  if (whole_type && !state.mirrors_index) state.mirror_from = revision;
  SettleHeld(state, type_url, index);
  if (updated.empty() && removed.empty()) return std::nullopt;
  return SealResponse(writer, type_url, revision, std::move(updated), removed);
}

std::optional<grpc::ByteBuffer> DeltaAdsStream::BuildRemovals(const std::string& type_url,
                                                              TypeState& state) {
  std::vector<std::string> removed;
  const ResourceIndex::View index(context_.index);
  for (const std::string& name : state.removals) {
    if (!Wants(state, name)) {
      state.held.erase(name);  // unsubscribed meanwhile: forgotten untold
      continue;
    }
    // Back in the index since: it went out as an update in the first pass.
    if (index.Get(node_.environment, type_url, name) != nullptr) continue;
    auto held = state.held.find(name);
    if (held == state.held.end() || held->second == kAbsentRevision) continue;
    removed.push_back(name);
    SetHeld(state, name, kAbsentRevision);
  }
  state.removals.clear();
  SettleHeld(state, type_url, index);
  if (removed.empty()) return std::nullopt;
  ResponseWriter writer;
  return SealResponse(writer, type_url, index.revision(), {}, removed);
}

std::optional<grpc::ByteBuffer> DeltaAdsStream::SendFullState(const std::string& type_url,
                                                              TypeState& state,
                                                              const ResourceIndex::View& index) {
  state.dirty = {};
  state.all_dirty = false;
  std::shared_ptr<const SharedDelta> full =
      context_.full_states.Delta(index, node_.environment, type_url);
  if (index.revision() == seen_revision_) {
    state.mirrors_index = true;  // nothing newer can be on its way: the index is what it holds
  } else {
    for (const auto& [name, version] : full->updated) state.held[name] = version;
    state.mirror_from = index.revision();
  }
  if (full->updated.empty()) return std::nullopt;
  AddUnacked(full->nonce, {&type_url, index.revision(), 0, full, {}});
  RecordSent(index.revision());
  return full->response;
}

int64_t DeltaAdsStream::HeldRevision(const TypeState& state, const std::string& type_url,
                                     const std::string& name,
                                     const ResourceIndex::View& index) const {
  if (auto held = state.held.find(name); held != state.held.end()) return held->second;
  if (!state.mirrors_index) return kAbsentRevision;
  // The index as of seen_revision_. Anything newer is a change whose fan-out has not reached
  // this stream yet, so what the index had before it is unknown here.
  XdsEntryPtr entry = index.Get(node_.environment, type_url, name);
  if (entry == nullptr) {
    return index.revision() == seen_revision_ ? kAbsentRevision : kUnknownRevision;
  }
  return entry->revision <= seen_revision_ ? entry->revision : kUnknownRevision;
}

void DeltaAdsStream::SetHeld(TypeState& state, const std::string& name, int64_t revision) const {
  // Mirroring, an absent name must be recorded until the index lacks it too.
  if (revision == kAbsentRevision && !state.mirrors_index) {
    state.held.erase(name);
  } else {
    state.held[name] = revision;
  }
}

void DeltaAdsStream::SettleHeld(TypeState& state, const std::string& type_url,
                                const ResourceIndex::View& index) const {
  if (!state.mirrors_index) {
    // Every name of the whole-type response is recorded, and every name changed since is
    // recorded too (MarkChanged): a name not recorded is one the index lacks.
    if (!state.wildcard || state.mirror_from > seen_revision_) return;
    state.mirrors_index = true;
    state.mirror_from = kNever;
  }
  if (state.held.empty()) return;
  const bool index_at_seen = index.revision() == seen_revision_;
  absl::erase_if(state.held, [&](const auto& held) {
    const auto& [name, revision] = held;
    if (state.dirty.contains(name) || state.must_send.contains(name) ||
        state.removals.contains(name)) {
      return false;  // on its way to the client
    }
    // Forgotten only where the index at seen_revision_ says the same.
    XdsEntryPtr entry = index.Get(node_.environment, type_url, name);
    if (entry == nullptr) return revision == kAbsentRevision && index_at_seen;
    return entry->revision == revision && revision <= seen_revision_;
  });
}

void DeltaAdsStream::StopMirroring(TypeState& state, const std::string& type_url) {
  state.mirror_from = kNever;
  if (!state.mirrors_index) return;
  const ResourceIndex::View index(context_.index);
  for (const std::string& name : state.names) {
    if (!state.held.contains(name)) state.held[name] = HeldRevision(state, type_url, name, index);
  }
  state.mirrors_index = false;
  absl::erase_if(state.held, [](const auto& held) { return held.second == kAbsentRevision; });
}

grpc::ByteBuffer DeltaAdsStream::SealResponse(ResponseWriter& writer, const std::string& type_url,
                                              int64_t revision, std::vector<std::string> updated,
                                              const std::vector<std::string>& removed) {
  const std::string nonce = NextNonce();
  AddDeltaResponseFields(writer, revision, type_url, nonce, removed);
  updated.insert(updated.end(), removed.begin(), removed.end());
  AddUnacked(nonce, {&type_url, revision, 0, nullptr, std::move(updated)});
  RecordSent(revision);
  return writer.TakeBuffer();
}

}  // namespace meridian::xds
