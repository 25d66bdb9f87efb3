#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace meridian::ctl {

// What `meridianctl apply` sends: manifests (the documents of one or more files) turned into
// one POST /api/v1/changes body, so they land as one revision or not at all. Stateless.

// The REST plural of a kind as an operator may write it: "services", "service", "Service",
// "SERVICE"; "configs", "config", "ConfigEntry", "config_entry". InvalidArgument otherwise.
absl::StatusOr<std::string> CanonicalKind(absl::string_view kind);

struct ApplyDefaults {
  std::string environment;            // for documents that name none
  bool environment_explicit = false;  // -e given: documents naming another one are an error
  std::string comment;
};

// Flattens the parsed documents (a document may also be an array of resources or a
// {"resources": [...]} list as printed by `list -o json`) and builds
// {"comment": ..., "changes": [{"put": {kind, environment, name, labels, spec}}, ...]}.
// Each resource needs kind and name; version, create_revision and mod_revision (as printed
// by `get`) are ignored, other unknown fields are an error. Errors name the document
// ("document 2 (routes/shop): ...") and are InvalidArgument.
absl::StatusOr<nlohmann::ordered_json> BuildApplyRequest(
    const std::vector<nlohmann::ordered_json>& documents, const ApplyDefaults& defaults);

}  // namespace meridian::ctl
