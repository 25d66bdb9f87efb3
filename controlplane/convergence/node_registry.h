#pragma once

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "controlplane/convergence/node_status_store.h"
#include "controlplane/xds/node_tracker.h"

namespace meridian::convergence {

// This replica's view of its xDS nodes: fed by the streams (as their NodeTracker), written to
// the shared NodeStatusStore in small batches off the streams' threads, with a heartbeat
// that keeps connected nodes fresh. Thread-safe; tracker calls only take a mutex.
class NodeRegistry : public xds::NodeTracker {
 public:
  struct Options {
    std::string replica_id;
    absl::Duration flush_interval = absl::Milliseconds(100);
    absl::Duration heartbeat_interval = absl::Seconds(5);
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  NodeRegistry(NodeStatusStore& store, Options options);
  ~NodeRegistry() override;

  void Start();
  // Records every node of this replica as disconnected and stops flushing.
  void Stop();
  // Writes pending changes now (queries call it so they see this replica's latest).
  absl::Status Flush();

  // A node is connected while its heartbeat is fresher than this.
  absl::Duration staleness() const { return options_.heartbeat_interval * 3; }

  void StreamOpened(const xds::NodeIdentity& node, uint64_t stream_id) override;
  void StreamClosed(const xds::NodeIdentity& node, uint64_t stream_id) override;
  void Sent(const xds::NodeIdentity& node, int64_t revision) override;
  void Synced(const xds::NodeIdentity& node, int64_t revision) override;
  void Nacked(const xds::NodeIdentity& node, const std::string& type_url, int64_t revision,
              const std::string& error) override;

 private:
  struct Node {
    NodeRecord record;
    absl::flat_hash_set<uint64_t> streams;
    bool dirty = true;
  };

  Node& Touch(const xds::NodeIdentity& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FlushLoop();

  NodeStatusStore& store_;
  const Options options_;
  absl::Mutex flush_mu_;  // one flush at a time, in order
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread flusher_;
};

}  // namespace meridian::convergence
