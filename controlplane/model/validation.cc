#include "controlplane/model/validation.h"

#include <arpa/inet.h>

#include <regex>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/certificates.h"
#include "controlplane/model/resource_key.h"

namespace meridian::model {
namespace {

constexpr size_t kMaxNameLength = 253;
constexpr uint32_t kMaxWeight = 10000;
constexpr int kMaxListItems = 1000;

absl::Status FieldError(absl::string_view field, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

std::string Indexed(absl::string_view field, int index) {
  return absl::StrCat(field, "[", index, "]");
}

absl::Status ValidatePort(absl::string_view field, uint32_t port) {
  if (port < 1 || port > 65535) {
    return FieldError(field, absl::StrCat("must be 1..65535, got ", port));
  }
  return absl::OkStatus();
}

absl::Status ValidateRegex(absl::string_view field, const std::string& pattern) {
  if (pattern.empty()) return FieldError(field, "regex must not be empty");
  try {
    std::regex compiled(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return FieldError(field, absl::StrCat("invalid regex \"", pattern, "\": ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status ValidateHeaderName(absl::string_view field, absl::string_view name) {
  if (name.empty()) return FieldError(field, "header name must not be empty");
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return FieldError(field, absl::StrCat("invalid header name \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

bool IsIpLiteral(const std::string& address) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, address.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, address.c_str(), buffer) == 1;
}

absl::Status ValidateLabels(absl::string_view field,
                            const google::protobuf::Map<std::string, std::string>& labels) {
  for (const auto& [key, value] : labels) {
    if (key.empty() || key.size() > 63 + 254) return FieldError(field, "label key length");
    for (char c : key) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' &&
          c != '.' && c != '/') {
        return FieldError(absl::StrCat(field, ".", key), "invalid character in label key");
      }
    }
    if (value.size() > 1024) return FieldError(absl::StrCat(field, ".", key), "value too long");
  }
  return absl::OkStatus();
}

absl::Status ValidateService(const v1::ServiceSpec& spec) {
  if (spec.ports_size() > kMaxListItems) return FieldError("spec.ports", "too many ports");
  for (int i = 0; i < spec.ports_size(); ++i) {
    const auto& port = spec.ports(i);
    const std::string field = Indexed("spec.ports", i);
    if (!port.name().empty()) MERIDIAN_RETURN_IF_ERROR(ValidateName(field + ".name", port.name()));
    MERIDIAN_RETURN_IF_ERROR(ValidatePort(field + ".port", port.port()));
    for (int j = 0; j < i; ++j) {
      if (spec.ports(j).port() == port.port()) {
        return FieldError(field + ".port", absl::StrCat("duplicate port ", port.port()));
      }
    }
  }
  const auto& lb = spec.load_balancing();
  if (lb.policy() == v1::RING_HASH && lb.hash().key_case() == v1::HashPolicy::KEY_NOT_SET) {
    return FieldError("spec.load_balancing.hash",
                      "RING_HASH needs a hash key (header, cookie or source_ip)");
  }
  if (lb.policy() != v1::RING_HASH && lb.hash().key_case() != v1::HashPolicy::KEY_NOT_SET) {
    return FieldError("spec.load_balancing.hash", "only valid with policy RING_HASH");
  }
  if (lb.hash().has_header()) {
    MERIDIAN_RETURN_IF_ERROR(ValidateHeaderName("spec.load_balancing.hash.header", lb.hash().header()));
  }
  if (lb.hash().has_cookie() && lb.hash().cookie().empty()) {
    return FieldError("spec.load_balancing.hash.cookie", "must not be empty");
  }
  const auto& hc = spec.health_check();
  if (!hc.path().empty() && hc.path()[0] != '/') {
    return FieldError("spec.health_check.path", "must start with /");
  }
  if (hc.timeout_ms() > 0 && hc.interval_ms() > 0 && hc.timeout_ms() > hc.interval_ms()) {
    return FieldError("spec.health_check.timeout_ms", "must not exceed interval_ms");
  }
  return absl::OkStatus();
}

absl::Status ValidateEndpoint(const v1::EndpointSpec& spec) {
  if (spec.service().empty()) return FieldError("spec.service", "is required");
  MERIDIAN_RETURN_IF_ERROR(ValidateName("spec.service", spec.service()));
  if (spec.address().empty()) return FieldError("spec.address", "is required");
  if (!IsIpLiteral(spec.address())) {
    // A DNS name is allowed too (resolved by the proxy).
    if (absl::Status status = ValidateName("spec.address", spec.address()); !status.ok()) {
      return FieldError("spec.address",
                        absl::StrCat("must be an IPv4/IPv6 address or a DNS name, got \"",
                                     spec.address(), "\""));
    }
  }
  MERIDIAN_RETURN_IF_ERROR(ValidatePort("spec.port", spec.port()));
  if (spec.weight() > kMaxWeight) {
    return FieldError("spec.weight", absl::StrCat("must be 0..", kMaxWeight));
  }
  if (!spec.zone().empty()) MERIDIAN_RETURN_IF_ERROR(ValidateName("spec.zone", spec.zone()));
  return ValidateLabels("spec.labels", spec.labels());
}

absl::Status ValidateMatch(const std::string& field, const v1::RouteMatch& match) {
  switch (match.path_case()) {
    case v1::RouteMatch::kPathPrefix:
    case v1::RouteMatch::kPathExact: {
      const std::string& path =
          match.has_path_prefix() ? match.path_prefix() : match.path_exact();
      if (path.empty() || path[0] != '/') {
        return FieldError(field + (match.has_path_prefix() ? ".path_prefix" : ".path_exact"),
                          "must start with /");
      }
      break;
    }
    case v1::RouteMatch::kPathRegex:
      MERIDIAN_RETURN_IF_ERROR(ValidateRegex(field + ".path_regex", match.path_regex()));
      break;
    case v1::RouteMatch::PATH_NOT_SET:
      break;
  }
  for (int i = 0; i < match.methods_size(); ++i) {
    const std::string& method = match.methods(i);
    if (method.empty() || method.size() > 20 ||
        !std::all_of(method.begin(), method.end(),
                     [](char c) { return absl::ascii_isupper(static_cast<unsigned char>(c)); })) {
      return FieldError(Indexed(field + ".methods", i),
                        absl::StrCat("must be an upper-case HTTP method, got \"", method, "\""));
    }
  }
  for (int i = 0; i < match.headers_size(); ++i) {
    const auto& header = match.headers(i);
    const std::string header_field = Indexed(field + ".headers", i);
    MERIDIAN_RETURN_IF_ERROR(ValidateHeaderName(header_field + ".name", header.name()));
    if (header.match_case() == v1::HeaderMatch::MATCH_NOT_SET) {
      return FieldError(header_field, "needs one of exact, prefix, regex or present");
    }
    if (header.has_regex()) {
      MERIDIAN_RETURN_IF_ERROR(ValidateRegex(header_field + ".regex", header.regex()));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRule(const std::string& field, const v1::RouteRule& rule) {
  MERIDIAN_RETURN_IF_ERROR(ValidateMatch(field + ".match", rule.match()));
  if (rule.destinations().empty()) {
    return FieldError(field + ".destinations", "at least one destination is required");
  }
  uint64_t total_weight = 0;
  for (int i = 0; i < rule.destinations_size(); ++i) {
    const auto& destination = rule.destinations(i);
    const std::string dest_field = Indexed(field + ".destinations", i);
    MERIDIAN_RETURN_IF_ERROR(ValidateName(dest_field + ".service", destination.service()));
    if (destination.weight() > kMaxWeight) {
      return FieldError(dest_field + ".weight", absl::StrCat("must be 0..", kMaxWeight));
    }
    if (destination.port() != 0) {
      MERIDIAN_RETURN_IF_ERROR(ValidatePort(dest_field + ".port", destination.port()));
    }
    total_weight += destination.weight();
  }
  if (rule.destinations_size() > 1 && total_weight == 0) {
    return FieldError(field + ".destinations", "weights of a split must not all be 0");
  }
  if (rule.retries().per_try_timeout_ms() > 0 && rule.timeout_ms() > 0 &&
      rule.retries().per_try_timeout_ms() > rule.timeout_ms()) {
    return FieldError(field + ".retries.per_try_timeout_ms", "must not exceed timeout_ms");
  }
  if (rule.retries().attempts() > 10) {
    return FieldError(field + ".retries.attempts", "must be 0..10");
  }
  static const std::vector<std::string> kRetryOn = {
      "5xx", "gateway-error", "connect-failure", "reset", "retriable-4xx", "refused-stream",
      "empty-response", "response-timeout", "all-retryable-errors"};
  for (int i = 0; i < rule.retries().retry_on_size(); ++i) {
    const std::string& condition = rule.retries().retry_on(i);
    if (std::find(kRetryOn.begin(), kRetryOn.end(), condition) == kRetryOn.end()) {
      return FieldError(Indexed(field + ".retries.retry_on", i),
                        absl::StrCat("unknown condition \"", condition,
                                     "\" (5xx, gateway-error, connect-failure, reset, "
                                     "retriable-4xx, refused-stream, empty-response, "
                                     "response-timeout, all-retryable-errors)"));
    }
  }
  if (rule.has_rate_limit() && rule.rate_limit().requests_per_second() == 0) {
    return FieldError(field + ".rate_limit.requests_per_second", "must be > 0");
  }
  for (const auto& [name, value] : rule.rewrite().set_request_headers()) {
    MERIDIAN_RETURN_IF_ERROR(ValidateHeaderName(field + ".rewrite.set_request_headers", name));
  }
  for (const auto& [name, value] : rule.rewrite().set_response_headers()) {
    MERIDIAN_RETURN_IF_ERROR(ValidateHeaderName(field + ".rewrite.set_response_headers", name));
  }
  if (!rule.rewrite().prefix_rewrite().empty() && rule.rewrite().prefix_rewrite()[0] != '/') {
    return FieldError(field + ".rewrite.prefix_rewrite", "must start with /");
  }
  return absl::OkStatus();
}

absl::Status ValidateHost(const std::string& field, const std::string& host) {
  absl::string_view name = host;
  if (name == "*") return absl::OkStatus();
  absl::ConsumePrefix(&name, "*.");
  if (absl::Status status = ValidateName(field, name); !status.ok()) {
    return FieldError(field, absl::StrCat("invalid host \"", host, "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateRoute(const v1::RouteSpec& spec) {
  if (spec.hosts().empty()) return FieldError("spec.hosts", "at least one host is required");
  for (int i = 0; i < spec.hosts_size(); ++i) {
    MERIDIAN_RETURN_IF_ERROR(ValidateHost(Indexed("spec.hosts", i), spec.hosts(i)));
  }
  MERIDIAN_RETURN_IF_ERROR(ValidatePort("spec.port", spec.port()));
  if (spec.rules().empty()) return FieldError("spec.rules", "at least one rule is required");
  if (spec.rules_size() > kMaxListItems) return FieldError("spec.rules", "too many rules");
  for (int i = 0; i < spec.rules_size(); ++i) {
    MERIDIAN_RETURN_IF_ERROR(ValidateRule(Indexed("spec.rules", i), spec.rules(i)));
  }
  if (!spec.tls_certificate().empty()) {
    MERIDIAN_RETURN_IF_ERROR(ValidateName("spec.tls_certificate", spec.tls_certificate()));
  }
  return absl::OkStatus();
}

absl::Status ValidateSchemaValue(const v1::ValueSchema& schema, const google::protobuf::Value& v) {
  using google::protobuf::Value;
  auto type_error = [&](absl::string_view expected) {
    return FieldError("spec.value", absl::StrCat("must be of type ", expected));
  };
  switch (schema.type()) {
    case v1::VALUE_TYPE_UNSPECIFIED:
      break;
    case v1::STRING:
      if (v.kind_case() != Value::kStringValue) return type_error("string");
      break;
    case v1::NUMBER:
      if (v.kind_case() != Value::kNumberValue) return type_error("number");
      break;
    case v1::INTEGER:
      if (v.kind_case() != Value::kNumberValue ||
          v.number_value() != static_cast<double>(static_cast<int64_t>(v.number_value()))) {
        return type_error("integer");
      }
      break;
    case v1::BOOLEAN:
      if (v.kind_case() != Value::kBoolValue) return type_error("boolean");
      break;
    case v1::OBJECT:
      if (v.kind_case() != Value::kStructValue) return type_error("object");
      break;
    case v1::ARRAY:
      if (v.kind_case() != Value::kListValue) return type_error("array");
      break;
    default:
      return FieldError("spec.schema.type", "unknown type");
  }
  if (v.kind_case() == Value::kNumberValue) {
    if (schema.has_minimum() && v.number_value() < schema.minimum()) {
      return FieldError("spec.value", absl::StrCat("must be >= ", schema.minimum()));
    }
    if (schema.has_maximum() && v.number_value() > schema.maximum()) {
      return FieldError("spec.value", absl::StrCat("must be <= ", schema.maximum()));
    }
  }
  if (v.kind_case() == Value::kStringValue) {
    const std::string& text = v.string_value();
    if (schema.max_length() > 0 && text.size() > schema.max_length()) {
      return FieldError("spec.value", absl::StrCat("longer than ", schema.max_length()));
    }
    if (!schema.pattern().empty() &&
        !std::regex_search(text, std::regex(schema.pattern(), std::regex::ECMAScript))) {
      return FieldError("spec.value", absl::StrCat("does not match pattern ", schema.pattern()));
    }
    if (!schema.enum_values().empty() &&
        std::find(schema.enum_values().begin(), schema.enum_values().end(), text) ==
            schema.enum_values().end()) {
      return FieldError("spec.value", "is not one of the allowed enum_values");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateConfigEntry(const std::string& name, const v1::ConfigEntrySpec& spec) {
  MERIDIAN_RETURN_IF_ERROR(ValidateName("spec.service", spec.service()));
  static const std::regex kKeyPattern("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  if (spec.key().size() > 63 || !std::regex_match(spec.key(), kKeyPattern)) {
    return FieldError("spec.key", absl::StrCat("must match [a-z0-9]([-a-z0-9]*[a-z0-9])? (at most "
                                               "63 characters), got \"", spec.key(), "\""));
  }
  if (name != absl::StrCat(spec.service(), ".", spec.key())) {
    return FieldError("name", "a config entry is named <service>.<key>");
  }
  if (!spec.has_value()) return FieldError("spec.value", "is required");
  if (!spec.schema().pattern().empty()) {
    MERIDIAN_RETURN_IF_ERROR(ValidateRegex("spec.schema.pattern", spec.schema().pattern()));
  }
  return ValidateSchemaValue(spec.schema(), spec.value());
}

}  // namespace

namespace {

// [a-z0-9]([-a-z0-9.]*[a-z0-9])? without std::regex, which costs microseconds per call on
// the write path.
bool IsDnsLikeName(absl::string_view value) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (value.empty() || !alnum(value.front()) || !alnum(value.back())) return false;
  return std::all_of(value.begin(), value.end(),
                     [&](char c) { return alnum(c) || c == '-' || c == '.'; });
}

}  // namespace

absl::Status ValidateName(absl::string_view field, absl::string_view value) {
  if (value.empty()) return FieldError(field, "is required");
  if (value.size() > kMaxNameLength) {
    return FieldError(field, absl::StrCat("longer than ", kMaxNameLength, " characters"));
  }
  if (!IsDnsLikeName(value)) {
    return FieldError(field, absl::StrCat("\"", value,
                                          "\" must match [a-z0-9]([-a-z0-9.]*[a-z0-9])?"));
  }
  return absl::OkStatus();
}

absl::Status NormalizeResource(v1::Resource& resource) {
  if (resource.kind() == v1::CONFIG_ENTRY) {
    auto& spec = *resource.mutable_config_entry();
    const size_t dot = resource.name().rfind('.');
    if (dot != std::string::npos) {
      if (spec.service().empty()) spec.set_service(resource.name().substr(0, dot));
      if (spec.key().empty()) spec.set_key(resource.name().substr(dot + 1));
    }
  }
  if (resource.kind() == v1::CERTIFICATE) {
    return FillCertificateDetails(*resource.mutable_certificate());
  }
  return absl::OkStatus();
}

absl::Status ValidateResource(const v1::Resource& resource) {
  if (resource.kind() == v1::KIND_UNSPECIFIED || !v1::Kind_IsValid(resource.kind())) {
    return FieldError("kind", "is required");
  }
  MERIDIAN_RETURN_IF_ERROR(ValidateName("environment", resource.environment()));
  MERIDIAN_RETURN_IF_ERROR(ValidateName("name", resource.name()));
  MERIDIAN_RETURN_IF_ERROR(ValidateLabels("labels", resource.labels()));
  if (resource.spec_case() != SpecCaseOf(resource.kind())) {
    return FieldError("spec", absl::StrCat("is required and must be a ", KindPlural(resource.kind()),
                                           " spec"));
  }
  if (resource.ByteSizeLong() > kMaxResourceBytes) {
    return FieldError("spec", absl::StrCat("resource larger than ", kMaxResourceBytes, " bytes"));
  }
  switch (resource.kind()) {
    case v1::SERVICE:
      return ValidateService(resource.service());
    case v1::ENDPOINT:
      return ValidateEndpoint(resource.endpoint());
    case v1::ROUTE:
      return ValidateRoute(resource.route());
    case v1::CERTIFICATE:
      return ValidateCertificate(resource.certificate());
    case v1::CONFIG_ENTRY:
      return ValidateConfigEntry(resource.name(), resource.config_entry());
    default:
      return FieldError("kind", "unknown");
  }
}

}  // namespace meridian::model
