#include "controlplane/api/watch_start.h"

#include "absl/strings/str_cat.h"

namespace meridian::api {

absl::Status CheckWatchStart(store::ConfigStore& store, int64_t after_revision) {
  if (after_revision < 0) return absl::InvalidArgumentError("since_revision: must be >= 0");
  auto revisions = store.Revisions();
  if (!revisions.ok()) return revisions.status();
  if (after_revision < revisions->compacted) {
    return absl::OutOfRangeError(absl::StrCat(
        "since_revision: ", after_revision, " is compacted; history starts after revision ",
        revisions->compacted, ". List again and watch from the list's revision"));
  }
  return absl::OkStatus();
}

}  // namespace meridian::api
