#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/store/change_feed.h"
#include "controlplane/xds/ads_stream.h"
#include "controlplane/xds/async_call.h"
#include "controlplane/xds/node_tracker.h"
#include "controlplane/xds/resource_index.h"
#include "grpcpp/server_builder.h"

namespace meridian::xds {

struct XdsServerOptions {
  // Above this many streams new ones get RESOURCE_EXHAUSTED, so clients try another replica.
  size_t max_streams = 20000;
  // Burst batching: a revision arriving within this long of the previous push waits this long
  // for more before it is pushed, so a burst of writes becomes few pushes. A revision after a
  // quiet period is pushed at once.
  absl::Duration debounce = absl::Milliseconds(2);
  // Completion queues, each with one thread, that serve the streams (0: one per core, at
  // least 2). Idle streams cost no thread.
  size_t threads = 0;
};

// The ADS endpoint (envoy.service.discovery.v3.AggregatedDiscoveryService, state-of-the-world
// and delta) as a generic async service (async_call.h), so responses are spliced from shared
// bytes. Follows the change feed: each revision is applied to the ResourceIndex once and
// fanned out to the streams of the environments it touched. Thread-safe.
// Lifecycle: AddTo(builder), build the grpc::Server, Start(); on shutdown Stop(), the
// server's Shutdown, then Drain().
class XdsServer : private StreamRegistry {
 public:
  XdsServer(store::ConfigStore& store, store::ChangeFeed& feed, NodeTracker& tracker,
            XdsServerOptions options);
  ~XdsServer() override;

  // Registers the ADS methods (as the server's generic service) and their queues.
  void AddTo(grpc::ServerBuilder& builder);
  // Loads the current state, starts following the change feed and accepting streams.
  absl::Status Start();
  // Refuses new streams and finishes open ones with UNAVAILABLE so clients reconnect
  // elsewhere; then stops following. Call before shutting the gRPC server down.
  void Stop();
  // Stops the queue threads. Call after the gRPC server has shut down.
  void Drain();

  size_t stream_count() const { return stream_count_.load(); }
  // Streams that fan-out reaches: those whose node has identified itself.
  size_t fanout_stream_count();
  int64_t revision() const { return index_.revision(); }

  static constexpr char kSotwMethod[] =
      "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
  static constexpr char kDeltaMethod[] =
      "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

 private:
  void Accept(std::unique_ptr<AsyncCall> call);
  // Why a new call on `method` is refused, if it is; otherwise counts it as a stream.
  std::optional<grpc::Status> Refusal(const std::string& method);
  void Register(AdsStream* stream, const std::string& environment) override;
  void Unregister(AdsStream* stream, const std::string& environment) override;

  void FollowLoop();
  absl::Status Resync();
  void FanOut(IndexUpdate update);

  store::ConfigStore& store_;
  store::ChangeFeed& feed_;
  NodeTracker& tracker_;
  const XdsServerOptions options_;
  ResourceIndex index_;
  FullStateCache full_states_;
  std::atomic<bool> accepting_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> stream_count_{0};
  std::atomic<uint64_t> next_stream_id_{1};
  // One environment's streams on one queue, by connection (the client's address), in an order
  // every queue shares. Pushing to a connection's streams back to back (every queue thread
  // on the same connection at about the same time) lets the client take many of them in one
  // read, and their ACKs come back together as well. At 10,000 streams over 100 connections
  // the clients made a third as many reads and meridian-cp half as many, and CPU per update
  // fell by about a fifth on both sides; each push is still its own write (docs/performance.md).
  using StreamsByConnection = absl::btree_map<std::string, absl::flat_hash_set<AdsStream*>>;
  // The streams whose completions run on one queue's thread, by environment. That thread
  // registers, unregisters and pushes to them, so the lock is rarely contended.
  struct QueueStreams {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, StreamsByConnection> by_environment ABSL_GUARDED_BY(mu);
  };
  // Calls `visit` on every registered stream, each queue's under its lock.
  template <typename Visit>
  void ForEachStream(Visit visit);
  // Pushes `changes` (by environment) to one queue's streams; runs on that queue's thread.
  void FanOutOnQueue(
      size_t queue, int64_t base_revision, int64_t revision,
      const absl::flat_hash_map<std::string, std::vector<const IndexChange*>>& changes);

  AsyncCallQueues queues_;
  std::vector<std::unique_ptr<QueueStreams>> streams_;  // one per queue
  std::thread follower_;
};

}  // namespace meridian::xds
