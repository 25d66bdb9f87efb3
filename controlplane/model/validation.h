#pragma once

#include "absl/strings/string_view.h"
#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::model {

inline constexpr size_t kMaxResourceBytes = 1 << 20;  // 1 MiB per resource

// `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, at most 253 characters. `field` names the field in errors.
absl::Status ValidateName(absl::string_view field, absl::string_view value);

// Checks that the resource's spec matches its kind and that every field is well formed.
// Errors are InvalidArgument with a message that starts with the field path
// ("spec.ports[0].port: must be 1..65535"). Cross-resource checks (route destinations
// exist) are the store's job.
absl::Status ValidateResource(const v1::Resource& resource);

// Fills fields derived from input: certificate fingerprint, validity and SANs from the PEM
// chain; config entry service/key from the name. Call before ValidateResource.
absl::Status NormalizeResource(v1::Resource& resource);

}  // namespace meridian::model
