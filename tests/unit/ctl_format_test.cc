// meridianctl's table output: the generic Table and the views of server responses.
#include <string>

#include "controlplane/ctl/format.h"
#include "controlplane/ctl/table.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;
using ::testing::HasSubstr;

json Resource(const std::string& kind, const std::string& name, int version, json spec,
              json labels = json::object(), const std::string& environment = "prod") {
  return {{"kind", kind},         {"environment", environment},
          {"name", name},         {"version", version},
          {"create_revision", 1}, {"mod_revision", version + 10},
          {"labels", labels},     {"spec", spec}};
}

TEST(TableTest, AlignsColumnsAndLeavesTheLastUnpadded) {
  Table table({"NAME", "VERSION", "COMMENT"});
  table.AddRow({"checkout", "12", "first"});
  table.AddRow({"a", "3", ""});
  EXPECT_EQ(table.Render(),
            "NAME       VERSION   COMMENT\n"
            "checkout   12        first\n"
            "a          3\n");
}

TEST(TableTest, CountsCodePointsAndFlattensNewlines) {
  Table table({"ACTOR", "COMMENT"});
  table.AddRow({"zoë", "line one\nline two"});
  table.AddRow({"bob", "x"});
  EXPECT_EQ(table.Render(),
            "ACTOR   COMMENT\n"
            "zoë     line one line two\n"
            "bob     x\n");
}

TEST(TableTest, PadsMissingCells) {
  Table table({"A", "B"});
  table.AddRow({"only"});
  EXPECT_EQ(table.Render(), "A      B\nonly\n");
}

TEST(ResourceTableTest, ShowsNameVersionRevisionLabelsAndSummary) {
  const json resources = {
      Resource("services", "checkout", 2,
               {{"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "HTTP"}}}},
                {"load_balancing", {{"policy", "RING_HASH"}}}},
               {{"app", "shop"}, {"tier", "backend"}}),
      Resource("services", "cart", 1, {{"ports", {{{"port", 9090}}}}})};
  EXPECT_EQ(
      ResourceTable(resources),
      "NAME       VERSION   MOD_REVISION   LABELS                  SUMMARY\n"
      "checkout   2         12             app=shop,tier=backend   http:8080/HTTP lb=RING_HASH\n"
      "cart       1         11             <none>                  9090\n");
}

TEST(SpecSummaryTest, SummarizesEachKind) {
  EXPECT_EQ(SpecSummary("endpoints", {{"service", "checkout"},
                                      {"address", "10.0.0.1"},
                                      {"port", 8080},
                                      {"weight", 100},
                                      {"zone", "a"},
                                      {"health", "DRAINING"}}),
            "10.0.0.1:8080 -> checkout weight=100 zone=a health=DRAINING");
  EXPECT_EQ(SpecSummary("routes", {{"hosts", {"shop.example.com"}},
                                   {"port", 8080},
                                   {"rules", {json::object(), json::object()}}}),
            "shop.example.com:8080 2 rules");
  EXPECT_EQ(SpecSummary("certificates",
                        {{"not_after", "2030-01-01T00:00:00Z"}, {"sans", {"shop.example.com"}}}),
            "expires 2030-01-01T00:00:00Z sans=shop.example.com");
  EXPECT_EQ(
      SpecSummary(
          "configs",
          {{"service", "checkout"}, {"key", "timeout"}, {"value", {{"ms", 5}}}, {"secret", false}}),
      "checkout/timeout = {\"ms\":5}");
  EXPECT_EQ(SpecSummary("configs", {{"service", "checkout"},
                                    {"key", "password"},
                                    {"value", "<redacted>"},
                                    {"secret", true}}),
            "checkout/password = \"<redacted>\" (secret)");
}

TEST(SpecSummaryTest, TruncatesLongSummaries) {
  const std::string summary =
      SpecSummary("routes", {{"hosts", {std::string(100, 'h')}}, {"rules", json::array()}});
  EXPECT_EQ(summary.size(), 60u);
  EXPECT_THAT(summary, ::testing::EndsWith("..."));
}

TEST(SpecSummaryTest, ToleratesMissingAndOddFields) {
  EXPECT_EQ(SpecSummary("services", json::object()), "");
  EXPECT_EQ(SpecSummary("routes", {{"hosts", 3}, {"rules", "x"}}), "* 0 rules");
  EXPECT_EQ(SpecSummary("unknown", {{"a", 1}}), "");
}

TEST(FormatPiecesTest, LabelsTimeAndVerbs) {
  EXPECT_EQ(LabelsText(json::object()), "<none>");
  EXPECT_EQ(LabelsText({{"b", "2"}, {"a", "1"}}), "a=1,b=2");
  EXPECT_EQ(ShortTime("2024-05-01T12:00:00.123456Z"), "2024-05-01T12:00:00Z");
  EXPECT_EQ(ShortTime("2024-05-01T12:00:00Z"), "2024-05-01T12:00:00Z");
  EXPECT_EQ(ShortTime("2024-05-01T12:00:00.5+02:00"), "2024-05-01T12:00:00+02:00");
  EXPECT_EQ(ChangeVerb({{"operation", "PUT"}, {"after", json::object()}}), "CREATE");
  EXPECT_EQ(
      ChangeVerb({{"operation", "PUT"}, {"before", json::object()}, {"after", json::object()}}),
      "UPDATE");
  EXPECT_EQ(ChangeVerb({{"operation", "DELETE"}, {"before", json::object()}}), "DELETE");
}

json Entry(int revision, const std::string& actor, const std::string& comment, json change,
           int rollback_to = 0) {
  return {{"revision", revision},
          {"time", "2024-05-01T12:00:0" + std::to_string(revision) + ".5Z"},
          {"actor", actor},
          {"comment", comment},
          {"rollback_to", rollback_to},
          {"change", change}};
}

TEST(HistoryTableTest, ShowsRevisionTimeActorOperationResourceAndComment) {
  const json key = {{"kind", "services"}, {"environment", "prod"}, {"name", "checkout"}};
  const json other = {{"kind", "routes"}, {"environment", "staging"}, {"name", "shop"}};
  const json entries = {
      Entry(1, "alice", "first", {{"operation", "PUT"}, {"key", key}, {"after", json::object()}}),
      Entry(2, "bob", "", {{"operation", "PUT"}, {"key", other}, {"after", json::object()}}),
      Entry(3, "carol", "undo", {{"operation", "DELETE"}, {"key", key}, {"before", json::object()}},
            1)};
  EXPECT_EQ(HistoryTable(entries, "prod"),
            "REVISION   TIME                   ACTOR   OPERATION   KIND/NAME             COMMENT\n"
            "1          2024-05-01T12:00:01Z   alice   CREATE      services/checkout     first\n"
            "2          2024-05-01T12:00:02Z   bob     CREATE      routes/staging/shop\n"
            "3          2024-05-01T12:00:03Z   carol   DELETE      services/checkout     "
            "(rollback to 1) undo\n");
}

TEST(DiffTextTest, ShowsCreatesDeletesAndChangedFields) {
  const json before =
      Resource("services", "checkout", 1, {{"ports", {{{"port", 8080}, {"protocol", "HTTP"}}}}},
               {{"tier", "backend"}});
  const json after = Resource("services", "checkout", 2,
                              {{"ports", {{{"port", 9090}}}}, {"timeouts", {{"connect_ms", 100}}}},
                              {{"tier", "edge"}});
  const json route = Resource("routes", "shop", 1, json::object());
  const json endpoint =
      Resource("endpoints", "checkout-1", 4, json::object(), json::object(), "staging");
  const json changes = {
      {{"operation", "PUT"}, {"key", before}, {"before", before}, {"after", after}},
      {{"operation", "PUT"}, {"key", route}, {"after", route}},
      {{"operation", "DELETE"}, {"key", endpoint}, {"before", endpoint}}};
  EXPECT_EQ(DiffText(changes, "prod"),
            "~ services/checkout (version 1 -> 2)\n"
            "    labels.tier: \"backend\" -> \"edge\"\n"
            "    spec.ports[0].port: 8080 -> 9090\n"
            "    spec.ports[0].protocol: \"HTTP\" -> (unset)\n"
            "    spec.timeouts.connect_ms: (unset) -> 100\n"
            "+ routes/shop (version 1)\n"
            "- endpoints/staging/checkout-1 (version 4)\n");
}

TEST(WatchEventLineTest, PrintsFixedColumnsUnderTheHeader) {
  const json event = {
      {"revision", 42},
      {"time", "2024-05-01T12:00:00.1Z"},
      {"actor", "alice"},
      {"comment", "scale\nup"},
      {"change",
       {{"operation", "PUT"},
        {"key", {{"kind", "endpoints"}, {"environment", "prod"}, {"name", "checkout-1"}}},
        {"before", json::object()},
        {"after", json::object()}}}};
  const std::string header = WatchHeader();
  const std::string line = WatchEventLine(event, "");
  EXPECT_EQ(
      line,
      "42        2024-05-01T12:00:00Z   alice           UPDATE      endpoints/prod/checkout-1  "
      "       scale up\n");
  EXPECT_EQ(header.find("TIME"), line.find("2024"));
  EXPECT_EQ(header.find("KIND/NAME"), line.find("endpoints"));
  EXPECT_EQ(header.find("COMMENT"), line.find("scale"));
}

TEST(WriteOutputTest, SaysCreatedConfiguredUpdatedAndDeleted) {
  const json written = {Resource("services", "checkout", 1, json::object()),
                        Resource("routes", "shop", 3, json::object(), json::object(), "staging")};
  EXPECT_EQ(WrittenResourcesText(written, "prod"),
            "services/checkout created\nroutes/staging/shop configured (version 3)\n");
  const json service = Resource("services", "checkout", 4, json::object());
  const json changes = {
      {{"operation", "PUT"}, {"key", service}, {"before", service}, {"after", service}},
      {{"operation", "DELETE"}, {"key", service}, {"before", service}}};
  EXPECT_EQ(ChangeRecordsText(changes, "prod"),
            "services/checkout updated (version 4)\nservices/checkout deleted\n");
}

}  // namespace
}  // namespace meridian::ctl
