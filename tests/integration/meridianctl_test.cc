// meridianctl end to end: the real binary, run as a subprocess, against a real control plane
// on a fresh PostgreSQL database.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "tests/integration/meridianctl_fixture.h"
#include "tests/support/postgres_server.h"

namespace meridian::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kShopYaml[] = R"(# The shop: a service, one instance and a route, applied together.
kind: Service
environment: prod
name: checkout
labels: {app: shop, tier: backend}
spec:
  ports:
    - {name: http, port: 8080, protocol: HTTP}
---
kind: endpoint
environment: prod
name: checkout-1
labels:
  zone: "a"
spec:
  service: checkout
  address: 10.0.0.1
  port: 8080
  weight: 100
  zone: a
---
kind: routes
environment: prod
name: shop
spec:
  hosts: [shop.example.com]
  port: 8080
  rules:
    - match: {path_prefix: /api}
      destinations:
        - {service: checkout, weight: 100}
      timeout_ms: 2000
      retries: {attempts: 2}
)";

class MeridianctlTest : public MeridianctlFixture {
 protected:
  // Applies the shop and returns the revision it printed.
  int64_t ApplyShop(const std::string& yaml = kShopYaml, const std::string& comment = "open shop") {
    return ApplyYaml(yaml, comment);
  }
};

TEST_F(MeridianctlTest, AppliesMultiDocumentYamlAsOneRevision) {
  const std::string out = CtlOk({"apply", "-f", "-", "--comment", "open shop"}, kShopYaml);
  EXPECT_EQ(out,
            "services/checkout created\nendpoints/checkout-1 created\nroutes/shop created\n"
            "revision 1\n");

  const json history = CtlJson({"history"});
  ASSERT_EQ(history["entries"].size(), 3u) << history.dump(2);
  for (const json& entry : history["entries"]) {
    EXPECT_EQ(entry["revision"], 1);
    EXPECT_EQ(entry["actor"], "ctl-tester");
    EXPECT_EQ(entry["comment"], "open shop");
  }
}

TEST_F(MeridianctlTest, ListShowsAppliedResourcesAsATable) {
  ApplyShop();
  const auto services = Lines(CtlOk({"list", "services"}));
  ASSERT_EQ(services.size(), 2u);
  EXPECT_THAT(services[0], StartsWith("NAME       VERSION   MOD_REVISION   LABELS"));
  EXPECT_THAT(services[1],
              AllOf(StartsWith("checkout   1         1              app=shop,tier=backend"),
                    HasSubstr("http:8080/HTTP")));
  EXPECT_THAT(CtlOk({"list", "endpoints"}), HasSubstr("10.0.0.1:8080 -> checkout"));
  EXPECT_THAT(CtlOk({"list", "route"}), HasSubstr("shop.example.com:8080 1 rule"));
  EXPECT_THAT(CtlOk({"list", "services", "-l", "tier=frontend"}),
              HasSubstr("no services in environment prod"));
  EXPECT_EQ(CtlJson({"list", "endpoints", "-l", "zone=a"})["resources"].size(), 1u);
  EXPECT_THAT(CtlOk({"list", "services", "-e", "staging"}), HasSubstr("no services"));
}

TEST_F(MeridianctlTest, GetPrintsTheSpecAsJsonAndYaml) {
  ApplyShop();
  const json service = CtlJson({"get", "services", "checkout"});
  EXPECT_EQ(service["kind"], "services");
  EXPECT_EQ(service["environment"], "prod");
  EXPECT_EQ(service["version"], 1);
  EXPECT_EQ(service["spec"]["ports"][0],
            json({{"name", "http"}, {"port", 8080}, {"protocol", "HTTP"}}));

  // YAML output reads back as the same resource, so it can be edited and applied again.
  const std::string yaml = CtlOk({"get", "route", "shop", "-o", "yaml"});
  EXPECT_THAT(yaml, HasSubstr("path_prefix: /api"));
  const std::string reapplied = CtlOk({"apply", "-f", "-"}, yaml);
  EXPECT_THAT(reapplied, HasSubstr("routes/shop configured (version 2)"));
  EXPECT_EQ(CtlJson({"get", "routes", "shop"})["spec"],
            CtlJson({"get", "routes", "shop", "--at-revision", "1"})["spec"]);
}

TEST_F(MeridianctlTest, AppliesJsonArraysFromFiles) {
  const std::string path = ::testing::TempDir() + "/meridianctl_resources.json";
  {
    std::ofstream file(path);
    file << R"([{"kind": "services", "name": "cart", "spec": {"ports": [{"port": 9000}]}},
                {"kind": "ConfigEntry", "name": "cart.timeout",
                 "spec": {"service": "cart", "key": "timeout", "value": {"ms": 250}}}])";
  }
  EXPECT_THAT(CtlOk({"apply", "-f", path}), HasSubstr("revision 1"));
  EXPECT_EQ(CtlJson({"get", "configs", "cart.timeout"})["spec"]["value"], json({{"ms", 250}}));
  std::remove(path.c_str());
}

TEST_F(MeridianctlTest, HistoryShowsActorCommentAndOperations) {
  ApplyShop();
  CtlOk({"delete", "routes", "shop", "--actor", "bob", "--comment", "close route"});
  const auto lines = Lines(CtlOk({"history"}));
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_THAT(lines[0], MatchesRegex("REVISION +TIME +ACTOR +OPERATION +KIND/NAME +COMMENT"));
  EXPECT_THAT(lines[1], AllOf(StartsWith("1 "), HasSubstr("ctl-tester"), HasSubstr("CREATE"),
                              HasSubstr("services/checkout"), HasSubstr("open shop")));
  EXPECT_THAT(lines[4], AllOf(StartsWith("2 "), HasSubstr("bob"), HasSubstr("DELETE"),
                              HasSubstr("routes/shop"), HasSubstr("close route")));

  const json narrowed = CtlJson({"history", "--kind", "route", "--name", "shop"});
  EXPECT_EQ(narrowed["entries"].size(), 2u);
  EXPECT_EQ(CtlJson({"history", "--since", "1"})["entries"].size(), 1u);
  EXPECT_EQ(CtlJson({"history", "--limit", "2"})["entries"].size(), 2u);
  EXPECT_THAT(CtlOk({"history", "-e", "staging"}), HasSubstr("no history"));
  EXPECT_EQ(CtlJson({"history", "-A"})["entries"].size(), 4u);
}

TEST_F(MeridianctlTest, DiffShowsChangedFieldsBetweenRevisions) {
  const int64_t first = ApplyShop();
  std::string moved = kShopYaml;
  moved.replace(moved.find("port: 8080, protocol: HTTP"), 26, "port: 9090, protocol: HTTP2");
  const int64_t second = ApplyShop(moved, "move port");
  ASSERT_GT(second, first);

  const std::string diff =
      CtlOk({"diff", "--from", std::to_string(first), "--to", std::to_string(second)});
  EXPECT_THAT(diff, HasSubstr("~ services/checkout (version 1 -> 2)\n"
                              "    spec.ports[0].port: 8080 -> 9090\n"
                              "    spec.ports[0].protocol: \"HTTP\" -> \"HTTP2\"\n"));
  EXPECT_THAT(CtlOk({"diff", "--from", "0"}), HasSubstr("+ routes/shop"));
  EXPECT_THAT(CtlOk({"diff", "--from", std::to_string(second)}),
              HasSubstr("no changes between revision"));
  const json changes = CtlJson({"diff", "--from", std::to_string(first)});
  ASSERT_FALSE(changes["changes"].empty()) << changes.dump(2);
  EXPECT_EQ(changes["changes"][0]["after"]["spec"]["ports"][0]["port"], 9090);
}

TEST_F(MeridianctlTest, RollbackRestoresAnEarlierRevision) {
  const int64_t first = ApplyShop();
  std::string moved = kShopYaml;
  moved.replace(moved.find("port: 8080, protocol: HTTP"), 26, "port: 9090, protocol: HTTP2");
  ApplyShop(moved, "move port");
  CtlOk({"delete", "endpoint", "checkout-1"});

  const std::string out = CtlOk({"rollback", "--to", std::to_string(first), "--comment", "undo"});
  EXPECT_THAT(
      out, AllOf(HasSubstr("services/checkout updated"), HasSubstr("endpoints/checkout-1 created"),
                 HasSubstr("rolled back to revision 1 as revision")));
  EXPECT_EQ(CtlJson({"get", "service", "checkout"})["spec"]["ports"][0]["port"], 8080);
  EXPECT_EQ(CtlJson({"get", "endpoint", "checkout-1"})["spec"]["address"], "10.0.0.1");
  EXPECT_THAT(CtlOk({"history", "--since", "3"}), HasSubstr("(rollback to 1) undo"));
}

TEST_F(MeridianctlTest, RollbackCanBeNarrowedToOneResource) {
  const int64_t first = ApplyShop();
  std::string moved = kShopYaml;
  moved.replace(moved.find("port: 8080, protocol: HTTP"), 26, "port: 9090, protocol: HTTP2");
  moved.replace(moved.find("weight: 100\n  zone"), 11, "weight: 5");
  ApplyShop(moved, "move port");
  CtlOk({"rollback", "--to", std::to_string(first), "--kind", "endpoints", "--name", "checkout-1"});
  EXPECT_EQ(CtlJson({"get", "endpoints", "checkout-1"})["spec"]["weight"], 100);
  EXPECT_EQ(CtlJson({"get", "services", "checkout"})["spec"]["ports"][0]["port"], 9090);
}

TEST_F(MeridianctlTest, DeleteRemovesAndHonoursIfVersion) {
  ApplyShop();
  CtlResult stale = Ctl({"delete", "routes", "shop", "--if-version", "7"});
  EXPECT_EQ(stale.exit_code, 1) << stale;
  EXPECT_THAT(stale.err, AllOf(StartsWith("error: "), HasSubstr("version")));
  EXPECT_EQ(CtlJson({"get", "routes", "shop"})["version"], 1);

  EXPECT_THAT(CtlOk({"delete", "routes", "shop", "--if-version", "1"}),
              HasSubstr("routes/shop deleted (revision 2)"));
  CtlResult gone = Ctl({"get", "routes", "shop"});
  EXPECT_EQ(gone.exit_code, 1) << gone;
  EXPECT_THAT(gone.err, AllOf(StartsWith("error: "), HasSubstr("not found")));
  EXPECT_THAT(gone.out, IsEmpty());
}

TEST_F(MeridianctlTest, BadYamlFailsClearlyAndChangesNothing) {
  ApplyShop();
  const std::string before = CtlOk({"history", "-A", "-o", "json"});

  CtlResult syntax = Ctl({"apply", "-f", "-"}, "kind: services\nname: x\nspec:\n  ports: [1, 2\n");
  EXPECT_EQ(syntax.exit_code, 1) << syntax;
  EXPECT_THAT(syntax.err, StartsWith("error: <stdin>:"));
  EXPECT_EQ(Lines(syntax.err).size(), 1u) << syntax;

  CtlResult unknown = Ctl({"apply", "-f", "-"}, "kind: services\nname: x\nspex: {}\n");
  EXPECT_EQ(unknown.exit_code, 1) << unknown;
  EXPECT_EQ(unknown.err,
            "error: document 1 (services/x): spex: unknown field (expected kind, environment, "
            "name, labels, spec)\n");

  // Valid YAML, but the server rejects the second resource: the first is not written either.
  CtlResult invalid = Ctl({"apply", "-f", "-"},
                          "kind: services\nname: fine\nspec: {ports: [{port: 80}]}\n---\n"
                          "kind: services\nname: broken\nspec: {ports: [{port: 99999}]}\n");
  EXPECT_EQ(invalid.exit_code, 1) << invalid;
  EXPECT_THAT(invalid.err,
              AllOf(StartsWith("error: document 2 (services/broken): "), HasSubstr("port")));

  CtlResult missing = Ctl({"apply", "-f", "/nonexistent/shop.yaml"});
  EXPECT_EQ(missing.exit_code, 1) << missing;
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/shop.yaml: cannot open"));

  EXPECT_EQ(CtlOk({"history", "-A", "-o", "json"}), before);
  EXPECT_THAT(CtlOk({"list", "services"}), Not(HasSubstr("fine")));
}

TEST_F(MeridianctlTest, CertificatePrivateKeyNeverPrinted) {
  const TestCertificate cert = MakeSelfSignedCertificate("shop.example.com");
  const json document = {
      {"kind", "certificates"},
      {"name", "shop-tls"},
      {"spec", {{"certificate_chain", cert.chain_pem}, {"private_key", cert.key_pem}}}};
  CtlOk({"apply", "-f", "-"}, document.dump());
  const std::string yaml = CtlOk({"get", "certificate", "shop-tls", "-o", "yaml"});
  EXPECT_THAT(yaml, AllOf(HasSubstr("certificate_chain: |\n    -----BEGIN CERTIFICATE-----"),
                          HasSubstr("private_key_fingerprint"), Not(HasSubstr("PRIVATE KEY"))));
  EXPECT_THAT(CtlOk({"list", "certificates"}), HasSubstr("sans=shop.example.com"));
  EXPECT_THAT(CtlOk({"history", "-o", "json"}), Not(HasSubstr("PRIVATE KEY")));
}

TEST_F(MeridianctlTest, WatchPrintsEventsAsTheyArrive) {
  ApplyShop();
  const json list = CtlJson({"list", "services"});
  const std::string now = std::to_string(list["revision"].get<int64_t>());

  Subprocess json_watch(Argv({"watch", "--since", now, "-o", "json"}), Environment(), "");
  Subprocess table_watch(Argv({"watch", "--since", now}), Environment(), "");
  ASSERT_TRUE(table_watch.WaitForLines(1, std::chrono::seconds(10))) << table_watch.err();
  CtlOk({"delete", "endpoints", "checkout-1", "--comment", "drain"});
  CtlOk({"apply", "-f", "-"}, "kind: services\nname: cart\nspec: {ports: [{port: 81}]}\n");

  ASSERT_TRUE(json_watch.WaitForLines(2, std::chrono::seconds(10))) << json_watch.err();
  ASSERT_TRUE(table_watch.WaitForLines(3, std::chrono::seconds(10))) << table_watch.err();
  const auto events = Lines(json_watch.out());
  const json deleted = json::parse(events[0]);
  EXPECT_EQ(deleted["comment"], "drain");
  EXPECT_EQ(deleted["change"]["operation"], "DELETE");
  EXPECT_EQ(deleted["change"]["key"]["name"], "checkout-1");
  EXPECT_EQ(json::parse(events[1])["change"]["key"]["name"], "cart");
  const auto rows = Lines(table_watch.out());
  EXPECT_THAT(rows[0], StartsWith("REVISION"));
  EXPECT_THAT(rows[1],
              AllOf(HasSubstr("DELETE"), HasSubstr("endpoints/checkout-1"), HasSubstr("drain")));
  EXPECT_THAT(rows[2], AllOf(HasSubstr("CREATE"), HasSubstr("services/cart")));

  // Ctrl-C ends it.
  json_watch.Signal(SIGINT);
  table_watch.Signal(SIGINT);
  EXPECT_EQ(json_watch.Wait(), 128 + SIGINT);
  EXPECT_EQ(table_watch.Wait(), 128 + SIGINT);
}

TEST_F(MeridianctlTest, WatchFromNowSkipsOlderEvents) {
  ApplyShop();
  Subprocess watch(Argv({"watch"}), Environment(), "");
  // The header comes once "now" is pinned to a revision: later changes are all seen.
  ASSERT_TRUE(watch.WaitForLines(1, std::chrono::seconds(10))) << watch.err();
  CtlOk({"delete", "routes", "shop"});
  ASSERT_TRUE(watch.WaitForLines(2, std::chrono::seconds(10))) << watch.err();
  watch.Signal(SIGINT);
  watch.Wait();
  const auto rows = Lines(watch.out());
  ASSERT_EQ(rows.size(), 2u) << watch.out();
  EXPECT_THAT(rows[1], AllOf(StartsWith("2 "), HasSubstr("DELETE"), HasSubstr("routes/shop")));
}

TEST_F(MeridianctlTest, WatchResumesAfterIdleTimeoutsWithoutLosingOrRepeatingEvents) {
  ApplyShop();
  Subprocess watch(Argv({"watch", "--since", "1", "--idle-timeout", "0.5", "-o", "json"}),
                   Environment(), "");
  // Several idle reconnects, then changes, then more reconnects.
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  CtlOk({"delete", "routes", "shop"});
  CtlOk({"delete", "endpoints", "checkout-1"});
  ASSERT_TRUE(watch.WaitForLines(2, std::chrono::seconds(10))) << watch.err();
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  CtlOk({"delete", "services", "checkout"});
  ASSERT_TRUE(watch.WaitForLines(3, std::chrono::seconds(10))) << watch.err();
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  watch.Signal(SIGINT);
  watch.Wait();
  const auto events = Lines(watch.out());
  ASSERT_EQ(events.size(), 3u) << watch.out() << watch.err();
  EXPECT_EQ(json::parse(events[0])["revision"], 2);
  EXPECT_EQ(json::parse(events[1])["revision"], 3);
  EXPECT_EQ(json::parse(events[2])["revision"], 4);
  EXPECT_THAT(watch.err(), IsEmpty());
}

TEST_F(MeridianctlTest, UnreachableServerIsNamed) {
  const std::string server = absl::StrCat("http://127.0.0.1:", FreePort());
  CtlResult result = Ctl({"list", "services", "--server", server});
  EXPECT_EQ(result.exit_code, 1) << result;
  EXPECT_EQ(result.err, "error: cannot connect to meridian-cp at " + server +
                            " (is it running? set --server or MERIDIAN_SERVER)\n");
}

TEST_F(MeridianctlTest, UsageErrorsExitWithTwo) {
  CtlResult no_command = Ctl({});
  EXPECT_EQ(no_command.exit_code, 2) << no_command;
  CtlResult bad_output = Ctl({"list", "services", "-o", "xml"});
  EXPECT_EQ(bad_output.exit_code, 2) << bad_output;
  CtlResult bad_kind = Ctl({"get", "pods", "x"});
  EXPECT_EQ(bad_kind.exit_code, 1) << bad_kind;
  EXPECT_THAT(bad_kind.err, HasSubstr("unknown kind \"pods\""));
}

}  // namespace
}  // namespace meridian::testing
