#include "controlplane/model/resource_key.h"

#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace meridian::model {
namespace {

struct KindNames {
  v1::Kind kind;
  absl::string_view plural;
  absl::string_view singular;
  v1::Resource::SpecCase spec_case;
};

constexpr std::array<KindNames, 5> kKinds = {{
    {v1::SERVICE, "services", "service", v1::Resource::kService},
    {v1::ENDPOINT, "endpoints", "endpoint", v1::Resource::kEndpoint},
    {v1::ROUTE, "routes", "route", v1::Resource::kRoute},
    {v1::CERTIFICATE, "certificates", "certificate", v1::Resource::kCertificate},
    {v1::CONFIG_ENTRY, "configs", "config", v1::Resource::kConfigEntry},
}};

}  // namespace

std::string ResourceKey::ToString() const {
  return absl::StrCat(KindPlural(kind), "/", environment, "/", name);
}

ResourceKey KeyOf(const v1::Resource& resource) {
  return {resource.kind(), resource.environment(), resource.name()};
}

absl::string_view KindPlural(v1::Kind kind) {
  for (const auto& names : kKinds) {
    if (names.kind == kind) return names.plural;
  }
  return "unknown";
}

absl::StatusOr<v1::Kind> KindFromPlural(absl::string_view plural) {
  for (const auto& names : kKinds) {
    if (names.plural == plural) return names.kind;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "kind: unknown kind \"", plural,
      "\" (expected services, endpoints, routes, certificates or configs)"));
}

absl::StatusOr<v1::Kind> ParseKind(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  for (const auto& names : kKinds) {
    if (names.plural == lower || names.singular == lower ||
        absl::AsciiStrToLower(v1::Kind_Name(names.kind)) == lower) {
      return names.kind;
    }
  }
  if (lower == "config_entry" || lower == "configentry") return v1::CONFIG_ENTRY;
  return KindFromPlural(text);
}

v1::Resource::SpecCase SpecCaseOf(v1::Kind kind) {
  for (const auto& names : kKinds) {
    if (names.kind == kind) return names.spec_case;
  }
  return v1::Resource::SPEC_NOT_SET;
}

}  // namespace meridian::model
