#include "agent/snapshot_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/common/status_macros.h"
#include "meridian/v1/agent_snapshot.pb.h"

namespace meridian::agent {
namespace {

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  const int error = errno;
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

// Closes the descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error (a failed close may mean the data did not reach disk).
  int Close() {
    const int result = ::close(fd_);
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

absl::Status WriteAll(int fd, const std::string& bytes, const std::string& path) {
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write", path);
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status ReadAll(const std::string& path, std::string& bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("open", path);
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read", path);
    if (n == 0) return absl::OkStatus();
    bytes.append(buffer, static_cast<size_t>(n));
  }
}

absl::Status WriteFileSynced(const std::string& path, const std::string& bytes) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (fd.get() < 0) return ErrnoError("create", path);
  // The file may have been left behind with another mode; the umask only removes bits.
  if (::fchmod(fd.get(), 0600) != 0) return ErrnoError("chmod", path);
  MERIDIAN_RETURN_IF_ERROR(WriteAll(fd.get(), bytes, path));
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync", path);
  if (fd.Close() != 0) return ErrnoError("close", path);
  return absl::OkStatus();
}

absl::Status FsyncDirectory(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("open", dir);
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync", dir);
  return absl::OkStatus();
}

template <typename Message>
void AddAll(const std::map<std::string, Message>& from,
            google::protobuf::RepeatedPtrField<Message>& to) {
  for (const auto& [name, message] : from) *to.Add() = message;
}

template <typename Message>
void IndexAll(const google::protobuf::RepeatedPtrField<Message>& from,
              std::map<std::string, Message>& to) {
  for (const Message& message : from) to[message.name()] = message;
}

}  // namespace

SnapshotStore::SnapshotStore(std::string work_dir, std::string environment, std::string node_id)
    : work_dir_(std::move(work_dir)),
      path_(absl::StrCat(work_dir_, "/snapshot.pb")),
      environment_(std::move(environment)),
      node_id_(std::move(node_id)) {}

absl::StatusOr<AppliedState> SnapshotStore::Load() const {
  std::string bytes;
  MERIDIAN_RETURN_IF_ERROR(ReadAll(path_, bytes));
  v1::AgentSnapshot stored;
  if (!stored.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat(path_, ": not a meridian.v1.AgentSnapshot"));
  }
  if (stored.environment() != environment_) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, " holds environment \"", stored.environment(), "\", not \"", environment_, "\""));
  }
  AppliedState state;
  state.snapshot.revision = stored.revision();
  IndexAll(stored.services(), state.snapshot.services);
  IndexAll(stored.endpoints(), state.snapshot.endpoints);
  IndexAll(stored.routes(), state.snapshot.routes);
  IndexAll(stored.certificates(), state.snapshot.certificates);
  for (const auto& [type_url, held] : stored.versions()) {
    auto& versions = state.versions[type_url];
    for (const auto& [name, version] : held.versions()) versions[name] = version;
  }
  return state;
}

absl::Status SnapshotStore::Save(const AppliedState& state) {
  v1::AgentSnapshot stored;
  stored.set_revision(state.snapshot.revision);
  stored.set_environment(environment_);
  stored.set_node_id(node_id_);
  AddAll(state.snapshot.services, *stored.mutable_services());
  AddAll(state.snapshot.endpoints, *stored.mutable_endpoints());
  AddAll(state.snapshot.routes, *stored.mutable_routes());
  AddAll(state.snapshot.certificates, *stored.mutable_certificates());
  for (const auto& [type_url, versions] : state.versions) {
    auto& held = *(*stored.mutable_versions())[type_url].mutable_versions();
    for (const auto& [name, version] : versions) held[name] = version;
  }
  stored.set_written_unix_ms(absl::ToUnixMillis(absl::Now()));
  std::string bytes;
  if (!stored.SerializeToString(&bytes)) return absl::InternalError("cannot serialize snapshot");

  const std::string temp = absl::StrCat(path_, ".tmp");
  absl::Status written = WriteFileSynced(temp, bytes);
  if (written.ok() && ::rename(temp.c_str(), path_.c_str()) != 0) {
    written = ErrnoError("rename", temp);
  }
  if (!written.ok()) {
    ::unlink(temp.c_str());
    return written;
  }
  return FsyncDirectory(work_dir_);
}

}  // namespace meridian::agent
