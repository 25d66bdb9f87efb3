#include "agent/agent.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace meridian::agent {
namespace {

std::string ShortType(const std::string& type_url) {
  return std::string(absl::StripPrefix(type_url, "type.googleapis.com/meridian.v1."));
}

std::string Counts(const ProxySnapshot& snapshot) {
  return absl::StrCat(snapshot.services.size(), " services, ", snapshot.endpoints.size(),
                      " endpoints, ", snapshot.routes.size(), " routes, ",
                      snapshot.certificates.size(), " certificates");
}

absl::Status EnsureWorkDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("work_dir: is required");
  std::error_code error;
  if (std::filesystem::is_directory(dir, error)) return absl::OkStatus();
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create work dir ", dir, ": ", error.message()));
  }
  // It will hold private keys.
  if (::chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("chmod ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

const char* ApplyModeName(ApplyMode mode) {
  switch (mode) {
    case ApplyMode::kNoChange:
      return "no_change";
    case ApplyMode::kRuntimeApi:
      return "runtime_api";
    case ApplyMode::kReload:
      return "reload";
  }
  return "unknown";
}

const char* SnapshotSourceName(SnapshotSource source) {
  switch (source) {
    case SnapshotSource::kNone:
      return "none";
    case SnapshotSource::kDisk:
      return "disk";
    case SnapshotSource::kControlPlane:
      return "control_plane";
  }
  return "unknown";
}

Agent::Agent(AgentOptions options, ProxyDriver& driver)
    : options_(std::move(options)),
      driver_(driver),
      store_(options_.work_dir, options_.xds.environment, options_.xds.node_id),
      admin_(AdminHandlers{[this] { return healthy(); }, [this] { return ready(); },
                           [this] { return StatusJson(); }}) {}

Agent::~Agent() { Stop(); }

absl::StatusOr<AppliedState> Agent::StartProxy() {
  absl::StatusOr<AppliedState> loaded = store_.Load();
  if (loaded.ok()) {
    absl::Status started = driver_.Start(loaded->snapshot);
    if (started.ok()) {
      spdlog::info("proxy started from the disk snapshot: revision {} ({})",
                   loaded->snapshot.revision, Counts(loaded->snapshot));
      absl::MutexLock lock(&mu_);
      source_ = SnapshotSource::kDisk;
      applied_revision_ = loaded->snapshot.revision;
      return loaded;
    }
    spdlog::error("the proxy refused the disk snapshot (revision {}): {}; starting it empty",
                  loaded->snapshot.revision, std::string(started.message()));
    RecordError(absl::StrCat("disk snapshot refused: ", started.message()));
  } else if (!absl::IsNotFound(loaded.status())) {
    spdlog::warn("ignoring the disk snapshot: {}", std::string(loaded.status().message()));
    RecordError(absl::StrCat("disk snapshot ignored: ", loaded.status().message()));
  }
  if (absl::Status started = driver_.Start(ProxySnapshot{}); !started.ok()) {
    return absl::Status(started.code(),
                        absl::StrCat("cannot start the proxy: ", started.message()));
  }
  spdlog::info("proxy started empty; waiting for the control plane");
  return AppliedState{};
}

absl::Status Agent::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_ || stopped_) return absl::FailedPreconditionError("agent already started");
  }
  if (options_.xds.environment.empty()) {
    return absl::InvalidArgumentError("environment: is required");
  }
  if (options_.xds.node_id.empty()) return absl::InvalidArgumentError("node_id: is required");
  if (options_.xds.control_planes.empty()) {
    return absl::InvalidArgumentError("control_planes: at least one host:port is required");
  }
  if (absl::Status status = EnsureWorkDir(options_.work_dir); !status.ok()) return status;
  absl::StatusOr<AppliedState> running = StartProxy();
  if (!running.ok()) return running.status();
  {
    absl::MutexLock lock(&mu_);
    proxy_running_ = true;
  }
  xds_ = std::make_unique<XdsClient>(
      options_.xds, *std::move(running),
      [this](const ProxySnapshot& snapshot) { return ApplySnapshot(snapshot); },
      [this](const AppliedState& state, const ResponseChange& change) {
        OnAccepted(state, change);
      });
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
  }
  if (!options_.admin_address.empty()) {
    if (absl::Status status = admin_.Start(options_.admin_address); !status.ok()) {
      Stop();
      return status;
    }
    spdlog::info("admin endpoint on {} (port {})", options_.admin_address, admin_.port());
  }
  xds_->Start();
  return absl::OkStatus();
}

void Agent::Stop() {
  bool proxy_running = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    proxy_running = proxy_running_;
    proxy_running_ = false;
  }
  if (xds_ != nullptr) xds_->Stop();
  admin_.Stop();
  if (proxy_running) {
    if (absl::Status status = driver_.Stop(); !status.ok()) {
      spdlog::error("stopping the proxy: {}", std::string(status.message()));
    }
  }
}

absl::Status Agent::ApplySnapshot(const ProxySnapshot& snapshot) {
  const absl::Time start = absl::Now();
  absl::Status status = driver_.Apply(snapshot);
  last_apply_duration_ = absl::Now() - start;
  return status;  // the xDS client NACKs with it, and logs it
}

void Agent::OnAccepted(const AppliedState& state, const ResponseChange& change) {
  const ApplyMode mode = driver_.last_apply_mode();
  spdlog::info("applied revision={} type={} added={} updated={} removed={} apply_ms={:.1f} mode={}",
               change.revision, ShortType(change.type_url), change.added, change.updated,
               change.removed, absl::ToDoubleMilliseconds(last_apply_duration_),
               ApplyModeName(mode));
  {
    absl::MutexLock lock(&mu_);
    source_ = SnapshotSource::kControlPlane;
    applied_revision_ = state.snapshot.revision;
    last_apply_mode_ = mode;
  }
  // The proxy already runs it: a failed write costs static stability, not this change.
  if (absl::Status saved = store_.Save(state); !saved.ok()) {
    spdlog::error("cannot persist the applied snapshot: {}", std::string(saved.message()));
    RecordError(absl::StrCat("persisting snapshot: ", saved.message()));
  }
}

void Agent::RecordError(std::string error) {
  absl::MutexLock lock(&mu_);
  last_error_ = std::move(error);
  last_error_time_ = absl::Now();
}

bool Agent::healthy() const {
  absl::MutexLock lock(&mu_);
  return started_ && !stopped_ && xds_->running();
}

bool Agent::ready() const {
  absl::MutexLock lock(&mu_);
  return proxy_running_ && source_ != SnapshotSource::kNone;
}

AgentStatus Agent::status() const {
  AgentStatus status;
  status.node_id = options_.xds.node_id;
  status.environment = options_.xds.environment;
  status.zone = options_.xds.zone;
  status.healthy = healthy();
  status.ready = ready();
  {
    absl::MutexLock lock(&mu_);
    if (started_) status.xds = xds_->status();
    status.source = source_;
    status.applied_revision = applied_revision_;
    status.last_apply_mode = last_apply_mode_;
    status.last_error = last_error_;
    status.last_error_time = last_error_time_;
  }
  if (status.xds.last_error_time > status.last_error_time) {
    status.last_error = status.xds.last_error;
    status.last_error_time = status.xds.last_error_time;
  }
  return status;
}

std::string Agent::StatusJson() const {
  const AgentStatus status = this->status();
  nlohmann::json json = {
      {"node_id", status.node_id},
      {"environment", status.environment},
      {"zone", status.zone},
      {"healthy", status.healthy},
      {"ready", status.ready},
      {"snapshot_source", SnapshotSourceName(status.source)},
      {"last_applied_revision", status.applied_revision},
      {"last_apply_mode", nullptr},
      {"control_plane",
       {{"address", status.xds.control_plane}, {"connected", status.xds.connected}}},
      {"xds",
       {{"streams", status.xds.streams},
        {"responses", status.xds.responses},
        {"resources_received", status.xds.resources_received},
        {"removals_received", status.xds.removals_received},
        {"acks", status.xds.acks},
        {"nacks", status.xds.nacks}}},
      {"last_error", nullptr},
  };
  if (status.last_apply_mode) json["last_apply_mode"] = ApplyModeName(*status.last_apply_mode);
  if (!status.last_error.empty()) {
    json["last_error"] = {
        {"message", status.last_error},
        {"time", absl::FormatTime(absl::RFC3339_sec, status.last_error_time, absl::UTCTimeZone())}};
  }
  return json.dump();
}

}  // namespace meridian::agent
