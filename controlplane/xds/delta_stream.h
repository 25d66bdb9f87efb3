#pragma once

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "controlplane/xds/ads_stream.h"
#include "controlplane/xds/response_writer.h"
#include "controlplane/xds/shared_delta.h"

namespace meridian::xds {

// Incremental (delta) xDS over ADS: per type, the subscription (wildcard and/or names) and
// the version of every resource the client holds, so each response carries only what
// changed for this client. A reconnecting client's initial_resource_versions seed that map,
// so it is sent only what it lacks. A NACKed resource counts as delivered: it is resent only
// when a newer revision changes it. For the Envoy types (push_order.h), removals wait until
// every type's additions have gone out, then go in removal order (make before break).
class DeltaAdsStream : public AdsStream {
 public:
  using AdsStream::AdsStream;

 private:
  struct TypeState {
    bool wildcard = false;
    absl::flat_hash_set<std::string> names;
    // Name -> the revision of the version the client holds (-1: one Meridian never sent).
    // The one structure per stream that grows with the environment's resources, so a B-tree
    // of 40-byte entries: a flat hash table of (name, version string) pairs took 64 bytes
    // per slot with up to half the slots empty (1,001 entries in 2,047 slots, 131 KB).
    absl::btree_map<std::string, int64_t> client_versions;
    absl::flat_hash_set<std::string> dirty;
    absl::flat_hash_set<std::string> must_send;  // subscribed again: send even if unchanged
    bool all_dirty = false;
    bool defers_removals = false;
    absl::flat_hash_set<std::string> removals;  // held by the client, gone from the index
  };
  struct Unacked {
    const std::string* type_url;  // a key of types_, which never moves or goes away
    int64_t revision;
    uint64_t sequence;  // order sent on this stream
    // The names it carried, updated or removed: the shared response's, or `names`.
    std::shared_ptr<const SharedDelta> shared;
    std::vector<std::string> names;
  };

  absl::Status HandleRequest(const grpc::ByteBuffer& request) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<std::string> NextResponse() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkChanged(const IndexChange& change) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Settled() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const grpc::ByteBuffer* TakeSharedResponse(
      int64_t revision, const std::vector<const IndexChange*>& changes) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Nothing queued for any type (unACKed responses aside).
  bool NothingDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::optional<std::string> BuildResponse(const std::string& type_url, TypeState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<std::string> BuildRemovals(const std::string& type_url, TypeState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `type_url` is a key of types_ (unacked_ points at it).
  std::string SealResponse(ResponseWriter& writer, const std::string& type_url, int64_t revision,
                           std::vector<std::string> updated, const std::vector<std::string>& removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Wants(const TypeState& state, const std::string& name) const;
  // The client accepted `response`: names it carried are no longer rejected, and once a
  // type has no rejected name left the rejection is over.
  void Accept(const Unacked& response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records a response sent under `nonce`, keeping the unanswered ones bounded.
  void AddUnacked(const std::string& nonce, Unacked response) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A client answers in order: an answer to `answered` settles its type's earlier responses
  // the client left unanswered.
  void ForgetEarlier(const Unacked& answered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Node-based, so a response in flight refers to its type by pointer instead of copying a
  // 45-byte type URL on every push; entries are never erased.
  absl::node_hash_map<std::string, TypeState> types_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Unacked> unacked_ ABSL_GUARDED_BY(mu_);
  uint64_t sent_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  // Per type, the names of NACKed responses not accepted since. A delta response carries only
  // what changed, so accepting a later one says nothing of the names it did not carry.
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> rejected_names_
      ABSL_GUARDED_BY(mu_);
  // False once NothingDue() has found nothing due, until something is marked again: it runs
  // several times per push and per ACK on every stream.
  mutable bool maybe_due_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace meridian::xds
