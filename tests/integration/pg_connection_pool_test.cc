#include "controlplane/store/pg_connection_pool.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/postgres_server.h"

namespace meridian::store {
namespace {

using ::meridian::testing::SharedPostgres;

struct Session {
  std::string synchronous_commit;
  int backend_pid = 0;
};

absl::StatusOr<Session> ReadSession(PgConnectionPool& pool) {
  Session session;
  absl::Status status = pool.Run("read session", [&](pqxx::connection& connection) {
    pqxx::nontransaction txn(connection);
    const auto row = txn.exec1("SELECT current_setting('synchronous_commit'), pg_backend_pid()");
    session.synchronous_commit = row[0].as<std::string>();
    session.backend_pid = row[1].as<int>();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return session;
}

TEST(PgConnectionPoolTest, SessionSqlRunsOnEveryConnectionThePoolOpens) {
  auto url = SharedPostgres().CreateDatabase("pool_session");
  ASSERT_TRUE(url.ok()) << url.status();
  PgConnectionPool pool(*url, 1, "SET synchronous_commit = off");
  auto first = ReadSession(pool);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->synchronous_commit, "off");

  // The server drops the connection; the pool notices on next use and opens another.
  pqxx::connection admin(*url);
  pqxx::nontransaction(admin).exec(
      absl::StrCat("SELECT pg_terminate_backend(", first->backend_pid, ")"));
  absl::StatusOr<Session> reopened = ReadSession(pool);
  for (int attempt = 0; attempt < 3 && !reopened.ok(); ++attempt) {
    EXPECT_TRUE(absl::IsUnavailable(reopened.status())) << reopened.status();
    reopened = ReadSession(pool);
  }
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_NE(reopened->backend_pid, first->backend_pid);
  EXPECT_EQ(reopened->synchronous_commit, "off");

  // Without session SQL, connections keep the server's default.
  PgConnectionPool plain(*url, 1);
  auto plain_session = ReadSession(plain);
  ASSERT_TRUE(plain_session.ok()) << plain_session.status();
  EXPECT_EQ(plain_session->synchronous_commit, "on");
}

TEST(PgConnectionPoolTest, FailingSessionSqlFailsTheCallAndGivesItsSlotBack) {
  auto url = SharedPostgres().CreateDatabase("pool_bad_session");
  ASSERT_TRUE(url.ok()) << url.status();
  PgConnectionPool pool(*url, 1, "SET no_such_setting_anywhere = 1");
  for (int call = 0; call < 2; ++call) {
    absl::Status status = ReadSession(pool).status();
    // A leaked slot would make the second call wait for the pool and fail as exhausted.
    EXPECT_TRUE(absl::IsInternal(status)) << status;
    EXPECT_NE(status.message().find("session set-up"), std::string::npos) << status;
  }
}

}  // namespace
}  // namespace meridian::store
