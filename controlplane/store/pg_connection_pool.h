#pragma once

#include <pqxx/connection>

#include "absl/strings/string_view.h"
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace meridian::store {

// Maps the exception being handled (call inside a catch block) to a Status:
// broken connections and server shutdowns → Unavailable, unique violations → AlreadyExists,
// serialization failures and deadlocks → Aborted, anything else → Internal.
absl::Status StatusFromCurrentException(absl::string_view context);
// Whether the exception being handled (call inside a catch block) is a PostgreSQL error with
// this SQLSTATE.
bool CurrentExceptionHasSqlState(absl::string_view state);

// A fixed set of lazily opened libpqxx connections shared by reader threads. A connection
// that breaks is dropped and reopened on next use, so a Postgres restart heals without a
// meridian-cp restart. Thread-safe; each connection is used by one thread at a time.
class PgConnectionPool {
 public:
  // `session_sql` (if any) runs once on every connection the pool opens, e.g. a SET.
  PgConnectionPool(std::string database_url, int size, std::string session_sql = "");
  ~PgConnectionPool();

  // Runs `work` with a connection. Exceptions thrown by `work` become Status values.
  absl::Status Run(absl::string_view context, const std::function<absl::Status(pqxx::connection&)>& work);

  const std::string& database_url() const { return database_url_; }

 private:
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Acquire();
  void Release(std::unique_ptr<pqxx::connection> connection);

  const std::string database_url_;
  const std::string session_sql_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int available_ ABSL_GUARDED_BY(mu_);
};

// Opens a connection, mapping failures to Unavailable.
absl::StatusOr<std::unique_ptr<pqxx::connection>> OpenConnection(const std::string& database_url);

}  // namespace meridian::store
