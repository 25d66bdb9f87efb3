#include "agent/driver/haproxy/haproxy_runtime.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace meridian::agent::haproxy {
namespace {

// SRV_ADMF_* in HAProxy 2.6 (include/haproxy/server-t.h).
constexpr int kAdminMaintMask = 0x01 | 0x02 | 0x20;  // forced, inherited, resolution
constexpr int kAdminDrainMask = 0x08 | 0x10;         // forced, inherited

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

const char* StateWord(ServerState state) {
  switch (state) {
    case ServerState::kReady:
      return "ready";
    case ServerState::kDrain:
      return "drain";
    case ServerState::kMaint:
      return "maint";
  }
  return "maint";
}

}  // namespace

ServerState RuntimeServer::state() const {
  if (admin_state & kAdminMaintMask) return ServerState::kMaint;
  if (admin_state & kAdminDrainMask) return ServerState::kDrain;
  return ServerState::kReady;
}

HaproxyRuntimeClient::HaproxyRuntimeClient(std::string socket_path, absl::Duration timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

absl::StatusOr<std::string> HaproxyRuntimeClient::Execute(absl::string_view command) const {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path too long: ", socket_path_));
  }
  std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
  FileDescriptor fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return Errno("socket for", socket_path_);
  const timeval tv = absl::ToTimeval(timeout_);
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    return Errno("connect to", socket_path_);
  }
  const std::string line = absl::StrCat(command, "\n");
  for (size_t sent = 0; sent < line.size();) {
    const ssize_t n = send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("send to", socket_path_);
    sent += static_cast<size_t>(n);
  }
  // End of input: the master CLI answers and closes only then.
  shutdown(fd.get(), SHUT_WR);
  std::string reply;
  char buffer[16384];
  while (true) {
    const ssize_t n = recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("no complete reply to \"", command, "\" from ", socket_path_));
    }
    if (n == 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  return reply;
}

absl::Status HaproxyRuntimeClient::ExecuteExpectingEmpty(const std::string& command) const {
  absl::StatusOr<std::string> reply = Execute(command);
  if (!reply.ok()) return reply.status();
  if (!absl::StripAsciiWhitespace(*reply).empty()) {
    return absl::InternalError(
        absl::StrCat("haproxy refused \"", command, "\": ", absl::StripAsciiWhitespace(*reply)));
  }
  return absl::OkStatus();
}

absl::Status HaproxyRuntimeClient::SetServerAddress(const std::string& backend,
                                                    const std::string& server,
                                                    const std::string& address,
                                                    uint32_t port) const {
  const std::string command =
      absl::StrCat("set server ", backend, "/", server, " addr ", address, " port ", port);
  absl::StatusOr<std::string> reply = Execute(command);
  if (!reply.ok()) return reply.status();
  // Success reads "IP changed from ... by 'stats socket command'" or "no need to change the
  // addr, ...".
  const absl::string_view text = absl::StripAsciiWhitespace(*reply);
  if ((absl::StartsWith(text, "IP changed from") ||
       absl::StartsWith(text, "no need to change the addr")) &&
      absl::EndsWith(text, "by 'stats socket command'")) {
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat("haproxy refused \"", command, "\": ", text));
}

absl::Status HaproxyRuntimeClient::SetServerWeight(const std::string& backend,
                                                   const std::string& server, int weight) const {
  return ExecuteExpectingEmpty(
      absl::StrCat("set server ", backend, "/", server, " weight ", weight));
}

absl::Status HaproxyRuntimeClient::SetServerState(const std::string& backend,
                                                  const std::string& server,
                                                  ServerState state) const {
  return ExecuteExpectingEmpty(
      absl::StrCat("set server ", backend, "/", server, " state ", StateWord(state)));
}

absl::StatusOr<std::vector<RuntimeServer>> HaproxyRuntimeClient::ShowServersState() const {
  absl::StatusOr<std::string> reply = Execute("show servers state");
  if (!reply.ok()) return reply.status();
  return ParseServersState(*reply);
}

absl::StatusOr<ProcessList> HaproxyRuntimeClient::ShowProc() const {
  absl::StatusOr<std::string> reply = Execute("show proc");
  if (!reply.ok()) return reply.status();
  return ParseProcessList(*reply);
}

absl::StatusOr<std::vector<RuntimeServer>> ParseServersState(absl::string_view reply) {
  std::vector<absl::string_view> lines = absl::StrSplit(reply, '\n', absl::SkipWhitespace());
  if (lines.size() < 2 || absl::StripAsciiWhitespace(lines[0]) != "1" ||
      !absl::StartsWith(lines[1], "# ")) {
    return absl::InternalError(absl::StrCat("unexpected reply to show servers state: ",
                                            absl::StripAsciiWhitespace(reply)));
  }
  std::map<std::string, size_t> column;
  std::vector<absl::string_view> names = absl::StrSplit(lines[1].substr(2), ' ', absl::SkipEmpty());
  for (size_t i = 0; i < names.size(); ++i) column[std::string(names[i])] = i;
  for (const char* required : {"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state",
                               "srv_uweight", "srv_port"}) {
    if (!column.count(required)) {
      return absl::InternalError(absl::StrCat("show servers state lacks column ", required));
    }
  }
  std::vector<RuntimeServer> servers;
  for (size_t i = 2; i < lines.size(); ++i) {
    std::vector<absl::string_view> fields = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
    if (fields.size() < names.size()) {
      return absl::InternalError(absl::StrCat("short show servers state line: ", lines[i]));
    }
    RuntimeServer server;
    server.backend = std::string(fields[column["be_name"]]);
    server.server = std::string(fields[column["srv_name"]]);
    server.address = std::string(fields[column["srv_addr"]]);
    if (!absl::SimpleAtoi(fields[column["srv_port"]], &server.port) ||
        !absl::SimpleAtoi(fields[column["srv_uweight"]], &server.weight) ||
        !absl::SimpleAtoi(fields[column["srv_admin_state"]], &server.admin_state) ||
        !absl::SimpleAtoi(fields[column["srv_op_state"]], &server.op_state)) {
      return absl::InternalError(absl::StrCat("bad show servers state line: ", lines[i]));
    }
    servers.push_back(std::move(server));
  }
  return servers;
}

absl::StatusOr<ProcessList> ParseProcessList(absl::string_view reply) {
  ProcessList list;
  bool master_seen = false;
  absl::string_view section;
  for (absl::string_view line : absl::StrSplit(reply, '\n', absl::SkipWhitespace())) {
    if (absl::StartsWith(line, "#")) {
      section = line;
      continue;
    }
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int pid = 0;
    if (fields.size() < 3 || !absl::SimpleAtoi(fields[0], &pid)) continue;
    if (fields[1] == "master") {
      // "<pid> master <reloads> [failed: <n>] <uptime> <version>"
      master_seen = absl::SimpleAtoi(fields[2], &list.reloads);
      list.master_pid = pid;
      if (fields.size() >= 5 && fields[3] == "[failed:") {
        absl::SimpleAtoi(absl::StripSuffix(fields[4], "]"), &list.failed_reloads);
      }
    } else if (fields[1] == "worker" && section == "# workers") {
      list.workers.push_back(pid);
    }
  }
  if (!master_seen) {
    return absl::InternalError(
        absl::StrCat("unexpected reply to show proc: ", absl::StripAsciiWhitespace(reply)));
  }
  return list;
}

}  // namespace meridian::agent::haproxy
