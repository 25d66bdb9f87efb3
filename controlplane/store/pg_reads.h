#pragma once

#include "absl/strings/string_view.h"
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "controlplane/store/config_store.h"

namespace meridian::store {

// A consistent read-only snapshot for multi-statement reads.
using ReadTxn = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;

// Which resources a state or log query covers; empty fields match everything.
struct Selection {
  std::string environment;
  v1::Kind kind = v1::KIND_UNSPECIFIED;
  std::string name;

  // " AND environment = 'prod' AND kind = ..." for tables with those columns.
  std::string SqlFilter(pqxx::transaction_base& txn, absl::string_view table_alias = "") const;
};

// Current and compacted revision; OutOfRange unless compacted <= revision <= current
// (0 means current and is always accepted).
absl::StatusOr<StoreRevisions> ReadRevisions(pqxx::transaction_base& txn);
absl::Status CheckRevisionRetained(const StoreRevisions& revisions, int64_t revision,
                                   absl::string_view field);

// Every resource in the selection as it was at `revision`, in (environment, kind, name) order.
std::vector<v1::Resource> StateAt(pqxx::transaction_base& txn, const Selection& selection,
                                  int64_t revision);

// Per key changed in (from, to]: the state at `from` (before) and at `to` (after).
struct NetChange {
  ResourceKey key;
  std::optional<v1::Resource> before;
  std::optional<v1::Resource> after;
};
std::vector<NetChange> NetChanges(pqxx::transaction_base& txn, const Selection& selection,
                                  int64_t from_revision, int64_t to_revision);

// True when labels and spec are the same (metadata ignored).
bool SameContent(const v1::Resource& a, const v1::Resource& b);

}  // namespace meridian::store
