// meridian-cp: flags in, ControlPlane up, SIGINT/SIGTERM shut it down.
#include <csignal>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/server/control_plane.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  meridian::server::ControlPlaneOptions options;
  std::string bind_address = "0.0.0.0";
  int grpc_port = 18000;
  int compaction_interval_seconds = 60;
  CLI::App app{"Meridian control plane"};
  app.add_option("--database-url", options.database_url, "PostgreSQL connection URL")
      ->envname("MERIDIAN_DATABASE_URL")
      ->required();
  app.add_option("--grpc-port", grpc_port, "gRPC port (0 = any free port)")->capture_default_str();
  app.add_option("--http-port", options.http_port, "REST port (0 = any free port)")
      ->capture_default_str();
  app.add_option("--bind-address", bind_address, "address both APIs listen on")
      ->capture_default_str();
  app.add_option("--history-retention", options.history_retention_revisions,
                 "revisions of history to keep (0 = keep all)")
      ->capture_default_str();
  app.add_option("--compaction-interval-seconds", compaction_interval_seconds)
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--db-pool-size", options.db_pool_size)
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  int xds_debounce_ms = 2;
  app.add_option("--max-xds-streams", options.max_xds_streams,
                 "xDS streams this replica accepts; above it clients get RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--xds-debounce-ms", xds_debounce_ms,
                 "batch revisions arriving this close together")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option(
         "--xds-threads", options.xds_threads,
         "threads (each with its own completion queue) serving xDS streams; 0 = one per core")
      ->capture_default_str();
  app.add_option("--replica-id", options.replica_id, "name of this replica (default hostname-pid)");
  CLI11_PARSE(app, argc, argv);
  options.xds_debounce = absl::Milliseconds(xds_debounce_ms);
  options.http_host = bind_address;
  options.grpc_address = absl::StrCat(bind_address.find(':') != std::string::npos
                                          ? absl::StrCat("[", bind_address, "]")
                                          : bind_address,
                                      ":", grpc_port);
  options.compaction_interval = absl::Seconds(compaction_interval_seconds);

#ifdef NDEBUG
  // Debian's Abseil checks lock order on every lock (gRPC's included): ~10% of CPU at 10,000
  // xDS streams (docs/performance.md). Tests keep the check.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  // Block the signals before any thread starts so only the waiter below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto control_plane = meridian::server::ControlPlane::Start(options);
  if (!control_plane.ok()) {
    spdlog::error("meridian-cp failed to start: {}", control_plane.status().ToString());
    return 1;
  }
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("received signal {}, shutting down", signal);
  (*control_plane)->Shutdown();
  return 0;
}
