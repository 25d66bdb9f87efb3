#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "controlplane/store/config_store.h"

namespace meridian::api {

// OutOfRange when events after `after_revision` are no longer all in the history, checked
// against the store itself before a watch stream starts. The change feed serves recent
// revisions from memory and may still hold some the store has already compacted; a client
// must nevertheless learn that it cannot resume from there (as etcd's "compacted" error).
absl::Status CheckWatchStart(store::ConfigStore& store, int64_t after_revision);

}  // namespace meridian::api
