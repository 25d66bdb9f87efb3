#pragma once

// A child process for tests that run the real binaries (meridianctl, meridian-cp).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"

extern char** environ;

namespace meridian::testing {

// This process's environment without the variables starting with any of `dropped`, for a
// child that must see only what the test sets.
inline std::vector<std::string> InheritedEnvironment(const std::vector<std::string>& dropped) {
  std::vector<std::string> env;
  for (char** var = environ; *var != nullptr; ++var) {
    const std::string entry = *var;
    const bool drop = std::any_of(dropped.begin(), dropped.end(), [&entry](const std::string& p) {
      return entry.starts_with(p);
    });
    if (!drop) env.push_back(entry);
  }
  return env;
}

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
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const auto& var : env) envp.push_back(const_cast<char*>(var.c_str()));
    envp.push_back(nullptr);
    // fork + exec rather than posix_spawn, for PR_SET_PDEATHSIG: a test that crashes must not
    // leave a server behind. Between fork and exec only async-signal-safe calls.
    int exec_error[2];
    if (pipe2(exec_error, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2 failed";
      return;
    }
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the parent is already gone
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      execve(argv[0], argv.data(), envp.data());
      const int error = errno;
      (void)!write(exec_error[1], &error, sizeof(error));
      _exit(127);
    }
    close(exec_error[1]);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    int error = 0;
    if (pid_ < 0) {
      ADD_FAILURE() << "fork: " << strerror(errno);
    } else if (read(exec_error[0], &error, sizeof(error)) == sizeof(error)) {
      ADD_FAILURE() << "exec " << args[0] << ": " << strerror(error);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    close(exec_error[0]);
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
    return Reap();
  }

  // Wait() for at most `timeout`; nothing if the child is still running then (it keeps
  // running; the destructor kills it).
  std::optional<int> WaitFor(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out_fd_ >= 0 || err_fd_ >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      Pump(static_cast<int>(left.count()));
    }
    return Reap();
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
  int Reap() {
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, 0) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return -1;
  }
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

}  // namespace meridian::testing
