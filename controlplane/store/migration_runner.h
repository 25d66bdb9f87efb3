#pragma once

#include <pqxx/connection>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace meridian::store {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// Every migrations/NNNN_*.sql, compiled into the binary, in order.
const std::vector<Migration>& EmbeddedMigrations();

// Applies the migrations not yet recorded in schema_migrations, each in its own
// transaction, under a Postgres advisory lock so control planes starting together do not
// race. Safe to call on every start-up.
absl::Status RunMigrations(pqxx::connection& connection, const std::vector<Migration>& migrations);

// OK when every migration is recorded as applied.
absl::Status CheckMigrated(pqxx::connection& connection, const std::vector<Migration>& migrations);

}  // namespace meridian::store
