// meridianctl status, nodes and the writes' --wait end to end: the real binary against an
// in-process control plane, with xDS nodes on real ADS streams that ACK, NACK or stay silent.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "tests/integration/meridianctl_fixture.h"
#include "tests/integration/xds_test_node.h"

namespace meridian::testing {
namespace {

using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kCheckout8080[] =
    "kind: services\nname: checkout\nspec: {ports: [{name: http, port: 8080}]}\n";
constexpr char kCheckout9090[] =
    "kind: services\nname: checkout\nspec: {ports: [{name: http, port: 9090}]}\n";
constexpr char kWeb[] = "kind: services\nname: web\nspec: {ports: [{name: http, port: 80}]}\n";

class MeridianctlStatusTest : public MeridianctlFixture {
 protected:
  void ConfigureOptions(server::ControlPlaneOptions& options) override {
    options.replica_id = "replica-a";
  }

  std::unique_ptr<XdsTestNode> Connect(const std::string& id, const std::string& environment,
                                       const std::string& zone = "") {
    return XdsTestNode::Connect(channel_, id, environment, zone);
  }

  // GETs `path` until `done(body)` holds or 10 s pass.
  template <typename Predicate>
  void AwaitJson(const std::string& path, Predicate done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!done(Body(Get(path))) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  // A staging service (revision 1), the prod checkout (revision 2) and four nodes that have
  // applied them: good, picky and slow in prod, staging-1 in staging.
  void ConnectFleet() {
    const std::string staging = CtlOk({"apply", "-f", "-", "-e", "staging"}, kWeb);
    ASSERT_THAT(staging, HasSubstr("revision "));
    staging_revision_ = std::stoll(staging.substr(staging.rfind("revision ") + 9));
    first_ = ApplyYaml(kCheckout8080, "checkout on 8080");
    good_ = Connect("good", "prod", "zone-a");
    picky_ = Connect("picky", "prod");
    slow_ = Connect("slow", "prod");
    staging_ = Connect("staging-1", "staging");
    for (XdsTestNode* node : {good_.get(), picky_.get(), slow_.get(), staging_.get()}) {
      ASSERT_TRUE(node->AckNext());
    }
  }

  // A new prod revision that good applies, picky rejects and slow receives but leaves
  // unanswered (in *unanswered).
  int64_t WriteRejectedRevision(std::optional<XdsTestNode::Response>* unanswered) {
    const int64_t revision = ApplyYaml(kCheckout9090, "checkout on 9090");
    auto update = good_->Next();
    EXPECT_TRUE(update.has_value());
    if (update) good_->Ack(*update);
    auto rejected = picky_->Next();
    EXPECT_TRUE(rejected.has_value());
    if (rejected) picky_->Nack(*rejected, "port 9090 is taken on this host");
    *unanswered = slow_->Next();
    EXPECT_TRUE(unanswered->has_value());
    AwaitJson(absl::StrCat("/api/v1/revisions/", revision, "/status"),
              [](json body) { return body["applied_count"] == 1 && body["nacked_count"] == 1; });
    return revision;
  }

  int64_t staging_revision_ = 0;
  int64_t first_ = 0;
  std::unique_ptr<XdsTestNode> good_, picky_, slow_, staging_;
};

TEST_F(MeridianctlStatusTest, StatusSummarizesAConvergedRevision) {
  ASSERT_NO_FATAL_FAILURE(ConnectFleet());
  const std::string out = CtlOk({"status", "--wait"});
  EXPECT_EQ(out, absl::StrCat("Revision:      ", first_,
                              "\n"
                              "Environments:  prod\n"
                              "Converged:     yes\n"
                              "Nodes:         3 in scope, 3 applied, 0 nacked, 0 pending, "
                              "0 disconnected\n"));
  // The default revision is the newest of the environment (-e), not of the whole store.
  EXPECT_THAT(CtlOk({"status", "-e", "staging"}),
              AllOf(StartsWith(absl::StrCat("Revision:      ", staging_revision_, "\n")),
                    HasSubstr("Environments:  staging\n"), HasSubstr("1 in scope, 1 applied")));
  EXPECT_THAT(CtlOk({"status", "-A"}), StartsWith(absl::StrCat("Revision:      ", first_, "\n")));
}

TEST_F(MeridianctlStatusTest, StatusNamesNackedAndPendingNodesAndExitsThree) {
  ASSERT_NO_FATAL_FAILURE(ConnectFleet());
  std::optional<XdsTestNode::Response> unanswered;
  const int64_t second = WriteRejectedRevision(&unanswered);

  CtlResult status = Ctl({"status"});
  EXPECT_EQ(status.exit_code, 3) << status;
  const auto lines = Lines(status.out);
  ASSERT_EQ(lines.size(), 7u) << status;
  EXPECT_EQ(lines[0], absl::StrCat("Revision:      ", second));
  EXPECT_EQ(lines[1], "Environments:  prod");
  EXPECT_EQ(lines[2], "Converged:     no");
  EXPECT_EQ(lines[3], "Nodes:         3 in scope, 1 applied, 1 nacked, 1 pending, 0 disconnected");
  EXPECT_THAT(lines[4], MatchesRegex("NODE +ENVIRONMENT +STATE +APPLIED-REVISION +ERROR"));
  EXPECT_THAT(lines[5], MatchesRegex(absl::StrCat("picky +prod +nacked +", first_,
                                                  " +port 9090 is taken on this host")));
  EXPECT_THAT(lines[6], MatchesRegex(absl::StrCat("slow +prod +pending +", first_)));
  EXPECT_THAT(status.err, Not(HasSubstr("error")));

  // The revision before it converged, and says so with 0.
  EXPECT_THAT(CtlOk({"status", absl::StrCat(first_)}), HasSubstr("Converged:     yes"));

  CtlResult json_status = Ctl({"status", "-o", "json"});
  EXPECT_EQ(json_status.exit_code, 3) << json_status;
  const json parsed = json::parse(json_status.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(parsed.is_object()) << json_status;
  EXPECT_EQ(parsed["revision"], second);
  EXPECT_EQ(parsed["converged"], false);
  EXPECT_EQ(parsed["nacked"][0]["nack_error"], "port 9090 is taken on this host");

  CtlResult timed_out = Ctl({"status", "--wait", "--timeout", "300ms"});
  EXPECT_EQ(timed_out.exit_code, 3) << timed_out;
  EXPECT_THAT(timed_out.out, HasSubstr("Converged:     no"));
  EXPECT_THAT(timed_out.err,
              HasSubstr(absl::StrCat("revision ", second, " has not converged after 300ms")));

  // A waiting status returns 0 once the last node answers.
  Subprocess waiting(Argv({"status", "--wait", "--timeout", "20s"}), Environment(), "");
  absl::SleepFor(absl::Milliseconds(200));
  slow_->Ack(*unanswered);
  EXPECT_EQ(waiting.Wait(), 0) << waiting.out() << waiting.err();
  EXPECT_THAT(waiting.out(), AllOf(HasSubstr("Converged:     yes"),
                                   HasSubstr("3 in scope, 2 applied, 1 nacked, 0 pending")));
}

TEST_F(MeridianctlStatusTest, StatusRejectsBadInput) {
  ApplyYaml(kCheckout8080, "checkout");
  CtlResult unknown = Ctl({"status", "999"});
  EXPECT_EQ(unknown.exit_code, 1) << unknown;
  EXPECT_THAT(unknown.err, AllOf(StartsWith("error: "), HasSubstr("revision 999: not found")));
  CtlResult untouched = Ctl({"status", "-e", "staging"});
  EXPECT_EQ(untouched.exit_code, 1) << untouched;
  EXPECT_THAT(untouched.err,
              HasSubstr("no revision in the history has changed environment staging"));
  EXPECT_EQ(Ctl({"status", "--timeout", "5s"}).exit_code, 2);  // --timeout needs --wait
  EXPECT_EQ(Ctl({"status", "--wait", "--timeout", "abc"}).exit_code, 2);
  EXPECT_EQ(Ctl({"status", "0"}).exit_code, 2);
  CtlResult too_long = Ctl({"status", "--wait", "--timeout", "11m"});
  EXPECT_EQ(too_long.exit_code, 1) << too_long;
  EXPECT_THAT(too_long.err, HasSubstr("timeout"));
  EXPECT_THAT(CtlOk({"status", "--help"}),
              AllOf(HasSubstr("--wait"), HasSubstr("Exit status"), HasSubstr("3 not converged")));
}

// apply, delete and rollback --wait wait for their own revision (not whatever is newest when
// a separate `status` runs), print its status after the write, and exit 3 when it did not
// converge in time, the write itself being done.
TEST_F(MeridianctlStatusTest, WritesWithWaitReturnOnceTheirRevisionConverged) {
  ASSERT_NO_FATAL_FAILURE(ConnectFleet());
  Subprocess apply(Argv({"apply", "-f", "-", "--wait", "--timeout", "20s"}), Environment(),
                   kCheckout9090);
  auto good = good_->Next();
  ASSERT_TRUE(good.has_value());
  auto picky = picky_->Next();
  ASSERT_TRUE(picky.has_value());
  auto slow = slow_->Next();
  ASSERT_TRUE(slow.has_value());
  good_->Ack(*good);
  picky_->Nack(*picky, "port 9090 is taken on this host");
  absl::SleepFor(absl::Milliseconds(200));  // the last answer comes while apply waits
  slow_->Ack(*slow);
  ASSERT_EQ(apply.Wait(), 0) << apply.out() << apply.err();
  const int64_t second = std::stoll(good->system_version_info());
  EXPECT_THAT(apply.out(),
              AllOf(StartsWith("services/checkout configured"),
                    HasSubstr(absl::StrCat("revision ", second, "\nRevision:      ", second,
                                           "\n")),
                    HasSubstr("Converged:     yes"),
                    HasSubstr("3 in scope, 2 applied, 1 nacked, 0 pending")))
      << apply.out();

  // Nobody answers the delete within 300 ms: exit 3, yet the service is gone. picky, which
  // rejected the last revision, is pending too: this one may be its fix.
  CtlResult deleted = Ctl({"delete", "services", "checkout", "--wait", "--timeout", "300ms"});
  EXPECT_EQ(deleted.exit_code, 3) << deleted;
  EXPECT_THAT(deleted.out, AllOf(HasSubstr("services/checkout deleted (revision "),
                                 HasSubstr("Converged:     no"), HasSubstr("3 pending")))
      << deleted;
  EXPECT_THAT(deleted.err, ContainsRegex("revision [0-9]+ has not converged after 300ms"));
  EXPECT_EQ(Ctl({"get", "services", "checkout"}).exit_code, 1);

  // JSON carries the write and its convergence in one document.
  CtlResult rolled_back = Ctl({"rollback", "--to", absl::StrCat(first_), "-o", "json", "--wait",
                               "--timeout", "300ms"});
  EXPECT_EQ(rolled_back.exit_code, 3) << rolled_back;
  const json parsed = json::parse(rolled_back.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(parsed.is_object()) << rolled_back;
  EXPECT_GT(parsed.value("revision", 0), second);
  EXPECT_EQ(parsed["convergence"]["revision"], parsed["revision"]);
  EXPECT_EQ(parsed["convergence"]["converged"], false);
  EXPECT_THAT(CtlOk({"get", "services", "checkout", "-o", "yaml"}), HasSubstr("port: 8080"));

  EXPECT_EQ(Ctl({"apply", "-f", "-", "--timeout", "5s"}, kWeb).exit_code, 2);  // needs --wait
  EXPECT_THAT(CtlOk({"delete", "--help"}), AllOf(HasSubstr("--wait"), HasSubstr("3 written")));
}

TEST_F(MeridianctlStatusTest, NodesListsNodesByEnvironmentAndStatus) {
  ASSERT_NO_FATAL_FAILURE(ConnectFleet());
  std::optional<XdsTestNode::Response> unanswered;
  const int64_t second = WriteRejectedRevision(&unanswered);
  staging_.reset();
  AwaitJson("/api/v1/nodes?status=disconnected",
            [](json body) { return body["nodes"].size() == 1; });

  const auto rows = Lines(CtlOk({"nodes"}));
  ASSERT_EQ(rows.size(), 4u) << absl::StrJoin(rows, "\n");
  EXPECT_THAT(rows[0],
              MatchesRegex("NODE +ENVIRONMENT +ZONE +CONNECTED +APPLIED +LAST-SEEN +REPLICA"));
  EXPECT_THAT(rows[1], MatchesRegex(absl::StrCat("good +prod +zone-a +yes +", second,
                                                 " +[-0-9]+T[:0-9]+Z +replica-a")));
  EXPECT_THAT(rows[2], MatchesRegex(absl::StrCat("picky +prod +yes +", first_, " \\(nacked ",
                                                 second, "\\) +.* +replica-a")));
  EXPECT_THAT(rows[3], StartsWith("slow "));

  const auto all = Lines(CtlOk({"nodes", "-A"}));
  ASSERT_EQ(all.size(), 5u);
  // It connected around first_; its applied revision is the xDS index's revision when it
  // settled, which may still have been the one before (the index trails commits slightly and
  // first_ did not touch staging).
  EXPECT_THAT(all[4], MatchesRegex(absl::StrCat("staging-1 +staging +no +(", first_ - 1, "|",
                                                first_, ") +.*")));
  const auto disconnected = Lines(CtlOk({"nodes", "-A", "--status", "disconnected"}));
  ASSERT_EQ(disconnected.size(), 2u);
  EXPECT_THAT(disconnected[1], StartsWith("staging-1 "));
  EXPECT_EQ(CtlOk({"nodes", "-e", "staging", "--status", "connected"}),
            "no connected nodes in environment staging (-A: all of them)\n");

  const json listed = CtlJson({"nodes", "--status", "connected"});
  std::vector<std::string> ids;
  for (const json& node : listed["nodes"]) ids.push_back(node.value("id", ""));
  EXPECT_THAT(ids, ElementsAre("good", "picky", "slow"));
  EXPECT_EQ(Ctl({"nodes", "--status", "bogus"}).exit_code, 2);
  EXPECT_THAT(CtlOk({"nodes", "-o", "yaml"}), ContainsRegex("id: good"));
}

}  // namespace
}  // namespace meridian::testing
