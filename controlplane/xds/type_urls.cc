#include "controlplane/xds/type_urls.h"

#include "absl/strings/str_cat.h"
#include "meridian/v1/xds_types.pb.h"

namespace meridian::xds {
namespace {

constexpr char kPrefix[] = "type.googleapis.com/";

const std::string& MessageName(v1::Kind kind) {
  static const std::string kEmpty;
  switch (kind) {
    case v1::SERVICE:
      return v1::Service::descriptor()->full_name();
    case v1::ENDPOINT:
      return v1::Endpoint::descriptor()->full_name();
    case v1::ROUTE:
      return v1::Route::descriptor()->full_name();
    case v1::CERTIFICATE:
      return v1::Certificate::descriptor()->full_name();
    case v1::CONFIG_ENTRY:
      return v1::ConfigEntry::descriptor()->full_name();
    default:
      return kEmpty;
  }
}

}  // namespace

std::string TypeUrlOf(v1::Kind kind) { return absl::StrCat(kPrefix, MessageName(kind)); }

absl::StatusOr<v1::Kind> KindOfTypeUrl(absl::string_view type_url) {
  for (v1::Kind kind : {v1::SERVICE, v1::ENDPOINT, v1::ROUTE, v1::CERTIFICATE, v1::CONFIG_ENTRY}) {
    if (type_url == TypeUrlOf(kind)) return kind;
  }
  return absl::InvalidArgumentError(absl::StrCat("type_url: unknown type \"", type_url, "\""));
}

}  // namespace meridian::xds
