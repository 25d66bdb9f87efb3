#include "controlplane/xds/xds_entry.h"

#include "absl/strings/str_cat.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "google/protobuf/any.pb.h"

namespace meridian::xds {

XdsEntryPtr MakeXdsEntry(const std::string& type_url, const std::string& name, int64_t revision,
                         std::string message_bytes) {
  auto entry = std::make_shared<XdsEntry>();
  entry->name = name;
  entry->revision = revision;
  google::protobuf::Any any;
  any.set_type_url(type_url);
  any.set_value(std::move(message_bytes));
  entry->any_bytes = any.SerializeAsString();
  envoy::service::discovery::v3::Resource delta;
  delta.set_name(name);
  delta.set_version(absl::StrCat(revision));
  *delta.mutable_resource() = std::move(any);
  entry->resource_bytes = delta.SerializeAsString();
  return entry;
}

}  // namespace meridian::xds
