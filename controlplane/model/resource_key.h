#pragma once

#include "absl/strings/string_view.h"
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/hash/hash.h"
#include "absl/status/statusor.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::model {

// Identifies a resource: (kind, environment, name).
struct ResourceKey {
  v1::Kind kind = v1::KIND_UNSPECIFIED;
  std::string environment;
  std::string name;

  auto operator<=>(const ResourceKey&) const = default;
  bool operator==(const ResourceKey&) const = default;

  template <typename H>
  friend H AbslHashValue(H h, const ResourceKey& key) {
    return H::combine(std::move(h), static_cast<int>(key.kind), key.environment, key.name);
  }

  // "services/prod/checkout", for messages and logs.
  std::string ToString() const;
};

ResourceKey KeyOf(const v1::Resource& resource);

// The REST path segment of a kind: "services", "endpoints", "routes", "certificates", "configs".
absl::string_view KindPlural(v1::Kind kind);
absl::StatusOr<v1::Kind> KindFromPlural(absl::string_view plural);
// Accepts the plural, the enum name (SERVICE) and the singular (service).
absl::StatusOr<v1::Kind> ParseKind(absl::string_view text);

// The spec case a resource of this kind must carry.
v1::Resource::SpecCase SpecCaseOf(v1::Kind kind);

}  // namespace meridian::model
