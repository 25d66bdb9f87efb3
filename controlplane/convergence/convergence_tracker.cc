#include "controlplane/convergence/convergence_tracker.h"

#include "absl/time/clock.h"
#include "controlplane/common/status_macros.h"

namespace meridian::convergence {
namespace {

constexpr absl::Duration kWaitPollInterval = absl::Milliseconds(50);

}  // namespace

ConvergenceTracker::ConvergenceTracker(NodeStatusStore& store, NodeRegistry& local_nodes)
    : store_(store), local_nodes_(local_nodes) {}

v1::RevisionStatus ClassifyNodes(int64_t revision, const std::vector<std::string>& environments,
                                 const std::vector<v1::NodeStatus>& nodes) {
  v1::RevisionStatus status;
  status.set_revision(revision);
  for (const std::string& environment : environments) status.add_environments(environment);
  for (const v1::NodeStatus& node : nodes) {
    status.set_nodes_in_scope(status.nodes_in_scope() + 1);
    if (node.applied_revision() >= revision) {
      *status.add_applied() = node;
    } else if (node.nacked_revision() >= revision ||
               (node.nacked_revision() > node.applied_revision() &&
                node.answered_revision() >= revision)) {
      // Rejected this revision, or has answered it while still rejecting an earlier one:
      // either way it does not run this revision, and waiting will not change that. A node
      // stuck on an earlier rejection that has not answered this revision yet is pending:
      // this revision may be the fix.
      *status.add_nacked() = node;
    } else if (node.connected()) {
      *status.add_pending() = node;
    } else {
      *status.add_disconnected() = node;
    }
  }
  status.set_applied_count(status.applied_size());
  status.set_converged(status.pending().empty());
  return status;
}

absl::StatusOr<v1::ListNodesResponse> ConvergenceTracker::ListNodes(const std::string& environment,
                                                                   v1::NodeState state) {
  (void)local_nodes_.Flush();  // best effort: the store's answer is the truth either way
  std::vector<std::string> environments;
  if (!environment.empty()) environments.push_back(environment);
  MERIDIAN_ASSIGN_OR_RETURN(auto nodes, store_.List(environments, local_nodes_.staleness()));
  v1::ListNodesResponse response;
  for (auto& node : nodes) {
    if (state == v1::CONNECTED && !node.connected()) continue;
    if (state == v1::DISCONNECTED && node.connected()) continue;
    *response.add_nodes() = std::move(node);
  }
  return response;
}

absl::StatusOr<v1::NodeStatus> ConvergenceTracker::GetNode(const std::string& node_id) {
  (void)local_nodes_.Flush();
  return store_.Get(node_id, local_nodes_.staleness());
}

absl::StatusOr<v1::RevisionStatus> ConvergenceTracker::RevisionStatus(int64_t revision) {
  // 0 is proto3's unset value: a request that forgot the revision is malformed, not unknown.
  if (revision <= 0) return absl::InvalidArgumentError("revision: must be a positive integer");
  (void)local_nodes_.Flush();
  MERIDIAN_ASSIGN_OR_RETURN(auto environments, store_.RevisionScope(revision));
  MERIDIAN_ASSIGN_OR_RETURN(auto nodes, store_.List(environments, local_nodes_.staleness()));
  return ClassifyNodes(revision, environments, nodes);
}

absl::StatusOr<v1::RevisionStatus> ConvergenceTracker::WaitForRevision(int64_t revision,
                                                                       absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    MERIDIAN_ASSIGN_OR_RETURN(v1::RevisionStatus status, RevisionStatus(revision));
    if (status.converged() || absl::Now() >= deadline) return status;
    absl::SleepFor(std::min(kWaitPollInterval, deadline - absl::Now()));
  }
}

}  // namespace meridian::convergence
