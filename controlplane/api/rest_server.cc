#include "controlplane/api/rest_server.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "controlplane/api/rest_support.h"
#include "spdlog/spdlog.h"

namespace meridian::api {

RestServer::RestServer(store::ConfigStore& store, store::ChangeFeed& feed, Options options,
                       convergence::ConvergenceTracker* convergence)
    : store_(store), feed_(feed), convergence_(convergence), options_(std::move(options)) {}

RestServer::~RestServer() { Stop(); }

absl::Status RestServer::Start() {
  if (started_) return absl::FailedPreconditionError("RestServer already started");
  const size_t threads =
      static_cast<size_t>(options_.worker_threads > 0 ? options_.worker_threads : 1);
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http_.set_payload_max_length(options_.max_body_bytes);
  // Idle keep-alive connections hold a worker and delay Stop() by up to this long.
  http_.set_keep_alive_timeout(2);

  // Errors produced by httplib itself (no route, body too large, bad request line) get the
  // same JSON shape as ours; responses that already carry a body are left alone.
  http_.set_error_handler(
      httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message;
        std::string code = "INVALID_ARGUMENT";
        switch (res.status) {
          case 400:
            message = "malformed HTTP request (a POST or PUT needs a body or Content-Length: 0)";
            break;
          case 404:
            code = "NOT_FOUND";
            message = "no such endpoint";
            break;
          case 405:
            message = "method not allowed";
            break;
          case 413:
            message = absl::StrCat("body: larger than ", options_.max_body_bytes, " bytes");
            break;
          case 414:
            message = "request URI too long";
            break;
          default:
            code = "UNKNOWN";
            message = absl::StrCat("HTTP ", res.status);
        }
        nlohmann::json body = {{"code", code}, {"message", message}};
        res.set_content(body.dump(), rest::kJsonContentType);
        return httplib::Server::HandlerResponse::Handled;
      }));
  // Handlers return errors as values; this only catches a bug, and keeps the JSON shape.
  http_.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("rest: {} {} threw: {}", req.method, req.path, what);
        rest::SendError(res, absl::InternalError("internal error"));
      });
  http_.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("rest: {} {} -> {}", req.method, req.path, res.status);
  });

  RegisterHealthRoutes();
  RegisterResourceRoutes();
  RegisterHistoryRoutes();
  RegisterWatchRoute();
  RegisterConfigRoutes();
  RegisterConvergenceRoutes();

  if (options_.port == 0) {
    port_ = http_.bind_to_any_port(options_.host);
  } else if (http_.bind_to_port(options_.host, options_.port)) {
    port_ = options_.port;
  } else {
    port_ = -1;
  }
  if (port_ <= 0) {
    port_ = 0;
    return absl::UnavailableError(
        absl::StrCat("cannot bind http ", options_.host, ":", options_.port));
  }
  started_ = true;
  serving_ = true;
  serve_thread_ = std::thread([this] {
    http_.listen_after_bind();
    serving_ = false;
  });
  return absl::OkStatus();
}

void RestServer::Stop() {
  if (!started_) return;
  started_ = false;
  // stop() is a no-op until listen_after_bind has marked the server running.
  while (serving_ && !http_.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (serving_) http_.stop();
  if (serve_thread_.joinable()) serve_thread_.join();
}

void RestServer::RegisterHealthRoutes() {
  http_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    rest::SendJson(res, 200, {{"status", "ok"}});
  });
  http_.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    if (absl::Status ready = store_.CheckReady(); !ready.ok()) {
      rest::SendJson(res, 503,
                     {{"status", "unavailable"}, {"reason", std::string(ready.message())}});
      return;
    }
    rest::SendJson(res, 200, {{"status", "ok"}});
  });
}

}  // namespace meridian::api
