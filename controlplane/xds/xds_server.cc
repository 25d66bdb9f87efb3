#include "controlplane/xds/xds_server.h"

#include "absl/time/clock.h"
#include "controlplane/xds/delta_stream.h"
#include "controlplane/xds/envoy_resources.h"
#include "controlplane/xds/sotw_stream.h"
#include "controlplane/xds/type_urls.h"
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
      queues_(options.threads > 0 ? options.threads
                                  : std::max(2u, std::thread::hardware_concurrency()),
              [this](std::unique_ptr<AsyncCall> call) { Accept(std::move(call)); }) {}

XdsServer::~XdsServer() {
  Stop();
  Drain();
}

void XdsServer::AddTo(grpc::ServerBuilder& builder) { queues_.AddTo(builder); }

absl::Status XdsServer::Start() {
  auto snapshot = store_.Snapshot();
  if (!snapshot.ok()) return snapshot.status();
  index_.Reset(*snapshot);
  accepting_ = true;
  follower_ = std::thread([this] { FollowLoop(); });
  queues_.Start();
  spdlog::info("xds: serving {} resources at revision {}", snapshot->resources.size(),
               snapshot->revision);
  return absl::OkStatus();
}

void XdsServer::Stop() {
  accepting_ = false;
  {
    absl::ReaderMutexLock lock(&streams_mu_);
    const grpc::Status status(grpc::StatusCode::UNAVAILABLE,
                              "meridian-cp is shutting down; reconnect to another replica");
    for (auto& [environment, streams] : streams_by_environment_) {
      for (AdsStream* stream : streams) stream->Shutdown(status);
    }
  }
  stopping_ = true;
  if (follower_.joinable()) follower_.join();
}

void XdsServer::Drain() { queues_.Drain(); }

void XdsServer::Accept(std::unique_ptr<AsyncCall> call) {
  const std::string method = call->context.method();
  const bool delta = method == kDeltaMethod;
  if (!delta && method != kSotwMethod) {
    new RejectingReactor(std::move(call), grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                                       "unknown method " + method));
    return;
  }
  if (!accepting_) {
    new RejectingReactor(std::move(call), grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                                       "meridian-cp is not serving xDS"));
    return;
  }
  if (stream_count_.fetch_add(1) >= options_.max_streams) {
    stream_count_.fetch_sub(1);
    new RejectingReactor(
        std::move(call),
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     "this meridian-cp replica is at its stream limit; connect to another replica"));
    return;
  }
  StreamContext stream_context{index_, tracker_, *this};
  const uint64_t id = next_stream_id_.fetch_add(1);
  AdsStream* stream = delta ? static_cast<AdsStream*>(new DeltaAdsStream(std::move(call), stream_context, id))
                            : new SotwAdsStream(std::move(call), stream_context, id);
  stream->Begin();
}

void XdsServer::Register(AdsStream* stream, const std::string& environment) {
  absl::MutexLock lock(&streams_mu_);
  streams_by_environment_[environment].insert(stream);
}

void XdsServer::Unregister(AdsStream* stream, const std::string& environment) {
  {
    absl::MutexLock lock(&streams_mu_);
    auto it = streams_by_environment_.find(environment);
    if (it != streams_by_environment_.end()) {
      it->second.erase(stream);
      if (it->second.empty()) streams_by_environment_.erase(it);
    }
  }
  stream_count_.fetch_sub(1);
}

void XdsServer::FollowLoop() {
  while (!stopping_) {
    auto revisions = feed_.WaitForRevisions(index_.revision(), absl::Milliseconds(200),
                                            kMaxRevisionsPerPush);
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
    if (options_.debounce > absl::ZeroDuration()) {
      absl::SleepFor(options_.debounce);
      auto more = feed_.WaitForRevisions(revisions->back()->revision(), absl::ZeroDuration(),
                                         kMaxRevisionsPerPush);
      if (more.ok()) revisions->insert(revisions->end(), more->begin(), more->end());
    }
    FanOut(index_.Apply(*revisions));
  }
}

absl::Status XdsServer::Resync() {
  auto snapshot = store_.Snapshot();
  if (!snapshot.ok()) return snapshot.status();
  index_.Reset(*snapshot);
  IndexUpdate update;
  update.revision = snapshot->revision;
  absl::flat_hash_set<std::string> environments;
  {
    absl::ReaderMutexLock lock(&streams_mu_);
    for (const auto& [environment, streams] : streams_by_environment_) environments.insert(environment);
  }
  for (const std::string& environment : environments) {
    for (v1::Kind kind : {v1::SERVICE, v1::ENDPOINT, v1::ROUTE, v1::CERTIFICATE, v1::CONFIG_ENTRY}) {
      update.changes.push_back({environment, TypeUrlOf(kind), {}, /*everything=*/true});
    }
    for (const std::string& type_url : EnvoyTypeUrls()) {
      update.changes.push_back({environment, type_url, {}, /*everything=*/true});
    }
  }
  spdlog::info("xds: resynced from a snapshot at revision {}", snapshot->revision);
  FanOut(update);
  return absl::OkStatus();
}

void XdsServer::FanOut(const IndexUpdate& update) {
  absl::flat_hash_map<std::string, std::vector<const IndexChange*>> by_environment;
  for (const IndexChange& change : update.changes) {
    by_environment[change.environment].push_back(&change);
  }
  absl::ReaderMutexLock lock(&streams_mu_);
  for (const auto& [environment, changes] : by_environment) {
    auto streams = streams_by_environment_.find(environment);
    if (streams == streams_by_environment_.end()) continue;
    for (AdsStream* stream : streams->second) stream->OnRevision(update.revision, changes);
  }
}

}  // namespace meridian::xds
