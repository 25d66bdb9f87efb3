#include "agent/driver/haproxy/haproxy_process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace meridian::agent::haproxy {
namespace {

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// posix_spawn attributes shared by every haproxy we start: signals HAProxy relies on back to
// their defaults and unblocked (the agent blocks SIGINT/SIGTERM for its own sigwait), and a
// process group of its own so a terminal's Ctrl-C reaches the agent, not the proxy.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr_, &none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signal : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGTTOU, SIGTTIN}) {
      sigaddset(&defaults, signal);
    }
    posix_spawnattr_setsigdefault(&attr_, &defaults);
    posix_spawnattr_setpgroup(&attr_, 0);
    posix_spawnattr_setflags(
        &attr_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  posix_spawn_file_actions_t* actions() { return &actions_; }

  absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& args) {
    // Nothing of ours (listeners of an embedding process, the xDS channel) leaks into HAProxy.
    posix_spawn_file_actions_addclosefrom_np(&actions_, 3);
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int error = posix_spawn(&pid, argv[0], &actions_, &attr_, argv.data(), environ);
    if (error != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot run ", args[0], ": ", std::strerror(error)));
    }
    return pid;
  }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

}  // namespace

std::string HaproxyAlerts(const std::string& output) {
  std::vector<std::string> alerts;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipWhitespace())) {
    if (!absl::StrContains(line, "[ALERT]")) continue;
    // "[ALERT]    (123) : config : parsing [f:1] : ..." -> "config : parsing [f:1] : ..."
    const size_t pid_end = line.find(") : ");
    alerts.emplace_back(pid_end == absl::string_view::npos ? line : line.substr(pid_end + 4));
  }
  return alerts.empty() ? std::string(absl::StripAsciiWhitespace(output))
                        : absl::StrJoin(alerts, "\n");
}

absl::Status CheckHaproxyConfig(const std::string& haproxy_bin, const std::string& config_path,
                                absl::Duration timeout) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Errno("pipe");
  SpawnSetup setup;
  posix_spawn_file_actions_addopen(setup.actions(), 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(setup.actions(), pipe_fds[1], 1);
  posix_spawn_file_actions_adddup2(setup.actions(), pipe_fds[1], 2);
  absl::StatusOr<pid_t> pid = setup.Spawn({haproxy_bin, "-c", "-f", config_path});
  close(pipe_fds[1]);
  if (!pid.ok()) {
    close(pipe_fds[0]);
    return pid.status();
  }
  std::string output;
  const absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  while (true) {
    pollfd fd{pipe_fds[0], POLLIN, 0};
    const int ready =
        poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      timed_out = true;
      break;
    }
    char buffer[4096];
    const ssize_t n = read(pipe_fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  if (timed_out) kill(*pid, SIGKILL);
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("haproxy -c did not finish in ", absl::FormatDuration(timeout)));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("haproxy rejected the config: ", HaproxyAlerts(output)));
}

absl::StatusOr<pid_t> SpawnHaproxyMaster(const MasterLaunch& launch) {
  SpawnSetup setup;
  posix_spawn_file_actions_addopen(setup.actions(), 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(setup.actions(), 1, launch.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(setup.actions(), 1, 2);
  return setup.Spawn({launch.haproxy_bin, "-W", "-db", "-f", launch.config_path, "-p",
                      launch.pid_file, "-S", launch.master_socket + ",mode,600"});
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, mode_t mode) {
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno(absl::StrCat("open ", temp));
  // The mode given to open() is filtered by the umask; key files must be exactly 0600.
  fchmod(fd, mode);
  for (size_t written = 0; written < contents.size();) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status status = Errno(absl::StrCat("write ", temp));
      close(fd);
      unlink(temp.c_str());
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    absl::Status status = Errno(absl::StrCat("fsync ", temp));
    unlink(temp.c_str());
    return status;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status status = Errno(absl::StrCat("rename ", temp));
    unlink(temp.c_str());
    return status;
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

int64_t FileSize(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 ? static_cast<int64_t>(info.st_size) : 0;
}

std::string ReadFileFrom(const std::string& path, int64_t offset, int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(offset);
  std::string out(static_cast<size_t>(max_bytes), '\0');
  in.read(out.data(), max_bytes);
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

}  // namespace meridian::agent::haproxy
