#include "tests/support/postgres_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pqxx/pqxx>
#include <string>

#include "gtest/gtest.h"

namespace meridian::testing {
namespace {

int SelectOne(const std::string& url) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  return tx.exec1("SELECT 1")[0].as<int>();
}

TEST(PostgresServerTest, CommittedDataSurvivesRestartOnSamePort) {
  PostgresServer server;
  absl::Status started = server.Start();
  ASSERT_TRUE(started.ok()) << started;
  const int port = server.port();
  absl::StatusOr<std::string> url = server.CreateDatabase("support_test");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(SelectOne(*url), 1);
  {
    pqxx::connection connection(*url);
    pqxx::work tx(connection);
    tx.exec0("CREATE TABLE marker (value int)");
    tx.exec0("INSERT INTO marker VALUES (42)");
    tx.commit();
  }

  absl::Status restarted = server.Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;

  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(SelectOne(*url), 1);
  pqxx::connection connection(*url);
  pqxx::nontransaction tx(connection);
  EXPECT_EQ(tx.exec1("SELECT value FROM marker")[0].as<int>(), 42);
}

TEST(PostgresServerTest, CreateDatabaseReturnsDistinctEmptyDatabases) {
  PostgresServer& server = SharedPostgres();
  absl::StatusOr<std::string> first = server.CreateDatabase("same");
  absl::StatusOr<std::string> second = server.CreateDatabase("same");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_NE(*first, *second);

  pqxx::connection connection(*first);
  pqxx::nontransaction tx(connection);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0].as<int>(), 0);
}

TEST(PostgresServerTest, RejectsDatabaseNameOutsideIdentifierAlphabet) {
  EXPECT_EQ(SharedPostgres().CreateDatabase("drop\"table").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PostgresServerTest, ExternalServerRefusesStopAndRestart) {
  PostgresServerOptions options;
  options.external_admin_url = SharedPostgres().AdminUrl();
  PostgresServer attached(options);
  absl::Status started = attached.Start();
  ASSERT_TRUE(started.ok()) << started;

  EXPECT_EQ(attached.Stop().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(attached.Restart().code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<std::string> url = attached.CreateDatabase("attached");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(SelectOne(*url), 1);
}

TEST(PostgresServerTest, CreateDatabaseBeforeStartIsFailedPrecondition) {
  PostgresServer server;
  EXPECT_EQ(server.CreateDatabase("early").status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(FreePortTest, ReturnsPortThatCanBeBound) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  close(fd);
}

}  // namespace
}  // namespace meridian::testing
