// meridian-cp as operators run it: the binary (MERIDIAN_CP_PATH, set by CMake), its flags and its
// signals, on a fresh PostgreSQL database. A real ADS stream and REST against it, then SIGTERM:
// the stream ends with UNAVAILABLE, so an agent reconnects to another replica, and the process
// exits 0.
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/integration/xds_test_node.h"
#include "tests/support/postgres_server.h"
#include "tests/support/subprocess.h"

namespace meridian::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

constexpr auto kExitWithin = std::chrono::seconds(20);

class MeridianCpBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = SharedPostgres().CreateDatabase("cp_binary");
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
  }

  std::unique_ptr<Subprocess> Start(const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {MERIDIAN_CP_PATH};
    argv.insert(argv.end(), flags.begin(), flags.end());
    // Without MERIDIAN_*, so only the flags configure the child.
    return std::make_unique<Subprocess>(argv, InheritedEnvironment({"MERIDIAN_"}), "");
  }

  // Polls GET /healthz (bounded), reading the child's log meanwhile so it never blocks on a
  // full pipe.
  bool AwaitHealthy(Subprocess& process, int http_port) {
    httplib::Client http("127.0.0.1", http_port);
    for (int attempt = 0; attempt < 300; ++attempt) {
      auto result = http.Get("/healthz");
      if (result && result->status == 200) return true;
      process.WaitForLines(1 << 20, std::chrono::milliseconds(50));
    }
    return false;
  }

  std::string url_;
};

TEST_F(MeridianCpBinaryTest, ServesUntilSigtermThenEndsStreamsWithUnavailableAndExitsZero) {
  const int grpc_port = FreePort();
  const int http_port = FreePort();
  auto cp = Start({"--database-url", url_, "--bind-address", "127.0.0.1", "--grpc-port",
                   absl::StrCat(grpc_port), "--http-port", absl::StrCat(http_port),
                   "--replica-id", "binary-test", "--xds-threads", "2"});
  ASSERT_TRUE(AwaitHealthy(*cp, http_port)) << cp->out() << cp->err();

  // A write over REST reaches a node on the gRPC port, which ACKs it.
  httplib::Client http("127.0.0.1", http_port);
  const json service = {{"spec", {{"ports", {{{"name", "http"}, {"port", 8080}}}}}}};
  auto put = http.Put("/api/v1/environments/prod/services/checkout", service.dump(),
                      "application/json");
  ASSERT_TRUE(put);
  ASSERT_TRUE(put->status == 200 || put->status == 201) << put->body;
  const int64_t revision = json::parse(put->body).value("revision", int64_t{0});
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                     grpc::InsecureChannelCredentials());
  auto node = XdsTestNode::Connect(channel, "node-1", "prod");
  auto response = node->Next();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->system_version_info(), absl::StrCat(revision));
  ASSERT_EQ(response->resources_size(), 1);
  EXPECT_EQ(response->resources(0).name(), "checkout");
  ASSERT_TRUE(node->Ack(*response));
  auto status = http.Post(absl::StrCat("/api/v1/revisions/", revision, "/wait?timeout=10s"),
                          "{}", "application/json");
  ASSERT_TRUE(status);
  const json converged = json::parse(status->body, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(converged.value("converged", false), true) << status->body;
  auto node_status = http.Get("/api/v1/nodes/node-1");
  ASSERT_TRUE(node_status);
  EXPECT_EQ(json::parse(node_status->body, nullptr, false).value("replica", ""), "binary-test");

  const absl::Time signalled = absl::Now();
  cp->Signal(SIGTERM);
  // Told to go elsewhere, not cut off: UNAVAILABLE is what xDS clients retry on.
  for (int i = 0; i < 10 && node->Next(absl::Seconds(2)).has_value(); ++i) {
  }
  EXPECT_EQ(node->AwaitClose().error_code(), grpc::StatusCode::UNAVAILABLE);
  // The channel stays open, idle: meridian-cp closes it rather than wait out the 5 s grace
  // that calls in flight get (gRPC's shutdown alone waits for clients to close connections).
  node.reset();
  const std::optional<int> exit_code = cp->WaitFor(kExitWithin);
  ASSERT_TRUE(exit_code.has_value()) << "still running " << kExitWithin.count() << " s after SIGTERM";
  EXPECT_EQ(*exit_code, 0) << cp->out() << cp->err();
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(4)) << "the exit waited for an idle client";
  channel.reset();
  EXPECT_THAT(cp->out(), HasSubstr("received signal 15, shutting down"));

  // Nothing was lost: a new process on the same database serves the same revision.
  auto again = Start({"--database-url", url_, "--bind-address", "127.0.0.1", "--grpc-port",
                      absl::StrCat(grpc_port), "--http-port", absl::StrCat(http_port)});
  ASSERT_TRUE(AwaitHealthy(*again, http_port)) << again->out() << again->err();
  channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                grpc::InsecureChannelCredentials());
  auto fresh = XdsTestNode::Connect(channel, "node-2", "prod");
  auto state = fresh->Next();
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->system_version_info(), absl::StrCat(revision));
  fresh.reset();
  channel.reset();
  again->Signal(SIGINT);
  EXPECT_EQ(again->WaitFor(kExitWithin), std::optional<int>(0)) << again->out() << again->err();
}

TEST_F(MeridianCpBinaryTest, BadFlagsOrAnUnreachableDatabaseExitNonZeroWithTheReason) {
  auto no_url = Start({"--grpc-port", "0"});
  const std::optional<int> usage = no_url->WaitFor(kExitWithin);
  ASSERT_TRUE(usage.has_value());
  EXPECT_NE(*usage, 0);
  EXPECT_THAT(no_url->out() + no_url->err(), HasSubstr("--database-url is required"));

  auto bad_flag = Start({"--database-url", url_, "--xds-debounce-ms", "-5"});
  const std::optional<int> rejected = bad_flag->WaitFor(kExitWithin);
  ASSERT_TRUE(rejected.has_value());
  EXPECT_NE(*rejected, 0);
  EXPECT_THAT(bad_flag->out() + bad_flag->err(), HasSubstr("--xds-debounce-ms"));

  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  auto unreachable = Start({"--database-url", "postgresql://127.0.0.1:1/meridian",
                            "--bind-address", "127.0.0.1", "--grpc-port", "0", "--http-port", "0"});
  const std::optional<int> failed = unreachable->WaitFor(kExitWithin);
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(*failed, 1);
  EXPECT_THAT(unreachable->out() + unreachable->err(),
              AllOf(HasSubstr("meridian-cp failed to start"), HasSubstr("database unavailable")));
}

}  // namespace
}  // namespace meridian::testing
