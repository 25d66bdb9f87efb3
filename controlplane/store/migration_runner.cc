#include "controlplane/store/migration_runner.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace meridian::store {
namespace {

// Any constant shared by every Meridian replica; "meridian" in ASCII.
constexpr int64_t kMigrationLockId = 0x6d6572696469616e;

}  // namespace

absl::Status RunMigrations(pqxx::connection& connection, const std::vector<Migration>& migrations) {
  {
    pqxx::nontransaction session(connection);
    session.exec(absl::StrCat("SELECT pg_advisory_lock(", kMigrationLockId, ")"));
  }
  absl::Status status;
  try {
    {
      // The record table is the one table code creates: migrations cannot record themselves.
      pqxx::work txn(connection);
      txn.exec(
          "CREATE TABLE IF NOT EXISTS schema_migrations ("
          " version integer PRIMARY KEY, name text NOT NULL,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
      txn.commit();
    }
    for (const Migration& migration : migrations) {
      pqxx::work txn(connection);
      auto applied = txn.exec(absl::StrCat(
          "SELECT 1 FROM schema_migrations WHERE version = ", migration.version));
      if (!applied.empty()) continue;
      txn.exec(migration.sql);
      txn.exec(absl::StrCat("INSERT INTO schema_migrations (version, name) VALUES (",
                            migration.version, ", ", txn.quote(migration.name), ")"));
      txn.commit();
      spdlog::info("applied migration {} ({})", migration.version, migration.name);
    }
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(absl::StrCat("migration: database unavailable: ", e.what()));
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("migration failed: ", e.what()));
  }
  pqxx::nontransaction unlock(connection);
  unlock.exec(absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLockId, ")"));
  return status;
}

absl::Status CheckMigrated(pqxx::connection& connection, const std::vector<Migration>& migrations) {
  pqxx::nontransaction session(connection);
  auto rows = session.exec(
      "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'");
  if (rows[0][0].as<int>() == 0) return absl::UnavailableError("database not migrated");
  auto latest = session.exec("SELECT coalesce(max(version), 0) FROM schema_migrations");
  const int expected = migrations.empty() ? 0 : migrations.back().version;
  if (latest[0][0].as<int>() < expected) {
    return absl::UnavailableError(absl::StrCat("database at schema version ",
                                               latest[0][0].as<int>(), ", expected ", expected));
  }
  return absl::OkStatus();
}

}  // namespace meridian::store
