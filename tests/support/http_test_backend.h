#pragma once

// Small HTTP backends for proxy tests, on 127.0.0.1 only.
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
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

// A client for traffic through a proxy under test on 127.0.0.1:`port`, with short timeouts.
inline httplib::Client LoopbackClient(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  return client;
}

// One GET to 127.0.0.1:`port`.
inline Reply GetReply(int port, const std::string& path = "/") {
  auto result = LoopbackClient(port).Get(path.c_str());
  if (!result) return {};
  return {result->status, result->body};
}

// "<status> <body>" (or "error") of `count` GETs on one keep-alive connection, counted.
inline std::map<std::string, int> TallyReplies(int port, int count, const std::string& path = "/") {
  httplib::Client client = LoopbackClient(port);
  std::map<std::string, int> tally;
  for (int i = 0; i < count; ++i) {
    auto result = client.Get(path.c_str());
    ++tally[result ? absl::StrCat(result->status, " ", result->body) : "error"];
  }
  return tally;
}

}  // namespace meridian::testing
