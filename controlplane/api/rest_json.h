#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "controlplane/model/resource_key.h"
#include "google/protobuf/message.h"
#include "meridian/v1/config_service.pb.h"
#include "meridian/v1/resources.pb.h"
#include "nlohmann/json.hpp"

namespace meridian::api {

// The REST representation of Meridian's messages. Specs go through protobuf's JSON mapping
// (so REST and gRPC accept the same field names, snake_case or lowerCamelCase); the envelope
// around them (kind as the REST plural, int64 metadata as JSON numbers) is built here.
// Every function that renders a resource or record redacts secrets first, so no caller can
// forget to. Stateless; thread-safe.

// Responses keep fields in the order they are built (kind, environment, name, ...), which
// reads better than alphabetical order.
using OutputJson = nlohmann::ordered_json;

// Serializes without ever throwing: invalid UTF-8 is replaced, not reported.
std::string DumpJson(const OutputJson& json);
std::string DumpJson(const nlohmann::json& json);

// Protobuf JSON mapping, field names as in the .proto file.
OutputJson ProtoToJson(const google::protobuf::Message& message);
// Strict: unknown fields are an error. `field` prefixes error messages ("spec: ...").
absl::Status ProtoFromJson(const nlohmann::json& json, absl::string_view field,
                           google::protobuf::Message& message);

// {"kind": "services", "environment", "name", "version", "create_revision", "mod_revision",
//  "labels", "spec"}, secrets redacted.
OutputJson ResourceJson(const v1::Resource& resource);
OutputJson KeyJson(const v1::ResourceKey& key);
OutputJson ChangeRecordJson(const v1::ChangeRecord& record);
OutputJson HistoryEntryJson(const v1::HistoryEntry& entry);
OutputJson RevisionRecordJson(const v1::RevisionRecord& record);
// One line of the watch stream: the revision's metadata and one of its changes.
OutputJson WatchEventJson(const v1::RevisionRecord& revision, const v1::ChangeRecord& change);

// Parses {"labels": {...}, "spec": {...}} (plus "kind", "environment", "name") into a
// resource. With `path_key`, the key comes from the URL and body fields, if present, must
// agree with it; without, the body must name the resource. Unknown keys are an error.
absl::StatusOr<v1::Resource> ResourceFromJson(const nlohmann::json& body, absl::string_view field,
                                              const std::optional<model::ResourceKey>& path_key);

// {"kind": "services", "environment": "prod", "name": "checkout"}.
absl::StatusOr<model::ResourceKey> KeyFromJson(const nlohmann::json& body, absl::string_view field);

// Rewrites lowerCamelCase member names of an envelope object ("toRevision") in snake_case,
// as protobuf's JSON mapping accepts both.
void NormalizeKeysToSnakeCase(nlohmann::json& object);

// Reads an optional integer member; `field` names it in errors.
absl::StatusOr<int64_t> IntMember(const nlohmann::json& object, absl::string_view name,
                                  int64_t default_value);
absl::StatusOr<std::string> StringMember(const nlohmann::json& object, absl::string_view name);

}  // namespace meridian::api
