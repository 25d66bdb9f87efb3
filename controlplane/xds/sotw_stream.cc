#include "controlplane/xds/sotw_stream.h"

#include "absl/strings/str_cat.h"
#include "controlplane/xds/push_order.h"
#include "controlplane/xds/response_writer.h"
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
  std::vector<XdsEntryPtr> entries;
  int64_t revision = 0;
  {
    // Labelled with the revision the entries were read at: the fan-out of a revision newer
    // than seen_revision_ may still be on its way, and finding nothing new it would never
    // relabel this type.
    const ResourceIndex::View index(context_.index);
    revision = index.revision();
    if (state.wildcard) {
      entries = index.List(node_.environment, type_url);
    } else {
      for (const std::string& name : state.names) {
        if (XdsEntryPtr entry = index.Get(node_.environment, type_url, name)) {
          entries.push_back(std::move(entry));
        }
      }
    }
  }
  state.dirty = false;
  if (state.defers_removals) {
    absl::flat_hash_map<std::string, XdsEntryPtr> sending;
    for (const XdsEntryPtr& entry : entries) sending[entry->name] = entry;
    bool retained = false;
    if (keep_removed) {
      for (const auto& [name, entry] : state.held) {
        if (sending.contains(name) || !(state.wildcard || state.names.contains(name))) continue;
        sending[name] = entry;
        entries.push_back(entry);
        retained = true;
      }
    }
    state.removals_pending = retained;
    if (sending == state.held && !state.requested) return std::nullopt;
    state.held = std::move(sending);
  }
  state.requested = false;
  ResponseWriter writer;
  writer.AddString(1, absl::StrCat(revision));
  for (const XdsEntryPtr& entry : entries) writer.AddBytes(2, entry->any_bytes);
  state.last_nonce = NextNonce();
  writer.AddString(4, type_url);
  writer.AddString(5, state.last_nonce);
  state.awaiting_ack = true;
  state.last_revision = revision;
  RecordSent(revision);
  return writer.TakeBuffer();
}

}  // namespace meridian::xds
