#include "controlplane/xds/xds_server.h"

#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "controlplane/xds/delta_stream.h"
#include "controlplane/xds/shared_delta.h"
#include "controlplane/xds/sotw_stream.h"
#include "spdlog/spdlog.h"

namespace meridian::xds {
namespace {

constexpr size_t kMaxRevisionsPerPush = 1024;

}  // namespace

XdsServer::XdsServer(store::ConfigStore& store, store::ChangeFeed& feed, NodeTracker& tracker,
                     XdsServerOptions options)
    : store_(store),
      feed_(feed),
      tracker_(tracker),
      options_(options),
      queues_(
          options.threads > 0 ? options.threads : std::max(2u, std::thread::hardware_concurrency()),
          [this](std::unique_ptr<AsyncCall> call) { Accept(std::move(call)); }) {
  for (size_t i = 0; i < queues_.size(); ++i) streams_.push_back(std::make_unique<QueueStreams>());
}

XdsServer::~XdsServer() {
  Stop();
  Drain();
}

void XdsServer::AddTo(grpc::ServerBuilder& builder) { queues_.AddTo(builder); }

absl::Status XdsServer::Start() {
  auto snapshot = store_.Snapshot();
  if (!snapshot.ok()) return snapshot.status();
  index_.Reset(*snapshot);  // no stream yet: nobody to tell what changed
  accepting_ = true;
  follower_ = std::thread([this] { FollowLoop(); });
  queues_.Start();
  spdlog::info("xds: serving {} resources at revision {}", snapshot->resources.size(),
               snapshot->revision);
  return absl::OkStatus();
}

template <typename Visit>
void XdsServer::ForEachStream(Visit visit) {
  for (auto& queue_streams : streams_) {
    absl::ReaderMutexLock lock(&queue_streams->mu);
    for (const auto& [environment, connections] : queue_streams->by_environment) {
      for (const auto& [peer, streams] : connections) {
        for (AdsStream* stream : streams) visit(stream);
      }
    }
  }
}

void XdsServer::Stop() {
  accepting_ = false;
  const grpc::Status status(grpc::StatusCode::UNAVAILABLE,
                            "meridian-cp is shutting down; reconnect to another replica");
  ForEachStream([&status](AdsStream* stream) { stream->Shutdown(status); });
  stopping_ = true;
  if (follower_.joinable()) follower_.join();
}

void XdsServer::Drain() { queues_.Drain(); }

std::optional<grpc::Status> XdsServer::Refusal(const std::string& method) {
  if (method != kDeltaMethod && method != kSotwMethod) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown method " + method);
  }
  if (!accepting_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "meridian-cp is not serving xDS");
  }
  if (stream_count_.fetch_add(1) >= options_.max_streams) {
    stream_count_.fetch_sub(1);
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        "this meridian-cp replica is at its stream limit; connect to another replica");
  }
  return std::nullopt;
}

void XdsServer::Accept(std::unique_ptr<AsyncCall> call) {
  const std::string method = call->context.method();
  if (std::optional<grpc::Status> refused = Refusal(method)) {
    new RejectingReactor(std::move(call), *refused);
    return;
  }
  StreamContext stream_context{index_, full_states_, tracker_, *this};
  const uint64_t id = next_stream_id_.fetch_add(1);
  AdsStream* stream = nullptr;
  if (method == kDeltaMethod) {
    stream = new DeltaAdsStream(std::move(call), stream_context, id);
  } else {
    stream = new SotwAdsStream(std::move(call), stream_context, id);
  }
  stream->Begin();
}

size_t XdsServer::fanout_stream_count() {
  size_t count = 0;
  ForEachStream([&count](AdsStream*) { ++count; });
  return count;
}

void XdsServer::Register(AdsStream* stream, const std::string& environment) {
  QueueStreams& queue_streams = *streams_[stream->queue_index()];
  absl::MutexLock lock(&queue_streams.mu);
  queue_streams.by_environment[environment][stream->peer()].insert(stream);
}

void XdsServer::Unregister(AdsStream* stream, const std::string& environment) {
  if (!environment.empty()) {
    QueueStreams& queue_streams = *streams_[stream->queue_index()];
    absl::MutexLock lock(&queue_streams.mu);
    auto connections = queue_streams.by_environment.find(environment);
    if (connections != queue_streams.by_environment.end()) {
      auto streams = connections->second.find(stream->peer());
      if (streams != connections->second.end()) {
        streams->second.erase(stream);
        if (streams->second.empty()) connections->second.erase(streams);
      }
      if (connections->second.empty()) queue_streams.by_environment.erase(connections);
    }
  }
  stream_count_.fetch_sub(1);
}

void XdsServer::FollowLoop() {
  absl::Time last_push = absl::InfinitePast();
  while (!stopping_) {
    auto revisions =
        feed_.WaitForRevisions(index_.revision(), absl::Milliseconds(200), kMaxRevisionsPerPush);
    if (!revisions.ok()) {
      if (absl::IsOutOfRange(revisions.status())) {
        // The log we needed was compacted away: rebuild from the current state.
        if (absl::Status status = Resync(); !status.ok()) {
          spdlog::warn("xds: resync failed: {}", status.ToString());
          absl::SleepFor(absl::Seconds(1));
        }
      } else {
        absl::SleepFor(absl::Milliseconds(200));
      }
      continue;
    }
    if (revisions->empty()) continue;
    if (options_.debounce > absl::ZeroDuration() && absl::Now() - last_push < options_.debounce) {
      absl::SleepFor(options_.debounce);
      auto more = feed_.WaitForRevisions(revisions->back()->revision(), absl::ZeroDuration(),
                                         kMaxRevisionsPerPush);
      if (more.ok()) revisions->insert(revisions->end(), more->begin(), more->end());
    }
    FanOut(index_.Apply(*revisions));
    last_push = absl::Now();
  }
}

absl::Status XdsServer::Resync() {
  auto snapshot = store_.Snapshot();
  if (!snapshot.ok()) return snapshot.status();
  IndexUpdate update = index_.Reset(*snapshot);
  update.base_revision = -1;  // no shared responses: they describe one revision's step
  spdlog::info("xds: resynced from a snapshot at revision {} ({} types changed)",
               snapshot->revision, update.changes.size());
  FanOut(std::move(update));
  return absl::OkStatus();
}

// Every queue thread pushes to its own streams, in parallel; the follower waits for all of
// them before it advances the index again, so a shared response is still exactly the index
// when it is written. Responses a stream builds itself read a ResourceIndex::View and carry
// the view's revision, which may be ahead of the fan-out that has reached the stream.
void XdsServer::FanOut(IndexUpdate update) {
  full_states_.Forget(update.changes);
  absl::flat_hash_map<std::string, std::vector<const IndexChange*>> by_environment;
  for (size_t position = 0; position < update.changes.size(); ++position) {
    IndexChange& change = update.changes[position];
    // A resync's update is no one revision's step: no stream can take a shared response.
    if (update.base_revision >= 0) {
      change.shared = BuildSharedDelta(index_, change, update.revision, position);
    }
    by_environment[change.environment].push_back(&change);
  }
  if (by_environment.empty()) return;
  tracker_.FanOutStarted();
  absl::BlockingCounter pending(static_cast<int>(queues_.size()));
  for (size_t queue = 0; queue < queues_.size(); ++queue) {
    queues_.Post(queue, [this, queue, &update, &by_environment, &pending] {
      FanOutOnQueue(queue, update.base_revision, update.revision, by_environment);
      pending.DecrementCount();
    });
  }
  pending.Wait();
  tracker_.FanOutFinished();
}

void XdsServer::FanOutOnQueue(
    size_t queue, int64_t base_revision, int64_t revision,
    const absl::flat_hash_map<std::string, std::vector<const IndexChange*>>& changes) {
  QueueStreams& queue_streams = *streams_[queue];
  absl::ReaderMutexLock lock(&queue_streams.mu);
  for (const auto& [environment, environment_changes] : changes) {
    auto connections = queue_streams.by_environment.find(environment);
    if (connections == queue_streams.by_environment.end()) continue;
    for (const auto& [peer, streams] : connections->second) {
      for (AdsStream* stream : streams) {
        stream->OnRevision(base_revision, revision, environment_changes);
      }
    }
  }
}

}  // namespace meridian::xds
