#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/api/config_grpc_service.h"
#include "controlplane/api/convergence_grpc_service.h"
#include "controlplane/convergence/convergence_tracker.h"
#include "controlplane/convergence/node_registry.h"
#include "controlplane/convergence/postgres_node_status_store.h"
#include "controlplane/server/api_call_counter.h"
#include "controlplane/api/rest_server.h"
#include "controlplane/store/change_feed.h"
#include "controlplane/store/postgres_config_store.h"
#include "controlplane/xds/xds_server.h"
#include "grpcpp/grpcpp.h"

namespace meridian::server {

struct ControlPlaneOptions {
  std::string database_url;
  std::string grpc_address = "0.0.0.0:18000";  // port 0 = any free port
  std::string http_host = "0.0.0.0";
  int http_port = 18080;                    // 0 = any free port
  int64_t history_retention_revisions = 0;  // 0 = keep all history
  absl::Duration compaction_interval = absl::Seconds(60);
  int db_pool_size = 8;
  // Names this replica in node status ("which replica holds the node's stream").
  std::string replica_id;  // empty = hostname-pid
  size_t max_xds_streams = 20000;
  absl::Duration xds_debounce = absl::Milliseconds(2);
  size_t xds_threads = 0;  // completion-queue threads serving xDS streams (0: one per core)
};

// meridian-cp: the config store on PostgreSQL, its change feed, the gRPC and REST APIs over
// them, the xDS (ADS) server for agents and proxies on the gRPC port, convergence tracking,
// and history compaction when a retention is set. Start() returns once both
// APIs listen. Shutdown() may be called from any thread, once or many times; Wait() blocks
// until it has finished.
class ControlPlane {
 public:
  static absl::StatusOr<std::unique_ptr<ControlPlane>> Start(ControlPlaneOptions options);
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return rest_->port(); }
  store::ConfigStore& store() { return *store_; }
  xds::XdsServer& xds() { return *xds_; }
  // Calls in flight on the config and convergence gRPC APIs (not ADS streams).
  int api_calls_in_flight() const { return api_calls_.in_flight(); }

  // Stops accepting requests, ends watch streams, stops background work. Idempotent.
  void Shutdown();
  void Wait();

 private:
  explicit ControlPlane(ControlPlaneOptions options);
  absl::Status StartServices();
  // Shuts the gRPC server down: in-flight calls get kGrpcShutdownGrace to finish, clients'
  // idle connections are not waited for.
  void ShutdownGrpc();
  void CompactionLoop();
  void CompactOnce();

  const ControlPlaneOptions options_;
  std::unique_ptr<store::PostgresConfigStore> store_;
  std::unique_ptr<store::ChangeFeed> feed_;
  std::unique_ptr<convergence::PostgresNodeStatusStore> node_store_;
  std::unique_ptr<convergence::NodeRegistry> node_registry_;
  std::unique_ptr<convergence::ConvergenceTracker> convergence_;
  std::unique_ptr<xds::XdsServer> xds_;
  std::unique_ptr<api::ConfigGrpcService> grpc_service_;
  std::unique_ptr<api::ConvergenceGrpcService> convergence_service_;
  ApiCallCounter api_calls_;  // outlives grpc_server_, which holds its interceptor factory
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<api::RestServer> rest_;
  int grpc_port_ = 0;
  std::thread compactor_;

  absl::Mutex shutdown_mu_;  // serializes Shutdown() callers
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace meridian::server
