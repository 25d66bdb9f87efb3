#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "controlplane/convergence/convergence_tracker.h"
#include "controlplane/store/change_feed.h"
#include "controlplane/store/config_store.h"
#include "httplib.h"

namespace meridian::api {

// The REST/JSON face of the config API (issue 3's table) on cpp-httplib. Handlers only
// translate HTTP to store calls and back; validation, versioning and history live in the
// store. Each connection holds a worker thread, watch streams included, hence the large pool.
// Start/Stop from one thread; handlers run concurrently on the pool.
class RestServer {
 public:
  struct Options {
    std::string host = "0.0.0.0";
    int port = 18080;                         // 0 = any free port; see port()
    size_t max_body_bytes = 2 * 1024 * 1024;  // larger bodies get 413
    int worker_threads = 64;
    // How long a watch stream sleeps on the feed before checking for a gone client.
    absl::Duration watch_poll_interval = absl::Seconds(1);
  };

  // `convergence` may be null (then the /nodes and /revisions/N/status|wait routes are absent).
  RestServer(store::ConfigStore& store, store::ChangeFeed& feed, Options options,
             convergence::ConvergenceTracker* convergence = nullptr);
  ~RestServer();
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  // Binds and serves on a background thread. Unavailable if the address cannot be bound.
  absl::Status Start();
  // Stops accepting, ends watch streams and joins the workers. Idempotent.
  void Stop();
  // The bound port (useful with port 0); 0 before Start.
  int port() const { return port_; }

 private:
  // Route registration, one group per file (rest_*.cc).
  void RegisterHealthRoutes();
  void RegisterResourceRoutes();  // rest_resources.cc: CRUD and POST /changes
  void RegisterHistoryRoutes();   // rest_history.cc: history, revisions, diff, rollback, compact
  void RegisterWatchRoute();      // rest_watch.cc
  void RegisterConfigRoutes();    // rest_configs.cc
  void RegisterConvergenceRoutes();  // rest_convergence.cc

  void HandleWatch(const httplib::Request& req, httplib::Response& res);

  store::ConfigStore& store_;
  store::ChangeFeed& feed_;
  convergence::ConvergenceTracker* const convergence_;
  const Options options_;
  httplib::Server http_;
  std::thread serve_thread_;
  std::atomic<bool> serving_{false};
  int port_ = 0;
  bool started_ = false;
};

}  // namespace meridian::api
