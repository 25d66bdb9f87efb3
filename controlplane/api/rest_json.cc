#include "controlplane/api/rest_json.h"

#include <map>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "controlplane/model/redaction.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace meridian::api {
namespace {

using nlohmann::json;

const google::protobuf::Message* SpecOf(const v1::Resource& resource) {
  switch (resource.spec_case()) {
    case v1::Resource::kService:
      return &resource.service();
    case v1::Resource::kEndpoint:
      return &resource.endpoint();
    case v1::Resource::kRoute:
      return &resource.route();
    case v1::Resource::kCertificate:
      return &resource.certificate();
    case v1::Resource::kConfigEntry:
      return &resource.config_entry();
    case v1::Resource::SPEC_NOT_SET:
      break;
  }
  return nullptr;
}

google::protobuf::Message* MutableSpecFor(v1::Resource& resource, v1::Kind kind) {
  switch (kind) {
    case v1::SERVICE:
      return resource.mutable_service();
    case v1::ENDPOINT:
      return resource.mutable_endpoint();
    case v1::ROUTE:
      return resource.mutable_route();
    case v1::CERTIFICATE:
      return resource.mutable_certificate();
    case v1::CONFIG_ENTRY:
      return resource.mutable_config_entry();
    default:
      return nullptr;
  }
}

OutputJson Timestamp(const google::protobuf::Timestamp& time) {
  return google::protobuf::util::TimeUtil::ToString(time);
}

absl::Status CheckKeys(const json& object, absl::string_view field,
                       const std::set<std::string, std::less<>>& allowed) {
  for (const auto& [name, value] : object.items()) {
    if (!allowed.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field.empty() ? "" : absl::StrCat(field, "."), name, ": unknown field"));
    }
  }
  return absl::OkStatus();
}

std::string Join(absl::string_view field, absl::string_view name) {
  return field.empty() ? std::string(name) : absl::StrCat(field, ".", name);
}

// A resource read with GET may be sent back as is, so its own key may be present, but it
// must then agree with the URL.
absl::Status CheckMatchesPath(const json& body, absl::string_view field,
                              const model::ResourceKey& key) {
  auto mismatch = [&](absl::string_view name, absl::string_view expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(Join(field, name), ": does not match the URL (", expected, ")"));
  };
  if (auto it = body.find("kind"); it != body.end()) {
    const bool ok = it->is_string() && [&] {
      auto kind = model::ParseKind(it->get<std::string>());
      return kind.ok() && *kind == key.kind;
    }();
    if (!ok) return mismatch("kind", std::string(model::KindPlural(key.kind)));
  }
  const std::pair<std::string, absl::string_view> fields[] = {{"environment", key.environment},
                                                              {"name", key.name}};
  for (const auto& [name, expected] : fields) {
    auto it = body.find(name);
    if (it != body.end() && (!it->is_string() || it->get<std::string>() != expected)) {
      return mismatch(name, expected);
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string DumpJson(const OutputJson& value) {
  return value.dump(-1, ' ', false, OutputJson::error_handler_t::replace);
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

OutputJson ProtoToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(message, &text, options).ok()) {
    return OutputJson::object();  // only fails on an unset Value, which the store rejects
  }
  OutputJson parsed = OutputJson::parse(text, nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? OutputJson::object() : parsed;
}

absl::Status ProtoFromJson(const json& value, absl::string_view field,
                           google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status =
      google::protobuf::util::JsonStringToMessage(DumpJson(value), &message, options);
  if (!status.ok()) {
    absl::string_view text(status.message().data(), status.message().size());
    // protobuf says "ports[0].bogus: Cannot find field."; name the full path instead.
    if (absl::ConsumeSuffix(&text, ": Cannot find field.")) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".", text, ": unknown field"));
    }
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", text));
  }
  return absl::OkStatus();
}

OutputJson ResourceJson(const v1::Resource& resource) {
  v1::Resource redacted = resource;
  model::RedactSecrets(redacted);
  // protobuf's Map has no order; sort for stable output.
  const std::map<std::string, std::string> sorted(redacted.labels().begin(),
                                                  redacted.labels().end());
  OutputJson labels = OutputJson::object();
  for (const auto& [key, value] : sorted) labels[key] = value;
  const google::protobuf::Message* spec = SpecOf(redacted);
  return {{"kind", model::KindPlural(redacted.kind())},
          {"environment", redacted.environment()},
          {"name", redacted.name()},
          {"version", redacted.version()},
          {"create_revision", redacted.create_revision()},
          {"mod_revision", redacted.mod_revision()},
          {"labels", std::move(labels)},
          {"spec", spec != nullptr ? ProtoToJson(*spec) : OutputJson::object()}};
}

OutputJson KeyJson(const v1::ResourceKey& key) {
  return {{"kind", model::KindPlural(key.kind())},
          {"environment", key.environment()},
          {"name", key.name()}};
}

// Redaction happens in ResourceJson, the only place resource contents are rendered.
OutputJson ChangeRecordJson(const v1::ChangeRecord& record) {
  OutputJson out = {{"revision", record.revision()},
                    {"operation", v1::Operation_Name(record.operation())},
                    {"key", KeyJson(record.key())}};
  if (record.has_before()) out["before"] = ResourceJson(record.before());
  if (record.has_after()) out["after"] = ResourceJson(record.after());
  return out;
}

OutputJson HistoryEntryJson(const v1::HistoryEntry& entry) {
  OutputJson out = {{"revision", entry.revision()}};
  if (entry.has_time()) out["time"] = Timestamp(entry.time());
  out["actor"] = entry.actor();
  out["comment"] = entry.comment();
  out["rollback_to"] = entry.rollback_to();
  out["change"] = ChangeRecordJson(entry.change());
  return out;
}

OutputJson RevisionRecordJson(const v1::RevisionRecord& record) {
  OutputJson changes = OutputJson::array();
  for (const auto& change : record.changes()) changes.push_back(ChangeRecordJson(change));
  OutputJson out = {{"revision", record.revision()}};
  if (record.has_time()) out["time"] = Timestamp(record.time());
  out["actor"] = record.actor();
  out["comment"] = record.comment();
  out["rollback_to"] = record.rollback_to();
  out["changes"] = std::move(changes);
  return out;
}

OutputJson WatchEventJson(const v1::RevisionRecord& revision, const v1::ChangeRecord& change) {
  OutputJson out = {{"revision", revision.revision()}};
  if (revision.has_time()) out["time"] = Timestamp(revision.time());
  out["actor"] = revision.actor();
  out["comment"] = revision.comment();
  if (revision.rollback_to() > 0) out["rollback_to"] = revision.rollback_to();
  out["change"] = ChangeRecordJson(change);
  return out;
}

void NormalizeKeysToSnakeCase(json& object) {
  if (!object.is_object()) return;
  json normalized = json::object();
  for (auto& [name, value] : object.items()) {
    std::string snake;
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') {
        snake += '_';
        snake += static_cast<char>(c - 'A' + 'a');
      } else {
        snake += c;
      }
    }
    normalized[snake] = std::move(value);
  }
  object = std::move(normalized);
}

absl::StatusOr<std::string> StringMember(const json& object, absl::string_view name) {
  auto it = object.find(std::string(name));
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": must be a string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<int64_t> IntMember(const json& object, absl::string_view name,
                                  int64_t default_value) {
  auto it = object.find(std::string(name));
  if (it == object.end() || it->is_null()) return default_value;
  if (it->is_number_integer()) return it->get<int64_t>();
  // Protobuf's JSON mapping writes int64 as a string; accept that too.
  if (int64_t parsed = 0; it->is_string() && absl::SimpleAtoi(it->get<std::string>(), &parsed)) {
    return parsed;
  }
  return absl::InvalidArgumentError(absl::StrCat(name, ": must be an integer"));
}

absl::StatusOr<model::ResourceKey> KeyFromJson(const json& body, absl::string_view field) {
  if (!body.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be an object"));
  }
  model::ResourceKey key;
  auto kind = body.find("kind");
  if (kind == body.end() || !kind->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(Join(field, "kind"), ": required string"));
  }
  auto parsed_kind = model::ParseKind(kind->get<std::string>());
  if (!parsed_kind.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".", parsed_kind.status().message()));
  }
  key.kind = *parsed_kind;
  for (auto [name, target] :
       {std::pair{"environment", &key.environment}, std::pair{"name", &key.name}}) {
    auto it = body.find(name);
    if (it == body.end() || !it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(Join(field, name), ": required string"));
    }
    *target = it->get<std::string>();
  }
  return key;
}

absl::StatusOr<v1::Resource> ResourceFromJson(const json& body, absl::string_view field,
                                              const std::optional<model::ResourceKey>& path_key) {
  if (!body.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field.empty() ? "body" : field, ": must be a JSON object"));
  }
  // Output-only metadata is accepted and ignored (the store assigns it), so a resource read
  // with GET can be PUT back as it is.
  static const std::set<std::string, std::less<>> kAllowed = {
      "kind", "environment", "name", "labels", "spec", "version", "create_revision",
      "mod_revision"};
  if (auto status = CheckKeys(body, field, kAllowed); !status.ok()) return status;

  model::ResourceKey key;
  if (path_key.has_value()) {
    key = *path_key;
    if (auto status = CheckMatchesPath(body, field, key); !status.ok()) return status;
  } else {
    auto parsed = KeyFromJson(body, field);
    if (!parsed.ok()) return parsed.status();
    key = *std::move(parsed);
  }

  v1::Resource resource;
  resource.set_kind(key.kind);
  resource.set_environment(key.environment);
  resource.set_name(key.name);

  if (auto labels = body.find("labels"); labels != body.end() && !labels->is_null()) {
    if (!labels->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(Join(field, "labels"), ": must be an object"));
    }
    for (const auto& [name, value] : labels->items()) {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(Join(field, "labels"), ".", name, ": must be a string"));
      }
      (*resource.mutable_labels())[name] = value.get<std::string>();
    }
  }

  google::protobuf::Message* spec = MutableSpecFor(resource, key.kind);
  if (spec == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(Join(field, "kind"), ": unknown kind"));
  }
  if (auto it = body.find("spec"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(Join(field, "spec"), ": must be an object"));
    }
    if (auto status = ProtoFromJson(*it, Join(field, "spec"), *spec); !status.ok()) return status;
  }
  return resource;
}

}  // namespace meridian::api
