#pragma once

#include "absl/status/status.h"
#include "meridian/v1/resources.pb.h"

namespace meridian::model {

// Parses the PEM chain and key with OpenSSL and fills the output-only fields: the key's
// SHA-256 fingerprint, the leaf's validity window and SANs. InvalidArgument when the PEM
// does not parse or the key does not belong to the leaf certificate.
absl::Status FillCertificateDetails(v1::CertificateSpec& spec);

// Checks a spec FillCertificateDetails has filled.
absl::Status ValidateCertificate(const v1::CertificateSpec& spec);

}  // namespace meridian::model
