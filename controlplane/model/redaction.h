#pragma once

#include "meridian/v1/config_service.pb.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::model {

inline constexpr char kRedacted[] = "<redacted>";

// Removes secret material before a resource leaves the process: certificate private keys
// (their fingerprint stays) and values of config entries marked secret.
void RedactSecrets(v1::Resource& resource);
void RedactSecrets(v1::ChangeRecord& record);
void RedactSecrets(v1::RevisionRecord& record);

}  // namespace meridian::model
