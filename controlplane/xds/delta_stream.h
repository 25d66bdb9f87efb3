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
// what the client holds, so each response carries only what changed for this client. A
// reconnecting client's initial_resource_versions say what it holds, so it is sent only what
// it lacks. A NACKed resource counts as delivered: it is resent only when a newer revision
// changes it. For the Envoy types (push_order.h), removals wait until every type's additions
// have gone out, then go in removal order (make before break).
//
// A wildcard client that has been sent the whole type holds what the index held at the
// revision this stream has seen, except for the few names on their way to it. Recording
// every name per stream would cost about 80 bytes per resource per stream (0.8 GB for 10,000
// agents of a 1,000-resource environment), so such a type "mirrors the index": the stream
// records only the names where the client may differ, and drops each once it matches again.
class DeltaAdsStream : public AdsStream {
 public:
  using AdsStream::AdsStream;

 private:
  static constexpr int64_t kNever = INT64_MAX;
  static constexpr int64_t kUnknownRevision = -1;  // held: a version Meridian never sent

  struct TypeState {
    bool wildcard = false;
    absl::flat_hash_set<std::string> names;
    // Name -> the revision of the version the client holds (kAbsentRevision: none;
    // kUnknownRevision: one Meridian never sent). While `mirrors_index`, a name not here is
    // held as the index had it at seen_revision_; otherwise a name not here is not held.
    absl::btree_map<std::string, int64_t> held;
    bool mirrors_index = false;
    // A whole-type response was built at this index revision: the type mirrors the index
    // once this stream has seen that revision (kNever: no such response pending).
    int64_t mirror_from = kNever;
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
  std::optional<grpc::ByteBuffer> NextResponse() override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkChanged(const std::vector<const IndexChange*>& changes, bool already_seen) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Settled() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const grpc::ByteBuffer* TakeSharedResponse(
      int64_t revision, const std::vector<const IndexChange*>& changes) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Nothing queued for any type (unACKed responses aside).
  bool NothingDue() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `shared` is exactly what the client of this type lacks.
  bool SharedFits(const TypeState& state, const SharedDelta& shared) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records `shared` as sent for the type: what the client holds once it is written.
  void RecordSharedSent(const std::string& type_url, TypeState& state, int64_t revision,
                        const std::shared_ptr<const SharedDelta>& shared)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::optional<grpc::ByteBuffer> BuildResponse(const std::string& type_url, TypeState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The whole type from the FullStateCache, for a wildcard client that holds nothing of it.
  std::optional<grpc::ByteBuffer> SendFullState(const std::string& type_url, TypeState& state,
                                                const ResourceIndex::View& index)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<grpc::ByteBuffer> BuildRemovals(const std::string& type_url, TypeState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `type_url` is a key of types_ (unacked_ points at it).
  grpc::ByteBuffer SealResponse(ResponseWriter& writer, const std::string& type_url,
                                int64_t revision, std::vector<std::string> updated,
                                const std::vector<std::string>& removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Meridian's resource versions are the revisions that changed them, in decimal. A version a
  // client reports in another form (another server's, garbled) equals none of them: it is
  // held as unknown, and the resource is sent again.
  static int64_t ParseHeldVersion(const std::string& version);
  bool Wants(const TypeState& state, const std::string& name) const;
  // The revision the client holds of `name` (see TypeState::held).
  int64_t HeldRevision(const TypeState& state, const std::string& type_url, const std::string& name,
                       const ResourceIndex::View& index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetHeld(TypeState& state, const std::string& name, int64_t revision) const;
  // Starts mirroring the index once the stream has caught up with a whole-type response, and
  // forgets what the client holds exactly as the index had it at seen_revision_.
  void SettleHeld(TypeState& state, const std::string& type_url,
                  const ResourceIndex::View& index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The client unsubscribed the wildcard: record what it holds of the names it still wants.
  void StopMirroring(TypeState& state, const std::string& type_url)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
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
  // Shared responses of one revision, taken for several types at once and recorded as sent:
  // written, in push order, after the first (which TakeSharedResponse returned). A vector,
  // not a deque: empty, it allocates nothing, and it never holds more than a few.
  std::vector<std::shared_ptr<const SharedDelta>> queued_shared_ ABSL_GUARDED_BY(mu_);
  // False once NothingDue() has found nothing due, until something is marked again: it runs
  // several times per push and per ACK on every stream.
  mutable bool maybe_due_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace meridian::xds
