#include "controlplane/model/label_selector.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace meridian::model {
namespace {

bool IsLabelText(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '/') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::Parse(absl::string_view text) {
  LabelSelector selector;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    Requirement requirement;
    if (size_t pos = part.find("!="); pos != absl::string_view::npos) {
      requirement = {std::string(part.substr(0, pos)), Op::kNotEquals,
                     std::string(part.substr(pos + 2))};
    } else if (size_t eq = part.find('='); eq != absl::string_view::npos) {
      absl::string_view value = part.substr(eq + 1);
      if (absl::ConsumePrefix(&value, "=")) {
        // "==" is the same as "=".
      }
      requirement = {std::string(part.substr(0, eq)), Op::kEquals, std::string(value)};
    } else if (absl::ConsumePrefix(&part, "!")) {
      requirement = {std::string(part), Op::kNotExists, ""};
    } else {
      requirement = {std::string(part), Op::kExists, ""};
    }
    requirement.key = std::string(absl::StripAsciiWhitespace(requirement.key));
    requirement.value = std::string(absl::StripAsciiWhitespace(requirement.value));
    if (!IsLabelText(requirement.key) ||
        (!requirement.value.empty() && !IsLabelText(requirement.value))) {
      return absl::InvalidArgumentError(
          absl::StrCat("label_selector: cannot parse \"", part,
                       "\" (expected key=value, key!=value, key or !key)"));
    }
    selector.requirements_.push_back(std::move(requirement));
  }
  return selector;
}

bool LabelSelector::Matches(const google::protobuf::Map<std::string, std::string>& labels) const {
  for (const auto& requirement : requirements_) {
    auto it = labels.find(requirement.key);
    const bool present = it != labels.end();
    switch (requirement.op) {
      case Op::kEquals:
        if (!present || it->second != requirement.value) return false;
        break;
      case Op::kNotEquals:
        if (present && it->second == requirement.value) return false;
        break;
      case Op::kExists:
        if (!present) return false;
        break;
      case Op::kNotExists:
        if (present) return false;
        break;
    }
  }
  return true;
}

}  // namespace meridian::model
