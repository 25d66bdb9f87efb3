#include "controlplane/ctl/api_client.h"

#include <chrono>
#include <exception>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "httplib.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;

constexpr char kJsonContentType[] = "application/json";
constexpr size_t kMaxErrorBodyQuote = 200;

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

std::string PercentEscape(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    if (IsUnreserved(c)) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

absl::StatusCode CodeFromName(absl::string_view name) {
  static constexpr std::pair<absl::string_view, absl::StatusCode> kCodes[] = {
      {"CANCELLED", absl::StatusCode::kCancelled},
      {"INVALID_ARGUMENT", absl::StatusCode::kInvalidArgument},
      {"DEADLINE_EXCEEDED", absl::StatusCode::kDeadlineExceeded},
      {"NOT_FOUND", absl::StatusCode::kNotFound},
      {"ALREADY_EXISTS", absl::StatusCode::kAlreadyExists},
      {"PERMISSION_DENIED", absl::StatusCode::kPermissionDenied},
      {"RESOURCE_EXHAUSTED", absl::StatusCode::kResourceExhausted},
      {"FAILED_PRECONDITION", absl::StatusCode::kFailedPrecondition},
      {"ABORTED", absl::StatusCode::kAborted},
      {"OUT_OF_RANGE", absl::StatusCode::kOutOfRange},
      {"UNIMPLEMENTED", absl::StatusCode::kUnimplemented},
      {"INTERNAL", absl::StatusCode::kInternal},
      {"UNAVAILABLE", absl::StatusCode::kUnavailable},
      {"DATA_LOSS", absl::StatusCode::kDataLoss},
      {"UNAUTHENTICATED", absl::StatusCode::kUnauthenticated},
  };
  for (const auto& [code_name, code] : kCodes) {
    if (code_name == name) return code;
  }
  return absl::StatusCode::kUnknown;
}

absl::StatusCode CodeFromHttp(int http_status) {
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAborted;
    case 412:
      return absl::StatusCode::kFailedPrecondition;
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 503:
      return absl::StatusCode::kUnavailable;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kUnknown;
  }
}

// Accepts "host:port", "http://host:port" and "https://host:port", with an optional
// trailing slash; httplib would silently treat anything else as a host name.
absl::StatusOr<std::string> NormalizeServer(absl::string_view server) {
  absl::string_view rest = absl::StripSuffix(server, "/");
  std::string scheme = "http";
  if (const size_t sep = rest.find("://"); sep != rest.npos) {
    scheme = absl::AsciiStrToLower(rest.substr(0, sep));
    rest.remove_prefix(sep + 3);
  }
  if ((scheme != "http" && scheme != "https") || rest.empty() ||
      rest.find_first_of("/?#") != rest.npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server: \"", server, "\" is not of the form http://host:port"));
  }
  return absl::StrCat(scheme, "://", rest);
}

}  // namespace

std::string ResourcePath(absl::string_view environment, absl::string_view kind,
                         absl::string_view name) {
  std::string path =
      absl::StrCat("/api/v1/environments/", PercentEscape(environment), "/", PercentEscape(kind));
  if (!name.empty()) absl::StrAppend(&path, "/", PercentEscape(name));
  return path;
}

std::string QueryString(const ApiClient::QueryParams& query) {
  std::string out;
  for (const auto& [name, value] : query) {
    if (value.empty()) continue;
    absl::StrAppend(&out, out.empty() ? "?" : "&", PercentEscape(name), "=", PercentEscape(value));
  }
  return out;
}

absl::Status StatusFromResponse(int http_status, absl::string_view body) {
  const json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
    absl::StatusCode code = CodeFromHttp(http_status);
    if (auto name = parsed.find("code"); name != parsed.end() && name->is_string()) {
      if (const auto named = CodeFromName(name->get<std::string>());
          named != absl::StatusCode::kUnknown) {
        code = named;
      }
    }
    return absl::Status(code, parsed["message"].get<std::string>());
  }
  std::string quote(body.substr(0, kMaxErrorBodyQuote));
  absl::StripAsciiWhitespace(&quote);
  return absl::Status(CodeFromHttp(http_status),
                      absl::StrCat("HTTP ", http_status, quote.empty() ? "" : ": ", quote));
}

absl::StatusOr<std::unique_ptr<ApiClient>> ApiClient::Create(ApiClientOptions options) {
  absl::StatusOr<std::string> server = NormalizeServer(options.server);
  if (!server.ok()) return server.status();
  options.server = *std::move(server);
  std::unique_ptr<httplib::Client> http;
  try {
    http = std::make_unique<httplib::Client>(options.server);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("--server: ", e.what()));
  }
  if (!http->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("--server: cannot use ", options.server));
  }
  const auto timeout = absl::ToChronoMilliseconds(options.timeout);
  http->set_connection_timeout(std::chrono::seconds(10));
  http->set_read_timeout(timeout);
  http->set_write_timeout(timeout);
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(options), std::move(http)));
}

ApiClient::ApiClient(ApiClientOptions options, std::unique_ptr<httplib::Client> http)
    : options_(std::move(options)), http_(std::move(http)) {}

ApiClient::~ApiClient() = default;

namespace {

httplib::Headers RequestHeaders(const std::string& actor) {
  httplib::Headers headers = {{"Accept", kJsonContentType}};
  if (!actor.empty()) headers.emplace("X-Meridian-Actor", actor);
  return headers;
}

absl::Status TransportError(const std::string& server, httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
      return absl::UnavailableError(
          absl::StrCat("cannot connect to meridian-cp at ", server,
                       " (is it running? set --server or MERIDIAN_SERVER)"));
    case httplib::Error::Read:
      return absl::UnavailableError(absl::StrCat("no response from meridian-cp at ", server,
                                                 " (connection lost or timed out)"));
    default:
      return absl::UnavailableError(absl::StrCat("request to meridian-cp at ", server,
                                                 " failed: ", httplib::to_string(error)));
  }
}

absl::StatusOr<json> JsonResult(const std::string& server, const httplib::Result& result) {
  if (!result) return TransportError(server, result.error());
  if (result->status < 200 || result->status >= 300) {
    return StatusFromResponse(result->status, result->body);
  }
  if (result->body.empty()) return json::object();
  json parsed = json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InternalError(
        absl::StrCat("meridian-cp at ", server, " sent a non-JSON response"));
  }
  return parsed;
}

}  // namespace

absl::StatusOr<json> ApiClient::Get(const std::string& path, const QueryParams& query) {
  return JsonResult(options_.server,
                    http_->Get(path + QueryString(query), RequestHeaders(options_.actor)));
}

absl::StatusOr<json> ApiClient::Post(const std::string& path, const json& body) {
  return JsonResult(options_.server, http_->Post(path, RequestHeaders(options_.actor), body.dump(),
                                                 kJsonContentType));
}

absl::StatusOr<json> ApiClient::Delete(const std::string& path, const json& body,
                                       int64_t if_match) {
  httplib::Headers headers = RequestHeaders(options_.actor);
  if (if_match > 0) headers.emplace("If-Match", absl::StrCat("\"", if_match, "\""));
  return JsonResult(options_.server,
                    body.empty() ? http_->Delete(path, headers)
                                 : http_->Delete(path, headers, body.dump(), kJsonContentType));
}

absl::Status ApiClient::Stream(const std::string& path, const QueryParams& query,
                               absl::Duration idle_timeout,
                               const std::function<bool(absl::string_view line)>& on_line) {
  http_->set_read_timeout(absl::ToChronoMilliseconds(idle_timeout));
  int status = 0;
  std::string pending;  // a partial line, or the error body of a non-200 answer
  bool stopped_by_caller = false;
  httplib::Result result = http_->Get(
      path + QueryString(query), RequestHeaders(options_.actor),
      [&](const httplib::Response& response) {
        status = response.status;
        return true;
      },
      [&](const char* data, size_t length) {
        pending.append(data, length);
        if (status != 200) return true;
        size_t start = 0;
        for (size_t end; (end = pending.find('\n', start)) != std::string::npos; start = end + 1) {
          const absl::string_view line(pending.data() + start, end - start);
          if (!line.empty() && !on_line(line)) {
            stopped_by_caller = true;
            return false;
          }
        }
        pending.erase(0, start);
        return true;
      });
  http_->set_read_timeout(absl::ToChronoMilliseconds(options_.timeout));
  if (stopped_by_caller) return absl::OkStatus();
  if (!result) {
    if (result.error() == httplib::Error::Read && status == 200) {
      return absl::DeadlineExceededError("watch stream idle or interrupted");
    }
    return TransportError(options_.server, result.error());
  }
  if (status != 200) return StatusFromResponse(status, pending);
  return absl::UnavailableError(
      absl::StrCat("meridian-cp at ", options_.server, " closed the watch stream"));
}

}  // namespace meridian::ctl
