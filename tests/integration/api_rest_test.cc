// The REST API end to end: real HTTP client, real control plane, real PostgreSQL.
#include <chrono>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/control_plane_fixture.h"

namespace meridian::testing {
namespace {

constexpr char kCheckout[] =
    R"({"spec":{"ports":[{"name":"http","port":8080,"protocol":"HTTP"}]}})";
constexpr char kCheckout9090[] =
    R"({"spec":{"ports":[{"name":"http","port":9090,"protocol":"HTTP"}]}})";
constexpr char kEndpoint[] =
    R"({"spec":{"service":"checkout","address":"10.0.0.1","port":8080,"weight":100,"zone":"a"}})";
constexpr char kRoute[] =
    R"({"spec":{"hosts":["shop.example.com"],"port":8080,"rules":[{"match":{"path_prefix":"/api"},
  "destinations":[{"service":"checkout","weight":90},{"service":"checkout-canary","weight":10}],
  "timeout_ms":2000,"retries":{"attempts":2}}]}})";

std::string ResourcePath(const std::string& kind, const std::string& name,
                         const std::string& environment = "prod") {
  return "/api/v1/environments/" + environment + "/" + kind + "/" + name;
}

class RestApiTest : public ControlPlaneTest {
 protected:
  json ListServices() { return Body(Get("/api/v1/environments/prod/services")); }

  int64_t PutService(const std::string& name, const std::string& body = kCheckout) {
    auto result = Put(ResourcePath("services", name), body);
    EXPECT_TRUE(result->status == 200 || result->status == 201) << result->body;
    return Body(result).value("revision", int64_t{0});
  }

  void ExpectError(const httplib::Result& result, int status, const std::string& mention) {
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, status) << result->body;
    json body = Body(result);
    EXPECT_TRUE(body.contains("code")) << result->body;
    EXPECT_NE(body.value("message", "").find(mention), std::string::npos)
        << "message should mention \"" << mention << "\": " << result->body;
  }
};

TEST_F(RestApiTest, HealthAndReadinessAnswer) {
  auto health = Get("/healthz");
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(Body(health), json({{"status", "ok"}}));
  auto ready = Get("/readyz");
  EXPECT_EQ(ready->status, 200) << ready->body;
}

TEST_F(RestApiTest, CreatesReadsUpdatesAndDeletesEveryKind) {
  const TestCertificate cert = MakeSelfSignedCertificate("shop.example.com");
  const std::string cert_body =
      json({{"spec", {{"certificate_chain", cert.chain_pem}, {"private_key", cert.key_pem}}}})
          .dump();
  struct Case {
    std::string kind, name, body;
  };
  const std::vector<Case> cases = {
      {"services", "checkout", kCheckout},
      {"services", "checkout-canary", kCheckout},
      {"endpoints", "checkout-1", kEndpoint},
      {"routes", "shop", kRoute},
      {"certificates", "shop-tls", cert_body},
      {"configs", "checkout.timeout-ms", R"({"spec":{"value":2000}})"},
  };
  for (const auto& c : cases) {
    auto created = Put(ResourcePath(c.kind, c.name), c.body);
    ASSERT_EQ(created->status, 201) << c.kind << "/" << c.name << ": " << created->body;
    EXPECT_EQ(created->get_header_value("ETag"), "\"1\"");
    json body = Body(created);
    EXPECT_EQ(body["kind"], c.kind);
    EXPECT_EQ(body["environment"], "prod");
    EXPECT_EQ(body["name"], c.name);
    EXPECT_EQ(body["version"], 1);
    EXPECT_TRUE(body["revision"].is_number_integer());
    EXPECT_EQ(body["create_revision"], body["revision"]);

    auto read = Get(ResourcePath(c.kind, c.name));
    ASSERT_EQ(read->status, 200) << read->body;
    EXPECT_EQ(read->get_header_value("ETag"), "\"1\"");
    EXPECT_EQ(Body(read)["mod_revision"], body["revision"]);
  }
  json route = Body(Get(ResourcePath("routes", "shop")));
  EXPECT_EQ(route["spec"]["rules"][0]["destinations"][1]["service"], "checkout-canary");
  EXPECT_EQ(route["spec"]["rules"][0]["timeout_ms"], 2000);
  json config = Body(Get(ResourcePath("configs", "checkout.timeout-ms")));
  EXPECT_EQ(config["spec"]["value"], 2000);
  EXPECT_EQ(config["spec"]["service"], "checkout");
  EXPECT_EQ(config["spec"]["key"], "timeout-ms");

  auto updated =
      Put(ResourcePath("services", "checkout"),
          R"({"labels":{"team":"payments"},"spec":{"ports":[{"name":"http","port":9090}]}})");
  ASSERT_EQ(updated->status, 200) << updated->body;
  EXPECT_EQ(updated->get_header_value("ETag"), "\"2\"");
  json service = Body(Get(ResourcePath("services", "checkout")));
  EXPECT_EQ(service["version"], 2);
  EXPECT_EQ(service["labels"]["team"], "payments");
  EXPECT_EQ(service["spec"]["ports"][0]["port"], 9090);

  json list = ListServices();
  ASSERT_EQ(list["resources"].size(), 2u) << list;
  auto selected = Get("/api/v1/environments/prod/services?label_selector=team%3Dpayments");
  ASSERT_EQ(Body(selected)["resources"].size(), 1u) << selected->body;

  auto deleted = Delete(ResourcePath("endpoints", "checkout-1"));
  ASSERT_EQ(deleted->status, 200) << deleted->body;
  EXPECT_GT(Body(deleted)["revision"], service["mod_revision"]);
  EXPECT_EQ(Get(ResourcePath("endpoints", "checkout-1"))->status, 404);
  EXPECT_EQ(Delete(ResourcePath("endpoints", "checkout-1"))->status, 404);
}

TEST_F(RestApiTest, AcceptsLowerCamelCaseFieldNames) {
  PutService("checkout");
  auto route = Put(ResourcePath("routes", "shop"), R"({"spec":{"hosts":["shop.example.com"],
      "port":8080,"rules":[{"match":{"pathPrefix":"/"},"destinations":[{"service":"checkout"}],
      "timeoutMs":1500,"retries":{"attempts":1,"perTryTimeoutMs":500}}]}})");
  ASSERT_EQ(route->status, 201) << route->body;
  EXPECT_EQ(Body(route)["spec"]["rules"][0]["retries"]["per_try_timeout_ms"], 500);
}

TEST_F(RestApiTest, RejectsBadInputAndChangesNothing) {
  PutService("checkout");
  const json before = ListServices();
  const std::string path = ResourcePath("services", "web");

  ExpectError(Put(path, R"({"spec":{"ports":[{"name":"http","port":80}],"bogus":1}})"), 400,
              "bogus");
  ExpectError(Put(path, R"({"specs":{}})"), 400, "specs");
  ExpectError(Put(path, R"({"spec":{"ports":[{"name":"http","port":80,"protocl":"HTTP"}]}})"), 400,
              "protocl");
  ExpectError(Put(path, R"({"spec": {"ports": [)"), 400, "JSON");
  ExpectError(Put(path, "not json"), 400, "JSON");
  ExpectError(Put(path, R"({"spec":{"ports":[{"name":"http","port":70000}]}})"), 400, "port");
  ExpectError(Put(path, R"({"labels":{"a":1},"spec":{}})"), 400, "labels.a");
  ExpectError(Put(ResourcePath("services", "Bad_Name"), kCheckout), 400, "name");
  ExpectError(Put(ResourcePath("services", "web", "PROD"), kCheckout), 400, "environment");
  ExpectError(Put(ResourcePath("widgets", "web"), kCheckout), 400, "kind");
  ExpectError(Put(path, R"({"name":"other","spec":{}})"), 400, "name");
  const std::string huge = json({{"labels", {{"big", std::string(3 << 20, 'x')}}}}).dump();
  auto oversize = Put(path, huge);
  ASSERT_TRUE(oversize);
  EXPECT_EQ(oversize->status, 413) << oversize->body;
  EXPECT_EQ(Body(oversize)["code"], "INVALID_ARGUMENT");

  EXPECT_EQ(ListServices(), before);
  EXPECT_EQ(Get(path)->status, 404);
}

TEST_F(RestApiTest, RejectsStaleIfMatchAndChangesNothing) {
  PutService("checkout");
  const json before = Body(Get(ResourcePath("services", "checkout")));

  ExpectError(Put(ResourcePath("services", "checkout"), kCheckout9090, {{"If-Match", "\"7\""}}),
              412, "");
  ExpectError(Delete(ResourcePath("services", "checkout"), {{"If-Match", "7"}}), 412, "");
  ExpectError(Put(ResourcePath("services", "checkout"), kCheckout9090, {{"If-Match", "seven"}}),
              400, "If-Match");
  EXPECT_EQ(Body(Get(ResourcePath("services", "checkout"))), before);

  auto updated = Put(ResourcePath("services", "checkout"), kCheckout9090, {{"If-Match", "\"1\""}});
  ASSERT_EQ(updated->status, 200) << updated->body;
  EXPECT_EQ(Body(updated)["version"], 2);
  auto deleted = Delete(ResourcePath("services", "checkout"), {{"If-Match", "2"}});
  EXPECT_EQ(deleted->status, 200) << deleted->body;
}

TEST_F(RestApiTest, IfNoneMatchStarRefusesToOverwrite) {
  auto created = Put(ResourcePath("services", "checkout"), kCheckout, {{"If-None-Match", "*"}});
  ASSERT_EQ(created->status, 201) << created->body;
  auto again = Put(ResourcePath("services", "checkout"), kCheckout9090, {{"If-None-Match", "*"}});
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->status == 409 || again->status == 412) << again->body;
  EXPECT_EQ(Body(Get(ResourcePath("services", "checkout")))["version"], 1);
}

TEST_F(RestApiTest, BatchIsAllOrNothing) {
  PutService("checkout");
  const int64_t revision = CurrentRevision();
  json batch = {{"comment", "bad batch"},
                {"changes",
                 {{{"put",
                    {{"kind", "services"},
                     {"environment", "prod"},
                     {"name", "a"},
                     {"spec", json::parse(kCheckout)["spec"]}}}},
                  {{"put",
                    {{"kind", "services"},
                     {"environment", "prod"},
                     {"name", "b"},
                     {"spec", json::parse(kCheckout)["spec"]}}}},
                  {{"put",
                    {{"kind", "services"},
                     {"environment", "prod"},
                     {"name", "checkout"},
                     {"spec", json::parse(kCheckout9090)["spec"]}}},
                   {"expected_version", 5}}}}};
  auto rejected = Post("/api/v1/changes", batch.dump());
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->status, 412) << rejected->body;
  EXPECT_EQ(CurrentRevision(), revision);
  EXPECT_EQ(ListServices()["resources"].size(), 1u);

  batch["changes"][2]["put"]["spec"]["bogus"] = true;  // bad input: rejected before the store
  ExpectError(Post("/api/v1/changes", batch.dump()), 400, "changes[2].put.spec");
  EXPECT_EQ(CurrentRevision(), revision);

  batch["changes"][2] = {
      {"delete", {{"kind", "services"}, {"environment", "prod"}, {"name", "checkout"}}},
      {"expectedVersion", 1}};
  auto applied = Post("/api/v1/changes", batch.dump(), {{"X-Meridian-Actor", "bob"}});
  ASSERT_EQ(applied->status, 200) << applied->body;
  EXPECT_EQ(Body(applied)["revision"], revision + 1);
  json list = ListServices();
  ASSERT_EQ(list["resources"].size(), 2u) << list;
  EXPECT_EQ(list["resources"][0]["mod_revision"], revision + 1);
  json record = Body(Get("/api/v1/revisions/" + std::to_string(revision + 1)));
  EXPECT_EQ(record["changes"].size(), 3u) << record;
  EXPECT_EQ(record["actor"], "bob");
}

TEST_F(RestApiTest, HistoryRecordsActorAndComment) {
  auto first = Put(ResourcePath("services", "checkout"), kCheckout,
                   {{"X-Meridian-Actor", "alice"}, {"X-Meridian-Comment", "initial"}});
  ASSERT_EQ(first->status, 201);
  json second_body = json::parse(kCheckout9090);
  second_body["comment"] = "move to 9090";
  auto second = Put(ResourcePath("services", "checkout"), second_body.dump(),
                    {{"X-Meridian-Actor", "carol"}});
  ASSERT_EQ(second->status, 200) << second->body;
  ASSERT_EQ(Delete(ResourcePath("services", "checkout"))->status, 200);

  json history = Body(Get("/api/v1/history?environment=prod&kind=services&name=checkout"));
  ASSERT_EQ(history["entries"].size(), 3u) << history;
  std::map<int64_t, json> by_revision;
  for (const auto& entry : history["entries"]) by_revision[entry["revision"]] = entry;
  auto it = by_revision.begin();
  EXPECT_EQ(it->second["actor"], "alice");
  EXPECT_EQ(it->second["comment"], "initial");
  EXPECT_EQ(it->second["change"]["operation"], "PUT");
  EXPECT_FALSE(it->second["change"].contains("before"));
  ++it;
  EXPECT_EQ(it->second["actor"], "carol");
  EXPECT_EQ(it->second["comment"], "move to 9090");
  EXPECT_EQ(it->second["change"]["before"]["spec"]["ports"][0]["port"], 8080);
  EXPECT_EQ(it->second["change"]["after"]["spec"]["ports"][0]["port"], 9090);
  ++it;
  EXPECT_EQ(it->second["actor"], "anonymous");
  EXPECT_EQ(it->second["change"]["operation"], "DELETE");
  EXPECT_TRUE(it->second["time"].is_string());

  json since = Body(Get(
      "/api/v1/history?since_revision=" + std::to_string(by_revision.begin()->first) + "&limit=1"));
  ASSERT_EQ(since["entries"].size(), 1u) << since;
  EXPECT_EQ(since["entries"][0]["comment"], "move to 9090");
}

TEST_F(RestApiTest, CertificatePrivateKeyNeverLeavesTheServer) {
  const TestCertificate cert = MakeSelfSignedCertificate("shop.example.com");
  const std::string key_marker = cert.key_pem.substr(cert.key_pem.find('\n') + 1, 40);
  const int64_t start = CurrentRevision();
  auto watch = std::async(std::launch::async,
                          [&] { return ReadWatch("since_revision=" + std::to_string(start), 2); });
  const std::string body =
      json({{"spec", {{"certificate_chain", cert.chain_pem}, {"private_key", cert.key_pem}}}})
          .dump();
  auto created = Put(ResourcePath("certificates", "shop-tls"), body);
  ASSERT_EQ(created->status, 201) << created->body;
  auto updated = Put(ResourcePath("certificates", "shop-tls"), body);
  ASSERT_EQ(updated->status, 200) << updated->body;
  const std::string revision = std::to_string(Body(updated)["revision"].get<int64_t>());

  json read = Body(Get(ResourcePath("certificates", "shop-tls")));
  EXPECT_FALSE(read["spec"].value("private_key_fingerprint", "").empty()) << read;
  EXPECT_EQ(read["spec"]["sans"][0], "shop.example.com");
  std::vector<std::string> responses = {
      created->body,
      updated->body,
      read.dump(),
      Get("/api/v1/environments/prod/certificates")->body,
      Get("/api/v1/history?kind=certificates")->body,
      Get("/api/v1/revisions/" + revision)->body,
      Get("/api/v1/diff?from_revision=" + std::to_string(start))->body,
      Get("/api/v1/environments/prod/certificates/shop-tls?at_revision=" + revision)->body,
  };
  for (const json& line : watch.get()) responses.push_back(line.dump());
  ASSERT_EQ(responses.size(), 10u);
  for (const auto& response : responses) {
    EXPECT_EQ(response.find("PRIVATE KEY"), std::string::npos) << response;
    EXPECT_EQ(response.find(key_marker), std::string::npos) << response;
  }
}

TEST_F(RestApiTest, SecretConfigIsRedactedEverywhereButTheConfigRead) {
  auto put = Put("/api/v1/configs/checkout/prod/db-password?secret=true", R"("hunter2")");
  ASSERT_EQ(put->status, 201) << put->body;
  auto plain = Put("/api/v1/configs/checkout/prod/pool-size", "16");
  ASSERT_EQ(plain->status, 201) << plain->body;

  json config = Body(Get("/api/v1/configs/checkout/prod"));
  EXPECT_EQ(config, json({{"db-password", "hunter2"}, {"pool-size", 16}}));

  // Setting a new value keeps the secret flag.
  ASSERT_EQ(Put("/api/v1/configs/checkout/prod/db-password", R"("hunter3")")->status, 200);
  EXPECT_EQ(Body(Get("/api/v1/configs/checkout/prod"))["db-password"], "hunter3");

  for (const std::string& path :
       {ResourcePath("configs", "checkout.db-password"), std::string("/api/v1/history"),
        std::string("/api/v1/environments/prod/configs"),
        std::string("/api/v1/diff?from_revision=0"),
        "/api/v1/revisions/" + std::to_string(Body(put)["revision"].get<int64_t>())}) {
    auto response = Get(path);
    EXPECT_EQ(response->status, 200) << path << ": " << response->body;
    EXPECT_EQ(response->body.find("hunter"), std::string::npos) << path << ": " << response->body;
  }
  for (const json& line : ReadWatch("since_revision=0", 3)) {
    EXPECT_EQ(line.dump().find("hunter"), std::string::npos) << line;
  }
}

TEST_F(RestApiTest, ConfigEndpointsSetBulkSetAndDeleteKeys) {
  ASSERT_EQ(Put("/api/v1/configs/checkout/prod/feature-x", "true")->status, 201);
  const int64_t before = CurrentRevision();
  auto bulk = Put("/api/v1/configs/checkout/prod",
                  R"({"feature-x": false, "retries": 3, "endpoints": {"pay": "https://pay"}})");
  ASSERT_EQ(bulk->status, 200) << bulk->body;
  EXPECT_EQ(Body(bulk)["revision"], before + 1);
  ASSERT_EQ(Put("/api/v1/configs/billing/prod/retries", "9")->status, 201);

  EXPECT_EQ(
      Body(Get("/api/v1/configs/checkout/prod")),
      json::parse(R"({"feature-x": false, "retries": 3, "endpoints": {"pay": "https://pay"}})"));
  ASSERT_EQ(Delete("/api/v1/configs/checkout/prod/retries")->status, 200);
  EXPECT_FALSE(Body(Get("/api/v1/configs/checkout/prod")).contains("retries"));
  EXPECT_EQ(Body(Get("/api/v1/configs/billing/prod"))["retries"], 9);
  EXPECT_EQ(Delete("/api/v1/configs/checkout/prod/retries")->status, 404);
  ExpectError(Put("/api/v1/configs/checkout/prod/Bad.Key", "1"), 400, "key");
  ExpectError(Put("/api/v1/configs/checkout/prod", R"({"ok": 1, "bad key": 2})"), 400, "key");
  ExpectError(Put("/api/v1/configs/checkout/prod/x", "{"), 400, "JSON");
}

TEST_F(RestApiTest, ReadsResourcesAsOfAnEarlierRevision) {
  const int64_t first = PutService("checkout");
  PutService("checkout", kCheckout9090);
  PutService("cart");

  json old =
      Body(Get(ResourcePath("services", "checkout") + "?at_revision=" + std::to_string(first)));
  EXPECT_EQ(old["version"], 1) << old;
  EXPECT_EQ(old["spec"]["ports"][0]["port"], 8080);
  json list = Body(Get("/api/v1/environments/prod/services?at_revision=" + std::to_string(first)));
  ASSERT_EQ(list["resources"].size(), 1u) << list;
  EXPECT_EQ(list["revision"], first);
  EXPECT_EQ(Get(ResourcePath("services", "cart") + "?at_revision=" + std::to_string(first))->status,
            404);
  ExpectError(Get(ResourcePath("services", "cart") + "?at_revision=x"), 400, "at_revision");
}

TEST_F(RestApiTest, DiffShowsNetChangesBetweenRevisions) {
  const int64_t first = PutService("checkout");
  PutService("checkout", kCheckout9090);
  PutService("cart");
  json diff = Body(Get("/api/v1/diff?environment=prod&from_revision=" + std::to_string(first)));
  ASSERT_EQ(diff["changes"].size(), 2u) << diff;
  for (const auto& change : diff["changes"]) {
    if (change["key"]["name"] == "checkout") {
      EXPECT_EQ(change["before"]["spec"]["ports"][0]["port"], 8080);
      EXPECT_EQ(change["after"]["spec"]["ports"][0]["port"], 9090);
    } else {
      EXPECT_EQ(change["key"]["name"], "cart");
      EXPECT_FALSE(change.contains("before"));
    }
  }
}

TEST_F(RestApiTest, RollsBackOneResourceAndAWholeEnvironment) {
  const int64_t first = PutService("checkout");
  PutService("checkout", kCheckout9090);
  PutService("cart");

  auto one = Post("/api/v1/rollback", json({{"to_revision", first},
                                            {"environment", "prod"},
                                            {"kind", "services"},
                                            {"name", "checkout"},
                                            {"comment", "undo port change"}})
                                          .dump());
  ASSERT_EQ(one->status, 200) << one->body;
  const int64_t rollback_revision = Body(one)["revision"];
  json checkout = Body(Get(ResourcePath("services", "checkout")));
  EXPECT_EQ(checkout["spec"]["ports"][0]["port"], 8080);
  EXPECT_EQ(checkout["version"], 3);
  EXPECT_EQ(Get(ResourcePath("services", "cart"))->status, 200);
  json record = Body(Get("/api/v1/revisions/" + std::to_string(rollback_revision)));
  EXPECT_EQ(record["rollback_to"], first) << record;
  EXPECT_EQ(record["comment"], "undo port change");

  auto all = Post("/api/v1/rollback", json({{"toRevision", first}, {"environment", "prod"}}).dump(),
                  {{"X-Meridian-Comment", "back to the start"}});
  ASSERT_EQ(all->status, 200) << all->body;
  EXPECT_EQ(Get(ResourcePath("services", "cart"))->status, 404);
  json history = Body(
      Get("/api/v1/history?environment=prod&since_revision=" + std::to_string(rollback_revision)));
  ASSERT_EQ(history["entries"].size(), 1u) << history;
  EXPECT_EQ(history["entries"][0]["rollback_to"], first);
  EXPECT_EQ(history["entries"][0]["comment"], "back to the start");
  ExpectError(Post("/api/v1/rollback", R"({"to_revision": 1})"), 400, "environment");
}

TEST_F(RestApiTest, WatchStreamsAndResumesFromSinceRevision) {
  const int64_t start = CurrentRevision();
  PutService("a");
  PutService("b");
  PutService("c");
  std::vector<json> events = ReadWatch("since_revision=" + std::to_string(start), 3);
  ASSERT_EQ(events.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(events[i]["revision"], start + 1 + i);
    EXPECT_EQ(events[i]["change"]["key"]["name"], std::string(1, static_cast<char>('a' + i)));
    EXPECT_EQ(events[i]["change"]["after"]["kind"], "services");
  }
  std::vector<json> resumed = ReadWatch("since_revision=" + std::to_string(start + 2), 1);
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0]["change"]["key"]["name"], "c");

  // Live events, filtered by kind, reach a client that is already waiting.
  auto live = std::async(std::launch::async, [&] {
    return ReadWatch("kind=endpoints&since_revision=" + std::to_string(start + 3), 1);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  PutService("d");
  ASSERT_EQ(Put(ResourcePath("endpoints", "a-1"),
                R"({"spec":{"service":"a","address":"10.0.0.2","port":80}})")
                ->status,
            201);
  std::vector<json> filtered = live.get();
  ASSERT_EQ(filtered.size(), 1u);
  EXPECT_EQ(filtered[0]["change"]["key"]["kind"], "endpoints");
  EXPECT_EQ(filtered[0]["revision"], start + 5);
}

TEST_F(RestApiTest, WatchFromCompactedRevisionIsAnError) {
  PutService("a");
  PutService("a", kCheckout9090);
  const int64_t current = PutService("b");
  auto compacted = Post("/api/v1/compact", json({{"revision", current - 1}}).dump());
  ASSERT_EQ(compacted->status, 200) << compacted->body;

  int status = 0;
  std::string error;
  std::vector<json> lines = ReadWatch("since_revision=0", 1, 10, &status, &error);
  EXPECT_TRUE(lines.empty());
  EXPECT_EQ(status, 400);
  const json error_json = json::parse(error, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(error_json.is_object()) << error;
  EXPECT_EQ(error_json.value("code", ""), "OUT_OF_RANGE") << error;

  std::vector<json> recent = ReadWatch("since_revision=" + std::to_string(current - 1), 1);
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0]["revision"], current);
  auto history = Get(ResourcePath("services", "a") + "?at_revision=1");
  EXPECT_EQ(history->status, 400) << history->body;
}

class RetentionTest : public RestApiTest {
 protected:
  void ConfigureOptions(server::ControlPlaneOptions& options) override {
    options.history_retention_revisions = 2;
    options.compaction_interval = absl::Seconds(1);
  }
};

TEST_F(RetentionTest, CompactsHistoryOlderThanTheRetention) {
  for (const char* name : {"a", "b", "c", "d", "e"}) PutService(name);
  // The loop runs every second; give it a bounded while.
  int status = 0;
  for (int attempt = 0; attempt < 50 && status != 400; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    status = Get(ResourcePath("services", "a") + "?at_revision=2")->status;
  }
  EXPECT_EQ(status, 400);
  EXPECT_EQ(Get(ResourcePath("services", "c") + "?at_revision=3")->status, 200);
  ReadWatch("since_revision=1", 1, 10, &status);
  EXPECT_EQ(status, 400);
}

}  // namespace
}  // namespace meridian::testing
