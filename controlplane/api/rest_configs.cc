// The config-service view: a service's ConfigEntry resources in one environment as a flat
// JSON object, the way applications consume them. Entries are named "<service>.<key>".
// Unlike every other endpoint, GET returns secret values: that is how applications read them.
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controlplane/api/rest_json.h"
#include "controlplane/api/rest_server.h"
#include "controlplane/api/rest_support.h"
#include "controlplane/common/status_macros.h"
#include "controlplane/model/validation.h"
#include "google/protobuf/struct.pb.h"

namespace meridian::api {
namespace {

using nlohmann::json;

constexpr char kServiceConfigPath[] = R"(/api/v1/configs/([^/]+)/([^/]+))";
constexpr char kConfigKeyPath[] = R"(/api/v1/configs/([^/]+)/([^/]+)/([^/]+))";
// Writes are read-modify-write (to keep an entry's schema and secret flag); a concurrent
// writer makes the version check fail, and we try again this many times.
constexpr int kWriteAttempts = 5;
constexpr int32_t kPageSize = 1000;

OutputJson ValueToJson(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kNumberValue: {
      const double number = value.number_value();
      // Whole numbers print as 30, not 30.0, like protobuf's own JSON mapping.
      if (number == static_cast<double>(static_cast<int64_t>(number)) && number < 9.2e18 &&
          number > -9.2e18) {
        return static_cast<int64_t>(number);
      }
      return number;
    }
    case google::protobuf::Value::kStringValue:
      return value.string_value();
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kStructValue: {
      // protobuf's Map has no order; sort keys for stable output.
      std::map<std::string, const google::protobuf::Value*> sorted;
      for (const auto& [name, field] : value.struct_value().fields()) sorted[name] = &field;
      OutputJson object = OutputJson::object();
      for (const auto& [name, field] : sorted) {
        object[name] = ValueToJson(*field);
      }
      return object;
    }
    case google::protobuf::Value::kListValue: {
      OutputJson array = OutputJson::array();
      for (const auto& item : value.list_value().values()) array.push_back(ValueToJson(item));
      return array;
    }
    default:
      return nullptr;
  }
}

google::protobuf::Value ValueFromJson(const json& value) {
  google::protobuf::Value out;
  if (value.is_boolean()) {
    out.set_bool_value(value.get<bool>());
  } else if (value.is_number()) {
    out.set_number_value(value.get<double>());
  } else if (value.is_string()) {
    out.set_string_value(value.get<std::string>());
  } else if (value.is_object()) {
    auto& fields = *out.mutable_struct_value()->mutable_fields();
    for (const auto& [name, field] : value.items()) fields[name] = ValueFromJson(field);
  } else if (value.is_array()) {
    for (const auto& item : value) *out.mutable_list_value()->add_values() = ValueFromJson(item);
  } else {
    out.set_null_value(google::protobuf::NULL_VALUE);
  }
  return out;
}

absl::Status ValidateKey(const std::string& key) {
  const auto ok_char = [](char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c); };
  bool ok = !key.empty() && ok_char(key.front()) && ok_char(key.back());
  for (char c : key) ok = ok && (ok_char(c) || c == '-');
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("key: \"", key, "\" must match [a-z0-9]([-a-z0-9]*[a-z0-9])?"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<bool>> SecretParam(const httplib::Request& req) {
  if (!req.has_param("secret")) return std::nullopt;
  const std::string value = req.get_param_value("secret");
  if (value == "true" || value == "1") return true;
  if (value == "false" || value == "0") return false;
  return absl::InvalidArgumentError("secret: must be true or false");
}

struct ServiceScope {
  std::string service;
  std::string environment;
};

absl::StatusOr<ServiceScope> ScopeFromPath(const httplib::Request& req) {
  ServiceScope scope{req.matches[1].str(), req.matches[2].str()};
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName("service", scope.service));
  MERIDIAN_RETURN_IF_ERROR(model::ValidateName("environment", scope.environment));
  return scope;
}

model::ResourceKey EntryKey(const ServiceScope& scope, const std::string& key) {
  return {v1::CONFIG_ENTRY, scope.environment, absl::StrCat(scope.service, ".", key)};
}

// The service's entries by key, all pages read at one revision.
absl::StatusOr<std::map<std::string, v1::Resource>> ReadEntries(store::ConfigStore& store,
                                                                const ServiceScope& scope,
                                                                int64_t at_revision,
                                                                int64_t* revision) {
  store::ListQuery query;
  query.kind = v1::CONFIG_ENTRY;
  query.environment = scope.environment;
  query.page_size = kPageSize;
  query.at_revision = at_revision;
  std::map<std::string, v1::Resource> entries;
  do {
    MERIDIAN_ASSIGN_OR_RETURN(store::ListResult page, store.List(query));
    for (auto& resource : page.resources) {
      if (resource.config_entry().service() != scope.service) continue;
      std::string key = resource.config_entry().key();
      entries[std::move(key)] = std::move(resource);
    }
    query.page_token = page.next_page_token;
    if (query.at_revision == 0) query.at_revision = page.revision;
    *revision = page.revision;
  } while (!query.page_token.empty());
  return entries;
}

// A put of `value` under `key`, keeping the schema, labels and (unless `secret` says
// otherwise) the secret flag of the entry it replaces.
store::Mutation SetValue(const ServiceScope& scope, const std::string& key, const json& value,
                         std::optional<bool> secret, const v1::Resource* existing) {
  store::Mutation mutation;
  mutation.operation = store::Mutation::Operation::kPut;
  mutation.key = EntryKey(scope, key);
  v1::Resource& resource = mutation.resource;
  if (existing != nullptr) {
    resource = *existing;
    mutation.expected_version = existing->version();
  } else {
    mutation.create_only = true;
  }
  resource.set_kind(mutation.key.kind);
  resource.set_environment(mutation.key.environment);
  resource.set_name(mutation.key.name);
  v1::ConfigEntrySpec& spec = *resource.mutable_config_entry();
  spec.set_service(scope.service);
  spec.set_key(key);
  *spec.mutable_value() = ValueFromJson(value);
  if (secret.has_value()) spec.set_secret(*secret);
  return mutation;
}

bool IsWriteConflict(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) || absl::IsAlreadyExists(status) ||
         absl::IsAborted(status);
}

}  // namespace

void RestServer::RegisterConfigRoutes() {
  http_.Get(kServiceConfigPath, [this](const httplib::Request& req, httplib::Response& res) {
    auto scope = ScopeFromPath(req);
    if (!scope.ok()) return rest::SendError(res, scope.status());
    auto at_revision = rest::QueryInt(req, "at_revision", 0);
    if (!at_revision.ok()) return rest::SendError(res, at_revision.status());
    int64_t revision = 0;
    auto entries = ReadEntries(store_, *scope, *at_revision, &revision);
    if (!entries.ok()) return rest::SendError(res, entries.status());
    OutputJson out = OutputJson::object();
    for (const auto& [key, resource] : *entries) {
      out[key] = ValueToJson(resource.config_entry().value());
    }
    res.set_header("X-Meridian-Revision", std::to_string(revision));
    rest::SendJson(res, 200, out);
  });

  http_.Put(kConfigKeyPath, [this](const httplib::Request& req, httplib::Response& res) {
    auto result = [&]() -> absl::StatusOr<store::CommitResult> {
      MERIDIAN_ASSIGN_OR_RETURN(ServiceScope scope, ScopeFromPath(req));
      const std::string key = req.matches[3].str();
      MERIDIAN_RETURN_IF_ERROR(ValidateKey(key));
      MERIDIAN_ASSIGN_OR_RETURN(json value, rest::ParseBody(req));
      MERIDIAN_ASSIGN_OR_RETURN(std::optional<bool> secret, SecretParam(req));
      absl::Status last;
      for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
        auto existing = store_.Get(EntryKey(scope, key), 0);
        if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
        store::ChangeSet change_set;
        change_set.actor = rest::Actor(req);
        change_set.comment = rest::HeaderComment(req);
        change_set.mutations.push_back(
            SetValue(scope, key, value, secret, existing.ok() ? &*existing : nullptr));
        auto committed = store_.Commit(std::move(change_set));
        if (committed.ok() || !IsWriteConflict(committed.status())) return committed;
        last = committed.status();
      }
      return last;
    }();
    if (!result.ok()) return rest::SendError(res, result.status());
    const int64_t version = result->resources.empty() ? 0 : result->resources.front().version();
    rest::SendJson(res, version == 1 ? 201 : 200,
                   {{"revision", result->revision}, {"version", version}});
  });

  http_.Delete(kConfigKeyPath, [this](const httplib::Request& req, httplib::Response& res) {
    auto result = [&]() -> absl::StatusOr<store::CommitResult> {
      MERIDIAN_ASSIGN_OR_RETURN(ServiceScope scope, ScopeFromPath(req));
      const std::string key = req.matches[3].str();
      MERIDIAN_RETURN_IF_ERROR(ValidateKey(key));
      store::ChangeSet change_set;
      change_set.actor = rest::Actor(req);
      change_set.comment = rest::HeaderComment(req);
      store::Mutation mutation;
      mutation.operation = store::Mutation::Operation::kDelete;
      mutation.key = EntryKey(scope, key);
      MERIDIAN_ASSIGN_OR_RETURN(mutation.expected_version, rest::IfMatchVersion(req));
      change_set.mutations.push_back(std::move(mutation));
      return store_.Commit(std::move(change_set));
    }();
    if (!result.ok()) return rest::SendError(res, result.status());
    rest::SendJson(res, 200, {{"revision", result->revision}});
  });

  // Bulk set: every key of the body in one revision. Keys not in the body are left alone.
  http_.Put(kServiceConfigPath, [this](const httplib::Request& req, httplib::Response& res) {
    auto result = [&]() -> absl::StatusOr<store::CommitResult> {
      MERIDIAN_ASSIGN_OR_RETURN(ServiceScope scope, ScopeFromPath(req));
      MERIDIAN_ASSIGN_OR_RETURN(json body, rest::ParseBody(req));
      if (!body.is_object()) {
        return absl::InvalidArgumentError("body: must be a JSON object of key -> value");
      }
      if (body.empty()) return absl::InvalidArgumentError("body: no keys to set");
      for (const auto& [key, value] : body.items()) {
        if (absl::Status status = ValidateKey(key); !status.ok()) return status;
      }
      MERIDIAN_ASSIGN_OR_RETURN(std::optional<bool> secret, SecretParam(req));
      absl::Status last;
      for (int attempt = 0; attempt < kWriteAttempts; ++attempt) {
        int64_t revision = 0;
        MERIDIAN_ASSIGN_OR_RETURN(auto existing, ReadEntries(store_, scope, 0, &revision));
        store::ChangeSet change_set;
        change_set.actor = rest::Actor(req);
        change_set.comment = rest::HeaderComment(req);
        for (const auto& [key, value] : body.items()) {
          auto it = existing.find(key);
          change_set.mutations.push_back(
              SetValue(scope, key, value, secret, it == existing.end() ? nullptr : &it->second));
        }
        auto committed = store_.Commit(std::move(change_set));
        if (committed.ok() || !IsWriteConflict(committed.status())) return committed;
        last = committed.status();
      }
      return last;
    }();
    if (!result.ok()) return rest::SendError(res, result.status());
    rest::SendJson(
        res, 200,
        {{"revision", result->revision}, {"keys", static_cast<int64_t>(result->resources.size())}});
  });
}

}  // namespace meridian::api
