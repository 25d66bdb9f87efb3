#pragma once

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "controlplane/xds/ads_stream.h"

namespace meridian::xds {

// State-of-the-world xDS over ADS: every response for a type carries all the resources the
// client subscribes to (absent = removed). ACK/NACK follow Istio's decision table: a NACK
// (error_detail) is recorded and answered with nothing; a request echoing an old nonce is
// stale and ignored; an ACK is answered only when it changes the subscription. For the Envoy
// types (push_order.h), a removed resource stays in responses until every type's additions
// have gone out, then goes in a second, removal-ordered pass (make before break).
class SotwAdsStream : public AdsStream {
 public:
  using AdsStream::AdsStream;

 private:
  struct TypeState {
    bool wildcard = false;
    absl::flat_hash_set<std::string> names;
    bool dirty = false;
    std::string last_nonce;  // of the last response sent
    bool awaiting_ack = false;
    int64_t last_revision = 0;  // of the last response sent
    bool requested = false;     // dirty because of a request: answer even if unchanged
    // Types that defer removals: what the client holds (for a wildcard stream, usually the
    // FullStateCache's list, shared), and whether some of it is gone from the index but
    // still sent, waiting for the removal pass.
    bool defers_removals = false;
    std::shared_ptr<const SortedEntries> held;
    bool removals_pending = false;
  };

  absl::Status HandleRequest(const grpc::ByteBuffer& request) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<grpc::ByteBuffer> NextResponse() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkChanged(const std::vector<const IndexChange*>& changes, bool already_seen) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Settled() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // nullopt when a deferring type has nothing new to say. `keep_removed`: still send what
  // the client holds but the index lost (first pass).
  std::optional<grpc::ByteBuffer> BuildResponse(const std::string& type_url, TypeState& state,
                                                bool keep_removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::flat_hash_map<std::string, TypeState> types_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meridian::xds
