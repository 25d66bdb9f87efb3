#pragma once

#include <string>

#include "nlohmann/json.hpp"

namespace meridian::ctl {

// The human (table) views of meridian-cp's REST responses. Inputs are the server's JSON
// (rest_json.h shapes); a missing or oddly typed field renders as an empty cell, never an
// error, so a newer server does not break an older CLI. Resource keys print as "kind/name",
// or "kind/environment/name" when the environment is not `environment` (empty: always).
// Stateless; thread-safe.

// NAME VERSION MOD_REVISION LABELS SUMMARY, for `get` and `list`.
std::string ResourceTable(const nlohmann::ordered_json& resources);

// REVISION TIME ACTOR OPERATION KIND/NAME COMMENT, for `history`.
std::string HistoryTable(const nlohmann::ordered_json& entries, const std::string& environment);

// `diff`: one line per changed resource ("~ services/checkout (version 1 -> 2)", "+", "-"),
// then the changed labels and spec fields of updates ("    spec.ports[0].port: 8080 -> 9090").
std::string DiffText(const nlohmann::ordered_json& changes, const std::string& environment);

// `watch`: fixed-width columns so lines printed as events arrive stay aligned.
std::string WatchHeader();
std::string WatchEventLine(const nlohmann::ordered_json& event, const std::string& environment);

// `apply`: "services/checkout created" or "... configured (version 3)" per written resource.
std::string WrittenResourcesText(const nlohmann::ordered_json& resources,
                                 const std::string& environment);
// `rollback`: "services/checkout updated (version 3)" per change record of a revision.
std::string ChangeRecordsText(const nlohmann::ordered_json& changes,
                              const std::string& environment);

// `status`: the revision, its scope (environments), whether it converged and the node counts,
// then NODE ENVIRONMENT STATE APPLIED-REVISION ERROR for every node in scope that has not
// applied it (nacked, pending, disconnected).
std::string RevisionStatusText(const nlohmann::ordered_json& status);
// NODE ENVIRONMENT ZONE CONNECTED APPLIED LAST-SEEN REPLICA, for `nodes`.
std::string NodesTable(const nlohmann::ordered_json& nodes);

// Pieces, exposed for tests.
std::string LabelsText(const nlohmann::ordered_json& labels);  // "app=web,tier=db", "<none>"
std::string SpecSummary(const std::string& kind, const nlohmann::ordered_json& spec);
std::string ShortTime(const std::string& rfc3339);  // "2024-05-01T12:00:00Z"
// CREATE, UPDATE or DELETE for a ChangeRecord (PUT without `before` is a create).
std::string ChangeVerb(const nlohmann::ordered_json& change);

}  // namespace meridian::ctl
