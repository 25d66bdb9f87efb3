#pragma once

#include <functional>
#include <string>

#include <pqxx/transaction_base>

#include "controlplane/convergence/node_status_store.h"
#include "controlplane/store/pg_connection_pool.h"

namespace meridian::convergence {

// NodeStatusStore on the `nodes` table (migrations/0002_nodes.sql).
class PostgresNodeStatusStore : public NodeStatusStore {
 public:
  PostgresNodeStatusStore(std::string database_url, int pool_size);

  absl::Status Upsert(const std::vector<NodeRecord>& records) override;
  absl::Status UpdateProgress(const std::vector<NodeRecord>& records) override;
  absl::StatusOr<std::vector<v1::NodeStatus>> List(const std::vector<std::string>& environments,
                                                   absl::Duration staleness) override;
  absl::StatusOr<v1::NodeStatus> Get(const std::string& node_id, absl::Duration staleness) override;
  absl::StatusOr<std::vector<std::string>> RevisionScope(int64_t revision) override;

 private:
  using WhereClause = std::function<std::string(pqxx::transaction_base&)>;
  absl::StatusOr<std::vector<v1::NodeStatus>> Query(const WhereClause& where,
                                                    absl::Duration staleness);

  store::PgConnectionPool pool_;
};

}  // namespace meridian::convergence
