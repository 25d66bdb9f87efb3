#pragma once

#include "absl/strings/string_view.h"
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/map.h"

namespace meridian::model {

// A Kubernetes-style equality selector: "app=web,tier!=db,canary,!legacy".
class LabelSelector {
 public:
  enum class Op { kEquals, kNotEquals, kExists, kNotExists };
  struct Requirement {
    std::string key;
    Op op;
    std::string value;
  };

  static absl::StatusOr<LabelSelector> Parse(absl::string_view text);

  bool Matches(const google::protobuf::Map<std::string, std::string>& labels) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace meridian::model
