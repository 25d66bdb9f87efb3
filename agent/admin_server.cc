#include "agent/admin_server.h"

#include <atomic>
#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace meridian::agent {
namespace {

absl::Status SplitHostPort(const std::string& address, std::string& host, int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin address \"", address, "\": expected host:port"));
  }
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return absl::OkStatus();
}

void Probe(const std::function<bool()>& check, httplib::Response& response) {
  const bool ok = check();
  response.status = ok ? 200 : 503;
  response.set_content(ok ? "ok\n" : "not ready\n", "text/plain");
}

}  // namespace

AdminServer::AdminServer(AdminHandlers handlers) : handlers_(std::move(handlers)) {}

AdminServer::~AdminServer() { Stop(); }

absl::Status AdminServer::Start(const std::string& address) {
  std::string host;
  int port = 0;
  if (absl::Status status = SplitHostPort(address, host, port); !status.ok()) return status;
  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& response) {
    Probe(handlers_.healthy, response);
  });
  server_->Get("/readyz", [this](const httplib::Request&, httplib::Response& response) {
    Probe(handlers_.ready, response);
  });
  server_->Get("/status", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(handlers_.status_json(), "application/json");
  });
  port_ = port == 0 ? server_->bind_to_any_port(host) : port;
  if (port_ <= 0 || (port != 0 && !server_->bind_to_port(host, port))) {
    server_.reset();
    port_ = 0;
    return absl::UnavailableError(absl::StrCat("admin server cannot listen on ", address));
  }
  auto done = std::make_shared<std::atomic<bool>>(false);
  thread_ = std::thread([this, done] {
    server_->listen_after_bind();
    *done = true;
  });
  // stop() is a no-op until the loop runs: wait for it so a quick Stop() cannot be lost.
  while (!server_->is_running() && !*done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::OkStatus();
}

void AdminServer::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace meridian::agent
