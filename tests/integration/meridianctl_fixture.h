#pragma once

// Runs the real meridianctl binary (MERIDIANCTL_PATH, set by CMake) as a subprocess against
// an in-process control plane on a fresh PostgreSQL database.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/integration/control_plane_fixture.h"

extern char** environ;

namespace meridian::testing {

// A child process with its standard streams on pipes. Small stdin only (it is written
// before anything is read).
class Subprocess {
 public:
  Subprocess(const std::vector<std::string>& args, const std::vector<std::string>& env,
             const std::string& stdin_text) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2 failed";
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& var : env) envp.push_back(const_cast<char*>(var.c_str()));
    envp.push_back(nullptr);
    const int spawned = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (spawned != 0) {
      ADD_FAILURE() << "posix_spawn " << args[0] << ": " << strerror(spawned);
      pid_ = -1;
    }
    if (!stdin_text.empty() && write(in[1], stdin_text.data(), stdin_text.size()) < 0) {
      ADD_FAILURE() << "writing stdin failed";
    }
    close(in[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
  }

  ~Subprocess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  // Reads until both output pipes close, then reaps the child; its exit code, or 128+signal.
  int Wait() {
    while (out_fd_ >= 0 || err_fd_ >= 0) Pump(-1);
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, 0) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return -1;
  }

  // Reads stdout until it holds `lines` lines or `timeout` passes.
  bool WaitForLines(size_t lines, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (static_cast<size_t>(std::count(out_.begin(), out_.end(), '\n')) < lines) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || (out_fd_ < 0 && err_fd_ < 0)) return false;
      Pump(static_cast<int>(left.count()));
    }
    return true;
  }

  void Signal(int signal) {
    if (pid_ > 0) kill(pid_, signal);
  }

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  void Pump(int timeout_ms) {
    std::vector<pollfd> fds;
    if (out_fd_ >= 0) fds.push_back({out_fd_, POLLIN, 0});
    if (err_fd_ >= 0) fds.push_back({err_fd_, POLLIN, 0});
    if (fds.empty() || poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
    for (const pollfd& fd : fds) {
      if (fd.revents == 0) continue;
      char buffer[4096];
      const ssize_t n = read(fd.fd, buffer, sizeof(buffer));
      int& own = fd.fd == out_fd_ ? out_fd_ : err_fd_;
      if (n <= 0) {
        close(own);
        own = -1;
      } else {
        (fd.fd == out_fd_ ? out_ : err_).append(buffer, static_cast<size_t>(n));
      }
    }
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
};

struct CtlResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::ostream& operator<<(std::ostream& os, const CtlResult& result) {
  return os << "exit " << result.exit_code << "\n--- stdout\n"
            << result.out << "--- stderr\n"
            << result.err;
}

class MeridianctlFixture : public ControlPlaneTest {
 protected:
  std::string Server() const {
    return absl::StrCat("http://127.0.0.1:", control_plane_->http_port());
  }

  // The environment of every run: ours without MERIDIAN_* and USER, plus these.
  std::vector<std::string> Environment() const {
    std::vector<std::string> env;
    for (char** var = environ; *var != nullptr; ++var) {
      const std::string entry = *var;
      if (!entry.starts_with("MERIDIAN_") && !entry.starts_with("USER=")) env.push_back(entry);
    }
    env.push_back("MERIDIAN_SERVER=" + Server());
    env.push_back("MERIDIAN_ENVIRONMENT=prod");
    env.push_back("USER=ctl-tester");
    return env;
  }

  std::vector<std::string> Argv(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {MERIDIANCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  CtlResult Ctl(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    Subprocess process(Argv(args), Environment(), stdin_text);
    CtlResult result;
    result.exit_code = process.Wait();
    result.out = process.out();
    result.err = process.err();
    return result;
  }

  // Runs a command that must succeed and returns its standard output.
  std::string CtlOk(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    CtlResult result = Ctl(args, stdin_text);
    EXPECT_EQ(result.exit_code, 0) << absl::StrJoin(args, " ") << "\n" << result;
    return result.out;
  }

  json CtlJson(std::vector<std::string> args) {
    args.push_back("-o");
    args.push_back("json");
    const std::string out = CtlOk(args);
    json parsed = json::parse(out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(parsed.is_discarded()) << out;
    return parsed;
  }

  // Applies YAML from standard input and returns the revision it printed.
  int64_t ApplyYaml(const std::string& yaml, const std::string& comment) {
    const std::string out = CtlOk({"apply", "-f", "-", "--comment", comment}, yaml);
    const size_t at = out.rfind("revision ");
    EXPECT_NE(at, std::string::npos) << out;
    return at == std::string::npos ? -1 : std::stoll(out.substr(at + 9));
  }

  std::vector<std::string> Lines(const std::string& text) {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }
};

}  // namespace meridian::testing
