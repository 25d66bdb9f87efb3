// meridianctl's YAML/JSON reading (ParseDocuments) and YAML writing (JsonToYaml).
#include <string>
#include <vector>

#include "controlplane/ctl/yaml_json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

json ParseOne(const std::string& text) {
  auto documents = ParseDocuments(text, "test.yaml");
  EXPECT_TRUE(documents.ok()) << documents.status();
  if (!documents.ok() || documents->size() != 1) {
    ADD_FAILURE() << "expected one document";
    return json();
  }
  return documents->front();
}

std::string ErrorOf(const std::string& text) {
  auto documents = ParseDocuments(text, "test.yaml");
  EXPECT_FALSE(documents.ok());
  return documents.ok() ? "" : std::string(documents.status().message());
}

TEST(ParseDocumentsTest, TypesPlainScalarsByTheCoreSchema) {
  const json doc = ParseOne(
      "int: 8080\nnegative: -3\nhex: 0x1F\noctal: 0o17\nfloat: 1.5\nexp: 1e3\n"
      "yes_bool: true\nno_bool: False\nnull_tilde: ~\nnull_word: null\nempty:\n"
      "word: hello\nyaml11_yes: yes\nyaml11_on: on\nversion: 1.2.3\ninf: .inf\n");
  EXPECT_EQ(doc["int"], json(8080));
  EXPECT_TRUE(doc["int"].is_number_integer());
  EXPECT_EQ(doc["negative"], json(-3));
  EXPECT_EQ(doc["hex"], json(31));
  EXPECT_EQ(doc["octal"], json(15));
  EXPECT_EQ(doc["float"], json(1.5));
  EXPECT_EQ(doc["exp"], json(1000.0));
  EXPECT_TRUE(doc["exp"].is_number_float());
  EXPECT_EQ(doc["yes_bool"], json(true));
  EXPECT_EQ(doc["no_bool"], json(false));
  EXPECT_TRUE(doc["null_tilde"].is_null());
  EXPECT_TRUE(doc["null_word"].is_null());
  EXPECT_TRUE(doc["empty"].is_null());
  EXPECT_EQ(doc["word"], json("hello"));
  EXPECT_EQ(doc["yaml11_yes"], json("yes"));
  EXPECT_EQ(doc["yaml11_on"], json("on"));
  EXPECT_EQ(doc["version"], json("1.2.3"));
  EXPECT_EQ(doc["inf"], json(".inf"));
}

TEST(ParseDocumentsTest, KeepsQuotedAndStrTaggedScalarsAsStrings) {
  const json doc = ParseOne("a: '8080'\nb: \"true\"\nc: !!str 12\nd: \"\"\ne: 'null'\n");
  EXPECT_EQ(doc["a"], json("8080"));
  EXPECT_EQ(doc["b"], json("true"));
  EXPECT_EQ(doc["c"], json("12"));
  EXPECT_EQ(doc["d"], json(""));
  EXPECT_EQ(doc["e"], json("null"));
}

TEST(ParseDocumentsTest, HonoursExplicitTypeTags) {
  const json doc = ParseOne("i: !!int 7\nf: !!float 7\nb: !!bool true\n");
  EXPECT_EQ(doc["i"], json(7));
  EXPECT_TRUE(doc["f"].is_number_float());
  EXPECT_EQ(doc["b"], json(true));
  EXPECT_THAT(ErrorOf("i: !!int seven\n"), HasSubstr("\"seven\" is not a valid !!int"));
  EXPECT_THAT(ErrorOf("x: !custom 1\n"), HasSubstr("unsupported tag"));
}

TEST(ParseDocumentsTest, KeepsIntegersBeyondInt64) {
  const json doc = ParseOne("big: 18446744073709551615\nhuge: 123456789012345678901234\n");
  EXPECT_EQ(doc["big"].get<uint64_t>(), 18446744073709551615u);
  EXPECT_TRUE(doc["huge"].is_number_float());
}

TEST(ParseDocumentsTest, ConvertsNestedStructures) {
  const json doc = ParseOne(
      "spec:\n  ports:\n    - {name: http, port: 8080}\n    - name: grpc\n      port: 9090\n"
      "  hosts: [a.example.com, b.example.com]\n  pem: |\n    line1\n    line2\n");
  EXPECT_EQ(doc["spec"]["ports"][1], json({{"name", "grpc"}, {"port", 9090}}));
  EXPECT_EQ(doc["spec"]["hosts"], json({"a.example.com", "b.example.com"}));
  EXPECT_EQ(doc["spec"]["pem"], json("line1\nline2\n"));
}

TEST(ParseDocumentsTest, SplitsMultiDocumentYamlAndDropsEmptyDocuments) {
  auto documents = ParseDocuments("---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n...\n", "x");
  ASSERT_TRUE(documents.ok()) << documents.status();
  ASSERT_EQ(documents->size(), 2u);
  EXPECT_EQ((*documents)[0], json({{"a", 1}}));
  EXPECT_EQ((*documents)[1], json({{"b", 2}}));
}

TEST(ParseDocumentsTest, ReadsJsonAsOneDocument) {
  auto documents =
      ParseDocuments("  [{\"kind\": \"services\", \"n\": 1.0}, {\"kind\": \"routes\"}]", "x.json");
  ASSERT_TRUE(documents.ok()) << documents.status();
  ASSERT_EQ(documents->size(), 1u);
  EXPECT_EQ((*documents)[0].size(), 2u);
  EXPECT_TRUE((*documents)[0][0]["n"].is_number_float());
}

TEST(ParseDocumentsTest, AcceptsYamlFlowMappingsThatAreNotJson) {
  EXPECT_EQ(ParseOne("{kind: services, name: x}"), json({{"kind", "services"}, {"name", "x"}}));
}

TEST(ParseDocumentsTest, ReportsJsonErrorsWithPosition) {
  EXPECT_THAT(
      ErrorOf("{\"kind\": \"services\",\n \"spec\": [1, 2}"),
      AllOf(StartsWith("test.yaml: parse error at line 2"), Not(HasSubstr("json.exception"))));
}

TEST(ParseDocumentsTest, ReportsYamlSyntaxErrorsWithLineAndColumn) {
  EXPECT_THAT(ErrorOf("kind: services\nspec:\n  ports: [1, 2\n"), StartsWith("test.yaml:4:1: "));
  EXPECT_THAT(ErrorOf("a: b: c\n"), StartsWith("test.yaml:1:"));
}

TEST(ParseDocumentsTest, RejectsDuplicateKeys) {
  EXPECT_EQ(ErrorOf("name: a\nspec: {}\nname: b\n"), "test.yaml:3:1: duplicate key \"name\"");
}

TEST(ParseDocumentsTest, RejectsNonScalarKeys) {
  EXPECT_THAT(ErrorOf("? [a, b]\n: c\n"), HasSubstr("mapping keys must be scalars"));
}

TEST(JsonToYamlTest, WritesBlockYamlInTheGivenKeyOrder) {
  const json value = {{"name", "checkout"},
                      {"spec", {{"ports", {{{"port", 8080}, {"name", "http"}}}}}},
                      {"labels", json::object()},
                      {"hosts", json::array()}};
  EXPECT_EQ(JsonToYaml(value),
            "name: checkout\nspec:\n  ports:\n    - port: 8080\n      name: http\nlabels: {}\n"
            "hosts: []\n");
}

TEST(JsonToYamlTest, QuotesStringsThatWouldReadBackAsOtherTypes) {
  const std::string yaml = JsonToYaml({{"a", "8080"}, {"b", "true"}, {"c", "null"}, {"d", "yes"}});
  EXPECT_EQ(yaml, "a: \"8080\"\nb: \"true\"\nc: \"null\"\nd: \"yes\"\n");
}

TEST(JsonToYamlTest, RoundTripsThroughParseDocuments) {
  const json value = {{"strings",
                       {"plain",
                        "",
                        " leading space",
                        "trailing space ",
                        "a: b",
                        "- dash",
                        "#hash",
                        "quote\"s",
                        "it's",
                        "1.5",
                        "0x10",
                        "~",
                        "ünïcode",
                        "tab\there",
                        "two\nlines",
                        "no trailing\nnewline",
                        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                        "ends\n\n",
                        " indented\nblock\n",
                        "on",
                        "NO"}},
                      {"numbers", {0, -1, 8080, 1.5, 0.1, 1e300, 18446744073709551615u}},
                      {"booleans", {true, false}},
                      {"null", nullptr},
                      {"nested", {{"empty_list", json::array()}, {"empty_map", json::object()}}},
                      {"123", "numeric key"},
                      {"true", "boolean key"}};
  auto documents = ParseDocuments(JsonToYaml(value), "round-trip");
  ASSERT_TRUE(documents.ok()) << documents.status() << "\n" << JsonToYaml(value);
  ASSERT_EQ(documents->size(), 1u);
  EXPECT_EQ(documents->front(), value) << JsonToYaml(value);
}

TEST(JsonToYamlTest, WritesPemAsLiteralBlock) {
  const std::string yaml =
      JsonToYaml({{"chain", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}});
  EXPECT_EQ(yaml, "chain: |\n  -----BEGIN CERTIFICATE-----\n  MIIB\n  -----END CERTIFICATE-----\n");
}

}  // namespace
}  // namespace meridian::ctl
