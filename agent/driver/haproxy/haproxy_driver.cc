#include "agent/driver/haproxy/haproxy_driver.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/driver/haproxy/haproxy_process.h"
#include "controlplane/common/status_macros.h"
#include "spdlog/spdlog.h"

namespace meridian::agent::haproxy {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxUnixSocketPath = 107;
constexpr absl::Duration kPollInterval = absl::Milliseconds(20);

// Addresses as HAProxy prints them ("::1", not "0:0::1"); non-IP text is returned unchanged.
std::string CanonicalAddress(const std::string& address) {
  unsigned char buffer[sizeof(in6_addr)];
  char text[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, address.c_str(), buffer) == 1 &&
        inet_ntop(family, buffer, text, sizeof(text)) != nullptr) {
      return text;
    }
  }
  return address;
}

bool IsIpLiteral(const std::string& address) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, address.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, address.c_str(), buffer) == 1;
}

absl::Status MakePrivateDirectory(const std::string& path) {
  std::error_code error;
  fs::create_directories(path, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", error.message()));
  }
  fs::permissions(path, fs::perms::owner_all, fs::perm_options::replace, error);
  return absl::OkStatus();
}

}  // namespace

HaproxyDriver::HaproxyDriver(Options options)
    : options_(std::move(options)),
      stats_(WorkPath("haproxy.sock")),
      master_cli_(WorkPath("master.sock")) {}

HaproxyDriver::~HaproxyDriver() {
  if (options_.stop_on_destruction) {
    if (absl::Status status = Stop(); !status.ok()) {
      spdlog::warn("stopping haproxy: {}", status.ToString());
    }
  }
}

std::string HaproxyDriver::WorkPath(absl::string_view name) const {
  return absl::StrCat(options_.work_dir, "/", name);
}

absl::StatusOr<RenderedConfig> HaproxyDriver::Render(const ProxySnapshot& snapshot,
                                                     const std::string& cert_dir) const {
  RenderOptions render;
  render.work_dir = options_.work_dir;
  render.bind_address = options_.bind_address;
  render.cert_dir = cert_dir;
  if (current_.has_value()) render.previous_layout = current_->layout;
  return RenderHaproxyConfig(snapshot, render);
}

absl::Status HaproxyDriver::Start(const ProxySnapshot& snapshot) {
  if (master_pid_ > 0) return absl::FailedPreconditionError("haproxy is already running");
  if (options_.work_dir.empty()) return absl::InvalidArgumentError("work_dir is required");
  if (WorkPath("haproxy.sock").size() > kMaxUnixSocketPath) {
    return absl::InvalidArgumentError(
        absl::StrCat("work_dir too long for unix socket paths: ", options_.work_dir));
  }
  MERIDIAN_RETURN_IF_ERROR(MakePrivateDirectory(WorkPath("certs")));
  MERIDIAN_RETURN_IF_ERROR(Validate(snapshot));
  MERIDIAN_ASSIGN_OR_RETURN(RenderedConfig rendered, Render(snapshot, WorkPath("certs")));
  MERIDIAN_RETURN_IF_ERROR(InstallFiles(rendered));
  if (!fs::exists(WorkPath("server-state"))) {
    MERIDIAN_RETURN_IF_ERROR(WriteFileAtomically(WorkPath("server-state"), "", 0600));
  }
  if (const pid_t running = FindRunningMaster(); running > 0) {
    // A HAProxy left serving by an earlier agent: take it over with a reload, so traffic
    // never stops.
    master_pid_ = running;
    master_is_child_ = false;
    if (absl::Status status = Reload(); !status.ok()) {
      master_pid_ = -1;
      return status;
    }
  } else {
    MERIDIAN_RETURN_IF_ERROR(LaunchMaster());
  }
  // The server-state file of an earlier run may have restored stale addresses or weights.
  if (absl::Status status = Reconcile(rendered.slots, /*strict=*/true); !status.ok()) {
    Stop().IgnoreError();  // a failed Start leaves nothing running
    return status;
  }
  current_ = std::move(rendered);
  RemoveStaleCertificates(*current_);
  last_apply_mode_ = ApplyMode::kReload;
  return absl::OkStatus();
}

absl::Status HaproxyDriver::Apply(const ProxySnapshot& snapshot) {
  if (!current_.has_value()) return absl::FailedPreconditionError("haproxy driver not started");
  if (!MasterAlive()) {
    spdlog::warn("haproxy master {} is gone; starting a new one", master_pid_);
    master_pid_ = -1;
    current_.reset();
    return Start(snapshot);
  }
  MERIDIAN_ASSIGN_OR_RETURN(RenderedConfig rendered, Render(snapshot, WorkPath("certs")));
  if (rendered.text == current_->text) {
    last_apply_mode_ = ApplyMode::kNoChange;
    return absl::OkStatus();
  }
  if (rendered.structure == current_->structure) {
    absl::Status status = Reconcile(rendered.slots, /*strict=*/true);
    if (status.ok()) {
      // Keep the file in step so a later reload or restart serves the same endpoints.
      MERIDIAN_RETURN_IF_ERROR(WriteFileAtomically(config_path(), rendered.text, 0600));
      current_ = std::move(rendered);
      last_apply_mode_ = ApplyMode::kRuntimeApi;
      return absl::OkStatus();
    }
    spdlog::warn("runtime API update failed, reloading instead: {}", status.ToString());
  }
  return ApplyByReload(snapshot, std::move(rendered));
}

absl::Status HaproxyDriver::ApplyByReload(const ProxySnapshot& snapshot, RenderedConfig rendered) {
  MERIDIAN_RETURN_IF_ERROR(Validate(snapshot));
  // Endpoint changes first, on the servers the old worker has: the server-state file it hands
  // over then already says what the new config says.
  if (absl::Status status = Reconcile(rendered.slots, /*strict=*/false); !status.ok()) {
    spdlog::warn("pre-reload endpoint update: {}", status.ToString());
  }
  if (absl::Status status = SaveServerState(); !status.ok()) {
    spdlog::warn("saving server state before reload: {}", status.ToString());
  }
  MERIDIAN_RETURN_IF_ERROR(InstallFiles(rendered));
  if (absl::Status status = Reload(); !status.ok()) {
    // The old worker still serves; put back the files it was started from.
    if (absl::Status restore = InstallFiles(*current_); !restore.ok()) {
      spdlog::error("restoring the previous haproxy config: {}", restore.ToString());
    }
    return status;
  }
  current_ = std::move(rendered);
  RemoveStaleCertificates(*current_);
  last_apply_mode_ = ApplyMode::kReload;
  return Reconcile(current_->slots, /*strict=*/true);
}

absl::Status HaproxyDriver::Validate(const ProxySnapshot& snapshot) {
  const std::string staging = WorkPath("certs.next");
  std::error_code error;
  fs::remove_all(staging, error);
  MERIDIAN_RETURN_IF_ERROR(MakePrivateDirectory(staging));
  absl::Status status = [&]() -> absl::Status {
    MERIDIAN_ASSIGN_OR_RETURN(RenderedConfig candidate, Render(snapshot, staging));
    for (const auto& [file, contents] : candidate.certificate_files) {
      MERIDIAN_RETURN_IF_ERROR(WriteFileAtomically(staging + "/" + file, contents, 0600));
    }
    MERIDIAN_RETURN_IF_ERROR(
        WriteFileAtomically(WorkPath("haproxy.cfg.check"), candidate.text, 0600));
    return CheckHaproxyConfig(options_.haproxy_bin, WorkPath("haproxy.cfg.check"));
  }();
  fs::remove_all(staging, error);
  fs::remove(WorkPath("haproxy.cfg.check"), error);
  return status;
}

absl::Status HaproxyDriver::InstallFiles(const RenderedConfig& rendered) {
  for (const auto& [file, contents] : rendered.certificate_files) {
    MERIDIAN_RETURN_IF_ERROR(WriteFileAtomically(WorkPath("certs/" + file), contents, 0600));
  }
  return WriteFileAtomically(config_path(), rendered.text, 0600);
}

void HaproxyDriver::RemoveStaleCertificates(const RenderedConfig& rendered) {
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(WorkPath("certs"), error)) {
    if (!rendered.certificate_files.count(entry.path().filename().string())) {
      fs::remove(entry.path(), error);
    }
  }
}

absl::Status HaproxyDriver::Reconcile(const std::vector<ServerSlot>& slots, bool strict) const {
  MERIDIAN_ASSIGN_OR_RETURN(std::vector<RuntimeServer> running, stats_.ShowServersState());
  std::map<std::string, const RuntimeServer*> by_name;
  for (const RuntimeServer& server : running) {
    by_name[server.backend + "/" + server.server] = &server;
  }
  for (const ServerSlot& slot : slots) {
    auto it = by_name.find(slot.backend + "/" + slot.server);
    if (it == by_name.end()) {
      if (!strict) continue;
      return absl::InternalError(
          absl::StrCat("haproxy has no server ", slot.backend, "/", slot.server));
    }
    const RuntimeServer& now = *it->second;
    ServerState state = now.state();
    if (slot.endpoint.empty()) {
      if (state != ServerState::kMaint) {
        MERIDIAN_RETURN_IF_ERROR(
            stats_.SetServerState(slot.backend, slot.server, ServerState::kMaint));
      }
      continue;
    }
    // DNS names are resolved from the config file; only IP addresses go through the API.
    const std::string address = CanonicalAddress(slot.address);
    if (IsIpLiteral(slot.address) && (address != now.address || slot.port != now.port)) {
      // Out of rotation while it changes identity.
      if (state != ServerState::kMaint) {
        MERIDIAN_RETURN_IF_ERROR(
            stats_.SetServerState(slot.backend, slot.server, ServerState::kMaint));
        state = ServerState::kMaint;
      }
      MERIDIAN_RETURN_IF_ERROR(
          stats_.SetServerAddress(slot.backend, slot.server, address, slot.port));
    }
    if (now.weight != slot.weight) {
      MERIDIAN_RETURN_IF_ERROR(stats_.SetServerWeight(slot.backend, slot.server, slot.weight));
    }
    if (state != slot.state) {
      MERIDIAN_RETURN_IF_ERROR(stats_.SetServerState(slot.backend, slot.server, slot.state));
    }
  }
  return absl::OkStatus();
}

absl::Status HaproxyDriver::SaveServerState() const {
  MERIDIAN_ASSIGN_OR_RETURN(std::string state, stats_.Execute("show servers state"));
  if (!absl::StartsWith(state, "1\n")) {
    return absl::InternalError(absl::StrCat("unexpected show servers state reply: ", state));
  }
  return WriteFileAtomically(WorkPath("server-state"), state, 0600);
}

absl::Status HaproxyDriver::Reload() {
  const absl::Time deadline = absl::Now() + options_.reload_timeout;
  absl::StatusOr<ProcessList> before = master_cli_.ShowProc();
  while (!before.ok() && absl::Now() < deadline) {
    absl::SleepFor(kPollInterval);
    before = master_cli_.ShowProc();
  }
  if (!before.ok()) return before.status();
  // Alerts of this reload are what HAProxy logs from here on.
  const int64_t log_offset = FileSize(WorkPath("haproxy.log"));
  if (kill(master_pid_, SIGUSR2) != 0) {
    return absl::InternalError(absl::StrCat("cannot signal haproxy master ", master_pid_));
  }
  while (absl::Now() < deadline) {
    absl::SleepFor(kPollInterval);
    // The master re-executes itself: its CLI is briefly away.
    absl::StatusOr<ProcessList> now = master_cli_.ShowProc();
    if (!now.ok()) continue;
    if (now->failed_reloads > before->failed_reloads) {
      return absl::InternalError(
          absl::StrCat("haproxy reload failed: ",
                       HaproxyAlerts(ReadFileFrom(WorkPath("haproxy.log"), log_offset))));
    }
    if (now->reloads > before->reloads && !now->workers.empty() &&
        std::find(before->workers.begin(), before->workers.end(), now->workers.front()) ==
            before->workers.end()) {
      // The new worker answers on the stats socket once its listeners are up.
      if (stats_.Execute("show info").ok()) return absl::OkStatus();
    }
  }
  return absl::DeadlineExceededError(
      absl::StrCat("no new haproxy worker within ", absl::FormatDuration(options_.reload_timeout)));
}

absl::Status HaproxyDriver::LaunchMaster() {
  MasterLaunch launch;
  launch.haproxy_bin = options_.haproxy_bin;
  launch.config_path = config_path();
  launch.pid_file = WorkPath("haproxy.pid");
  launch.master_socket = WorkPath("master.sock");
  launch.log_path = WorkPath("haproxy.log");
  const int64_t log_offset = FileSize(launch.log_path);
  MERIDIAN_ASSIGN_OR_RETURN(master_pid_, SpawnHaproxyMaster(launch));
  master_is_child_ = true;
  if (absl::Status status = WaitForWorker(options_.start_timeout, log_offset); !status.ok()) {
    Stop().IgnoreError();
    return status;
  }
  return absl::OkStatus();
}

absl::Status HaproxyDriver::WaitForWorker(absl::Duration timeout, int64_t log_offset) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (!MasterAlive()) {
      master_pid_ = -1;
      return absl::InternalError(
          absl::StrCat("haproxy exited at start: ",
                       HaproxyAlerts(ReadFileFrom(WorkPath("haproxy.log"), log_offset))));
    }
    absl::StatusOr<ProcessList> processes = master_cli_.ShowProc();
    if (processes.ok() && !processes->workers.empty() && stats_.Execute("show info").ok()) {
      return absl::OkStatus();
    }
    absl::SleepFor(kPollInterval);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("haproxy did not start within ", absl::FormatDuration(timeout)));
}

pid_t HaproxyDriver::FindRunningMaster() const {
  std::ifstream pid_file(WorkPath("haproxy.pid"));
  pid_t pid = -1;
  if (!(pid_file >> pid) || pid <= 0 || kill(pid, 0) != 0) return -1;
  // Only a master-worker HAProxy started on our config file, answering on our master CLI.
  std::ifstream cmdline_file(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)),
                      std::istreambuf_iterator<char>());
  std::vector<std::string> args = absl::StrSplit(cmdline, '\0');
  bool ours = false;
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "-f" && args[i + 1] == config_path()) ours = true;
  }
  if (!ours || std::find(args.begin(), args.end(), "-W") == args.end()) return -1;
  absl::StatusOr<ProcessList> processes = master_cli_.ShowProc();
  return processes.ok() && processes->master_pid == pid ? pid : -1;
}

bool HaproxyDriver::MasterAlive() {
  if (master_pid_ <= 0) return false;
  // Reap it if it is our child (also when adopted from a driver of this same process).
  int status = 0;
  const pid_t reaped = waitpid(master_pid_, &status, WNOHANG);
  if (reaped == master_pid_) return false;
  if (reaped == 0) return true;
  return !master_is_child_ && kill(master_pid_, 0) == 0;
}

absl::Status HaproxyDriver::Stop() {
  if (master_pid_ <= 0) return absl::OkStatus();
  auto wait_for_exit = [this](absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (MasterAlive()) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return true;
  };
  // SIGUSR1: workers finish their requests, then the master exits.
  kill(master_pid_, SIGUSR1);
  bool stopped = wait_for_exit(options_.stop_timeout);
  if (!stopped) {
    kill(master_pid_, SIGTERM);
    stopped = wait_for_exit(absl::Seconds(2));
  }
  if (!stopped) {
    kill(master_pid_, SIGKILL);
    wait_for_exit(absl::Seconds(2));
  }
  const pid_t pid = master_pid_;
  master_pid_ = -1;
  current_.reset();
  return stopped ? absl::OkStatus()
                 : absl::DeadlineExceededError(absl::StrCat("haproxy ", pid, " had to be killed"));
}

int HaproxyDriver::worker_pid() const {
  absl::StatusOr<ProcessList> processes = master_cli_.ShowProc();
  if (!processes.ok() || processes->workers.empty()) return -1;
  return processes->workers.front();
}

}  // namespace meridian::agent::haproxy
