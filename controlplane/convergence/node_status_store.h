#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/xds/node_tracker.h"
#include "meridian/v1/convergence.pb.h"

namespace meridian::convergence {

// What one replica knows about one node, as it writes it down.
struct NodeRecord {
  xds::NodeIdentity identity;
  std::string replica;
  int streams = 0;
  absl::Time connected_since;
  absl::Time last_seen;
  int64_t last_sent_revision = 0;
  int64_t applied_revision = 0;
  int64_t nacked_revision = 0;
  int64_t answered_revision = 0;
  std::string nack_type_url;
  std::string nack_error;
};

// Durable, shared node state: every replica writes its nodes, any replica answers queries
// about all of them. A node counts as connected while its holder's heartbeat is fresher
// than `staleness`, so a crashed replica's nodes age out. Thread-safe.
class NodeStatusStore {
 public:
  virtual ~NodeStatusStore() = default;

  // Writes records; a record from a replica that no longer holds the node's stream does not
  // overwrite the holder's (a late "closed" from the old replica after a failover).
  virtual absl::Status Upsert(const std::vector<NodeRecord>& records) = 0;
  // Writes only the progress columns (last_sent_revision, applied_revision, last_seen) of
  // nodes whose row `records[i].replica` holds: the cheap write for ACK traffic.
  virtual absl::Status UpdateProgress(const std::vector<NodeRecord>& records) = 0;
  // environments empty = all.
  virtual absl::StatusOr<std::vector<v1::NodeStatus>> List(
      const std::vector<std::string>& environments, absl::Duration staleness) = 0;
  virtual absl::StatusOr<v1::NodeStatus> Get(const std::string& node_id,
                                             absl::Duration staleness) = 0;
  // The environments a revision changed: its convergence scope. NotFound for an unknown
  // revision, OutOfRange for a compacted one.
  virtual absl::StatusOr<std::vector<std::string>> RevisionScope(int64_t revision) = 0;
};

}  // namespace meridian::convergence
