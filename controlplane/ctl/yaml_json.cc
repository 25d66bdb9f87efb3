#include "controlplane/ctl/yaml_json.h"

#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "yaml-cpp/yaml.h"

namespace meridian::ctl {
namespace {

using json = nlohmann::ordered_json;

constexpr std::string_view kTagPrefix = "tag:yaml.org,2002:";
constexpr std::string_view kStringTag = "tag:yaml.org,2002:str";

size_t CountDigits(std::string_view s, size_t from) {
  size_t n = 0;
  while (from + n < s.size() && s[from + n] >= '0' && s[from + n] <= '9') ++n;
  return n;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, the core schema's float.
bool IsCoreFloat(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  const size_t int_digits = CountDigits(s, i);
  i += int_digits;
  size_t frac_digits = 0;
  if (i < s.size() && s[i] == '.') {
    frac_digits = CountDigits(s, ++i);
    i += frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    const size_t exp_digits = CountDigits(s, i);
    if (exp_digits == 0) return false;
    i += exp_digits;
  }
  return i == s.size();
}

template <typename T>
std::optional<T> ParseWhole(std::string_view s, int base) {
  T value{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

std::optional<json> ParseDecimalInteger(std::string_view s) {
  std::string_view digits = s;
  if (!digits.empty() && digits[0] == '+') digits.remove_prefix(1);
  if (auto value = ParseWhole<int64_t>(digits, 10)) return json(*value);
  if (auto value = ParseWhole<uint64_t>(digits, 10)) return json(*value);
  return std::nullopt;  // too large for 64 bits: the caller reads it as a float
}

std::optional<json> ParseFloat(std::string_view s) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  double value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return json(value);
}

// The YAML 1.2 core schema for a plain scalar. `.inf` and `.nan` have no JSON form and stay
// strings.
json ResolvePlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  const std::string_view view = s;
  const size_t sign = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (CountDigits(view, sign) == s.size() - sign && s.size() > sign) {
    if (auto value = ParseDecimalInteger(view)) return *value;
    if (auto value = ParseFloat(view)) return *value;
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    if (auto value = ParseWhole<int64_t>(view.substr(2), s[1] == 'x' ? 16 : 8)) return *value;
  }
  if (IsCoreFloat(view)) {
    if (auto value = ParseFloat(view)) return *value;
  }
  return s;
}

class YamlConverter {
 public:
  explicit YamlConverter(const std::string& source) : source_(source) {}

  absl::StatusOr<json> Convert(const YAML::Node& node) {
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return nullptr;
      case YAML::NodeType::Scalar:
        return ConvertScalar(node);
      case YAML::NodeType::Sequence: {
        json out = json::array();
        for (const YAML::Node& item : node) {
          absl::StatusOr<json> value = Convert(item);
          if (!value.ok()) return value.status();
          out.push_back(*std::move(value));
        }
        return out;
      }
      case YAML::NodeType::Map:
        return ConvertMap(node);
    }
    return Error(node, "unsupported YAML node");
  }

 private:
  absl::Status Error(const YAML::Node& node, absl::string_view message) const {
    const YAML::Mark mark = node.Mark();
    if (mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(source_, ": ", message));
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1, ": ", message));
  }

  absl::StatusOr<json> ConvertMap(const YAML::Node& node) {
    json out = json::object();
    for (const auto& entry : node) {
      if (!entry.first.IsScalar()) return Error(entry.first, "mapping keys must be scalars");
      const std::string& key = entry.first.Scalar();
      if (out.contains(key)) {
        return Error(entry.first, absl::StrCat("duplicate key \"", key, "\""));
      }
      absl::StatusOr<json> value = Convert(entry.second);
      if (!value.ok()) return value.status();
      out[key] = *std::move(value);
    }
    return out;
  }

  absl::StatusOr<json> ConvertScalar(const YAML::Node& node) {
    const std::string& tag = node.Tag();
    const std::string& text = node.Scalar();
    // "!" marks a quoted scalar, "?" (or nothing) a plain one.
    if (tag == "!" || tag == kStringTag) return text;
    json value = ResolvePlainScalar(text);
    if (tag.empty() || tag == "?") return value;
    const std::string wanted =
        tag.starts_with(kTagPrefix) ? tag.substr(kTagPrefix.size()) : std::string();
    const bool fits = (wanted == "int" && value.is_number_integer()) ||
                      (wanted == "float" && value.is_number()) ||
                      (wanted == "bool" && value.is_boolean()) ||
                      (wanted == "null" && value.is_null());
    if (wanted == "float" && value.is_number_integer()) return json(value.get<double>());
    if (fits) return value;
    if (wanted == "int" || wanted == "float" || wanted == "bool" || wanted == "null") {
      return Error(node, absl::StrCat("\"", text, "\" is not a valid !!", wanted));
    }
    return Error(node, absl::StrCat("unsupported tag ", tag));
  }

  const std::string& source_;
};

// Strips nlohmann's "[json.exception.parse_error.101] " prefix.
std::string JsonErrorMessage(const json::exception& e) {
  std::string_view what = e.what();
  if (auto end = what.find("] "); what.starts_with("[json.exception") && end != what.npos) {
    what.remove_prefix(end + 2);
  }
  return std::string(what);
}

bool LooksLikeJson(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  return first != std::string::npos && (text[first] == '{' || text[first] == '[');
}

absl::StatusOr<std::vector<json>> ParseYaml(const std::string& text, const std::string& source) {
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.msg));
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
  YamlConverter converter(source);
  std::vector<json> documents;
  for (const YAML::Node& node : nodes) {
    absl::StatusOr<json> document = converter.Convert(node);
    if (!document.ok()) return document.status();
    if (!document->is_null()) documents.push_back(*std::move(document));
  }
  return documents;
}

// Multi-line strings read best as literal blocks, but only some survive the trip: clip
// chomping restores exactly one final newline, and an indented first line would need an
// indentation indicator.
bool FitsLiteralBlock(const std::string& s) {
  if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n' || s[0] == ' ') return false;
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 && c != '\n') return false;
    if (byte == 0x7f) return false;
  }
  return s.find(" \n") == std::string::npos;
}

// YAML 1.1 readers (PyYAML, older tools) take these for booleans; quote them for their sake.
bool IsYaml11Boolean(const std::string& s) {
  static const std::set<std::string> kWords = {"y", "n", "yes", "no", "on", "off"};
  std::string lower = s;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return kWords.contains(lower);
}

void EmitString(YAML::Emitter& out, const std::string& s) {
  if (s.find('\n') != std::string::npos && FitsLiteralBlock(s)) {
    out << YAML::Literal << s;
  } else if (!ResolvePlainScalar(s).is_string() || IsYaml11Boolean(s)) {
    out << YAML::DoubleQuoted << s;
  } else {
    out << s;  // the emitter quotes on its own what YAML syntax requires
  }
}

void Emit(YAML::Emitter& out, const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      if (value.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (const auto& [key, item] : value.items()) {
        out << YAML::Key;
        EmitString(out, key);
        out << YAML::Value;
        Emit(out, item);
      }
      out << YAML::EndMap;
      return;
    case json::value_t::array:
      if (value.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const json& item : value) Emit(out, item);
      out << YAML::EndSeq;
      return;
    case json::value_t::string:
      EmitString(out, value.get<std::string>());
      return;
    case json::value_t::boolean:
      out << value.get<bool>();
      return;
    case json::value_t::number_integer:
      out << value.get<int64_t>();
      return;
    case json::value_t::number_unsigned:
      out << value.get<uint64_t>();
      return;
    case json::value_t::number_float:
      // nlohmann prints the shortest form that reads back exactly ("0.1", not 0.1000…01).
      out << value.dump();
      return;
    case json::value_t::null:
    case json::value_t::discarded:
    case json::value_t::binary:
      out << YAML::Null;
      return;
  }
}

}  // namespace

absl::StatusOr<std::vector<json>> ParseDocuments(const std::string& text,
                                                 const std::string& source) {
  if (LooksLikeJson(text)) {
    try {
      return std::vector<json>{json::parse(text)};
    } catch (const json::exception& e) {
      // `{kind: services}` is YAML's flow style, not broken JSON: give YAML a chance, but
      // report the JSON error when that fails too, since JSON is what it looked like.
      absl::StatusOr<std::vector<json>> yaml = ParseYaml(text, source);
      if (yaml.ok()) return yaml;
      return absl::InvalidArgumentError(absl::StrCat(source, ": ", JsonErrorMessage(e)));
    }
  }
  return ParseYaml(text, source);
}

std::string JsonToYaml(const json& value) {
  YAML::Emitter out;
  Emit(out, value);
  // A literal block at the very end leaves a blank line behind; clip chomping ignores it.
  std::string text = out.c_str();
  text.erase(text.find_last_not_of('\n') + 1);
  return text + "\n";
}

}  // namespace meridian::ctl
