#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace meridian::bench {

// Steady-clock time in nanoseconds: what arrival and write times are compared in.
int64_t NowNanos();

// What one subscriber stream received: the arrival time of every update and the revision it
// carried. Revisions arrive in increasing order on every system measured (xDS
// system_version_info, etcd mod_revision, the bare broadcast's sequence).
// Thread-safe: the stream's reactions record, the load generator reads.
class StreamProbe {
 public:
  explicit StreamProbe(size_t expected_updates) { arrivals_.reserve(expected_updates); }

  void Record(int64_t revision);
  void Fail(std::string error);

  // Arrival time of the first update carrying `revision` or a newer one.
  std::optional<int64_t> FirstArrivalAtOrAfter(int64_t revision) const;
  // Newest revision received; -1 before the first update.
  int64_t newest_revision() const;
  bool ready() const { return newest_revision() >= 0; }
  // Set once the stream ended before it was cancelled.
  std::optional<std::string> error() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::pair<int64_t, int64_t>> arrivals_ ABSL_GUARDED_BY(mu_);  // (ns, revision)
  int64_t newest_ ABSL_GUARDED_BY(mu_) = -1;
  std::optional<std::string> error_ ABSL_GUARDED_BY(mu_);
};

// Completion queues, one thread each, that drive every subscriber stream of the load
// generator (gRPC's async API). Not the callback API: Debian's gRPC is a debug build in which
// every completion searches all outstanding operations of its queue, and callback-API calls
// share one queue per process, so at 10,000 streams the load generator spent much of its CPU
// there, CPU the servers under test then lacked on the same cores. All three systems'
// subscribers use these queues alike.
class ClientQueues {
 public:
  explicit ClientQueues(size_t threads);
  ~ClientQueues();  // shuts the queues down: every stream must be done by then

  // The queue for the stream with this index (round robin).
  grpc::CompletionQueue* For(int index) { return queues_[index % queues_.size()].get(); }

 private:
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;
  std::vector<std::thread> threads_;
};

// One agent-like stream on a system under test. Its probe records every update. All its
// completions run on its queue's thread, so its state needs no lock.
class Subscriber {
 public:
  explicit Subscriber(size_t expected_updates) : probe_(expected_updates) {}
  virtual ~Subscriber() = default;

  // Ends the RPC; WaitDone tells when gRPC has let go of it.
  void Cancel() { context_.TryCancel(); }
  bool WaitDone(absl::Duration timeout);
  const StreamProbe& probe() const { return probe_; }

  // A completion-queue tag of this stream: which operation completed.
  class Tag {
   public:
    enum Op { kStart, kRead, kWrite, kReplyAndRead, kFinish };
    Tag(Subscriber* owner, Op op) : owner_(owner), op_(op) {}
    void Run(bool ok) { owner_->OnEvent(op_, ok); }

   private:
    Subscriber* const owner_;
    const Op op_;
  };

 protected:
  virtual void OnEvent(Tag::Op op, bool ok) = 0;
  // Records how the RPC ended (CANCELLED is how the load generator ends it) and marks it done.
  void Finished(const grpc::Status& status, const char* what);

  grpc::ClientContext context_;
  StreamProbe probe_;
  Tag start_tag_{this, Tag::kStart};
  Tag read_tag_{this, Tag::kRead};
  Tag write_tag_{this, Tag::kWrite};
  Tag finish_tag_{this, Tag::kFinish};
  grpc::Status status_;

 private:
  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// A system the fan-out is measured on: how to seed it, subscribe to it and write to it.
// Writes come from one thread; Subscribe may be called from one thread while streams run.
class FanoutTarget {
 public:
  virtual ~FanoutTarget() = default;

  // Writes the initial state, so a new subscriber receives something and knows it is live.
  virtual absl::Status Seed() = 0;
  // Opens one subscriber stream on `channel` (one of the load generator's connections).
  virtual std::unique_ptr<Subscriber> Subscribe(const std::shared_ptr<grpc::Channel>& channel,
                                                grpc::CompletionQueue* queue, int index,
                                                size_t expected_updates) = 0;
  // Applies write number `sequence`; returns the revision whose arrival means "received".
  virtual absl::StatusOr<int64_t> Write(int sequence) = 0;
};

// The bytes every system distributes: a meridian.v1.Resource (Endpoint) of about 300 bytes
// serialized, the same size for every sequence number.
std::string FanoutPayload(const std::string& environment, int sequence);

// Meridian: agents on ADS delta streams (node id, metadata environment, wildcard subscription
// to `type_urls`, by default meridian.v1.Endpoint alone, ACK of every response), or proxies on
// state-of-the-world streams subscribed to Endpoints; writes are ConfigService.PutResource.
enum class MeridianProtocol { kDelta, kStateOfTheWorld };
std::unique_ptr<FanoutTarget> MeridianTarget(std::shared_ptr<grpc::Channel> write_channel,
                                             std::string environment, std::string run_id,
                                             MeridianProtocol protocol,
                                             std::vector<std::string> type_urls = {});

// etcd 3.4: one Watch stream per watcher on the key prefix /bench/fanout/; writes are KV.Put
// of the same payload to one key under it.
std::unique_ptr<FanoutTarget> EtcdTarget(std::shared_ptr<grpc::Channel> write_channel);

// The bare broadcast server (bench/bare_broadcast_server.cc): Subscribe streams and Publish.
std::unique_ptr<FanoutTarget> BareTarget(std::shared_ptr<grpc::Channel> write_channel);

}  // namespace meridian::bench
