#include "controlplane/convergence/node_registry.h"

#include "absl/hash/hash.h"
#include "spdlog/spdlog.h"

namespace meridian::convergence {

NodeRegistry::NodeRegistry(NodeStatusStore& store, Options options)
    : store_(store), options_(std::move(options)) {}

NodeRegistry::~NodeRegistry() { Stop(); }

void NodeRegistry::Start() {
  flusher_ = std::thread([this] { FlushLoop(); });
}

void NodeRegistry::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    for (auto& [id, node] : shard.nodes) {
      node.streams.clear();
      node.record.streams = 0;
      MarkDirty(node, Dirty::kState);
    }
  }
  if (flusher_.joinable()) flusher_.join();
  if (absl::Status status = Flush(); !status.ok()) {
    spdlog::warn("could not record nodes as disconnected: {}", status.ToString());
  }
}

NodeRegistry::Shard& NodeRegistry::ShardOf(const std::string& node_id) {
  return shards_[absl::HashOf(node_id) % kShards];
}

void NodeRegistry::MarkDirty(Node& node, Dirty dirty) {
  if (dirty > node.dirty) node.dirty = dirty;
}

void NodeRegistry::StreamOpened(const xds::NodeIdentity& identity, uint64_t stream_id) {
  Shard& shard = ShardOf(identity.id);
  absl::MutexLock lock(&shard.mu);
  Node& node = shard.nodes[identity.id];
  node.record.identity = identity;
  node.record.replica = options_.replica_id;
  node.record.last_seen = options_.now();
  if (node.streams.empty()) node.record.connected_since = node.record.last_seen;
  node.streams.insert(stream_id);
  node.record.streams = static_cast<int>(node.streams.size());
  MarkDirty(node, Dirty::kState);
}

template <typename Update>
void NodeRegistry::UpdateNode(const std::string& node_id, Update update) {
  Shard& shard = ShardOf(node_id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.nodes.find(node_id);
  if (it != shard.nodes.end()) update(it->second);
}

void NodeRegistry::StreamClosed(const xds::NodeIdentity& identity, uint64_t stream_id) {
  UpdateNode(identity.id, [&](Node& node) {
    node.streams.erase(stream_id);
    node.record.streams = static_cast<int>(node.streams.size());
    node.record.last_seen = options_.now();
    MarkDirty(node, Dirty::kState);
  });
}

void NodeRegistry::Sent(const xds::NodeIdentity& identity, int64_t revision) {
  UpdateNode(identity.id, [&](Node& node) {
    if (node.record.last_sent_revision >= revision) return;
    node.record.last_sent_revision = revision;
    MarkDirty(node, Dirty::kProgress);
  });
}

void NodeRegistry::Synced(const xds::NodeIdentity& identity, int64_t revision) {
  UpdateNode(identity.id, [&](Node& node) {
    node.record.last_seen = options_.now();
    if (node.record.applied_revision >= revision) return;
    node.record.applied_revision = revision;
    node.record.answered_revision = std::max(node.record.answered_revision, revision);
    MarkDirty(node, Dirty::kProgress);
  });
}

void NodeRegistry::Answered(const xds::NodeIdentity& identity, int64_t revision) {
  UpdateNode(identity.id, [&](Node& node) {
    node.record.last_seen = options_.now();
    if (node.record.answered_revision >= revision) return;
    node.record.answered_revision = revision;
    MarkDirty(node, Dirty::kProgress);
  });
}

void NodeRegistry::Nacked(const xds::NodeIdentity& identity, const std::string& type_url,
                          int64_t revision, const std::string& error) {
  UpdateNode(identity.id, [&](Node& node) {
    node.record.last_seen = options_.now();
    node.record.nacked_revision = revision;
    node.record.nack_type_url = type_url;
    node.record.nack_error = error;
    MarkDirty(node, Dirty::kState);
  });
}

void NodeRegistry::FanOutStarted() {
  absl::MutexLock lock(&fan_out_mu_);
  ++fan_outs_;
}

void NodeRegistry::FanOutFinished() {
  absl::MutexLock lock(&fan_out_mu_);
  --fan_outs_;
  last_fan_out_end_ = options_.now();
}

bool NodeRegistry::FanOutBusy(absl::Time now) {
  absl::MutexLock lock(&fan_out_mu_);
  return fan_outs_ > 0 || now - last_fan_out_end_ < options_.progress_quiet_after_fan_out;
}

absl::Status NodeRegistry::FlushChanges(uint32_t progress_shards) {
  absl::MutexLock flush_lock(&flush_mu_);
  std::vector<NodeRecord> batch;     // full rows: connects, disconnects, NACKs, heartbeats
  std::vector<NodeRecord> progress;  // sent/applied revisions only
  for (int index = 0; index < static_cast<int>(kShards); ++index) {
    Shard& shard = shards_[index];
    const bool include_progress = (progress_shards & (1u << index)) != 0;
    absl::MutexLock lock(&shard.mu);
    for (auto it = shard.nodes.begin(); it != shard.nodes.end();) {
      Node& node = it->second;
      if (node.dirty == Dirty::kState) {
        batch.push_back(node.record);
        node.dirty = Dirty::kClean;
      } else if (node.dirty == Dirty::kProgress && include_progress) {
        progress.push_back(node.record);
        node.dirty = Dirty::kClean;
      }
      // A node with no stream here is written once more (as disconnected), then forgotten.
      if (node.streams.empty() && node.dirty == Dirty::kClean) {
        shard.nodes.erase(it++);
      } else {
        ++it;
      }
    }
  }
  absl::Status status = store_.Upsert(batch);
  if (status.ok()) {
    status = store_.UpdateProgress(progress);
    batch.clear();  // written; only the progress (if that failed) goes back
  }
  if (!status.ok()) {
    // Keep them for the next attempt (the database may be restarting).
    batch.insert(batch.end(), std::make_move_iterator(progress.begin()),
                 std::make_move_iterator(progress.end()));
    for (NodeRecord& record : batch) {
      Shard& shard = ShardOf(record.identity.id);
      absl::MutexLock lock(&shard.mu);
      auto [it, inserted] = shard.nodes.try_emplace(record.identity.id);
      if (inserted) it->second.record = std::move(record);
      MarkDirty(it->second, Dirty::kState);
    }
  }
  return status;
}

void NodeRegistry::FlushLoop() {
  // Progress: one shard per slice, every shard once per progress_flush_interval.
  const absl::Duration slice = options_.progress_flush_interval / static_cast<int64_t>(kShards);
  const absl::Duration tick = std::min(options_.flush_interval, slice);
  absl::Time next_heartbeat = options_.now() + options_.heartbeat_interval;
  absl::Time next_slice = options_.now() + slice;
  int progress_shard = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick);
      if (stopping_) return;
    }
    const absl::Time now = options_.now();
    if (now >= next_heartbeat) {
      for (Shard& shard : shards_) {
        absl::MutexLock lock(&shard.mu);
        for (auto& [id, node] : shard.nodes) {
          node.record.last_seen = now;
          MarkDirty(node, Dirty::kProgress);  // rows exist: the narrow update refreshes them
        }
      }
      next_heartbeat = now + options_.heartbeat_interval;
    }
    uint32_t shards_now = 0;
    // A due slice waits while a fan-out is busy, for at most max_progress_deferral.
    if (now >= next_slice &&
        (now - next_slice >= options_.max_progress_deferral || !FanOutBusy(now))) {
      // Every slice that fell due meanwhile (a fan-out held them back) goes out now, so the
      // interval holds even when fan-outs follow each other.
      const int64_t due = std::min<int64_t>(kShards, 1 + (now - next_slice) / slice);
      for (int64_t i = 0; i < due; ++i) {
        shards_now |= 1u << progress_shard;
        progress_shard = (progress_shard + 1) % static_cast<int>(kShards);
      }
      next_slice += slice * due;
      if (next_slice <= now) next_slice = now + slice;
    }
    if (absl::Status status = FlushChanges(shards_now); !status.ok()) {
      spdlog::debug("node status flush failed: {}", status.ToString());
    }
  }
}

}  // namespace meridian::convergence
