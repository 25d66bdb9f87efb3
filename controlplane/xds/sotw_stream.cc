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
  TypeState& state = types_[request.type_url()];

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
  if (request.response_nonce().empty() || subscription_changed) state.dirty = true;
  return absl::OkStatus();
}

void SotwAdsStream::MarkChanged(const IndexChange& change) {
  auto it = types_.find(change.type_url);
  if (it == types_.end()) return;
  TypeState& state = it->second;
  if (state.wildcard || change.everything) {
    state.dirty = true;
    return;
  }
  for (const std::string& name : change.names) {
    if (state.names.contains(name)) {
      state.dirty = true;
      return;
    }
  }
}

bool SotwAdsStream::Settled() const {
  for (const auto& [type_url, state] : types_) {
    if (state.dirty || state.awaiting_ack) return false;
  }
  return true;
}

std::optional<std::string> SotwAdsStream::NextResponse() {
  for (auto* entry : InPushOrder(types_)) {
    if (entry->second.dirty) return BuildResponse(entry->first, entry->second);
  }
  return std::nullopt;
}

std::string SotwAdsStream::BuildResponse(const std::string& type_url, TypeState& state) {
  ResponseWriter writer;
  const int64_t revision = seen_revision_;
  writer.AddString(1, absl::StrCat(revision));
  if (state.wildcard) {
    for (const auto& entry : context_.index.List(node_.environment, type_url)) {
      writer.AddBytes(2, entry->any_bytes);
    }
  } else {
    for (const std::string& name : state.names) {
      if (XdsEntryPtr entry = context_.index.Get(node_.environment, type_url, name)) {
        writer.AddBytes(2, entry->any_bytes);
      }
    }
  }
  state.last_nonce = NextNonce();
  writer.AddString(4, type_url);
  writer.AddString(5, state.last_nonce);
  state.dirty = false;
  state.awaiting_ack = true;
  state.last_revision = revision;
  RecordSent(revision);
  return writer.Take();
}

}  // namespace meridian::xds
