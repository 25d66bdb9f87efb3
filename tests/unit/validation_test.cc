#include "controlplane/model/validation.h"

#include "gtest/gtest.h"

namespace meridian::model {
namespace {

v1::Resource Service(uint32_t port) {
  v1::Resource resource;
  resource.set_kind(v1::SERVICE);
  resource.set_environment("prod");
  resource.set_name("checkout");
  auto* service_port = resource.mutable_service()->add_ports();
  service_port->set_port(port);
  service_port->set_protocol(v1::HTTP);
  return resource;
}

v1::Resource Route() {
  v1::Resource resource;
  resource.set_kind(v1::ROUTE);
  resource.set_environment("prod");
  resource.set_name("shop");
  resource.mutable_route()->add_hosts("shop.example.com");
  resource.mutable_route()->set_port(8080);
  auto* rule = resource.mutable_route()->add_rules();
  rule->mutable_match()->set_path_prefix("/api");
  rule->add_destinations()->set_service("checkout");
  return resource;
}

void ExpectFieldError(const v1::Resource& resource, absl::string_view field) {
  absl::Status status = ValidateResource(resource);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_NE(status.message().find(field), absl::string_view::npos)
      << "expected field " << field << " in: " << status.message();
}

TEST(ValidateNameTest, AcceptsDnsLikeNamesOnly) {
  EXPECT_TRUE(ValidateName("name", "checkout-v2.prod").ok());
  EXPECT_TRUE(ValidateName("name", "a").ok());
  EXPECT_FALSE(ValidateName("name", "").ok());
  EXPECT_FALSE(ValidateName("name", "Checkout").ok());
  EXPECT_FALSE(ValidateName("name", "-checkout").ok());
  EXPECT_FALSE(ValidateName("name", "checkout-").ok());
  EXPECT_FALSE(ValidateName("name", "check_out").ok());
  EXPECT_TRUE(ValidateName("name", std::string(253, 'a')).ok());
  EXPECT_FALSE(ValidateName("name", std::string(254, 'a')).ok());
}

TEST(ValidateResourceTest, AcceptsWellFormedService) { EXPECT_TRUE(ValidateResource(Service(8080)).ok()); }

TEST(ValidateResourceTest, RejectsPortOutOfRangeNamingTheField) {
  ExpectFieldError(Service(0), "spec.ports[0].port");
  ExpectFieldError(Service(65536), "spec.ports[0].port");
}

TEST(ValidateResourceTest, RejectsSpecOfAnotherKind) {
  v1::Resource resource = Service(80);
  resource.set_kind(v1::ROUTE);
  ExpectFieldError(resource, "spec");
}

TEST(ValidateResourceTest, RingHashNeedsHashKey) {
  v1::Resource resource = Service(80);
  resource.mutable_service()->mutable_load_balancing()->set_policy(v1::RING_HASH);
  ExpectFieldError(resource, "spec.load_balancing.hash");
  resource.mutable_service()->mutable_load_balancing()->mutable_hash()->set_cookie("session");
  EXPECT_TRUE(ValidateResource(resource).ok());
}

TEST(ValidateResourceTest, RejectsRegexThatDoesNotCompile) {
  v1::Resource resource = Route();
  resource.mutable_route()->mutable_rules(0)->mutable_match()->set_path_regex("/api/(");
  ExpectFieldError(resource, "spec.rules[0].match.path_regex");
}

TEST(ValidateResourceTest, RejectsRouteWithoutDestinationsOrBadWeights) {
  v1::Resource resource = Route();
  resource.mutable_route()->mutable_rules(0)->clear_destinations();
  ExpectFieldError(resource, "spec.rules[0].destinations");
  resource = Route();
  resource.mutable_route()->mutable_rules(0)->mutable_destinations(0)->set_weight(10001);
  ExpectFieldError(resource, "spec.rules[0].destinations[0].weight");
}

TEST(ValidateResourceTest, RejectsUnknownRetryCondition) {
  v1::Resource resource = Route();
  resource.mutable_route()->mutable_rules(0)->mutable_retries()->add_retry_on("sometimes");
  ExpectFieldError(resource, "spec.rules[0].retries.retry_on[0]");
}

TEST(ValidateResourceTest, EndpointNeedsAddressAndPort) {
  v1::Resource resource;
  resource.set_kind(v1::ENDPOINT);
  resource.set_environment("prod");
  resource.set_name("checkout-1");
  resource.mutable_endpoint()->set_service("checkout");
  resource.mutable_endpoint()->set_address("10.0.0.1");
  resource.mutable_endpoint()->set_port(8080);
  EXPECT_TRUE(ValidateResource(resource).ok());
  resource.mutable_endpoint()->set_address("::1");
  EXPECT_TRUE(ValidateResource(resource).ok());
  resource.mutable_endpoint()->set_address("not an address");
  ExpectFieldError(resource, "spec.address");
}

TEST(ValidateResourceTest, ConfigEntryValueMustMatchSchema) {
  v1::Resource resource;
  resource.set_kind(v1::CONFIG_ENTRY);
  resource.set_environment("prod");
  resource.set_name("checkout.max-connections");
  ASSERT_TRUE(NormalizeResource(resource).ok());
  EXPECT_EQ(resource.config_entry().service(), "checkout");
  EXPECT_EQ(resource.config_entry().key(), "max-connections");
  resource.mutable_config_entry()->mutable_schema()->set_type(v1::INTEGER);
  resource.mutable_config_entry()->mutable_schema()->set_maximum(100);
  resource.mutable_config_entry()->mutable_value()->set_number_value(50);
  EXPECT_TRUE(ValidateResource(resource).ok());
  resource.mutable_config_entry()->mutable_value()->set_number_value(2.5);
  ExpectFieldError(resource, "spec.value");
  resource.mutable_config_entry()->mutable_value()->set_number_value(500);
  ExpectFieldError(resource, "spec.value");
  resource.mutable_config_entry()->mutable_value()->set_string_value("50");
  ExpectFieldError(resource, "spec.value");
}

TEST(ValidateResourceTest, CertificateMustParse) {
  v1::Resource resource;
  resource.set_kind(v1::CERTIFICATE);
  resource.set_environment("prod");
  resource.set_name("shop-tls");
  resource.mutable_certificate()->set_certificate_chain("-----BEGIN CERTIFICATE-----...");
  resource.mutable_certificate()->set_private_key("-----BEGIN PRIVATE KEY-----...");
  absl::Status status = NormalizeResource(resource);
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_NE(status.message().find("spec.certificate_chain"), absl::string_view::npos);
}

TEST(ValidateResourceTest, RejectsResourceOverOneMebibyte) {
  v1::Resource resource = Service(80);
  (*resource.mutable_labels())["big"] = std::string(1000, 'x');
  for (int i = 0; i < 1100; ++i) (*resource.mutable_labels())["k" + std::to_string(i)] = std::string(1000, 'x');
  ExpectFieldError(resource, "larger than");
}

}  // namespace
}  // namespace meridian::model
