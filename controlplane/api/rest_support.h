#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace meridian::api::rest {

// Request/response plumbing shared by the REST handlers: how bodies, query parameters and
// headers are read, and how results and errors are written. Stateless.

inline constexpr char kJsonContentType[] = "application/json";

void SendJson(httplib::Response& res, int http_status, const nlohmann::ordered_json& body);
// Maps through status_mapping.h: {"code": ..., "message": ...}.
void SendError(httplib::Response& res, const absl::Status& status);

// The request body as JSON. Malformed JSON is InvalidArgument with the parser's position.
absl::StatusOr<nlohmann::json> ParseBody(const httplib::Request& req);

// An optional integer query parameter; non-integers are InvalidArgument naming it.
absl::StatusOr<int64_t> QueryInt(const httplib::Request& req, const std::string& name,
                                 int64_t default_value);
std::string QueryString(const httplib::Request& req, const std::string& name);

// X-Meridian-Actor, or "anonymous".
std::string Actor(const httplib::Request& req);
// X-Meridian-Comment, or empty.
std::string HeaderComment(const httplib::Request& req);

// If-Match as an expected version: 0 when absent; `"3"`, `W/"3"` and `3` are accepted.
absl::StatusOr<int64_t> IfMatchVersion(const httplib::Request& req);

}  // namespace meridian::api::rest
