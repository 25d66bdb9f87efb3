// PostgresConfigStore's read side: current and point-in-time state, history, diff, change log.
#include <algorithm>
#include <pqxx/pqxx>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/label_selector.h"
#include "controlplane/store/pg_codec.h"
#include "controlplane/store/pg_reads.h"
#include "controlplane/store/postgres_config_store.h"

namespace meridian::store {
namespace {

constexpr int32_t kMaxPageSize = 1000;

// Columns shared by history and change-log queries, joined from changes c and revisions r.
constexpr char kLogColumns[] =
    "c.revision, (extract(epoch FROM r.created_at) * 1000000)::bigint, r.actor, r.comment, "
    "r.rollback_to, c.operation, c.kind, c.environment, c.name, c.before, c.after, "
    "c.seq AS c_seq";

struct LogRow {
  int64_t revision;
  int64_t micros;
  std::string actor, comment;
  int64_t rollback_to;
  v1::ChangeRecord change;
};

LogRow ParseLogRow(const pqxx::row& row) {
  LogRow log{row[0].as<int64_t>(), row[1].as<int64_t>(), row[2].as<std::string>(),
             row[3].as<std::string>(), row[4].as<int64_t>(), {}};
  log.change.set_revision(log.revision);
  log.change.set_operation(static_cast<v1::Operation>(row[5].as<int>()));
  auto kind = model::KindFromPlural(row[6].as<std::string>());
  log.change.mutable_key()->set_kind(kind.ok() ? *kind : v1::KIND_UNSPECIFIED);
  log.change.mutable_key()->set_environment(row[7].as<std::string>());
  log.change.mutable_key()->set_name(row[8].as<std::string>());
  if (!row[9].is_null()) *log.change.mutable_before() = ParseResourceBlob(row[9]);
  if (!row[10].is_null()) *log.change.mutable_after() = ParseResourceBlob(row[10]);
  return log;
}

void SetTime(int64_t micros, google::protobuf::Timestamp* time) {
  time->set_seconds(micros / 1000000);
  time->set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
}

v1::RevisionRecord& AppendToRevisions(std::vector<v1::RevisionRecord>& records, LogRow& row) {
  if (records.empty() || records.back().revision() != row.revision) {
    v1::RevisionRecord& record = records.emplace_back();
    record.set_revision(row.revision);
    SetTime(row.micros, record.mutable_time());
    record.set_actor(row.actor);
    record.set_comment(row.comment);
    record.set_rollback_to(row.rollback_to);
  }
  *records.back().add_changes() = std::move(row.change);
  return records.back();
}

// Page tokens are "kind/name" of the last item, web-safe base64 so they stay opaque.
std::string EncodePageToken(const v1::Resource& last) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(model::KindPlural(last.kind()), "/", last.name()));
}

absl::StatusOr<std::pair<std::string, std::string>> DecodePageToken(const std::string& token) {
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(token, &decoded)) {
    return absl::InvalidArgumentError("page_token: malformed");
  }
  std::pair<std::string, std::string> parts = absl::StrSplit(decoded, absl::MaxSplits('/', 1));
  if (parts.second.empty()) return absl::InvalidArgumentError("page_token: malformed");
  return parts;
}

std::string LabelSqlFilter(pqxx::transaction_base& txn, const model::LabelSelector& selector) {
  std::string sql;
  for (const auto& requirement : selector.requirements()) {
    // Keys and values are restricted to [A-Za-z0-9-_./] by the selector parser.
    const std::string pair =
        txn.quote(absl::StrCat("{\"", requirement.key, "\":\"", requirement.value, "\"}"));
    switch (requirement.op) {
      case model::LabelSelector::Op::kEquals:
        absl::StrAppend(&sql, " AND labels @> ", pair, "::jsonb");
        break;
      case model::LabelSelector::Op::kNotEquals:
        absl::StrAppend(&sql, " AND NOT labels @> ", pair, "::jsonb");
        break;
      case model::LabelSelector::Op::kExists:
        absl::StrAppend(&sql, " AND labels ? ", txn.quote(requirement.key));
        break;
      case model::LabelSelector::Op::kNotExists:
        absl::StrAppend(&sql, " AND NOT labels ? ", txn.quote(requirement.key));
        break;
    }
  }
  return sql;
}

}  // namespace

absl::StatusOr<v1::Resource> PostgresConfigStore::Get(const ResourceKey& key, int64_t at_revision) {
  std::optional<v1::Resource> found;
  MERIDIAN_RETURN_IF_ERROR(pool_.Run("get", [&](pqxx::connection& connection) -> absl::Status {
    ReadTxn txn(connection);
    if (at_revision != 0) {
      MERIDIAN_ASSIGN_OR_RETURN(StoreRevisions revisions, ReadRevisions(txn));
      MERIDIAN_RETURN_IF_ERROR(CheckRevisionRetained(revisions, at_revision, "at_revision"));
      auto state = StateAt(txn, {key.environment, key.kind, key.name}, at_revision);
      if (!state.empty()) found = std::move(state.front());
      return absl::OkStatus();
    }
    auto rows = txn.exec(absl::StrCat("SELECT body FROM resources WHERE (environment, kind, name) = ",
                                      QuoteKeyRow(txn, key)));
    if (!rows.empty()) found = ParseResourceBlob(rows[0][0]);
    return absl::OkStatus();
  }));
  if (!found) {
    return absl::NotFoundError(absl::StrCat(
        key.ToString(), ": not found", at_revision ? absl::StrCat(" at revision ", at_revision) : ""));
  }
  return *std::move(found);
}

absl::StatusOr<ListResult> PostgresConfigStore::List(const ListQuery& query) {
  if (query.environment.empty()) return absl::InvalidArgumentError("environment: is required");
  MERIDIAN_ASSIGN_OR_RETURN(auto selector, model::LabelSelector::Parse(query.label_selector));
  const int32_t page_size =
      query.page_size <= 0 ? 100 : std::min(query.page_size, kMaxPageSize);
  std::pair<std::string, std::string> after;
  if (!query.page_token.empty()) {
    MERIDIAN_ASSIGN_OR_RETURN(after, DecodePageToken(query.page_token));
  }
  ListResult result;
  MERIDIAN_RETURN_IF_ERROR(pool_.Run("list", [&](pqxx::connection& connection) -> absl::Status {
    ReadTxn txn(connection);
    MERIDIAN_ASSIGN_OR_RETURN(StoreRevisions revisions, ReadRevisions(txn));
    MERIDIAN_RETURN_IF_ERROR(CheckRevisionRetained(revisions, query.at_revision, "at_revision"));
    result.revision = query.at_revision ? query.at_revision : revisions.current;
    const Selection selection{query.environment, query.kind, ""};
    std::vector<v1::Resource> page;
    if (query.at_revision == 0) {
      std::string sql = absl::StrCat("SELECT body FROM resources WHERE true",
                                     selection.SqlFilter(txn), LabelSqlFilter(txn, selector));
      if (!after.first.empty()) {
        absl::StrAppend(&sql, " AND (kind, name) > (", txn.quote(after.first), ",",
                        txn.quote(after.second), ")");
      }
      absl::StrAppend(&sql, " ORDER BY kind, name LIMIT ", page_size + 1);
      for (const auto& row : txn.exec(sql)) page.push_back(ParseResourceBlob(row[0]));
    } else {
      for (auto& resource : StateAt(txn, selection, query.at_revision)) {
        if (!selector.Matches(resource.labels())) continue;
        std::pair<std::string, std::string> position{std::string(model::KindPlural(resource.kind())),
                                                     resource.name()};
        if (!after.first.empty() && position <= after) continue;
        page.push_back(std::move(resource));
      }
      std::sort(page.begin(), page.end(), [](const v1::Resource& a, const v1::Resource& b) {
        return std::pair(model::KindPlural(a.kind()), a.name()) <
               std::pair(model::KindPlural(b.kind()), b.name());
      });
      if (page.size() > static_cast<size_t>(page_size) + 1) page.resize(page_size + 1);
    }
    if (page.size() > static_cast<size_t>(page_size)) {
      page.resize(page_size);
      result.next_page_token = EncodePageToken(page.back());
    }
    result.resources = std::move(page);
    return absl::OkStatus();
  }));
  return result;
}

absl::StatusOr<std::vector<v1::HistoryEntry>> PostgresConfigStore::History(
    const HistoryQuery& query) {
  const int32_t limit = query.limit <= 0 ? 100 : std::min(query.limit, kMaxPageSize);
  std::vector<v1::HistoryEntry> entries;
  MERIDIAN_RETURN_IF_ERROR(pool_.Run("history", [&](pqxx::connection& connection) -> absl::Status {
    ReadTxn txn(connection);
    const Selection selection{query.environment, query.kind, query.name};
    const std::string order = query.newest ? "DESC" : "";
    const auto rows = txn.exec(absl::StrCat(
        "SELECT * FROM (SELECT ", kLogColumns,
        " FROM changes c JOIN revisions r USING (revision) WHERE c.revision > ",
        query.since_revision, selection.SqlFilter(txn, "c"), " ORDER BY c.revision ", order,
        ", c.seq ", order, " LIMIT ", limit, ") page ORDER BY 1, c_seq"));
    for (const auto& row : rows) {
      LogRow log = ParseLogRow(row);
      v1::HistoryEntry& entry = entries.emplace_back();
      entry.set_revision(log.revision);
      SetTime(log.micros, entry.mutable_time());
      entry.set_actor(log.actor);
      entry.set_comment(log.comment);
      entry.set_rollback_to(log.rollback_to);
      *entry.mutable_change() = std::move(log.change);
    }
    return absl::OkStatus();
  }));
  return entries;
}

absl::StatusOr<v1::RevisionRecord> PostgresConfigStore::GetRevision(int64_t revision) {
  if (revision <= 0) return absl::InvalidArgumentError("revision: must be > 0");
  auto records = ReadChangeLog(revision - 1, 1);
  if (absl::IsOutOfRange(records.status())) {
    return absl::OutOfRangeError(
        absl::StrCat("revision ", revision, " has been compacted; its change set is gone"));
  }
  if (!records.ok()) return records.status();
  if (records->empty() || records->front().revision() != revision) {
    return absl::NotFoundError(absl::StrCat("revision ", revision, ": not found"));
  }
  return std::move(records->front());
}

absl::StatusOr<std::vector<v1::ChangeRecord>> PostgresConfigStore::Diff(
    int64_t from_revision, int64_t to_revision, const std::string& environment) {
  std::vector<v1::ChangeRecord> records;
  MERIDIAN_RETURN_IF_ERROR(pool_.Run("diff", [&](pqxx::connection& connection) -> absl::Status {
    ReadTxn txn(connection);
    MERIDIAN_ASSIGN_OR_RETURN(StoreRevisions revisions, ReadRevisions(txn));
    if (from_revision < 0) return absl::InvalidArgumentError("from_revision: must be >= 0");
    MERIDIAN_RETURN_IF_ERROR(CheckRevisionRetained(revisions, from_revision, "from_revision"));
    if (from_revision == 0 && revisions.compacted > 0) {
      return absl::OutOfRangeError(absl::StrCat(
          "from_revision: revision 0 has been compacted (oldest retained revision is ",
          revisions.compacted, ")"));
    }
    MERIDIAN_RETURN_IF_ERROR(CheckRevisionRetained(revisions, to_revision, "to_revision"));
    const int64_t to = to_revision == 0 ? revisions.current : to_revision;
    if (to < from_revision) {
      return absl::InvalidArgumentError("to_revision: must not be below from_revision");
    }
    for (auto& change : NetChanges(txn, {environment, v1::KIND_UNSPECIFIED, ""}, from_revision, to)) {
      v1::ChangeRecord& record = records.emplace_back();
      record.set_revision(to);
      record.set_operation(change.after ? v1::PUT : v1::DELETE);
      record.mutable_key()->set_kind(change.key.kind);
      record.mutable_key()->set_environment(change.key.environment);
      record.mutable_key()->set_name(change.key.name);
      if (change.before) *record.mutable_before() = std::move(*change.before);
      if (change.after) *record.mutable_after() = std::move(*change.after);
    }
    return absl::OkStatus();
  }));
  return records;
}

absl::StatusOr<StateSnapshot> PostgresConfigStore::Snapshot() {
  StateSnapshot snapshot;
  MERIDIAN_RETURN_IF_ERROR(pool_.Run("snapshot", [&](pqxx::connection& connection) -> absl::Status {
    ReadTxn txn(connection);
    MERIDIAN_ASSIGN_OR_RETURN(StoreRevisions revisions, ReadRevisions(txn));
    snapshot.revision = revisions.current;
    for (const auto& row : txn.exec("SELECT body FROM resources ORDER BY environment, kind, name")) {
      snapshot.resources.push_back(ParseResourceBlob(row[0]));
    }
    return absl::OkStatus();
  }));
  return snapshot;
}

absl::StatusOr<std::vector<v1::RevisionRecord>> PostgresConfigStore::ReadChangeLog(
    int64_t after_revision, int32_t max_revisions) {
  std::vector<v1::RevisionRecord> records;
  MERIDIAN_RETURN_IF_ERROR(pool_.Run("change log", [&](pqxx::connection& connection) -> absl::Status {
    ReadTxn txn(connection);
    MERIDIAN_ASSIGN_OR_RETURN(StoreRevisions revisions, ReadRevisions(txn));
    if (after_revision < revisions.compacted) {
      return absl::OutOfRangeError(absl::StrCat(
          "since_revision: revision ", after_revision,
          " has been compacted (watch from revision ", revisions.compacted, " or later)"));
    }
    const auto rows = txn.exec(absl::StrCat(
        "SELECT ", kLogColumns, " FROM changes c JOIN revisions r USING (revision) "
        "WHERE c.revision IN (SELECT revision FROM revisions WHERE revision > ", after_revision,
        " ORDER BY revision LIMIT ", std::max(max_revisions, 1), ") ORDER BY c.revision, c.seq"));
    for (const auto& row : rows) {
      LogRow log = ParseLogRow(row);
      AppendToRevisions(records, log);
    }
    return absl::OkStatus();
  }));
  return records;
}

}  // namespace meridian::store
