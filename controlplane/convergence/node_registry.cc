#include "controlplane/convergence/node_registry.h"

#include "spdlog/spdlog.h"

namespace meridian::convergence {

NodeRegistry::NodeRegistry(NodeStatusStore& store, Options options)
    : store_(store), options_(std::move(options)) {}

NodeRegistry::~NodeRegistry() { Stop(); }

void NodeRegistry::Start() { flusher_ = std::thread([this] { FlushLoop(); }); }

void NodeRegistry::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [id, node] : nodes_) {
      node.streams.clear();
      node.record.streams = 0;
      node.dirty = true;
    }
  }
  if (flusher_.joinable()) flusher_.join();
  if (absl::Status status = Flush(); !status.ok()) {
    spdlog::warn("could not record nodes as disconnected: {}", status.ToString());
  }
}

NodeRegistry::Node& NodeRegistry::Touch(const xds::NodeIdentity& identity) {
  Node& node = nodes_[identity.id];
  node.record.identity = identity;
  node.record.replica = options_.replica_id;
  node.record.last_seen = options_.now();
  node.dirty = true;
  return node;
}

void NodeRegistry::StreamOpened(const xds::NodeIdentity& identity, uint64_t stream_id) {
  absl::MutexLock lock(&mu_);
  Node& node = Touch(identity);
  if (node.streams.empty()) node.record.connected_since = options_.now();
  node.streams.insert(stream_id);
  node.record.streams = static_cast<int>(node.streams.size());
}

void NodeRegistry::StreamClosed(const xds::NodeIdentity& identity, uint64_t stream_id) {
  absl::MutexLock lock(&mu_);
  Node& node = Touch(identity);
  node.streams.erase(stream_id);
  node.record.streams = static_cast<int>(node.streams.size());
}

void NodeRegistry::Sent(const xds::NodeIdentity& identity, int64_t revision) {
  absl::MutexLock lock(&mu_);
  Node& node = Touch(identity);
  node.record.last_sent_revision = std::max(node.record.last_sent_revision, revision);
}

void NodeRegistry::Synced(const xds::NodeIdentity& identity, int64_t revision) {
  absl::MutexLock lock(&mu_);
  Node& node = Touch(identity);
  node.record.applied_revision = std::max(node.record.applied_revision, revision);
}

void NodeRegistry::Nacked(const xds::NodeIdentity& identity, const std::string& type_url,
                          int64_t revision, const std::string& error) {
  absl::MutexLock lock(&mu_);
  Node& node = Touch(identity);
  node.record.nacked_revision = revision;
  node.record.nack_type_url = type_url;
  node.record.nack_error = error;
}

absl::Status NodeRegistry::Flush() {
  absl::MutexLock flush_lock(&flush_mu_);
  std::vector<NodeRecord> batch;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      Node& node = it->second;
      if (node.dirty) {
        batch.push_back(node.record);
        node.dirty = false;
      }
      // A node with no stream here is written once more (as disconnected), then forgotten.
      if (node.streams.empty()) {
        nodes_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  absl::Status status = store_.Upsert(batch);
  if (!status.ok()) {
    // Keep them for the next attempt (the database may be restarting).
    absl::MutexLock lock(&mu_);
    for (NodeRecord& record : batch) {
      auto [it, inserted] = nodes_.try_emplace(record.identity.id);
      if (inserted) it->second.record = std::move(record);
      it->second.dirty = true;
    }
  }
  return status;
}

void NodeRegistry::FlushLoop() {
  absl::Time next_heartbeat = options_.now() + options_.heartbeat_interval;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.flush_interval);
      if (stopping_) return;
      if (options_.now() >= next_heartbeat) {
        for (auto& [id, node] : nodes_) {
          node.record.last_seen = options_.now();
          node.dirty = true;
        }
        next_heartbeat = options_.now() + options_.heartbeat_interval;
      }
    }
    if (absl::Status status = Flush(); !status.ok()) {
      spdlog::debug("node status flush failed: {}", status.ToString());
    }
  }
}

}  // namespace meridian::convergence
