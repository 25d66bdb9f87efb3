#include "controlplane/store/postgres_group_commit.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "controlplane/store/change_planner.h"
#include "controlplane/store/pg_codec.h"
#include "controlplane/store/pg_connection_pool.h"
#include "spdlog/spdlog.h"

namespace meridian::store {
namespace {

// "unnest(ARRAY[envs], ARRAY[kinds], ARRAY[names]) AS k(environment, kind, name)": a key
// list Postgres joins against in linear time (a long IN list of row values is planned in
// quadratic time and overflows the planner's stack at about 8,000 keys).
std::string KeyTable(pqxx::transaction_base& txn, const std::vector<ResourceKey>& keys) {
  std::string environments, kinds, names;
  for (const ResourceKey& key : keys) {
    const char* separator = environments.empty() ? "" : ",";
    absl::StrAppend(&environments, separator, txn.quote(key.environment));
    absl::StrAppend(&kinds, separator, txn.quote(std::string(model::KindPlural(key.kind))));
    absl::StrAppend(&names, separator, txn.quote(key.name));
  }
  return absl::StrCat("unnest(ARRAY[", environments, "]::text[], ARRAY[", kinds,
                      "]::text[], ARRAY[", names, "]::text[]) AS k(environment, kind, name)");
}

constexpr char kJoinOnKey[] =
    "r.environment = k.environment AND r.kind = k.kind AND r.name = k.name";

struct LockedState {
  int64_t base_revision = 0;
  int64_t commit_micros = 0;
  absl::flat_hash_map<ResourceKey, v1::Resource> current;
};

// Opens the transaction, takes the writers' lock (the meridian_state row) and loads the
// current rows of `keys` and of the routes that point at `deleted_services`, in one round
// trip. The load is a statement of its own after the lock: in READ COMMITTED each statement
// takes a fresh snapshot, so it sees whatever the previous lock holder committed. No row
// locks: every writer holds the meridian_state row lock, so nothing changes under us.
LockedState LockAndLoad(pqxx::transaction_base& txn, const std::vector<ResourceKey>& keys,
                        const std::vector<ResourceKey>& deleted_services) {
  std::string load;
  if (!keys.empty()) {
    load = absl::StrCat("SELECT r.body FROM resources r JOIN ", KeyTable(txn, keys), " ON ",
                        kJoinOnKey);
  }
  for (const ResourceKey& service : deleted_services) {
    absl::StrAppend(&load, load.empty() ? "" : " UNION ALL ",
                    "SELECT body FROM resources WHERE environment = ",
                    txn.quote(service.environment), " AND kind = 'routes' AND refs @> ARRAY[",
                    txn.quote(service.name), "]::text[]");
  }
  // One row per loaded resource, each carrying the revision and the commit time (one row
  // with a NULL body when nothing is loaded).
  const std::string sql = absl::StrCat(
      "BEGIN; SELECT 1 FROM meridian_state FOR UPDATE; "
      "SELECT s.revision, s.micros, l.body FROM (SELECT revision, "
      "(extract(epoch FROM now()) * 1000000)::bigint AS micros FROM meridian_state) s ",
      load.empty() ? "LEFT JOIN (SELECT NULL::bytea AS body) l ON true"
                   : absl::StrCat("LEFT JOIN (", load, ") l ON true"));
  LockedState state;
  for (const auto& row : txn.exec(sql)) {
    state.base_revision = row[0].as<int64_t>();
    state.commit_micros = row[1].as<int64_t>();
    if (row[2].is_null()) continue;
    v1::Resource resource = ParseResourceBlob(row[2]);
    state.current.emplace(model::KeyOf(resource), std::move(resource));
  }
  return state;
}

std::string LabelsJson(pqxx::transaction_base& txn, const v1::Resource& resource) {
  // Labels are restricted to [A-Za-z0-9-_./], so only values need escaping.
  std::string json = "{";
  bool first = true;
  for (const auto& [key, value] : resource.labels()) {
    if (!first) json += ",";
    first = false;
    json += "\"" + key + "\":\"";
    for (char c : value) {
      if (c == '"' || c == '\\') json += '\\';
      if (static_cast<unsigned char>(c) < 0x20) {
        json += absl::StrCat("\\u00", absl::Hex(c, absl::kZeroPad2));
        continue;
      }
      json += c;
    }
    json += "\"";
  }
  json += "}";
  return txn.quote(json);
}

std::string RefsArray(pqxx::transaction_base& txn, const v1::Resource& resource) {
  std::string array = "ARRAY[";
  if (resource.has_route()) {
    const auto services = ChangePlanner::ReferencedServices(resource);
    for (size_t i = 0; i < services.size(); ++i) {
      absl::StrAppend(&array, i ? "," : "", txn.quote(services[i]));
    }
  }
  return array + "]::text[]";
}

// Builds the statements that write a plan: one multi-row statement per table, sent in a
// single round trip.
std::string WritePlanSql(pqxx::transaction_base& txn, const ChangePlanner& plan) {
  std::string upserts, revisions, changes;
  std::vector<ResourceKey> deletes;
  for (const auto& [key, state] : plan.written()) {
    if (state) {
      absl::StrAppend(&upserts, upserts.empty() ? "" : ",", "(",
                      txn.quote(key.environment), ",", txn.quote(std::string(model::KindPlural(key.kind))),
                      ",", txn.quote(key.name), ",", state->version(), ",",
                      state->create_revision(), ",", state->mod_revision(), ",",
                      LabelsJson(txn, *state), "::jsonb,", RefsArray(txn, *state), ",",
                      QuoteResourceBlob(txn, *state), ")");
    } else {
      deletes.push_back(key);
    }
  }
  for (const auto& revision : plan.revisions()) {
    absl::StrAppend(&revisions, revisions.empty() ? "" : ",", "(", revision.revision, ",",
                    txn.quote(revision.actor), ",", txn.quote(revision.comment), ",",
                    revision.rollback_to, ")");
  }
  for (const auto& change : plan.changes()) {
    absl::StrAppend(&changes, changes.empty() ? "" : ",", "(", change.revision, ",", change.seq,
                    ",", txn.quote(std::string(model::KindPlural(change.key.kind))), ",",
                    txn.quote(change.key.environment), ",", txn.quote(change.key.name), ",",
                    static_cast<int>(change.operation), ",",
                    change.before ? QuoteResourceBlob(txn, *change.before) : "NULL", ",",
                    change.after ? QuoteResourceBlob(txn, *change.after) : "NULL", ")");
  }
  std::string sql;
  if (!upserts.empty()) {
    absl::StrAppend(&sql,
                    "INSERT INTO resources (environment, kind, name, version, create_revision, "
                    "mod_revision, labels, refs, body) VALUES ",
                    upserts,
                    " ON CONFLICT (environment, kind, name) DO UPDATE SET version = "
                    "EXCLUDED.version, mod_revision = EXCLUDED.mod_revision, labels = "
                    "EXCLUDED.labels, refs = EXCLUDED.refs, body = EXCLUDED.body;");
  }
  if (!deletes.empty()) {
    absl::StrAppend(&sql, "DELETE FROM resources r USING ", KeyTable(txn, deletes), " WHERE ",
                    kJoinOnKey, ";");
  }
  absl::StrAppend(&sql, "INSERT INTO revisions (revision, actor, comment, rollback_to) VALUES ",
                  revisions, ";");
  absl::StrAppend(&sql,
                  "INSERT INTO changes (revision, seq, kind, environment, name, operation, "
                  "before, after) VALUES ",
                  changes, ";");
  absl::StrAppend(&sql, "UPDATE meridian_state SET revision = ", plan.revision(), ";");
  // The payload names the revision: a follower that already holds it (this replica's own
  // commit, handed over by Deliver) skips the read; the others read the change log.
  absl::StrAppend(&sql, "SELECT pg_notify('meridian_changes', '", plan.revision(), "');");
  return sql;
}

// The error the one-round-trip commit raises when a key it took for absent exists after all:
// invalid_text_representation, from casting a message that names the count to an integer.
// Not division by zero, which is the revision check's: a key that exists does not make what
// the writer knows stale.
constexpr char kAssumedAbsentKeyExists[] = "22P02";

// Fails the transaction unless none of `keys` exists. The cast is evaluated only when the
// count is not zero; a constant expression would be folded, and fail, at planning time.
std::string CheckAbsentSql(pqxx::transaction_base& txn, const std::vector<ResourceKey>& keys) {
  return absl::StrCat(
      "SELECT CASE WHEN count(*) = 0 THEN 0 ELSE ('keys assumed absent exist: ' || count(*))::int "
      "END FROM resources r JOIN ",
      KeyTable(txn, keys), " ON ", kJoinOnKey, ";");
}

absl::Status OutcomeUnknown(const absl::Status& lost) {
  return absl::UnavailableError(absl::StrCat(
      "database connection lost during commit; the outcome is unknown, check history: ",
      lost.message()));
}

}  // namespace

GroupCommitter::GroupCommitter(Options options)
    : options_(std::move(options)), writer_([this] { WriterLoop(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  writer_.join();
}

absl::StatusOr<CommitResult> GroupCommitter::Commit(ChangeSet change_set) {
  auto pending = std::make_unique<Pending>();
  pending->change_set = std::move(change_set);
  auto future = pending->result.get_future();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("store is shutting down");
    queue_.push_back(std::move(pending));
  }
  return future.get();
}

void GroupCommitter::WriterLoop() {
  while (true) {
    Group group;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](GroupCommitter* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      size_t mutations = 0;
      while (!queue_.empty() &&
             (group.empty() ||
              mutations + queue_.front()->change_set.mutations.size() <=
                  options_.max_group_mutations)) {
        mutations += queue_.front()->change_set.mutations.size();
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    CommitGroup(group);
  }
}

void GroupCommitter::CommitGroup(Group& group) {
  absl::Status status = RunGroupTransaction(group);
  if (status.ok()) return;
  // Something in the group broke the whole transaction (not a per-change-set check, those
  // are planned out): commit the change sets one by one so one cannot fail the others.
  if (group.size() > 1 && !absl::IsUnavailable(status)) {
    for (auto& pending : group) {
      Group single;
      single.push_back(std::move(pending));
      CommitGroup(single);
    }
    return;
  }
  for (auto& pending : group) pending->result.set_value(status);
}

absl::Status GroupCommitter::RunGroupTransaction(Group& group) {
  std::vector<const ChangeSet*> change_sets;
  for (const auto& pending : group) change_sets.push_back(&pending->change_set);
  const std::vector<ResourceKey> keys = ChangePlanner::KeysToLoad(change_sets);
  const std::vector<ResourceKey> deleted_services = ChangePlanner::DeletedServices(change_sets);
  std::vector<absl::StatusOr<CommitResult>> results;
  std::vector<v1::RevisionRecord> committed;
  bool committing = false;
  try {
    if (connection_ == nullptr || !connection_->is_open()) {
      known_.Forget();  // a new session may find another database, or a restored one
      connection_.reset();
      auto opened = OpenConnection(options_.database_url);
      if (!opened.ok()) return opened.status();
      connection_ = std::move(*opened);
    }
    if (deleted_services.empty()) {
      if (std::optional<absl::Status> done = TryCommitOnKnownState(group, keys)) {
        return *done;
      }
    }
    // BEGIN/COMMIT travel inside the statements so a group costs two round trips: lock the
    // revision counter and read the keys, then write and commit.
    pqxx::nontransaction session(*connection_);
    LockedState state = LockAndLoad(session, keys, deleted_services);
    const int64_t base_revision = state.base_revision;
    ChangePlanner plan(base_revision, std::move(state.current));
    for (const auto& pending : group) results.push_back(plan.Apply(pending->change_set));
    if (plan.revision() == base_revision) {
      session.exec("ROLLBACK");
    } else {
      committing = true;
      session.exec(WritePlanSql(session, plan) + "COMMIT;");
      committed = plan.ToRevisionRecords(state.commit_micros);
    }
    if (RememberLoaded(base_revision, keys, plan.TakeLoaded())) Remember(plan);
  } catch (...) {
    known_.Forget();
    absl::Status status = StatusFromCurrentException("commit");
    if (committing && absl::IsUnavailable(status)) status = OutcomeUnknown(status);
    try {
      if (connection_ != nullptr && connection_->is_open()) {
        pqxx::nontransaction(*connection_).exec("ROLLBACK");
      }
    } catch (...) {
      connection_.reset();
    }
    if (absl::IsUnavailable(status)) connection_.reset();
    return status;
  }
  Deliver(group, std::move(results), std::move(committed));
  return absl::OkStatus();
}

std::optional<absl::Status> GroupCommitter::TryCommitOnKnownState(
    Group& group, const std::vector<ResourceKey>& keys) {
  if (known_.revision < 0) return std::nullopt;
  absl::flat_hash_map<ResourceKey, v1::Resource> current;
  // Keys the writer has not seen are planned as absent (a create, the common case for a key
  // never seen), and the transaction checks that they are.
  std::vector<ResourceKey> assumed_absent;
  for (const ResourceKey& key : keys) {
    auto known = known_.resources.find(key);
    if (known == known_.resources.end()) {
      assumed_absent.push_back(key);
    } else if (known->second) {
      current.emplace(key, *known->second);
    }
  }
  const int64_t base_revision = known_.revision;
  ChangePlanner plan(base_revision, std::move(current));
  std::vector<absl::StatusOr<CommitResult>> results;
  for (const auto& pending : group) {
    results.push_back(plan.Apply(pending->change_set));
    if (!results.back().ok()) return std::nullopt;
  }
  if (plan.revision() == base_revision) return std::nullopt;
  int64_t commit_micros = 0;
  try {
    pqxx::nontransaction session(*connection_);
    // No BEGIN: the statements of one query string run as one implicit transaction, which
    // commits after the last one, and exec returns that last statement's row (the commit
    // time, as revisions.created_at records it). The first statement takes the writers' lock
    // and fails (division by zero) unless the database is still at base_revision, the second
    // unless the keys planned as absent are; either rolls everything back.
    const std::string sql = absl::StrCat(
        "SELECT CASE WHEN revision = ", base_revision,
        " THEN 0 ELSE 1 / (revision - revision) END FROM meridian_state FOR UPDATE;",
        assumed_absent.empty() ? "" : CheckAbsentSql(session, assumed_absent),
        WritePlanSql(session, plan), "SELECT (extract(epoch FROM now()) * 1000000)::bigint;");
    commit_micros = session.exec(sql)[0][0].as<int64_t>();
  } catch (...) {
    // What the writer knows still holds; the two-round-trip path reads the keys it lacked.
    if (CurrentExceptionHasSqlState(kAssumedAbsentKeyExists)) return std::nullopt;
    known_.Forget();
    absl::Status status = StatusFromCurrentException("commit");
    if (!absl::IsUnavailable(status)) return std::nullopt;  // rolled back: plan it afresh
    connection_.reset();
    return OutcomeUnknown(status);
  }
  Remember(plan);
  Deliver(group, std::move(results), plan.ToRevisionRecords(commit_micros));
  return absl::OkStatus();
}

bool GroupCommitter::RememberLoaded(int64_t revision, const std::vector<ResourceKey>& keys,
                                    absl::flat_hash_map<ResourceKey, v1::Resource> loaded) {
  const size_t adding = keys.size() + loaded.size();
  // What was known at another revision may have changed since.
  if (known_.revision != revision || known_.resources.size() + adding > kMaxKnownResources) {
    known_.Forget();
  }
  if (adding > kMaxKnownResources) return false;
  // Every key asked for is absent unless it was loaded.
  for (const ResourceKey& key : keys) known_.resources[key] = std::nullopt;
  for (auto& [key, resource] : loaded) known_.resources[key] = std::move(resource);
  known_.revision = revision;
  return true;
}

void GroupCommitter::Remember(const ChangePlanner& plan) {
  for (const auto& [key, state] : plan.written()) known_.resources[key] = state;
  known_.revision = plan.revision();
  // Every key created in one round trip adds to what is known; start afresh past the cap.
  if (known_.resources.size() > kMaxKnownResources) known_.Forget();
}

void GroupCommitter::Deliver(Group& group, std::vector<absl::StatusOr<CommitResult>> results,
                             std::vector<v1::RevisionRecord> committed) {
  // Listener first: the fan-out starts before the writers' threads wake up to compete for
  // the CPU, and a writer that reads the feed after its write returns finds the write there.
  if (!committed.empty()) {
    absl::MutexLock lock(&listener_mu_);
    if (listener_) listener_(std::move(committed));
  }
  for (size_t i = 0; i < group.size(); ++i) group[i]->result.set_value(std::move(results[i]));
}

void GroupCommitter::SetCommitListener(CommitListener listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

}  // namespace meridian::store
