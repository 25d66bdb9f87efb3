#pragma once

#include <array>
#include <cstdint>
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
// the shared NodeStatusStore in batches off the streams' threads, with a heartbeat that keeps
// connected nodes fresh. Thread-safe. Sent/Synced run once per push and per ACK on every
// stream, so they only touch the node's shard (no identity copies, no global lock), and
// progress alone (sent/applied revisions) is written at a slower cadence than connects,
// disconnects and NACKs: at 10,000 nodes, writing every node's row after every revision
// cost PostgreSQL more CPU than the push itself. Progress goes out one shard at a time, so
// the rows are spread evenly over the interval instead of arriving as one burst that competes
// with a fan-out, and a due shard waits while a fan-out runs (at most max_progress_deferral).
// Queries call Flush(), so this replica's answers are always current; other replicas see
// progress within progress_flush_interval plus that deferral.
class NodeRegistry : public xds::NodeTracker {
 public:
  struct Options {
    std::string replica_id;
    absl::Duration flush_interval = absl::Milliseconds(100);
    absl::Duration heartbeat_interval = absl::Seconds(5);
    absl::Duration progress_flush_interval = absl::Seconds(1);
    // Progress rows wait while a fan-out runs and for this long after it (the clients are
    // still taking in the push and ACKing it), for at most max_progress_deferral. At 10,000
    // streams they cost PostgreSQL and this process about 12% of a 2-core machine, which the
    // fan-out lacked.
    absl::Duration progress_quiet_after_fan_out = absl::Milliseconds(100);
    absl::Duration max_progress_deferral = absl::Seconds(1);
    std::function<absl::Time()> now = [] { return absl::Now(); };
  };

  NodeRegistry(NodeStatusStore& store, Options options);
  ~NodeRegistry() override;

  void Start();
  // Records every node of this replica as disconnected and stops flushing.
  void Stop();
  // Writes every pending change now (queries call it so they see this replica's latest).
  absl::Status Flush() { return FlushChanges(kAllShards); }

  // A node is connected while its heartbeat is fresher than this.
  absl::Duration staleness() const { return options_.heartbeat_interval * 3; }

  void StreamOpened(const xds::NodeIdentity& node, uint64_t stream_id) override;
  void StreamClosed(const xds::NodeIdentity& node, uint64_t stream_id) override;
  void Sent(const xds::NodeIdentity& node, int64_t revision) override;
  void Synced(const xds::NodeIdentity& node, int64_t revision) override;
  void Answered(const xds::NodeIdentity& node, int64_t revision) override;
  void Nacked(const xds::NodeIdentity& node, const std::string& type_url, int64_t revision,
              const std::string& error) override;
  void FanOutStarted() override;
  void FanOutFinished() override;

 private:
  enum class Dirty { kClean, kProgress, kState };
  struct Node {
    NodeRecord record;
    absl::flat_hash_set<uint64_t> streams;
    Dirty dirty = Dirty::kState;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Node> nodes ABSL_GUARDED_BY(mu);
  };
  static constexpr size_t kShards = 16;

  Shard& ShardOf(const std::string& node_id);
  // Runs `update` on the node under its shard's lock; a node this replica does not hold is
  // left alone.
  template <typename Update>
  void UpdateNode(const std::string& node_id, Update update);
  // Marks `node` changed; kState outranks kProgress.
  static void MarkDirty(Node& node, Dirty dirty);
  // Writes every state change, and the progress of the shards in the bitmask
  // `progress_shards`.
  absl::Status FlushChanges(uint32_t progress_shards);
  static constexpr uint32_t kAllShards = (1u << kShards) - 1;
  void FlushLoop();
  // Whether progress rows should wait for a fan-out now.
  bool FanOutBusy(absl::Time now);

  NodeStatusStore& store_;
  const Options options_;
  absl::Mutex flush_mu_;  // one flush at a time, in order
  std::array<Shard, kShards> shards_;
  absl::Mutex fan_out_mu_;
  int fan_outs_ ABSL_GUARDED_BY(fan_out_mu_) = 0;  // in progress
  absl::Time last_fan_out_end_ ABSL_GUARDED_BY(fan_out_mu_) = absl::InfinitePast();
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread flusher_;
};

}  // namespace meridian::convergence
