#include "controlplane/ctl/manifest.h"

#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;

struct KindNames {
  const char* plural;
  std::vector<std::string> aliases;  // lower case, without '_' and '-'
};

const std::vector<KindNames>& Kinds() {
  static const auto* kinds = new std::vector<KindNames>{
      {"services", {"services", "service", "svc"}},
      {"endpoints", {"endpoints", "endpoint", "ep"}},
      {"routes", {"routes", "route"}},
      {"certificates", {"certificates", "certificate", "cert", "certs"}},
      {"configs", {"configs", "config", "configentry", "configentries"}},
  };
  return *kinds;
}

// A list printed by `meridianctl list -o json`: {"resources": [...], "revision": N, ...}.
bool IsResourceList(const json& document) {
  return document.is_object() && !document.contains("kind") && document.contains("resources") &&
         document["resources"].is_array();
}

void Flatten(const json& document, std::vector<json>& out) {
  if (document.is_array()) {
    for (const json& item : document) Flatten(item, out);
  } else if (IsResourceList(document)) {
    for (const json& item : document["resources"]) Flatten(item, out);
  } else if (!document.is_null()) {
    out.push_back(document);
  }
}

absl::StatusOr<std::string> RequiredString(const json& document, const char* field) {
  auto it = document.find(field);
  if (it == document.end() || it->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  }
  if (!it->is_string())
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be a string"));
  return it->get<std::string>();
}

class ApplyRequestBuilder {
 public:
  explicit ApplyRequestBuilder(const ApplyDefaults& defaults) : defaults_(defaults) {}

  absl::Status Add(const json& document, size_t number) {
    std::string where = absl::StrCat("document ", number);
    if (!document.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": must be a mapping with kind, name and spec, got ", document.type_name()));
    }
    // Name the resource in later errors as soon as it is known.
    if (auto kind = document.find("kind"), name = document.find("name");
        kind != document.end() && kind->is_string() && name != document.end() &&
        name->is_string()) {
      absl::StrAppend(&where, " (", kind->get<std::string>(), "/", name->get<std::string>(), ")");
    }
    absl::StatusOr<json> put = ToPut(document);
    if (!put.ok())
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", put.status().message()));
    auto key =
        std::make_tuple((*put)["kind"].get<std::string>(), (*put)["environment"].get<std::string>(),
                        (*put)["name"].get<std::string>());
    if (!seen_.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", std::get<0>(key), "/",
                                                     std::get<1>(key), "/", std::get<2>(key),
                                                     " appears more than once"));
    }
    changes_.push_back({{"put", *std::move(put)}});
    return absl::OkStatus();
  }

  json Build() && { return {{"comment", defaults_.comment}, {"changes", std::move(changes_)}}; }

 private:
  absl::StatusOr<json> ToPut(const json& document) const {
    static const std::set<std::string> kFields = {"kind", "environment", "name", "labels", "spec"};
    // Output-only metadata, present when a `get -o yaml` result is applied back.
    static const std::set<std::string> kIgnored = {"version", "create_revision", "mod_revision"};
    for (const auto& [field, value] : document.items()) {
      if (!kFields.contains(field) && !kIgnored.contains(field)) {
        return absl::InvalidArgumentError(absl::StrCat(
            field, ": unknown field (expected kind, environment, name, labels, spec)"));
      }
    }
    json put = json::object();
    absl::StatusOr<std::string> kind = RequiredString(document, "kind");
    if (!kind.ok()) return kind.status();
    absl::StatusOr<std::string> plural = CanonicalKind(*kind);
    if (!plural.ok()) return plural.status();
    put["kind"] = *plural;

    std::string environment = defaults_.environment;
    if (document.contains("environment") && !document["environment"].is_null()) {
      absl::StatusOr<std::string> own = RequiredString(document, "environment");
      if (!own.ok()) return own.status();
      if (defaults_.environment_explicit && *own != defaults_.environment) {
        return absl::InvalidArgumentError(absl::StrCat("environment: \"", *own,
                                                       "\" does not match --environment \"",
                                                       defaults_.environment, "\""));
      }
      environment = *std::move(own);
    }
    put["environment"] = environment;

    absl::StatusOr<std::string> name = RequiredString(document, "name");
    if (!name.ok()) return name.status();
    put["name"] = *name;

    if (auto labels = document.find("labels"); labels != document.end() && !labels->is_null()) {
      if (!labels->is_object()) return absl::InvalidArgumentError("labels: must be a mapping");
      for (const auto& [label, value] : labels->items()) {
        if (!value.is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "labels.", label, ": must be a string (quote it: \"", value.dump(), "\")"));
        }
      }
      put["labels"] = *labels;
    }
    if (auto spec = document.find("spec"); spec != document.end() && !spec->is_null()) {
      if (!spec->is_object()) return absl::InvalidArgumentError("spec: must be a mapping");
      put["spec"] = *spec;
    }
    return put;
  }

  const ApplyDefaults& defaults_;
  json changes_ = json::array();
  std::set<std::tuple<std::string, std::string, std::string>> seen_;
};

}  // namespace

absl::StatusOr<std::string> CanonicalKind(absl::string_view kind) {
  const std::string folded =
      absl::StrReplaceAll(absl::AsciiStrToLower(kind), {{"_", ""}, {"-", ""}});
  for (const KindNames& names : Kinds()) {
    for (const std::string& alias : names.aliases) {
      if (alias == folded) return std::string(names.plural);
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("kind: unknown kind \"", kind,
                   "\" (expected services, endpoints, routes, certificates or configs)"));
}

absl::StatusOr<json> BuildApplyRequest(const std::vector<json>& documents,
                                       const ApplyDefaults& defaults) {
  std::vector<json> resources;
  for (const json& document : documents) Flatten(document, resources);
  if (resources.empty()) return absl::InvalidArgumentError("no resources to apply");
  ApplyRequestBuilder builder(defaults);
  for (size_t i = 0; i < resources.size(); ++i) {
    if (absl::Status status = builder.Add(resources[i], i + 1); !status.ok()) return status;
  }
  return std::move(builder).Build();
}

}  // namespace meridian::ctl
