#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/xds/async_call.h"
#include "controlplane/xds/node_tracker.h"
#include "controlplane/xds/resource_index.h"
#include "controlplane/xds/shared_delta.h"
#include "envoy/config/core/v3/base.pb.h"
#include "grpcpp/support/byte_buffer.h"

namespace meridian::xds {

class AdsStream;

// Where streams announce themselves so revision fan-out can find them.
class StreamRegistry {
 public:
  virtual ~StreamRegistry() = default;
  // Called once the stream knows its node's environment.
  virtual void Register(AdsStream* stream, const std::string& environment) = 0;
  // Called exactly once per stream, when it is done (environment empty if never registered).
  virtual void Unregister(AdsStream* stream, const std::string& environment) = 0;
};

struct StreamContext {
  const ResourceIndex& index;  // advanced before streams hear of a revision
  FullStateCache& full_states;
  NodeTracker& tracker;
  StreamRegistry& registry;
};

// One ADS stream (raw bytes, so shared serialized resources are written without
// re-encoding). Owns the protocol-independent parts: node identity and scoping, one write in
// flight, finish and teardown, and "synced" bookkeeping for convergence. Subclasses implement
// state-of-the-world or delta. An idle stream costs memory, never a thread.
// Thread-safety: reactions and fan-out calls may arrive concurrently; state is under mu_.
class AdsStream : public AsyncBidiReactor {
 public:
  AdsStream(std::unique_ptr<AsyncCall> call, StreamContext context, uint64_t id);
  ~AdsStream() override;

  // Starts reading requests. Called once the object is fully constructed: a completion may
  // arrive on another thread at once.
  void Begin() { StartRead(&read_buffer_); }
  // Fan-out: the index went from `base_revision` to `revision`, touching these (type, names)
  // in this stream's environment.
  void OnRevision(int64_t base_revision, int64_t revision,
                  const std::vector<const IndexChange*>& changes);
  // Server shutdown: finish the RPC so the client reconnects to another replica.
  void Shutdown(const grpc::Status& status);

  uint64_t id() const { return id_; }

 protected:
  // Subclass hooks, called with mu_ held.
  // Parses and applies one request. A non-OK status finishes the stream with it.
  virtual absl::Status HandleRequest(const grpc::ByteBuffer& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Builds the next response to write (its own bytes, or a buffer shared with other streams),
  // or nullopt when nothing is due.
  virtual std::optional<grpc::ByteBuffer> NextResponse() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Records that the index took `changes`; seen_revision_ is already their revision.
  // `already_seen`: this stream had read the index after they were applied.
  virtual void MarkChanged(const std::vector<const IndexChange*>& changes, bool already_seen)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // True when nothing is queued and every response sent has been ACKed or NACKed.
  virtual bool Settled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Fast path for a stream that had taken in exactly the base revision, with nothing else due
  // and no write in flight: if the changes' shared responses are precisely what it needs,
  // records them as sent and returns the first (the others come next from NextResponse).
  // seen_revision_ is already `revision`. The default never does.
  virtual const grpc::ByteBuffer* TakeSharedResponse(
      int64_t /*revision*/, const std::vector<const IndexChange*>& /*changes*/)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return nullptr;
  }

  // Adopts the node from the first request: sets the scope, registers for fan-out.
  absl::Status IdentifyNode(const envoy::config::core::v3::Node& node)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool identified() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !node_.id.empty(); }
  std::string NextNonce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordNack(const std::string& type_url, int64_t revision, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordSent(int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The client accepted the response for `type_url` produced at `revision`.
  void RecordAck(const std::string& type_url, int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The client no longer wants what it rejected of `type_url`.
  void ForgetRejection(const std::string& type_url) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    rejected_.erase(type_url);
  }

  const StreamContext context_;
  mutable absl::Mutex mu_;
  NodeIdentity node_ ABSL_GUARDED_BY(mu_);
  // Newest index revision this stream has taken into account.
  int64_t seen_revision_ ABSL_GUARDED_BY(mu_) = 0;

 private:
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;
  void WriteOrFinish();
  enum class Next { kNothing, kWrite, kFinish };
  // Decides what WriteOrFinish does next (preparing write_buffer_ for kWrite).
  Next PrepareNext(grpc::Status& finish) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Carries out PrepareNext's decision; outside mu_.
  void Perform(Next next, const grpc::Status& finish);
  void UpdateSynced() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t id_;
  grpc::ByteBuffer read_buffer_;
  grpc::ByteBuffer write_buffer_;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  int64_t synced_revision_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t answered_revision_ ABSL_GUARDED_BY(mu_) = -1;  // reported while a type is rejected
  // Types whose last response was rejected, with the rejected revision: the node is not
  // synced until a later response of that type is accepted.
  absl::flat_hash_map<std::string, int64_t> rejected_ ABSL_GUARDED_BY(mu_);
  uint64_t nonce_counter_ ABSL_GUARDED_BY(mu_) = 0;
};

// Reads the bytes of a request into `message`.
bool ParseByteBuffer(const grpc::ByteBuffer& buffer, google::protobuf::Message& message);

}  // namespace meridian::xds
