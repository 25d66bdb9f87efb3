#include "controlplane/store/pg_connection_pool.h"

#include <exception>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"

namespace meridian::store {
namespace {

bool IsConnectionSqlState(const std::string& state) {
  // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now.
  return state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03";
}

}  // namespace

absl::Status StatusFromCurrentException(absl::string_view context) {
  try {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    return absl::UnavailableError(
        absl::StrCat(context, ": database connection lost during commit; outcome unknown: ",
                     e.what()));
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(absl::StrCat(context, ": database unavailable: ", e.what()));
  } catch (const pqxx::unique_violation& e) {
    return absl::AlreadyExistsError(absl::StrCat(context, ": ", e.what()));
  } catch (const pqxx::transaction_rollback& e) {
    return absl::AbortedError(absl::StrCat(context, ": transaction aborted, retry: ", e.what()));
  } catch (const pqxx::sql_error& e) {
    if (IsConnectionSqlState(e.sqlstate())) {
      return absl::UnavailableError(absl::StrCat(context, ": database unavailable: ", e.what()));
    }
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(context, ": unknown error"));
  }
}

bool CurrentExceptionHasSqlState(absl::string_view state) {
  try {
    throw;
  } catch (const pqxx::sql_error& e) {
    return e.sqlstate() == state;
  } catch (...) {
    return false;
  }
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> OpenConnection(const std::string& database_url) {
  try {
    return std::make_unique<pqxx::connection>(database_url);
  } catch (...) {
    return StatusFromCurrentException("connect");
  }
}

PgConnectionPool::PgConnectionPool(std::string database_url, int size, std::string session_sql)
    : database_url_(std::move(database_url)),
      session_sql_(std::move(session_sql)),
      available_(size) {}

PgConnectionPool::~PgConnectionPool() = default;

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgConnectionPool::Acquire() {
  std::unique_ptr<pqxx::connection> connection;
  {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(
                                  +[](int* available) { return *available > 0; }, &available_),
                              absl::Seconds(10))) {
      return absl::UnavailableError("database connection pool exhausted");
    }
    --available_;
    if (!idle_.empty()) {
      connection = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (connection != nullptr && connection->is_open()) return connection;
  auto opened = OpenConnection(database_url_);
  if (opened.ok() && !session_sql_.empty()) {
    try {
      pqxx::nontransaction(**opened).exec(session_sql_);
    } catch (...) {
      opened = StatusFromCurrentException("session set-up");
    }
  }
  if (!opened.ok()) {
    absl::MutexLock lock(&mu_);
    ++available_;
  }
  return opened;
}

void PgConnectionPool::Release(std::unique_ptr<pqxx::connection> connection) {
  absl::MutexLock lock(&mu_);
  ++available_;
  if (connection != nullptr) idle_.push_back(std::move(connection));
}

absl::Status PgConnectionPool::Run(absl::string_view context,
                                   const std::function<absl::Status(pqxx::connection&)>& work) {
  auto connection = Acquire();
  if (!connection.ok()) return connection.status();
  absl::Status status;
  bool broken = false;
  try {
    status = work(**connection);
  } catch (...) {
    status = StatusFromCurrentException(context);
    broken = absl::IsUnavailable(status) || !(*connection)->is_open();
  }
  Release(broken ? nullptr : std::move(*connection));
  return status;
}

}  // namespace meridian::store
