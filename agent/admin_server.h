#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace httplib {
class Server;
}

namespace meridian::agent {

// What the admin endpoints report; each is called on an HTTP worker thread.
struct AdminHandlers {
  std::function<bool()> healthy;             // GET /healthz: 200 or 503
  std::function<bool()> ready;               // GET /readyz: 200 or 503
  std::function<std::string()> status_json;  // GET /status
};

// The agent's local admin HTTP endpoint (cpp-httplib). Start/Stop from one thread.
class AdminServer {
 public:
  explicit AdminServer(AdminHandlers handlers);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // `address` is host:port ([v6]:port); port 0 takes any free port. Returns once listening.
  absl::Status Start(const std::string& address);
  void Stop();
  int port() const { return port_; }

 private:
  const AdminHandlers handlers_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace meridian::agent
