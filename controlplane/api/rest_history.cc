// REST handlers for the audit history: history, one revision, diff, rollback, compaction.
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controlplane/api/rest_json.h"
#include "controlplane/api/rest_server.h"
#include "controlplane/api/rest_support.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/validation.h"

namespace meridian::api {
namespace {

using nlohmann::json;

absl::StatusOr<store::HistoryQuery> HistoryQueryFrom(const httplib::Request& req) {
  store::HistoryQuery query;
  query.environment = rest::QueryString(req, "environment");
  query.name = rest::QueryString(req, "name");
  if (const std::string kind = rest::QueryString(req, "kind"); !kind.empty()) {
    MERIDIAN_ASSIGN_OR_RETURN(query.kind, model::ParseKind(kind));
  }
  if (!query.name.empty() && query.kind == v1::KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("name: requires kind");
  }
  MERIDIAN_ASSIGN_OR_RETURN(query.since_revision, rest::QueryInt(req, "since_revision", 0));
  MERIDIAN_ASSIGN_OR_RETURN(int64_t limit, rest::QueryInt(req, "limit", query.limit));
  if (limit < 1 || limit > 1000) return absl::InvalidArgumentError("limit: must be 1..1000");
  query.limit = static_cast<int32_t>(limit);
  if (const std::string order = rest::QueryString(req, "order"); order == "newest") {
    query.newest = true;
  } else if (!order.empty() && order != "oldest") {
    return absl::InvalidArgumentError("order: must be oldest (default) or newest");
  }
  return query;
}

absl::StatusOr<store::RollbackSpec> RollbackSpecFrom(const httplib::Request& req) {
  MERIDIAN_ASSIGN_OR_RETURN(json body, rest::ParseBody(req));
  if (!body.is_object()) return absl::InvalidArgumentError("body: must be a JSON object");
  NormalizeKeysToSnakeCase(body);
  for (const auto& [name, value] : body.items()) {
    if (name != "to_revision" && name != "environment" && name != "kind" && name != "name" &&
        name != "comment") {
      return absl::InvalidArgumentError(absl::StrCat(name, ": unknown field"));
    }
  }
  store::RollbackSpec spec;
  spec.actor = rest::Actor(req);
  MERIDIAN_ASSIGN_OR_RETURN(spec.to_revision, IntMember(body, "to_revision", 0));
  if (spec.to_revision <= 0) return absl::InvalidArgumentError("to_revision: required, > 0");
  MERIDIAN_ASSIGN_OR_RETURN(spec.environment, StringMember(body, "environment"));
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName("environment", spec.environment));
  MERIDIAN_ASSIGN_OR_RETURN(std::string kind, StringMember(body, "kind"));
  if (!kind.empty()) {
    MERIDIAN_ASSIGN_OR_RETURN(spec.kind, model::ParseKind(kind));
  }
  MERIDIAN_ASSIGN_OR_RETURN(spec.name, StringMember(body, "name"));
  if (!spec.name.empty() && spec.kind == v1::KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("name: requires kind");
  }
  MERIDIAN_ASSIGN_OR_RETURN(spec.comment, StringMember(body, "comment"));
  if (spec.comment.empty()) spec.comment = rest::HeaderComment(req);
  return spec;
}

}  // namespace

void RestServer::RegisterHistoryRoutes() {
  http_.Get("/api/v1/history", [this](const httplib::Request& req, httplib::Response& res) {
    auto query = HistoryQueryFrom(req);
    if (!query.ok()) return rest::SendError(res, query.status());
    auto entries = store_.History(*query);
    if (!entries.ok()) return rest::SendError(res, entries.status());
    OutputJson out = OutputJson::array();
    for (const auto& entry : *entries) out.push_back(HistoryEntryJson(entry));
    rest::SendJson(res, 200, {{"entries", std::move(out)}});
  });

  http_.Get(R"(/api/v1/revisions/(\d+))",
            [this](const httplib::Request& req, httplib::Response& res) {
              int64_t revision = 0;
              if (!absl::SimpleAtoi(req.matches[1].str(), &revision)) {
                return rest::SendError(res, absl::InvalidArgumentError("revision: not an integer"));
              }
              auto record = store_.GetRevision(revision);
              if (!record.ok()) return rest::SendError(res, record.status());
              rest::SendJson(res, 200, RevisionRecordJson(*record));
            });

  http_.Get("/api/v1/diff", [this](const httplib::Request& req, httplib::Response& res) {
    auto from = rest::QueryInt(req, "from_revision", -1);
    auto to = rest::QueryInt(req, "to_revision", 0);
    if (!from.ok()) return rest::SendError(res, from.status());
    if (!to.ok()) return rest::SendError(res, to.status());
    if (*from < 0) {
      return rest::SendError(res, absl::InvalidArgumentError("from_revision: required"));
    }
    auto changes = store_.Diff(*from, *to, rest::QueryString(req, "environment"));
    if (!changes.ok()) return rest::SendError(res, changes.status());
    OutputJson out = OutputJson::array();
    for (const auto& change : *changes) out.push_back(ChangeRecordJson(change));
    rest::SendJson(res, 200, {{"changes", std::move(out)}});
  });

  http_.Post("/api/v1/rollback", [this](const httplib::Request& req, httplib::Response& res) {
    auto spec = RollbackSpecFrom(req);
    if (!spec.ok()) return rest::SendError(res, spec.status());
    auto result = store_.Rollback(*spec);
    if (!result.ok()) return rest::SendError(res, result.status());
    OutputJson resources = OutputJson::array();
    for (const auto& resource : result->resources) resources.push_back(ResourceJson(resource));
    rest::SendJson(res, 200, {{"revision", result->revision}, {"resources", std::move(resources)}});
  });

  http_.Post("/api/v1/compact", [this](const httplib::Request& req, httplib::Response& res) {
    auto revision = [&]() -> absl::StatusOr<int64_t> {
      MERIDIAN_ASSIGN_OR_RETURN(json body, rest::ParseBody(req));
      if (!body.is_object()) return absl::InvalidArgumentError("body: must be a JSON object");
      for (const auto& [name, value] : body.items()) {
        if (name != "revision")
          return absl::InvalidArgumentError(absl::StrCat(name, ": unknown field"));
      }
      MERIDIAN_ASSIGN_OR_RETURN(int64_t revision, IntMember(body, "revision", 0));
      if (revision <= 0) return absl::InvalidArgumentError("revision: required, > 0");
      MERIDIAN_RETURN_IF_ERROR(store_.Compact(revision));
      return revision;
    }();
    if (!revision.ok()) return rest::SendError(res, revision.status());
    rest::SendJson(res, 200, {{"compacted_revision", *revision}});
  });
}

}  // namespace meridian::api
