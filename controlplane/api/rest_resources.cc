// REST handlers for resources: list, get, put, delete and the atomic batch (POST /changes).
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "controlplane/api/rest_json.h"
#include "controlplane/api/rest_server.h"
#include "controlplane/api/rest_support.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/validation.h"

namespace meridian::api {
namespace {

using nlohmann::json;

constexpr int64_t kMaxPageSize = 1000;
constexpr char kCollectionPath[] = R"(/api/v1/environments/([^/]+)/([^/]+))";
constexpr char kResourcePath[] = R"(/api/v1/environments/([^/]+)/([^/]+)/([^/]+))";

absl::StatusOr<model::ResourceKey> PathKey(const httplib::Request& req, bool with_name) {
  model::ResourceKey key;
  key.environment = req.matches[1].str();
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName("environment", key.environment));
  MERIDIAN_ASSIGN_OR_RETURN(key.kind, model::KindFromPlural(req.matches[2].str()));
  if (with_name) {
    key.name = req.matches[3].str();
    MERIDIAN_RETURN_IF_ERROR(model::ValidateName("name", key.name));
  }
  return key;
}

std::string ETag(int64_t version) { return absl::StrCat("\"", version, "\""); }

// Pulls the optional "comment" out of a body, falling back to X-Meridian-Comment.
absl::StatusOr<std::string> TakeComment(json& body, const httplib::Request& req) {
  std::string comment = rest::HeaderComment(req);
  if (!body.is_object()) return comment;
  auto it = body.find("comment");
  if (it == body.end()) return comment;
  if (!it->is_string()) return absl::InvalidArgumentError("comment: must be a string");
  comment = it->get<std::string>();
  body.erase(it);
  return comment;
}

absl::StatusOr<bool> CreateOnly(const httplib::Request& req) {
  if (!req.has_header("If-None-Match")) return false;
  if (req.get_header_value("If-None-Match") != "*") {
    return absl::InvalidArgumentError("If-None-Match: only \"*\" (create only) is supported");
  }
  if (req.has_header("If-Match")) {
    return absl::InvalidArgumentError("If-None-Match: cannot be combined with If-Match");
  }
  return true;
}

OutputJson WriteResultJson(const store::CommitResult& result) {
  OutputJson resources = OutputJson::array();
  for (const auto& resource : result.resources) resources.push_back(ResourceJson(resource));
  return {{"revision", result.revision}, {"resources", std::move(resources)}};
}

// One element of POST /changes: {"put": {...}} or {"delete": {...}}, with optional
// "expected_version" and "create_only".
absl::StatusOr<store::Mutation> MutationFromJson(json change, const std::string& field) {
  if (!change.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be an object"));
  }
  NormalizeKeysToSnakeCase(change);
  store::Mutation mutation;
  MERIDIAN_ASSIGN_OR_RETURN(mutation.expected_version, IntMember(change, "expected_version", 0));
  if (auto it = change.find("create_only"); it != change.end()) {
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".create_only: must be a boolean"));
    }
    mutation.create_only = it->get<bool>();
  }
  const bool has_put = change.contains("put");
  const bool has_delete = change.contains("delete");
  for (const auto& [name, value] : change.items()) {
    if (name != "put" && name != "delete" && name != "expected_version" && name != "create_only") {
      return absl::InvalidArgumentError(absl::StrCat(field, ".", name, ": unknown field"));
    }
  }
  if (has_put == has_delete) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": exactly one of \"put\" or \"delete\" is required"));
  }
  if (has_put) {
    mutation.operation = store::Mutation::Operation::kPut;
    MERIDIAN_ASSIGN_OR_RETURN(mutation.resource,
                              ResourceFromJson(change["put"], field + ".put", std::nullopt));
    mutation.key = model::KeyOf(mutation.resource);
  } else {
    mutation.operation = store::Mutation::Operation::kDelete;
    const json& target = change["delete"];
    if (target.is_object()) {
      for (const auto& [name, value] : target.items()) {
        if (name != "kind" && name != "environment" && name != "name") {
          return absl::InvalidArgumentError(
              absl::StrCat(field, ".delete.", name, ": unknown field"));
        }
      }
    }
    MERIDIAN_ASSIGN_OR_RETURN(mutation.key, KeyFromJson(target, field + ".delete"));
  }
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName(field + ".environment", mutation.key.environment));
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName(field + ".name", mutation.key.name));
  return mutation;
}

absl::StatusOr<store::ChangeSet> ChangeSetFromJson(json body, const httplib::Request& req) {
  if (!body.is_object()) return absl::InvalidArgumentError("body: must be a JSON object");
  store::ChangeSet change_set;
  change_set.actor = rest::Actor(req);
  MERIDIAN_ASSIGN_OR_RETURN(change_set.comment, TakeComment(body, req));
  for (const auto& [name, value] : body.items()) {
    if (name != "changes") return absl::InvalidArgumentError(absl::StrCat(name, ": unknown field"));
  }
  auto changes = body.find("changes");
  if (changes == body.end() || !changes->is_array()) {
    return absl::InvalidArgumentError("changes: required array");
  }
  for (size_t i = 0; i < changes->size(); ++i) {
    MERIDIAN_ASSIGN_OR_RETURN(
        store::Mutation mutation,
        MutationFromJson(std::move((*changes)[i]), absl::StrCat("changes[", i, "]")));
    change_set.mutations.push_back(std::move(mutation));
  }
  return change_set;
}

}  // namespace

void RestServer::RegisterResourceRoutes() {
  http_.Get(kCollectionPath, [this](const httplib::Request& req, httplib::Response& res) {
    auto key = PathKey(req, /*with_name=*/false);
    if (!key.ok()) return rest::SendError(res, key.status());
    store::ListQuery query;
    query.kind = key->kind;
    query.environment = key->environment;
    query.label_selector = rest::QueryString(req, "label_selector");
    query.page_token = rest::QueryString(req, "page_token");
    auto page_size = rest::QueryInt(req, "page_size", query.page_size);
    auto at_revision = rest::QueryInt(req, "at_revision", 0);
    if (!page_size.ok()) return rest::SendError(res, page_size.status());
    if (!at_revision.ok()) return rest::SendError(res, at_revision.status());
    if (*page_size < 1 || *page_size > kMaxPageSize) {
      return rest::SendError(res, absl::InvalidArgumentError("page_size: must be 1..1000"));
    }
    query.page_size = static_cast<int32_t>(*page_size);
    query.at_revision = *at_revision;
    auto list = store_.List(query);
    if (!list.ok()) return rest::SendError(res, list.status());
    OutputJson resources = OutputJson::array();
    for (const auto& resource : list->resources) resources.push_back(ResourceJson(resource));
    rest::SendJson(res, 200,
                   {{"resources", std::move(resources)},
                    {"next_page_token", list->next_page_token},
                    {"revision", list->revision}});
  });

  http_.Get(kResourcePath, [this](const httplib::Request& req, httplib::Response& res) {
    auto key = PathKey(req, /*with_name=*/true);
    if (!key.ok()) return rest::SendError(res, key.status());
    auto at_revision = rest::QueryInt(req, "at_revision", 0);
    if (!at_revision.ok()) return rest::SendError(res, at_revision.status());
    auto resource = store_.Get(*key, *at_revision);
    if (!resource.ok()) return rest::SendError(res, resource.status());
    res.set_header("ETag", ETag(resource->version()));
    rest::SendJson(res, 200, ResourceJson(*resource));
  });

  http_.Put(kResourcePath, [this](const httplib::Request& req, httplib::Response& res) {
    auto result = [&]() -> absl::StatusOr<store::CommitResult> {
      MERIDIAN_ASSIGN_OR_RETURN(model::ResourceKey key, PathKey(req, /*with_name=*/true));
      MERIDIAN_ASSIGN_OR_RETURN(json body, rest::ParseBody(req));
      store::ChangeSet change_set;
      change_set.actor = rest::Actor(req);
      MERIDIAN_ASSIGN_OR_RETURN(change_set.comment, TakeComment(body, req));
      store::Mutation mutation;
      mutation.operation = store::Mutation::Operation::kPut;
      MERIDIAN_ASSIGN_OR_RETURN(mutation.resource, ResourceFromJson(body, "", key));
      MERIDIAN_ASSIGN_OR_RETURN(mutation.expected_version, rest::IfMatchVersion(req));
      MERIDIAN_ASSIGN_OR_RETURN(mutation.create_only, CreateOnly(req));
      mutation.key = std::move(key);
      change_set.mutations.push_back(std::move(mutation));
      return store_.Commit(std::move(change_set));
    }();
    if (!result.ok()) return rest::SendError(res, result.status());
    if (result->resources.empty()) {
      return rest::SendError(res, absl::InternalError("store returned no resource for a put"));
    }
    const v1::Resource& written = result->resources.front();
    OutputJson body = ResourceJson(written);
    body["revision"] = result->revision;
    res.set_header("ETag", ETag(written.version()));
    rest::SendJson(res, written.version() == 1 ? 201 : 200, body);
  });

  http_.Delete(kResourcePath, [this](const httplib::Request& req, httplib::Response& res) {
    auto result = [&]() -> absl::StatusOr<store::CommitResult> {
      MERIDIAN_ASSIGN_OR_RETURN(model::ResourceKey key, PathKey(req, /*with_name=*/true));
      store::ChangeSet change_set;
      change_set.actor = rest::Actor(req);
      change_set.comment = rest::HeaderComment(req);
      if (!req.body.empty()) {
        MERIDIAN_ASSIGN_OR_RETURN(json body, rest::ParseBody(req));
        MERIDIAN_ASSIGN_OR_RETURN(change_set.comment, TakeComment(body, req));
        if (!body.is_object() || !body.empty()) {
          return absl::InvalidArgumentError("body: only {\"comment\": \"...\"} is accepted");
        }
      }
      store::Mutation mutation;
      mutation.operation = store::Mutation::Operation::kDelete;
      mutation.key = std::move(key);
      MERIDIAN_ASSIGN_OR_RETURN(mutation.expected_version, rest::IfMatchVersion(req));
      change_set.mutations.push_back(std::move(mutation));
      return store_.Commit(std::move(change_set));
    }();
    if (!result.ok()) return rest::SendError(res, result.status());
    rest::SendJson(res, 200, {{"revision", result->revision}});
  });

  http_.Post("/api/v1/changes", [this](const httplib::Request& req, httplib::Response& res) {
    auto result = [&]() -> absl::StatusOr<store::CommitResult> {
      MERIDIAN_ASSIGN_OR_RETURN(json body, rest::ParseBody(req));
      MERIDIAN_ASSIGN_OR_RETURN(store::ChangeSet change_set,
                                ChangeSetFromJson(std::move(body), req));
      return store_.Commit(std::move(change_set));
    }();
    if (!result.ok()) return rest::SendError(res, result.status());
    rest::SendJson(res, 200, WriteResultJson(*result));
  });
}

}  // namespace meridian::api
