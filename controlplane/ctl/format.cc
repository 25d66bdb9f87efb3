#include "controlplane/ctl/format.h"

#include <map>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controlplane/ctl/table.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;

constexpr size_t kMaxSummary = 60;
constexpr size_t kMaxDiffValue = 80;

// A member as text: strings as they are, numbers and booleans as JSON, anything else empty.
std::string Text(const json& object, const char* name) {
  if (!object.is_object()) return "";
  auto it = object.find(name);
  if (it == object.end() || it->is_null() || it->is_structured()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

const json& Member(const json& object, const char* name) {
  static const json* const kNull = new json(nullptr);
  if (!object.is_object()) return *kNull;
  auto it = object.find(name);
  return it == object.end() ? *kNull : *it;
}

std::string Truncate(std::string text, size_t max) {
  if (DisplayWidth(text) <= max) return text;
  // Cut on a code point boundary.
  size_t points = 0;
  size_t cut = 0;
  for (; cut < text.size(); ++cut) {
    if ((static_cast<unsigned char>(text[cut]) & 0xc0) != 0x80 && ++points > max - 3) break;
  }
  return text.substr(0, cut) + "...";
}

std::string KeyText(const json& key, const std::string& environment) {
  const std::string env = Text(key, "environment");
  if (!environment.empty() && env == environment) {
    return absl::StrCat(Text(key, "kind"), "/", Text(key, "name"));
  }
  return absl::StrCat(Text(key, "kind"), "/", env, "/", Text(key, "name"));
}

std::string ServiceSummary(const json& spec) {
  std::vector<std::string> ports;
  for (const json& port : Member(spec, "ports")) {
    std::string text = Text(port, "port");
    if (const std::string name = Text(port, "name"); !name.empty()) text = name + ":" + text;
    if (const std::string protocol = Text(port, "protocol"); !protocol.empty()) {
      absl::StrAppend(&text, "/", protocol);
    }
    ports.push_back(std::move(text));
  }
  std::string out = absl::StrJoin(ports, ",");
  if (const std::string policy = Text(Member(spec, "load_balancing"), "policy"); !policy.empty()) {
    absl::StrAppend(&out, out.empty() ? "" : " ", "lb=", policy);
  }
  return out;
}

std::string EndpointSummary(const json& spec) {
  std::string out = absl::StrCat(Text(spec, "address"), ":", Text(spec, "port"));
  if (const std::string service = Text(spec, "service"); !service.empty()) {
    absl::StrAppend(&out, " -> ", service);
  }
  for (const char* field : {"weight", "zone", "health"}) {
    if (const std::string value = Text(spec, field); !value.empty()) {
      absl::StrAppend(&out, " ", field, "=", value);
    }
  }
  return out;
}

std::string RouteSummary(const json& spec) {
  std::vector<std::string> hosts;
  for (const json& host : Member(spec, "hosts")) {
    if (host.is_string()) hosts.push_back(host.get<std::string>());
  }
  std::string out = hosts.empty() ? "*" : absl::StrJoin(hosts, ",");
  if (const std::string port = Text(spec, "port"); !port.empty()) absl::StrAppend(&out, ":", port);
  const size_t rules = Member(spec, "rules").is_array() ? Member(spec, "rules").size() : 0;
  absl::StrAppend(&out, " ", rules, rules == 1 ? " rule" : " rules");
  return out;
}

std::string CertificateSummary(const json& spec) {
  std::vector<std::string> parts;
  if (const std::string not_after = Text(spec, "not_after"); !not_after.empty()) {
    parts.push_back("expires " + ShortTime(not_after));
  }
  std::vector<std::string> sans;
  for (const json& san : Member(spec, "sans")) {
    if (san.is_string()) sans.push_back(san.get<std::string>());
  }
  if (!sans.empty()) parts.push_back("sans=" + absl::StrJoin(sans, ","));
  return absl::StrJoin(parts, " ");
}

std::string ConfigSummary(const json& spec) {
  std::string out = absl::StrCat(Text(spec, "service"), "/", Text(spec, "key"), " = ");
  const json& value = Member(spec, "value");
  absl::StrAppend(&out, value.is_null() ? "null" : value.dump());
  if (Member(spec, "secret") == true) absl::StrAppend(&out, " (secret)");
  return out;
}

// Leaves of a JSON value by path ("spec.ports[0].port"); empty containers are leaves too.
void Flatten(const json& value, const std::string& path, std::map<std::string, json>& out) {
  if (value.is_object() && !value.empty()) {
    for (const auto& [name, item] : value.items()) {
      Flatten(item, path.empty() ? name : absl::StrCat(path, ".", name), out);
    }
  } else if (value.is_array() && !value.empty()) {
    for (size_t i = 0; i < value.size(); ++i)
      Flatten(value[i], absl::StrCat(path, "[", i, "]"), out);
  } else {
    out[path] = value;
  }
}

std::map<std::string, json> Fields(const json& resource) {
  std::map<std::string, json> fields;
  for (const char* part : {"labels", "spec"}) {
    const json& value = Member(resource, part);
    if (value.is_object()) {
      for (const auto& [name, item] : value.items())
        Flatten(item, absl::StrCat(part, ".", name), fields);
    }
  }
  return fields;
}

std::string DiffValue(const std::map<std::string, json>& fields, const std::string& path) {
  auto it = fields.find(path);
  return it == fields.end() ? "(unset)" : Truncate(it->second.dump(), kMaxDiffValue);
}

std::string Pad(std::string text, size_t width) {
  const size_t shown = DisplayWidth(text);
  if (shown < width) text.append(width - shown, ' ');
  return text;
}

// A revision number, or "-" for none (0).
std::string RevisionText(const json& object, const char* name) {
  const std::string text = Text(object, name);
  return text.empty() || text == "0" ? "-" : text;
}

}  // namespace

std::string LabelsText(const json& labels) {
  // Sorted: the server's order follows a protobuf map, which has none.
  std::map<std::string, std::string> sorted;
  if (labels.is_object()) {
    for (const auto& [name, value] : labels.items()) {
      sorted[name] = value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  return sorted.empty() ? "<none>" : absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

std::string SpecSummary(const std::string& kind, const json& spec) {
  std::string summary;
  if (kind == "services") summary = ServiceSummary(spec);
  if (kind == "endpoints") summary = EndpointSummary(spec);
  if (kind == "routes") summary = RouteSummary(spec);
  if (kind == "certificates") summary = CertificateSummary(spec);
  if (kind == "configs") summary = ConfigSummary(spec);
  return Truncate(std::move(summary), kMaxSummary);
}

std::string ShortTime(const std::string& rfc3339) {
  const size_t dot = rfc3339.find('.');
  if (dot == std::string::npos) return rfc3339;
  const size_t zone = rfc3339.find_first_of("Z+-", dot);
  return rfc3339.substr(0, dot) + (zone == std::string::npos ? "" : rfc3339.substr(zone));
}

std::string ChangeVerb(const json& change) {
  const bool has_before = Member(change, "before").is_object();
  const bool has_after = Member(change, "after").is_object();
  if (Text(change, "operation") == "DELETE" || (has_before && !has_after)) return "DELETE";
  return has_before ? "UPDATE" : "CREATE";
}

std::string ResourceTable(const json& resources) {
  Table table({"NAME", "VERSION", "MOD_REVISION", "LABELS", "SUMMARY"});
  for (const json& resource : resources) {
    table.AddRow({Text(resource, "name"), Text(resource, "version"), Text(resource, "mod_revision"),
                  LabelsText(Member(resource, "labels")),
                  SpecSummary(Text(resource, "kind"), Member(resource, "spec"))});
  }
  return table.Render();
}

std::string HistoryTable(const json& entries, const std::string& environment) {
  Table table({"REVISION", "TIME", "ACTOR", "OPERATION", "KIND/NAME", "COMMENT"});
  for (const json& entry : entries) {
    const json& change = Member(entry, "change");
    std::string comment = Text(entry, "comment");
    if (const std::string to = Text(entry, "rollback_to"); !to.empty() && to != "0") {
      comment = absl::StrCat("(rollback to ", to, ")", comment.empty() ? "" : " ", comment);
    }
    table.AddRow({Text(entry, "revision"), ShortTime(Text(entry, "time")), Text(entry, "actor"),
                  ChangeVerb(change), KeyText(Member(change, "key"), environment), comment});
  }
  return table.Render();
}

std::string DiffText(const json& changes, const std::string& environment) {
  std::string out;
  for (const json& change : changes) {
    const json& before = Member(change, "before");
    const json& after = Member(change, "after");
    const std::string key = KeyText(Member(change, "key"), environment);
    const std::string verb = ChangeVerb(change);
    if (verb == "CREATE") {
      absl::StrAppend(&out, "+ ", key, " (version ", Text(after, "version"), ")\n");
    } else if (verb == "DELETE") {
      absl::StrAppend(&out, "- ", key, " (version ", Text(before, "version"), ")\n");
    } else {
      absl::StrAppend(&out, "~ ", key, " (version ", Text(before, "version"), " -> ",
                      Text(after, "version"), ")\n");
      const auto old_fields = Fields(before);
      const auto new_fields = Fields(after);
      std::map<std::string, bool> paths;
      for (const auto& [path, value] : old_fields) paths[path] = true;
      for (const auto& [path, value] : new_fields) paths[path] = true;
      for (const auto& [path, unused] : paths) {
        const std::string was = DiffValue(old_fields, path);
        const std::string now = DiffValue(new_fields, path);
        if (was != now) absl::StrAppend(&out, "    ", path, ": ", was, " -> ", now, "\n");
      }
    }
  }
  return out;
}

std::string WatchHeader() {
  return absl::StrCat(Pad("REVISION", 10), Pad("TIME", 23), Pad("ACTOR", 16), Pad("OPERATION", 12),
                      Pad("KIND/NAME", 34), "COMMENT\n");
}

std::string WatchEventLine(const json& event, const std::string& environment) {
  const json& change = Member(event, "change");
  std::string line = absl::StrCat(
      Pad(Text(event, "revision"), 9), " ", Pad(ShortTime(Text(event, "time")), 22), " ",
      Pad(Text(event, "actor"), 15), " ", Pad(ChangeVerb(change), 11), " ",
      Pad(KeyText(Member(change, "key"), environment), 33), " ", Text(event, "comment"));
  for (char& c : line) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  line.erase(line.find_last_not_of(' ') + 1);
  return line + "\n";
}

std::string WrittenResourcesText(const json& resources, const std::string& environment) {
  std::string out;
  for (const json& resource : resources) {
    const std::string version = Text(resource, "version");
    absl::StrAppend(
        &out, KeyText(resource, environment),
        version == "1" ? " created" : absl::StrCat(" configured (version ", version, ")"), "\n");
  }
  return out;
}

std::string ChangeRecordsText(const json& changes, const std::string& environment) {
  std::string out;
  for (const json& change : changes) {
    const std::string verb = ChangeVerb(change);
    const std::string key = KeyText(Member(change, "key"), environment);
    if (verb == "DELETE") {
      absl::StrAppend(&out, key, " deleted\n");
    } else {
      absl::StrAppend(&out, key, verb == "CREATE" ? " created" : " updated", " (version ",
                      Text(Member(change, "after"), "version"), ")\n");
    }
  }
  return out;
}

std::string RevisionStatusText(const json& status) {
  std::vector<std::string> environments;
  for (const json& environment : Member(status, "environments")) {
    if (environment.is_string()) environments.push_back(environment.get<std::string>());
  }
  const bool converged = Member(status, "converged") == true;
  std::string out = absl::StrCat(
      "Revision:      ", Text(status, "revision"), "\n",
      "Environments:  ", environments.empty() ? "-" : absl::StrJoin(environments, ", "), "\n",
      "Converged:     ", converged ? "yes" : "no", "\n",
      "Nodes:         ", Text(status, "nodes_in_scope"), " in scope, ",
      Text(status, "applied_count"), " applied, ", Text(status, "nacked_count"), " nacked, ",
      Text(status, "pending_count"), " pending, ", Text(status, "disconnected_count"),
      " disconnected\n");
  Table table({"NODE", "ENVIRONMENT", "STATE", "APPLIED-REVISION", "ERROR"});
  for (const char* state : {"nacked", "pending", "disconnected"}) {
    for (const json& node : Member(status, state)) {
      table.AddRow({Text(node, "id"), Text(node, "environment"), state,
                    RevisionText(node, "applied_revision"),
                    Truncate(Text(node, "nack_error"), kMaxSummary)});
    }
  }
  if (!table.empty()) absl::StrAppend(&out, "\n", table.Render());
  return out;
}

std::string NodesTable(const json& nodes) {
  Table table({"NODE", "ENVIRONMENT", "ZONE", "CONNECTED", "APPLIED", "LAST-SEEN", "REPLICA"});
  for (const json& node : nodes) {
    std::string applied = RevisionText(node, "applied_revision");
    // A rejection newer than what it applied is why it is behind: say so.
    const json& nacked = Member(node, "nacked_revision");
    const json& applied_revision = Member(node, "applied_revision");
    if (nacked.is_number_integer() && applied_revision.is_number_integer() &&
        nacked.get<int64_t>() > applied_revision.get<int64_t>()) {
      absl::StrAppend(&applied, " (nacked ", nacked.get<int64_t>(), ")");
    }
    table.AddRow({Text(node, "id"), Text(node, "environment"), Text(node, "zone"),
                  Member(node, "connected") == true ? "yes" : "no", std::move(applied),
                  ShortTime(Text(node, "last_seen")), Text(node, "replica")});
  }
  return table.Render();
}

}  // namespace meridian::ctl
