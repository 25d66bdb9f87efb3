#pragma once

// A control plane on a fresh database per test, reached through a real HTTP client and a
// real gRPC channel, plus a self-signed certificate for certificate tests.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "controlplane/server/control_plane.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "meridian/v1/config_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/support/postgres_server.h"

namespace meridian::testing {

using nlohmann::json;

struct TestCertificate {
  std::string chain_pem;
  std::string key_pem;
};

// A P-256 key and a self-signed certificate for `host` (CN and DNS SAN), valid 30 days.
inline TestCertificate MakeSelfSignedCertificate(const std::string& host) {
  TestCertificate out;
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 24 * 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  const std::string san = "DNS:" + host;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert, key, EVP_sha256());
  auto to_string = [](BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    std::string text(data, static_cast<size_t>(size));
    BIO_free(bio);
    return text;
  };
  BIO* cert_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, cert);
  out.chain_pem = to_string(cert_bio);
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = to_string(key_bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

// A control plane on `database_url`, loopback only: gRPC on `grpc_port` (0: any free port),
// HTTP on any free port.
inline server::ControlPlaneOptions LoopbackControlPlaneOptions(const std::string& database_url,
                                                               int grpc_port = 0) {
  server::ControlPlaneOptions options;
  options.database_url = database_url;
  options.grpc_address = absl::StrCat("127.0.0.1:", grpc_port);
  options.http_host = "127.0.0.1";
  options.http_port = 0;
  options.db_pool_size = 4;
  return options;
}

class ControlPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = SharedPostgres().CreateDatabase("api");
    ASSERT_TRUE(url.ok()) << url.status();
    server::ControlPlaneOptions options = LoopbackControlPlaneOptions(*url);
    ConfigureOptions(options);
    auto control_plane = server::ControlPlane::Start(options);
    ASSERT_TRUE(control_plane.ok()) << control_plane.status();
    control_plane_ = std::move(*control_plane);
    http_ = std::make_unique<httplib::Client>("127.0.0.1", control_plane_->http_port());
    http_->set_read_timeout(10, 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", control_plane_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::ConfigService::NewStub(channel_);
  }

  void TearDown() override {
    if (control_plane_ != nullptr) control_plane_->Shutdown();
  }

  virtual void ConfigureOptions(server::ControlPlaneOptions&) {}

  // --- REST helpers: the response must exist (the server answered).
  httplib::Result Get(const std::string& path, const httplib::Headers& headers = {}) {
    auto result = http_->Get(path.c_str(), headers);
    EXPECT_TRUE(result) << "GET " << path << ": " << httplib::to_string(result.error());
    return result;
  }
  httplib::Result Put(const std::string& path, const std::string& body,
                      const httplib::Headers& headers = {}) {
    auto result = http_->Put(path.c_str(), headers, body, "application/json");
    EXPECT_TRUE(result) << "PUT " << path << ": " << httplib::to_string(result.error());
    return result;
  }
  httplib::Result Post(const std::string& path, const std::string& body,
                       const httplib::Headers& headers = {}) {
    auto result = http_->Post(path.c_str(), headers, body, "application/json");
    EXPECT_TRUE(result) << "POST " << path << ": " << httplib::to_string(result.error());
    return result;
  }
  httplib::Result Delete(const std::string& path, const httplib::Headers& headers = {}) {
    auto result = http_->Delete(path.c_str(), headers);
    EXPECT_TRUE(result) << "DELETE " << path << ": " << httplib::to_string(result.error());
    return result;
  }

  static json Body(const httplib::Result& result) {
    if (!result) return json();
    return json::parse(result->body, nullptr, /*allow_exceptions=*/false);
  }

  // Reads up to `count` lines of GET /api/v1/watch?<query>, giving up after `timeout_seconds`
  // without data. Returns the parsed lines; the HTTP status goes to *status.
  std::vector<json> ReadWatch(const std::string& query, size_t count, int timeout_seconds = 10,
                              int* status = nullptr, std::string* error_body = nullptr) {
    httplib::Client client("127.0.0.1", control_plane_->http_port());
    client.set_read_timeout(timeout_seconds, 0);
    std::vector<json> lines;
    std::string buffer;
    auto result =
        client.Get(("/api/v1/watch?" + query).c_str(),
                   [&](const httplib::Response& response) {
                     if (status != nullptr) *status = response.status;
                     return true;
                   },
                   [&](const char* data, size_t size) {
                     buffer.append(data, size);
                     for (size_t newline; (newline = buffer.find('\n')) != std::string::npos;) {
                       lines.push_back(json::parse(buffer.substr(0, newline), nullptr, false));
                       buffer.erase(0, newline + 1);
                     }
                     return lines.size() < count;
                   });
    if (error_body != nullptr) *error_body = buffer;
    return lines;
  }

  // The current revision as reported by a list.
  int64_t CurrentRevision(const std::string& environment = "prod") {
    json list = Body(Get("/api/v1/environments/" + environment + "/services"));
    return list.value("revision", int64_t{-1});
  }

  std::unique_ptr<server::ControlPlane> control_plane_;
  std::unique_ptr<httplib::Client> http_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ConfigService::Stub> stub_;
};

}  // namespace meridian::testing
