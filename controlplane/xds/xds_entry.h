#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace meridian::xds {

// One resource as xDS sends it, serialized once and shared by every stream.
struct XdsEntry {
  std::string name;
  int64_t revision = 0;        // the revision that last changed it: the xDS resource version
  std::string any_bytes;       // serialized google.protobuf.Any (state-of-the-world)
  std::string resource_bytes;  // serialized envoy.service.discovery.v3.Resource (delta)
};
using XdsEntryPtr = std::shared_ptr<const XdsEntry>;

// The revision recorded for a resource that does not exist. Revision 0 is the empty store, so
// no resource ever carries it.
inline constexpr int64_t kAbsentRevision = 0;

// Wraps a serialized message of `type_url`, last changed at `revision`, as both wire forms.
XdsEntryPtr MakeXdsEntry(const std::string& type_url, const std::string& name, int64_t revision,
                         std::string message_bytes);

}  // namespace meridian::xds
