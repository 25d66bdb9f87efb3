#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
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
  // After a revision arrives, wait this long for more before pushing (bursts → few pushes).
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
  int64_t revision() const { return index_.revision(); }

  static constexpr char kSotwMethod[] =
      "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
  static constexpr char kDeltaMethod[] =
      "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

 private:
  void Accept(std::unique_ptr<AsyncCall> call);
  void Register(AdsStream* stream, const std::string& environment) override;
  void Unregister(AdsStream* stream, const std::string& environment) override;

  void FollowLoop();
  absl::Status Resync();
  void FanOut(const IndexUpdate& update);

  store::ConfigStore& store_;
  store::ChangeFeed& feed_;
  NodeTracker& tracker_;
  const XdsServerOptions options_;
  ResourceIndex index_;
  std::atomic<bool> accepting_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> stream_count_{0};
  std::atomic<uint64_t> next_stream_id_{1};
  absl::Mutex streams_mu_;
  absl::flat_hash_map<std::string, absl::flat_hash_set<AdsStream*>> streams_by_environment_
      ABSL_GUARDED_BY(streams_mu_);
  std::thread follower_;
  AsyncCallQueues queues_;
};

}  // namespace meridian::xds
