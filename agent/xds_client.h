#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/applied_state.h"
#include "agent/backoff.h"
#include "agent/delta_subscription_state.h"
#include "agent/driver/proxy_driver.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/sync_stream.h"

namespace meridian::agent {

struct XdsClientOptions {
  // host:port of each control-plane replica. A stream that fails moves on to the next one.
  std::vector<std::string> control_planes;
  std::string node_id;
  std::string environment;  // node metadata "environment" (and node.cluster)
  std::string zone;         // node metadata "zone" (and node.locality.zone)
  std::string user_agent_version = "0.1.0";
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
  // How long a replica may take to accept a connection before the next one is tried (default
  // channels only).
  absl::Duration connect_timeout = absl::Seconds(5);
  // Opens a channel to one address of `control_planes`. Default: plaintext TCP, keepalive,
  // reconnect backoff bounded by max_backoff. Tests substitute in-process channels.
  std::function<std::shared_ptr<grpc::Channel>(const std::string& address)> channel_factory;
};

// What the client is doing, for /status.
struct XdsClientStatus {
  std::string control_plane;  // address of the open (or last) stream
  bool connected = false;     // a stream is open
  int64_t revision = 0;       // revision of the held (last accepted) state
  std::string last_error;     // last NACK or stream failure, as sent or received
  absl::Time last_error_time = absl::InfinitePast();
  uint64_t streams = 0;  // streams opened
  uint64_t responses = 0;
  uint64_t resources_received = 0;  // resources carried by responses (not names removed)
  uint64_t removals_received = 0;
  uint64_t acks = 0;
  uint64_t nacks = 0;
};

// The agent's delta-xDS ADS client: one stream at a time, on a dedicated thread, to one of the
// control planes, subscribed (wildcard) to the Service, Endpoint, Certificate and Route types of
// its node's environment. After every response it merges the changes into a copy of the held
// state and hands the resulting ProxySnapshot to `apply`; OK → the copy becomes the held state,
// `on_accepted` runs, then the ACK is sent; an error → NACK carrying that exact message, and the
// held state stays as it was (the next response is merged into the last good state). Responses
// are read one at a time and answered before the next is read: gRPC flow control is the only
// buffer. On stream failure: jittered exponential backoff, next control plane, and the new
// stream's requests name every held resource (initial_resource_versions).
//
// Snapshot semantics for drivers. Each type arrives in its own response and is applied on its
// own (the server sends services, endpoints and certificates before routes, but a single change
// may still be seen before what it refers to, e.g. a route whose new service arrives in the
// next response, or after what it refers to was removed). A ProxySnapshot may therefore hold
// dangling references: endpoints of unknown services, route destinations naming unknown
// services, routes naming unknown certificates. Drivers must not reject a snapshot for that;
// they skip what cannot be served (a destination of an unknown service carries no traffic, a
// rule without any known destination is left out) and render the rest. Reject only what the
// proxy itself refuses: that becomes the NACK.
//
// Thread-safety: Start/Stop from one thread; status() from any. `apply` and `on_accepted` run
// on the client's thread, never concurrently with each other.
class XdsClient {
 public:
  using ApplyFn = std::function<absl::Status(const ProxySnapshot&)>;
  using AcceptedFn = std::function<void(const AppliedState&, const ResponseChange&)>;

  // `initial`: what the proxy already runs (the disk snapshot), announced on the first stream.
  XdsClient(XdsClientOptions options, AppliedState initial, ApplyFn apply,
            AcceptedFn on_accepted = nullptr);
  ~XdsClient();
  XdsClient(const XdsClient&) = delete;
  XdsClient& operator=(const XdsClient&) = delete;

  void Start();
  // Cancels the stream, waits for the thread. Idempotent.
  void Stop();

  XdsClientStatus status() const;
  // True while the client's thread runs.
  bool running() const { return running_.load(); }

 private:
  using DeltaStream =
      grpc::ClientReaderWriter<envoy::service::discovery::v3::DeltaDiscoveryRequest,
                               envoy::service::discovery::v3::DeltaDiscoveryResponse>;

  void Run();
  // One stream to `address`, until it ends. `healthy`: it carried a response or lasted a while.
  absl::Status RunStream(const std::string& address, bool& healthy);
  // Stages, applies and answers one response; false when the answer could not be written.
  bool HandleResponse(DeltaStream& stream,
                      const envoy::service::discovery::v3::DeltaDiscoveryResponse& response);
  envoy::config::core::v3::Node MakeNode() const;
  void NoteError(std::string error);
  bool stopping() const;

  const XdsClientOptions options_;
  const ApplyFn apply_;
  const AcceptedFn on_accepted_;
  DeltaSubscriptionState state_;  // only the client's thread touches it once started
  std::thread thread_;
  std::atomic<bool> running_{false};

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;  // the open stream's
  XdsClientStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace meridian::agent
