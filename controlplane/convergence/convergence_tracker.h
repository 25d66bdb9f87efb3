#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controlplane/convergence/node_registry.h"
#include "controlplane/convergence/node_status_store.h"
#include "meridian/v1/convergence.pb.h"

namespace meridian::convergence {

// Answers "did revision N reach the proxies?" from the shared node state, for nodes on any
// replica: which nodes in the revision's scope (the environments it changed) applied it,
// rejected it (with the reason), are still pending, or are not connected. Thread-safe.
class ConvergenceTracker {
 public:
  ConvergenceTracker(NodeStatusStore& store, NodeRegistry& local_nodes);

  absl::StatusOr<v1::ListNodesResponse> ListNodes(const std::string& environment,
                                                 v1::NodeState state);
  absl::StatusOr<v1::NodeStatus> GetNode(const std::string& node_id);
  absl::StatusOr<v1::RevisionStatus> RevisionStatus(int64_t revision);
  // Polls until nothing is pending or `timeout` passes (converged = false then).
  absl::StatusOr<v1::RevisionStatus> WaitForRevision(int64_t revision, absl::Duration timeout);

 private:
  NodeStatusStore& store_;
  NodeRegistry& local_nodes_;
};

// Sorts the nodes of a scope into applied / nacked / pending / disconnected.
v1::RevisionStatus ClassifyNodes(int64_t revision, const std::vector<std::string>& environments,
                                 const std::vector<v1::NodeStatus>& nodes);

}  // namespace meridian::convergence
