#include "agent/driver/haproxy/haproxy_runtime.h"

#include "gtest/gtest.h"

namespace meridian::agent::haproxy {
namespace {

// Replies captured from HAProxy 2.6.12.
constexpr char kServersState[] =
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health "
    "srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "3 svc_a 1 s1 127.0.0.1 2 0 3 3 608 6 3 4 6 0 0 0 - 19001 - 0 0 - - 0\n"
    "3 svc_a 2 s2 0.0.0.0 0 5 1 1 610 1 0 0 14 0 0 0 - 0 - 0 0 - - 0\n"
    "3 svc_a 3 s3 127.0.0.1 2 4 3 1 0 1 0 2 6 0 0 0 - 19002 - 0 0 - - 0\n"
    "3 svc_a 4 s4 127.0.0.1 2 8 3 1 0 1 0 2 6 0 0 0 - 19002 - 0 0 - - 0\n\n";

constexpr char kProcessList[] =
    "#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    "9594            master          2 [failed: 1]   0d00h10m17s     2.6.12-1+deb12u4\n"
    "# workers\n"
    "17665           worker          0               0d00h00m01s     2.6.12-1+deb12u4\n"
    "# old workers\n"
    "9631            worker          1               0d00h10m17s     2.6.12-1+deb12u4\n"
    "# programs\n\n";

TEST(HaproxyRuntimeTest, ParsesServersState) {
  absl::StatusOr<std::vector<RuntimeServer>> servers = ParseServersState(kServersState);
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 4u);
  EXPECT_EQ((*servers)[0].backend, "svc_a");
  EXPECT_EQ((*servers)[0].server, "s1");
  EXPECT_EQ((*servers)[0].address, "127.0.0.1");
  EXPECT_EQ((*servers)[0].port, 19001u);
  EXPECT_EQ((*servers)[0].weight, 3);
  EXPECT_EQ((*servers)[0].state(), ServerState::kReady);
  EXPECT_EQ((*servers)[1].state(), ServerState::kMaint);
  // Configured `disabled` but set ready since: the config bit alone is not maintenance.
  EXPECT_EQ((*servers)[2].state(), ServerState::kReady);
  EXPECT_EQ((*servers)[3].state(), ServerState::kDrain);
}

TEST(HaproxyRuntimeTest, RejectsAnErrorReplyToShowServersState) {
  EXPECT_FALSE(ParseServersState("Can't find backend.\n\n").ok());
  EXPECT_FALSE(ParseServersState("").ok());
}

TEST(HaproxyRuntimeTest, ParsesProcessListWithoutOldWorkers) {
  absl::StatusOr<ProcessList> list = ParseProcessList(kProcessList);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->master_pid, 9594);
  EXPECT_EQ(list->reloads, 2);
  EXPECT_EQ(list->failed_reloads, 1);
  EXPECT_EQ(list->workers, std::vector<int>{17665});
  EXPECT_FALSE(ParseProcessList("Unknown command.\n").ok());
}

TEST(HaproxyRuntimeTest, UnreachableSocketIsUnavailable) {
  HaproxyRuntimeClient client("/nonexistent/haproxy.sock", absl::Milliseconds(100));
  EXPECT_EQ(client.Execute("show info").status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace meridian::agent::haproxy
