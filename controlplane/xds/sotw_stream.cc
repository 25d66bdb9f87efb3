#include "controlplane/xds/sotw_stream.h"

#include <algorithm>

#include "controlplane/xds/push_order.h"
#include "envoy/service/discovery/v3/discovery.pb.h"

namespace meridian::xds {

absl::Status SotwAdsStream::HandleRequest(const grpc::ByteBuffer& bytes) {
  envoy::service::discovery::v3::DiscoveryRequest request;
  if (!ParseByteBuffer(bytes, request)) {
    return absl::InvalidArgumentError("malformed DiscoveryRequest");
  }
  if (!identified()) {
    if (absl::Status status = IdentifyNode(request.node()); !status.ok()) return status;
  }
  if (request.type_url().empty()) return absl::InvalidArgumentError("type_url: is required");
  auto [slot, created] = types_.try_emplace(request.type_url());
  TypeState& state = slot->second;
  if (created) state.defers_removals = DefersRemovals(request.type_url());

  if (!request.response_nonce().empty()) {
    if (request.response_nonce() != state.last_nonce) return absl::OkStatus();  // stale
    state.awaiting_ack = false;
    if (request.has_error_detail()) {
      RecordNack(request.type_url(), state.last_revision, request.error_detail().message());
      return absl::OkStatus();
    }
    RecordAck(request.type_url(), state.last_revision);
  }
  absl::flat_hash_set<std::string> names(request.resource_names().begin(),
                                         request.resource_names().end());
  const bool wildcard = names.empty() || names.contains("*");
  names.erase("*");
  const bool subscription_changed = wildcard != state.wildcard || names != state.names;
  state.wildcard = wildcard;
  state.names = std::move(names);
  // A first request (or one after reconnect) always gets an answer; an ACK only when it
  // changed what the client wants.
  if (request.response_nonce().empty() || subscription_changed) {
    state.dirty = true;
    state.requested = true;
  }
  return absl::OkStatus();
}

void SotwAdsStream::MarkChanged(const std::vector<const IndexChange*>& changes,
                                bool /*already_seen*/) {
  for (const IndexChange* change : changes) {
    auto it = types_.find(change->type_url);
    if (it == types_.end()) continue;
    TypeState& state = it->second;
    if (state.wildcard) {
      state.dirty = true;
      continue;
    }
    for (const std::string& name : change->names) {
      if (state.names.contains(name)) {
        state.dirty = true;
        break;
      }
    }
  }
}

bool SotwAdsStream::Settled() const {
  for (const auto& [type_url, state] : types_) {
    if (state.dirty || state.awaiting_ack || state.removals_pending) return false;
  }
  return true;
}

std::optional<grpc::ByteBuffer> SotwAdsStream::NextResponse() {
  for (auto* entry : InPushOrder(types_)) {
    if (!entry->second.dirty) continue;
    if (auto response = BuildResponse(entry->first, entry->second, /*keep_removed=*/true)) {
      return response;
    }
  }
  // Nothing left to add or update, and the client has processed what was (ACK or NACK):
  // removals, referrers first.
  for (const auto& [type_url, state] : types_) {
    if (state.awaiting_ack) return std::nullopt;
  }
  for (auto* entry : InRemovalOrder(types_)) {
    if (!entry->second.removals_pending) continue;
    if (auto response = BuildResponse(entry->first, entry->second, /*keep_removed=*/false)) {
      return response;
    }
  }
  return std::nullopt;
}

std::optional<grpc::ByteBuffer> SotwAdsStream::BuildResponse(const std::string& type_url,
                                                             TypeState& state, bool keep_removed) {
  // A wildcard stream sends the shared body of the whole type, unless it must still carry
  // resources the index lost (first pass of a removal).
  std::optional<SotwState> whole;
  std::shared_ptr<const SortedEntries> sending;
  int64_t revision = 0;
  {
    // Labelled with the revision the entries were read at: the fan-out of a revision newer
    // than seen_revision_ may still be on its way, and finding nothing new it would never
    // relabel this type.
    const ResourceIndex::View index(context_.index);
    revision = index.revision();
    if (state.wildcard) {
      whole = context_.full_states.StateOfTheWorld(index, node_.environment, type_url);
      sending = whole->entries;
    } else {
      auto named = std::make_shared<SortedEntries>();
      for (const std::string& name : state.names) {
        if (XdsEntryPtr entry = index.Get(node_.environment, type_url, name)) {
          named->push_back(std::move(entry));
        }
      }
      std::sort(named->begin(), named->end(), NameLess);
      sending = std::move(named);
    }
  }
  state.dirty = false;
  if (state.defers_removals) {
    SortedEntries retained;
    if (keep_removed && state.held != nullptr) {
      for (const XdsEntryPtr& entry : *state.held) {
        const bool wanted = state.wildcard || state.names.contains(entry->name);
        if (wanted && !std::binary_search(sending->begin(), sending->end(), entry, NameLess)) {
          retained.push_back(entry);
        }
      }
    }
    state.removals_pending = !retained.empty();
    if (!retained.empty()) {
      auto merged = std::make_shared<SortedEntries>(*sending);
      merged->insert(merged->end(), retained.begin(), retained.end());
      std::sort(merged->begin(), merged->end(), NameLess);
      sending = std::move(merged);
      whole.reset();
    }
    if (state.held != nullptr && *state.held == *sending && !state.requested) return std::nullopt;
    state.held = sending;
  }
  state.requested = false;
  state.last_nonce = NextNonce();
  state.awaiting_ack = true;
  state.last_revision = revision;
  RecordSent(revision);
  return SealSotwResponse(whole ? whole->body : BuildSotwBody(revision, *sending, type_url),
                          state.last_nonce);
}

}  // namespace meridian::xds
