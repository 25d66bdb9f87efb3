#pragma once

// Small HTTP backends for proxy tests, on 127.0.0.1 only.
#include <atomic>
#include <string>
#include <thread>
#include <utility>

#include "httplib.h"

namespace meridian::testing {

// An HTTP server on 127.0.0.1 that answers every GET with its name, or 500 once failing.
class TestBackend {
 public:
  explicit TestBackend(std::string name) : name_(std::move(name)) {
    server_.Get(".*", [this](const httplib::Request&, httplib::Response& response) {
      if (failing_) {
        response.status = 500;
        response.set_content("failing " + name_, "text/plain");
        return;
      }
      response.set_content(name_, "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~TestBackend() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  void set_failing(bool failing) { failing_ = failing; }

 private:
  std::string name_;
  httplib::Server server_;
  int port_ = 0;
  std::atomic<bool> failing_{false};
  std::thread thread_;
};

struct Reply {
  int status = 0;  // 0: no response
  std::string body;
};

}  // namespace meridian::testing
