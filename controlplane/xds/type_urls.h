#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::xds {

// "type.googleapis.com/meridian.v1.Service" and so on: the xDS types of Meridian's own kinds.
std::string TypeUrlOf(v1::Kind kind);
absl::StatusOr<v1::Kind> KindOfTypeUrl(absl::string_view type_url);

}  // namespace meridian::xds
