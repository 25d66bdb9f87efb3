#include "controlplane/store/pg_reads.h"

#include "absl/strings/str_cat.h"
#include "controlplane/store/pg_codec.h"
#include "google/protobuf/util/message_differencer.h"

namespace meridian::store {

std::string Selection::SqlFilter(pqxx::transaction_base& txn, absl::string_view alias) const {
  const std::string prefix = alias.empty() ? "" : absl::StrCat(alias, ".");
  std::string sql;
  if (!environment.empty()) {
    absl::StrAppend(&sql, " AND ", prefix, "environment = ", txn.quote(environment));
  }
  if (kind != v1::KIND_UNSPECIFIED) {
    absl::StrAppend(&sql, " AND ", prefix, "kind = ",
                    txn.quote(std::string(model::KindPlural(kind))));
  }
  if (!name.empty()) absl::StrAppend(&sql, " AND ", prefix, "name = ", txn.quote(name));
  return sql;
}

absl::StatusOr<StoreRevisions> ReadRevisions(pqxx::transaction_base& txn) {
  auto row = txn.exec("SELECT revision, compacted_revision FROM meridian_state")[0];
  return StoreRevisions{row[0].as<int64_t>(), row[1].as<int64_t>()};
}

absl::Status CheckRevisionRetained(const StoreRevisions& revisions, int64_t revision,
                                   absl::string_view field) {
  if (revision == 0) return absl::OkStatus();
  if (revision < 0 || revision > revisions.current) {
    return absl::OutOfRangeError(absl::StrCat(field, ": revision ", revision,
                                              " is in the future (current revision is ",
                                              revisions.current, ")"));
  }
  if (revision < revisions.compacted) {
    return absl::OutOfRangeError(absl::StrCat(
        field, ": revision ", revision, " has been compacted (oldest retained revision is ",
        revisions.compacted, ")"));
  }
  return absl::OkStatus();
}

std::vector<v1::Resource> StateAt(pqxx::transaction_base& txn, const Selection& selection,
                                  int64_t revision) {
  // Current rows untouched since `revision`, plus, for every key changed after it, the
  // state before its first later change. Works after compaction: it needs only the log
  // above `revision`, which is retained.
  const std::string filter = selection.SqlFilter(txn);
  const std::string sql = absl::StrCat(
      "SELECT body, environment, kind, name FROM resources WHERE mod_revision <= ", revision,
      filter,
      " UNION ALL SELECT before, environment, kind, name FROM ("
      "SELECT DISTINCT ON (environment, kind, name) before, environment, kind, name "
      "FROM changes WHERE revision > ", revision, filter,
      " ORDER BY environment, kind, name, revision, seq) first_later WHERE before IS NOT NULL"
      " ORDER BY 2, 3, 4");
  std::vector<v1::Resource> resources;
  for (const auto& row : txn.exec(sql)) resources.push_back(ParseResourceBlob(row[0]));
  return resources;
}

std::vector<NetChange> NetChanges(pqxx::transaction_base& txn, const Selection& selection,
                                  int64_t from_revision, int64_t to_revision) {
  const std::string sql = absl::StrCat(
      "SELECT (array_agg(before ORDER BY revision, seq))[1],"
      " (array_agg(after ORDER BY revision DESC, seq DESC))[1], environment, kind, name"
      " FROM changes WHERE revision > ", from_revision, " AND revision <= ", to_revision,
      selection.SqlFilter(txn),
      " GROUP BY environment, kind, name ORDER BY environment, kind, name");
  std::vector<NetChange> changes;
  for (const auto& row : txn.exec(sql)) {
    NetChange change;
    if (!row[0].is_null()) change.before = ParseResourceBlob(row[0]);
    if (!row[1].is_null()) change.after = ParseResourceBlob(row[1]);
    if (!change.before && !change.after) continue;  // created and deleted in between
    if (change.before && change.after && SameContent(*change.before, *change.after)) continue;
    auto kind = model::KindFromPlural(row[3].as<std::string>());
    change.key = {kind.ok() ? *kind : v1::KIND_UNSPECIFIED, row[2].as<std::string>(),
                  row[4].as<std::string>()};
    changes.push_back(std::move(change));
  }
  return changes;
}

bool SameContent(const v1::Resource& a, const v1::Resource& b) {
  v1::Resource left = a;
  v1::Resource right = b;
  for (v1::Resource* resource : {&left, &right}) {
    resource->clear_version();
    resource->clear_create_revision();
    resource->clear_mod_revision();
  }
  return google::protobuf::util::MessageDifferencer::Equals(left, right);
}

}  // namespace meridian::store
