#include "controlplane/server/control_plane.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "controlplane/common/status_macros.h"
#include "grpc/grpc.h"
#include "spdlog/spdlog.h"

namespace meridian::server {
namespace {

// Batches of thousands of resources exceed gRPC's 4 MiB default.
constexpr int kMaxGrpcMessageBytes = 64 * 1024 * 1024;
// In-flight unary calls get this long to finish when shutting down.
constexpr auto kGrpcShutdownGrace = std::chrono::seconds(5);

std::string DefaultReplicaId() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(host, "-", getpid());
}

}  // namespace

absl::StatusOr<std::unique_ptr<ControlPlane>> ControlPlane::Start(ControlPlaneOptions options) {
  std::unique_ptr<ControlPlane> control_plane(new ControlPlane(std::move(options)));
  // On failure the destructor tears down whatever did start.
  MERIDIAN_RETURN_IF_ERROR(control_plane->StartServices());
  return control_plane;
}

ControlPlane::ControlPlane(ControlPlaneOptions options) : options_(std::move(options)) {}

ControlPlane::~ControlPlane() { Shutdown(); }

absl::Status ControlPlane::StartServices() {
  MERIDIAN_ASSIGN_OR_RETURN(
      store_, store::PostgresConfigStore::Open(
                  {.database_url = options_.database_url, .pool_size = options_.db_pool_size}));

  store::ChangeFeed::Options feed_options;
  feed_options.listen_database_url = options_.database_url;
  feed_ = std::make_unique<store::ChangeFeed>(*store_, feed_options);
  MERIDIAN_RETURN_IF_ERROR(feed_->Start());

  node_store_ = std::make_unique<convergence::PostgresNodeStatusStore>(options_.database_url, 2);
  convergence::NodeRegistry::Options registry_options;
  registry_options.replica_id =
      options_.replica_id.empty() ? DefaultReplicaId() : options_.replica_id;
  node_registry_ = std::make_unique<convergence::NodeRegistry>(*node_store_, registry_options);
  node_registry_->Start();
  convergence_ = std::make_unique<convergence::ConvergenceTracker>(*node_store_, *node_registry_);
  xds_ = std::make_unique<xds::XdsServer>(
      *store_, *feed_, *node_registry_,
      xds::XdsServerOptions{options_.max_xds_streams, options_.xds_debounce, options_.xds_threads});

  grpc_service_ = std::make_unique<api::ConfigGrpcService>(*store_, *feed_);
  convergence_service_ = std::make_unique<api::ConvergenceGrpcService>(*convergence_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.grpc_address, grpc::InsecureServerCredentials(), &grpc_port_);
  builder.RegisterService(grpc_service_.get());
  builder.RegisterService(convergence_service_.get());
  // Every method the typed services do not know goes to the generic ADS handler.
  xds_->AddTo(builder);
  // No BDP probing of what clients send us: agents only send small ACKs, yet each burst of
  // them made gRPC send a probe ping per connection (15% of the CPU at 1,000 streams). A fixed
  // 1 MiB per-stream window instead keeps large ApplyChanges uploads fast.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1 << 20);
  builder.SetMaxReceiveMessageSize(kMaxGrpcMessageBytes);
  builder.SetMaxSendMessageSize(kMaxGrpcMessageBytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(api_calls_.InterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on ", options_.grpc_address));
  }
  MERIDIAN_RETURN_IF_ERROR(xds_->Start());

  api::RestServer::Options rest_options;
  rest_options.host = options_.http_host;
  rest_options.port = options_.http_port;
  rest_ = std::make_unique<api::RestServer>(*store_, *feed_, rest_options, convergence_.get());
  MERIDIAN_RETURN_IF_ERROR(rest_->Start());

  if (options_.history_retention_revisions > 0) {
    compactor_ = std::thread([this] { CompactionLoop(); });
  }
  spdlog::info("meridian-cp listening grpc={} http={}:{} retention={} revisions",
               absl::StrCat(options_.grpc_address.substr(0, options_.grpc_address.rfind(':')), ":",
                            grpc_port_),
               options_.http_host, rest_->port(), options_.history_retention_revisions);
  return absl::OkStatus();
}

void ControlPlane::Shutdown() {
  absl::MutexLock serialize(&shutdown_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopping_ = true;
  }
  if (compactor_.joinable()) compactor_.join();
  // APIs first, so nothing waits on a stopped feed; the feed last, as the APIs read from it.
  // xDS streams first: finished with UNAVAILABLE, their clients reconnect to another replica
  // while this one drains (gRPC sends GOAWAY on shutdown).
  if (xds_ != nullptr) xds_->Stop();
  if (grpc_server_ != nullptr) {
    grpc_service_->StopWatches();
    ShutdownGrpc();
    xds_->Drain();
  }
  if (rest_ != nullptr) rest_->Stop();
  if (node_registry_ != nullptr) node_registry_->Stop();
  if (feed_ != nullptr) feed_->Stop();
  spdlog::info("meridian-cp stopped");
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

void ControlPlane::ShutdownGrpc() {
  // gRPC's shutdown sends GOAWAY, stops accepting, and then waits both for the calls in flight
  // and for every client to close its connection, until the deadline cancels what is left. A
  // client that keeps an idle channel open (a plain gRPC C++ channel does) would hold the exit
  // for the whole grace period, so once no call is left, the connections are closed from this
  // side (grpc_server_cancel_all_calls, which only disconnects when there is nothing to cancel).
  absl::Notification done;
  std::thread shutdown([this, &done] {
    grpc_server_->Shutdown(std::chrono::system_clock::now() + kGrpcShutdownGrace);
    done.Notify();
  });
  // Bounded by the grace period: the shutdown thread returns by then whatever happens here.
  // Repeated, because a disconnect that came before gRPC stopped accepting lets a client
  // reconnect once.
  while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(50))) {
    if (api_calls_.in_flight() == 0 && xds_->stream_count() == 0) {
      grpc_server_cancel_all_calls(grpc_server_->c_server());
    }
  }
  shutdown.join();
}

void ControlPlane::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&stopped_));
}

void ControlPlane::CompactionLoop() {
  // A zero interval would spin; nobody needs compaction more often than this.
  const absl::Duration interval = std::max(options_.compaction_interval, absl::Seconds(1));
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval)) return;
    }
    CompactOnce();
  }
}

void ControlPlane::CompactOnce() {
  auto revisions = store_->Revisions();
  if (!revisions.ok()) {
    spdlog::warn("compaction skipped: {}", revisions.status().ToString());
    return;
  }
  const int64_t target = revisions->current - options_.history_retention_revisions;
  if (target <= revisions->compacted) return;
  if (absl::Status status = store_->Compact(target); !status.ok()) {
    spdlog::warn("compaction to revision {} failed: {}", target, status.ToString());
    return;
  }
  spdlog::debug("retention: compacted through revision {} (current {})", target,
                revisions->current);
}

}  // namespace meridian::server
