// PostgresConfigStore's write and admin side; reads live in postgres_reads.cc.
#include "controlplane/store/postgres_config_store.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/validation.h"
#include "controlplane/store/migration_runner.h"
#include "controlplane/store/pg_reads.h"
#include "spdlog/spdlog.h"

namespace meridian::store {
namespace {

constexpr int kRollbackAttempts = 5;

// Brings every put into canonical form and checks it before it reaches the database.
absl::Status PrepareMutation(Mutation& mutation) {
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName("environment", mutation.key.environment));
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName("name", mutation.key.name));
  if (mutation.key.kind == v1::KIND_UNSPECIFIED || !v1::Kind_IsValid(mutation.key.kind)) {
    return absl::InvalidArgumentError("kind: is required");
  }
  if (mutation.expected_version < 0) {
    return absl::InvalidArgumentError("expected_version: must be >= 0");
  }
  if (mutation.operation == Mutation::Operation::kDelete) return absl::OkStatus();
  v1::Resource& resource = mutation.resource;
  resource.set_kind(mutation.key.kind);
  resource.set_environment(mutation.key.environment);
  resource.set_name(mutation.key.name);
  if (resource.kind() == v1::CERTIFICATE && resource.has_certificate() &&
      resource.certificate().private_key().empty()) {
    // Keep-the-stored-key updates are completed by the planner; validate the chain only.
    return absl::OkStatus();
  }
  MERIDIAN_RETURN_IF_ERROR(model::NormalizeResource(resource));
  return model::ValidateResource(resource);
}

}  // namespace

PostgresConfigStore::PostgresConfigStore(Options options)
    : options_(std::move(options)),
      pool_(options_.database_url, options_.pool_size),
      committer_({options_.database_url}) {}

absl::StatusOr<std::unique_ptr<PostgresConfigStore>> PostgresConfigStore::Open(
    const Options& options) {
  MERIDIAN_ASSIGN_OR_RETURN(auto connection, OpenConnection(options.database_url));
  MERIDIAN_RETURN_IF_ERROR(RunMigrations(*connection, EmbeddedMigrations()));
  return std::unique_ptr<PostgresConfigStore>(new PostgresConfigStore(options));
}

absl::StatusOr<CommitResult> PostgresConfigStore::Commit(ChangeSet change_set) {
  if (change_set.mutations.empty()) {
    return absl::InvalidArgumentError("changes: a change set needs at least one change");
  }
  for (size_t i = 0; i < change_set.mutations.size(); ++i) {
    if (absl::Status status = PrepareMutation(change_set.mutations[i]); !status.ok()) {
      if (change_set.mutations.size() == 1) return status;
      return absl::Status(status.code(), absl::StrCat("changes[", i, "]: ", status.message()));
    }
  }
  if (change_set.actor.empty()) change_set.actor = "anonymous";
  return committer_.Commit(std::move(change_set));
}

absl::StatusOr<CommitResult> PostgresConfigStore::Rollback(const RollbackSpec& spec) {
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName("environment", spec.environment));
  if (!spec.name.empty() && spec.kind == v1::KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("kind: is required when name is given");
  }
  if (spec.to_revision <= 0) return absl::InvalidArgumentError("to_revision: must be > 0");
  absl::Status last_status;
  for (int attempt = 0; attempt < kRollbackAttempts; ++attempt) {
    ChangeSet change_set;
    change_set.actor = spec.actor;
    change_set.comment = spec.comment.empty()
                             ? absl::StrCat("rollback to revision ", spec.to_revision)
                             : spec.comment;
    change_set.rollback_to = spec.to_revision;
    int64_t current_revision = 0;
    MERIDIAN_RETURN_IF_ERROR(pool_.Run("rollback", [&](pqxx::connection& connection) -> absl::Status {
      ReadTxn txn(connection);
      MERIDIAN_ASSIGN_OR_RETURN(StoreRevisions revisions, ReadRevisions(txn));
      MERIDIAN_RETURN_IF_ERROR(CheckRevisionRetained(revisions, spec.to_revision, "to_revision"));
      current_revision = revisions.current;
      // Each key changed since to_revision goes back to its state then; the current version
      // is the precondition, so a concurrent write makes the rollback retry, not clobber it.
      for (auto& change : NetChanges(txn, {spec.environment, spec.kind, spec.name},
                                     spec.to_revision, revisions.current)) {
        Mutation mutation;
        mutation.key = change.key;
        if (change.after) mutation.expected_version = change.after->version();
        if (change.before) {
          mutation.operation = Mutation::Operation::kPut;
          mutation.resource = std::move(*change.before);
          mutation.create_only = !change.after.has_value();
        } else {
          mutation.operation = Mutation::Operation::kDelete;
        }
        change_set.mutations.push_back(std::move(mutation));
      }
      return absl::OkStatus();
    }));
    if (change_set.mutations.empty()) return CommitResult{current_revision, {}};
    auto result = Commit(std::move(change_set));
    if (result.ok() || !(absl::IsFailedPrecondition(result.status()) ||
                         absl::IsAlreadyExists(result.status()))) {
      return result;
    }
    last_status = result.status();
  }
  return absl::AbortedError(
      absl::StrCat("rollback kept conflicting with concurrent writes: ", last_status.message()));
}

absl::StatusOr<StoreRevisions> PostgresConfigStore::Revisions() {
  StoreRevisions revisions;
  MERIDIAN_RETURN_IF_ERROR(pool_.Run("revisions", [&](pqxx::connection& connection) -> absl::Status {
    pqxx::nontransaction txn(connection);
    MERIDIAN_ASSIGN_OR_RETURN(revisions, ReadRevisions(txn));
    return absl::OkStatus();
  }));
  return revisions;
}

absl::Status PostgresConfigStore::Compact(int64_t revision) {
  return pool_.Run("compact", [&](pqxx::connection& connection) -> absl::Status {
    pqxx::work txn(connection);
    // Lock the counter so no commit interleaves with the compaction bookkeeping.
    auto row = txn.exec("SELECT revision, compacted_revision FROM meridian_state FOR UPDATE")[0];
    const int64_t current = row[0].as<int64_t>();
    const int64_t compacted = row[1].as<int64_t>();
    if (revision > current) {
      return absl::OutOfRangeError(absl::StrCat("revision: ", revision,
                                                " is beyond the current revision ", current));
    }
    if (revision <= compacted) return absl::OkStatus();
    txn.exec(absl::StrCat("DELETE FROM revisions WHERE revision <= ", revision));
    txn.exec(absl::StrCat("UPDATE meridian_state SET compacted_revision = ", revision));
    txn.commit();
    spdlog::info("compacted history up to revision {}", revision);
    return absl::OkStatus();
  });
}

absl::Status PostgresConfigStore::CheckReady() {
  return pool_.Run("readiness", [&](pqxx::connection& connection) {
    return CheckMigrated(connection, EmbeddedMigrations());
  });
}

}  // namespace meridian::store
