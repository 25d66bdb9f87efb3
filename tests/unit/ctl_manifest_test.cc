// meridianctl apply: manifests to one POST /api/v1/changes body.
#include <string>
#include <vector>

#include "controlplane/ctl/manifest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;
using ::testing::HasSubstr;

ApplyDefaults Defaults(std::string environment = "default", bool explicit_environment = false) {
  ApplyDefaults defaults;
  defaults.environment = std::move(environment);
  defaults.environment_explicit = explicit_environment;
  defaults.comment = "rollout";
  return defaults;
}

std::string ErrorOf(const std::vector<json>& documents,
                    const ApplyDefaults& defaults = Defaults()) {
  auto request = BuildApplyRequest(documents, defaults);
  EXPECT_FALSE(request.ok());
  return request.ok() ? "" : std::string(request.status().message());
}

json Service(const std::string& name) {
  return {{"kind", "Service"},
          {"name", name},
          {"labels", {{"app", "shop"}}},
          {"spec", {{"ports", {{{"port", 8080}}}}}}};
}

TEST(CanonicalKindTest, AcceptsPluralSingularAndTypeNames) {
  for (const char* kind : {"services", "service", "Service", "SERVICE", "svc"}) {
    EXPECT_EQ(CanonicalKind(kind).value_or(""), "services") << kind;
  }
  for (const char* kind : {"configs", "config", "ConfigEntry", "config_entry", "CONFIG_ENTRY"}) {
    EXPECT_EQ(CanonicalKind(kind).value_or(""), "configs") << kind;
  }
  EXPECT_EQ(CanonicalKind("Endpoint").value_or(""), "endpoints");
  EXPECT_EQ(CanonicalKind("route").value_or(""), "routes");
  EXPECT_EQ(CanonicalKind("Certificate").value_or(""), "certificates");
  EXPECT_THAT(std::string(CanonicalKind("pods").status().message()),
              HasSubstr("unknown kind \"pods\""));
}

TEST(BuildApplyRequestTest, BuildsOneBatchOfPuts) {
  json route = {
      {"kind", "routes"}, {"environment", "prod"}, {"name", "shop"}, {"spec", json::object()}};
  auto request = BuildApplyRequest({Service("checkout"), route}, Defaults());
  ASSERT_TRUE(request.ok()) << request.status();
  const json expected = {{"comment", "rollout"},
                         {"changes",
                          {{{"put",
                             {{"kind", "services"},
                              {"environment", "default"},
                              {"name", "checkout"},
                              {"labels", {{"app", "shop"}}},
                              {"spec", {{"ports", {{{"port", 8080}}}}}}}}},
                           {{"put",
                             {{"kind", "routes"},
                              {"environment", "prod"},
                              {"name", "shop"},
                              {"spec", json::object()}}}}}}};
  EXPECT_EQ(*request, expected);
}

TEST(BuildApplyRequestTest, FlattensArraysAndListOutput) {
  const json list = {{"resources", {Service("b"), Service("c")}}, {"revision", 7}};
  auto request = BuildApplyRequest({json::array({Service("a")}), list, nullptr}, Defaults());
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ((*request)["changes"].size(), 3u);
  EXPECT_EQ((*request)["changes"][2]["put"]["name"], "c");
}

TEST(BuildApplyRequestTest, IgnoresOutputOnlyMetadataOfGetOutput) {
  json got = Service("checkout");
  got["version"] = 3;
  got["create_revision"] = 1;
  got["mod_revision"] = 5;
  auto request = BuildApplyRequest({got}, Defaults());
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_FALSE((*request)["changes"][0]["put"].contains("version"));
  EXPECT_FALSE((*request)["changes"][0]["put"].contains("mod_revision"));
}

TEST(BuildApplyRequestTest, RejectsUnknownFieldsNamingTheDocument) {
  json document = Service("checkout");
  document["specs"] = json::object();
  EXPECT_EQ(ErrorOf({Service("ok"), document}),
            "document 2 (Service/checkout): specs: unknown field (expected kind, environment, "
            "name, labels, spec)");
}

TEST(BuildApplyRequestTest, RequiresKindAndName) {
  EXPECT_EQ(ErrorOf({json({{"name", "x"}})}), "document 1: kind: required");
  EXPECT_EQ(ErrorOf({json({{"kind", "services"}})}), "document 1: name: required");
  EXPECT_THAT(ErrorOf({json({{"kind", "pods"}, {"name", "x"}})}), HasSubstr("unknown kind"));
  EXPECT_THAT(ErrorOf({json("just a string")}), HasSubstr("document 1: must be a mapping"));
}

TEST(BuildApplyRequestTest, RejectsNonStringLabelsWithAHint) {
  json document = Service("checkout");
  document["labels"] = {{"version", 2}};
  EXPECT_EQ(ErrorOf({document}),
            "document 1 (Service/checkout): labels.version: must be a string (quote it: \"2\")");
}

TEST(BuildApplyRequestTest, RejectsNonMappingSpec) {
  json document = Service("checkout");
  document["spec"] = json::array();
  EXPECT_THAT(ErrorOf({document}), HasSubstr("spec: must be a mapping"));
}

TEST(BuildApplyRequestTest, EnvironmentFlagFillsInButMustNotContradict) {
  json staging = Service("checkout");
  staging["environment"] = "staging";
  auto defaulted = BuildApplyRequest({staging, Service("other")}, Defaults("prod"));
  ASSERT_TRUE(defaulted.ok()) << defaulted.status();
  EXPECT_EQ((*defaulted)["changes"][0]["put"]["environment"], "staging");
  EXPECT_EQ((*defaulted)["changes"][1]["put"]["environment"], "prod");
  EXPECT_THAT(ErrorOf({staging}, Defaults("prod", /*explicit_environment=*/true)),
              HasSubstr("environment: \"staging\" does not match --environment \"prod\""));
}

TEST(BuildApplyRequestTest, RejectsTheSameResourceTwice) {
  json again = Service("checkout");
  again["kind"] = "services";
  EXPECT_THAT(ErrorOf({Service("checkout"), again}),
              HasSubstr("document 2 (services/checkout): services/default/checkout appears more "
                        "than once"));
}

TEST(BuildApplyRequestTest, RejectsAnEmptyManifest) {
  EXPECT_EQ(ErrorOf({}), "no resources to apply");
  EXPECT_EQ(ErrorOf({json::array()}), "no resources to apply");
}

}  // namespace
}  // namespace meridian::ctl
