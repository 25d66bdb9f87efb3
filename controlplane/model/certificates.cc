#include "controlplane/model/certificates.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace meridian::model {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string Rfc3339(const ASN1_TIME* time) {
  struct tm parsed = {};
  if (ASN1_TIME_to_tm(time, &parsed) != 1) return "";
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02dZ", parsed.tm_year + 1900,
                         parsed.tm_mon + 1, parsed.tm_mday, parsed.tm_hour, parsed.tm_min,
                         parsed.tm_sec);
}

void AppendSans(X509* cert, v1::CertificateSpec& spec) {
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const auto* dns = name->d.dNSName;
      spec.add_sans(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(dns)),
                                ASN1_STRING_length(dns)));
    } else if (name->type == GEN_IPADD) {
      const auto* ip = name->d.iPAddress;
      char text[64] = {};
      const int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
      if (inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text)) != nullptr) {
        spec.add_sans(text);
      }
    }
  }
  GENERAL_NAMES_free(names);
}

absl::StatusOr<std::string> KeyFingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PrivateKey(key, &der);
  if (length <= 0) return absl::InvalidArgumentError("spec.private_key: cannot encode key");
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  EVP_Digest(der, length, digest, &digest_length, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return absl::StrCat("sha256:", absl::BytesToHexString(absl::string_view(
                                     reinterpret_cast<const char*>(digest), digest_length)));
}

}  // namespace

absl::Status FillCertificateDetails(v1::CertificateSpec& spec) {
  spec.clear_not_before();
  spec.clear_not_after();
  spec.clear_sans();
  if (spec.certificate_chain().empty()) {
    return absl::InvalidArgumentError("spec.certificate_chain: is required");
  }
  BioPtr chain_bio = MemoryBio(spec.certificate_chain());
  X509Ptr leaf(PEM_read_bio_X509(chain_bio.get(), nullptr, nullptr, nullptr));
  if (leaf == nullptr) {
    return absl::InvalidArgumentError(
        "spec.certificate_chain: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)");
  }
  spec.set_not_before(Rfc3339(X509_get0_notBefore(leaf.get())));
  spec.set_not_after(Rfc3339(X509_get0_notAfter(leaf.get())));
  AppendSans(leaf.get(), spec);

  if (spec.private_key().empty()) {
    return absl::InvalidArgumentError("spec.private_key: is required");
  }
  BioPtr key_bio = MemoryBio(spec.private_key());
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError("spec.private_key: not a PEM private key");
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(
        "spec.private_key: does not match the leaf certificate's public key");
  }
  auto fingerprint = KeyFingerprint(key.get());
  if (!fingerprint.ok()) return fingerprint.status();
  spec.set_private_key_fingerprint(*fingerprint);
  return absl::OkStatus();
}

absl::Status ValidateCertificate(const v1::CertificateSpec& spec) {
  if (spec.private_key_fingerprint().empty()) {
    return absl::InvalidArgumentError("spec.private_key: is required");
  }
  return absl::OkStatus();
}

}  // namespace meridian::model
