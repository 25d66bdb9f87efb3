#pragma once

#include <cstdint>
#include <string>

namespace meridian::xds {

// Who is on the other end of an xDS stream, from the Node of its first request.
struct NodeIdentity {
  std::string id;
  std::string cluster;
  std::string environment;
  std::string zone;
  std::string user_agent;
};

// Receives what xDS streams learn about their nodes: the raw material of convergence
// tracking ("did my change reach the proxies?"). Called from gRPC threads, concurrently for
// different streams; implementations must be thread-safe and must not block.
class NodeTracker {
 public:
  virtual ~NodeTracker() = default;

  virtual void StreamOpened(const NodeIdentity& node, uint64_t stream_id) = 0;
  virtual void StreamClosed(const NodeIdentity& node, uint64_t stream_id) = 0;
  // A response carrying changes up to `revision` was written to the node.
  virtual void Sent(const NodeIdentity& node, int64_t revision) = 0;
  // The node has applied everything relevant to it up to `revision` (all sent responses
  // ACKed, nothing pending). Never moves backwards for a stream.
  virtual void Synced(const NodeIdentity& node, int64_t revision) = 0;
  // The node has answered every response up to `revision` (nothing in flight) but still
  // rejects an earlier one, so it will not apply `revision` until a later revision changes
  // what it rejected. Only for such nodes: Synced implies answered.
  virtual void Answered(const NodeIdentity& node, int64_t revision) = 0;
  // The node rejected the response for `type_url` produced at `revision`; it keeps its last
  // good config for that type.
  virtual void Nacked(const NodeIdentity& node, const std::string& type_url, int64_t revision,
                      const std::string& error) = 0;
  // A revision is being pushed to this replica's streams, until FanOutFinished. Background
  // bookkeeping may wait for it (briefly): the push is what operators wait for, and the
  // bookkeeping shares the cores with it.
  virtual void FanOutStarted() {}
  virtual void FanOutFinished() {}
};

}  // namespace meridian::xds
