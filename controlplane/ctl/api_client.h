#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace httplib {
class Client;
}  // namespace httplib

namespace meridian::ctl {

struct ApiClientOptions {
  std::string server = "http://127.0.0.1:18080";  // scheme://host:port; scheme defaults to http
  std::string actor;                              // sent as X-Meridian-Actor when not empty
  absl::Duration timeout = absl::Seconds(60);     // per request (not per watch)
};

// A client of meridian-cp's REST API (issue 3's table). Turns transport failures and the
// server's {"code", "message"} errors into absl::Status with the server's message, so callers
// print one line and stop. Not thread-safe: one request at a time.
class ApiClient {
 public:
  using QueryParams = std::vector<std::pair<std::string, std::string>>;

  static absl::StatusOr<std::unique_ptr<ApiClient>> Create(ApiClientOptions options);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // `path` is already escaped (see ResourcePath); empty query values are left out.
  absl::StatusOr<nlohmann::ordered_json> Get(const std::string& path,
                                             const QueryParams& query = {});
  absl::StatusOr<nlohmann::ordered_json> Post(const std::string& path,
                                              const nlohmann::ordered_json& body);
  // `if_match` > 0 sends If-Match: "<version>".
  absl::StatusOr<nlohmann::ordered_json> Delete(const std::string& path,
                                                const nlohmann::ordered_json& body,
                                                int64_t if_match);

  // Reads a newline-delimited JSON stream and calls `on_line` per complete line until it
  // returns false (OK), the server ends the stream (OK), or the transport fails. A stream
  // idle for `idle_timeout` returns DeadlineExceeded so the caller can resume it.
  absl::Status Stream(const std::string& path, const QueryParams& query,
                      absl::Duration idle_timeout,
                      const std::function<bool(absl::string_view line)>& on_line);

  const std::string& server() const { return options_.server; }

 private:
  ApiClient(ApiClientOptions options, std::unique_ptr<httplib::Client> http);

  const ApiClientOptions options_;
  std::unique_ptr<httplib::Client> http_;
};

// "/api/v1/environments/<env>/<kind>[/<name>]", segments percent-escaped.
std::string ResourcePath(absl::string_view environment, absl::string_view kind,
                         absl::string_view name = "");
// "?a=1&b=x%2Cy" (empty values omitted; empty string when nothing is left).
std::string QueryString(const ApiClient::QueryParams& query);
// absl::Status from an HTTP error response: the server's message, its code when it names one.
absl::Status StatusFromResponse(int http_status, absl::string_view body);

}  // namespace meridian::ctl
