#include "controlplane/api/rest_support.h"

#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controlplane/api/rest_json.h"
#include "controlplane/api/status_mapping.h"

namespace meridian::api::rest {

void SendJson(httplib::Response& res, int http_status, const nlohmann::ordered_json& body) {
  res.status = http_status;
  res.set_content(DumpJson(body), kJsonContentType);
}

void SendError(httplib::Response& res, const absl::Status& status) {
  res.status = HttpStatusFor(status.code());
  res.set_content(ErrorJson(status), kJsonContentType);
}

absl::StatusOr<nlohmann::json> ParseBody(const httplib::Request& req) {
  if (req.body.empty()) return absl::InvalidArgumentError("body: expected JSON, got nothing");
  try {
    return nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("body: malformed JSON: ", e.what()));
  }
}

absl::StatusOr<int64_t> QueryInt(const httplib::Request& req, const std::string& name,
                                 int64_t default_value) {
  const std::string text = req.get_param_value(name.c_str());
  if (text.empty()) return default_value;  // absent, or `?name=` as forms send it
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": not an integer: \"", text, "\""));
  }
  return value;
}

std::string QueryString(const httplib::Request& req, const std::string& name) {
  return req.get_param_value(name.c_str());
}

std::string Actor(const httplib::Request& req) {
  std::string actor = req.get_header_value("X-Meridian-Actor");
  return actor.empty() ? "anonymous" : actor;
}

std::string HeaderComment(const httplib::Request& req) {
  return req.get_header_value("X-Meridian-Comment");
}

absl::StatusOr<int64_t> IfMatchVersion(const httplib::Request& req) {
  if (!req.has_header("If-Match")) return 0;
  absl::string_view text = req.get_header_value("If-Match");
  text = absl::StripAsciiWhitespace(text);
  absl::ConsumePrefix(&text, "W/");
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  int64_t version = 0;
  if (!absl::SimpleAtoi(text, &version) || version <= 0) {
    return absl::InvalidArgumentError(
        "If-Match: expected a resource version such as \"3\" (as sent in ETag)");
  }
  return version;
}

}  // namespace meridian::api::rest
