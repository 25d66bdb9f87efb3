#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace meridian::ctl {

// Conversion between the YAML or JSON an operator writes and the JSON the REST API speaks.
// Plain YAML scalars resolve by the YAML 1.2 core schema (so `yes` and `on` stay strings, as
// in JSON), quoted scalars and `!!str` always stay strings. Stateless; thread-safe.

// Parses `text` as JSON when it looks like JSON (starts with `{` or `[`), otherwise as YAML
// with any number of `---` separated documents; empty documents are dropped. Errors are
// InvalidArgument, prefixed "<source>:<line>:<column>: ". Duplicate mapping keys are an error.
absl::StatusOr<std::vector<nlohmann::ordered_json>> ParseDocuments(const std::string& text,
                                                                   const std::string& source);

// Block-style YAML that ParseDocuments reads back as the same JSON: strings that would
// resolve to another type are quoted, multi-line strings become literal blocks.
std::string JsonToYaml(const nlohmann::ordered_json& value);

}  // namespace meridian::ctl
