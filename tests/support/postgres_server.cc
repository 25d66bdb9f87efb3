#include "tests/support/postgres_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <pqxx/pqxx>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace meridian::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kDefaultBinDir[] = "/usr/lib/postgresql/15/bin";
constexpr char kSuperuser[] = "postgres";
constexpr char kOsUser[] = "postgres";  // who runs the server when we are root
constexpr absl::Duration kCommandTimeout = absl::Seconds(120);
constexpr absl::Duration kReadyTimeout = absl::Seconds(30);
constexpr int kStartAttempts = 3;          // fresh ports after losing a FreePort() race
constexpr size_t kMaxSocketPath = 100;     // sun_path is 108 bytes including the terminator
constexpr size_t kMaxDatabasePrefix = 40;  // leaves room for the suffix within 63 bytes

std::string EnvOr(const char* name, std::string fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : std::move(fallback);
}

bool IsRoot() { return geteuid() == 0; }

std::string Tail(const std::string& path, int max_lines = 30) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  const size_t first = lines.size() > static_cast<size_t>(max_lines) ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = first; i < lines.size(); ++i) absl::StrAppend(&out, lines[i], "\n");
  return out;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

// Runs argv (argv[0] an absolute path) with cwd "/", stdin from /dev/null and stdout/stderr
// appended to log_path; kills it once `timeout` has passed.
absl::Status RunCommand(const std::vector<std::string>& argv, const std::string& log_path,
                        absl::Duration timeout) {
  {
    std::ofstream log(log_path, std::ios::app);
    log << "$ " << absl::StrJoin(argv, " ") << "\n";
  }
  std::vector<char*> c_argv;
  for (const std::string& arg : argv) c_argv.push_back(const_cast<char*>(arg.c_str()));
  c_argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  // The postgres user may not be able to read our cwd (e.g. /root).
  posix_spawn_file_actions_addchdir_np(&actions, "/");
  pid_t pid = 0;
  const int spawn_error =
      posix_spawn(&pid, c_argv[0], &actions, /*attrp=*/nullptr, c_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    return absl::InternalError(absl::StrCat("cannot run ", argv[0], ": ", strerror(spawn_error)));
  }

  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  while (true) {
    const pid_t waited = waitpid(pid, &status, WNOHANG);
    if (waited == pid) break;
    if (waited < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid: ", strerror(errno)));
    }
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError(
          absl::StrCat(argv[0], " did not finish within ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), " failed (",
                                          DescribeWaitStatus(status), "); ", log_path,
                                          " ends with:\n", Tail(log_path)));
}

// Single-quoted literal for postgresql.conf.
std::string ConfString(const std::string& value) {
  return absl::StrCat("'", absl::StrReplaceAll(value, {{"'", "''"}}), "'");
}

absl::StatusOr<std::string> MakePrivateDir(const std::string& parent) {
  std::error_code error;
  fs::create_directories(parent, error);
  std::string pattern = (fs::absolute(parent) / "meridian-pg.XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp ", pattern, ": ", strerror(errno)));
  }
  if (IsRoot()) {
    const passwd* user = getpwnam(kOsUser);
    if (user == nullptr) {
      return absl::FailedPreconditionError("running as root but there is no `postgres` user");
    }
    if (chown(pattern.c_str(), user->pw_uid, user->pw_gid) != 0) {
      return absl::InternalError(absl::StrCat("chown ", pattern, ": ", strerror(errno)));
    }
  }
  return pattern;
}

// `url` with its database replaced by `database`. Handles URLs with and without a path or query,
// and keyword/value strings ("host=... dbname=..."), where a later keyword wins.
std::string ReplaceDatabase(const std::string& url, const std::string& database) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return absl::StrCat(url, " dbname=", database);
  const size_t authority = scheme + 3;
  const size_t query = url.find('?', authority);
  const size_t path = url.find('/', authority);
  const size_t authority_end = path != std::string::npos && path < query ? path : query;
  const std::string rest = query == std::string::npos ? "" : url.substr(query);
  return absl::StrCat(url.substr(0, authority_end), "/", database, rest);
}

std::string AdminUrlForPort(int port) {
  return absl::StrCat("postgresql://", kSuperuser, "@127.0.0.1:", port, "/postgres");
}

}  // namespace

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::cerr << "FreePort: cannot bind 127.0.0.1:0: " << strerror(errno) << std::endl;
    std::abort();
  }
  close(fd);
  return ntohs(address.sin_port);
}

PostgresServer::PostgresServer(PostgresServerOptions options)
    : options_(std::move(options)), owner_pid_(getpid()) {
  if (options_.parent_dir.empty()) options_.parent_dir = EnvOr("TMPDIR", "/tmp");
  if (options_.bin_dir.empty()) options_.bin_dir = EnvOr("MERIDIAN_TEST_PG_BIN", kDefaultBinDir);
}

PostgresServer::~PostgresServer() {
  // A forked child (a death test, a spawned proxy that failed to exec) must not tear down its
  // parent's server.
  if (external() || getpid() != owner_pid_) return;
  if (absl::Status stopped = Stop(); !stopped.ok()) {
    std::cerr << "PostgresServer: " << stopped << "; trying an immediate shutdown" << std::endl;
    (void)RunAsOwner("pg_ctl", {"stop", "-D", data_dir_, "-m", "immediate", "-w", "-t", "30"});
  }
  if (!root_dir_.empty()) {
    std::error_code ignored;
    fs::remove_all(root_dir_, ignored);
  }
}

absl::Status PostgresServer::RunAsOwner(const std::string& binary, std::vector<std::string> args) {
  std::vector<std::string> argv;
  if (IsRoot()) argv = {"/usr/sbin/runuser", "-u", kOsUser, "--"};
  argv.push_back(absl::StrCat(options_.bin_dir, "/", binary));
  for (std::string& arg : args) argv.push_back(std::move(arg));
  return RunCommand(argv, root_dir_ + "/commands.log", kCommandTimeout);
}

absl::Status PostgresServer::EnsureInitialized() {
  if (root_dir_.empty()) {
    absl::StatusOr<std::string> root = MakePrivateDir(options_.parent_dir);
    if (!root.ok()) return root.status();
    root_dir_ = *std::move(root);
    data_dir_ = root_dir_ + "/data";
  }
  if (fs::exists(data_dir_ + "/PG_VERSION")) return absl::OkStatus();
  if (absl::Status status =
          RunAsOwner("initdb", {"--pgdata", data_dir_, "--username", kSuperuser, "--auth=trust",
                                "--encoding=UTF8", "--no-locale"});
      !status.ok()) {
    return status;
  }
  // Unix sockets are only a convenience for psql; drop them when the path would be too long.
  const std::string socket_dir =
      data_dir_.size() + std::strlen("/.s.PGSQL.65535") <= kMaxSocketPath ? data_dir_ : "";
  std::ofstream conf(data_dir_ + "/postgresql.conf", std::ios::app);
  conf << "\n# Added by meridian::testing::PostgresServer.\n"
       << "listen_addresses = '127.0.0.1'\n"
       << "unix_socket_directories = " << ConfString(socket_dir) << "\n"
       << "fsync = on\n"
       << "synchronous_commit = on\n"
       << "max_connections = 200\n";
  conf.close();
  if (!conf) {
    return absl::InternalError(absl::StrCat("cannot write ", data_dir_, "/postgresql.conf"));
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::Start() {
  if (external()) {
    last_start_error_ = WaitUntilAcceptingConnections(AdminUrl());
    running_ = last_start_error_.ok();
    return last_start_error_;
  }
  if (running_) return absl::OkStatus();
  last_start_error_ = EnsureInitialized();
  if (!last_start_error_.ok()) return last_start_error_;
  // The port is chosen once and kept, so URLs stay valid across Restart().
  const int attempts = port_ == 0 ? kStartAttempts : 1;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const int port = port_ != 0 ? port_ : FreePort();
    last_start_error_ = StartOnce(port);
    if (last_start_error_.ok()) {
      port_ = port;
      running_ = true;
      return absl::OkStatus();
    }
  }
  return last_start_error_;
}

absl::Status PostgresServer::StartOnce(int port) {
  // pg_ctl passes -o through a shell; a port number needs no quoting.
  absl::Status status =
      RunAsOwner("pg_ctl", {"start", "-D", data_dir_, "-l", root_dir_ + "/postgresql.log", "-w",
                            "-t", "60", "-o", absl::StrCat("-p ", port)});
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("PostgreSQL did not start on port ", port, ": ",
                                               status.message(), "\nserver log:\n",
                                               ServerLogTail()));
  }
  status = WaitUntilAcceptingConnections(AdminUrlForPort(port));
  if (!status.ok()) {
    (void)RunAsOwner("pg_ctl", {"stop", "-D", data_dir_, "-m", "immediate", "-w", "-t", "30"});
  }
  return status;
}

absl::Status PostgresServer::WaitUntilAcceptingConnections(const std::string& url) {
  const absl::Time deadline = absl::Now() + kReadyTimeout;
  std::string last_error;
  while (absl::Now() < deadline) {
    try {
      pqxx::connection connection(url);
      pqxx::nontransaction tx(connection);
      tx.exec("SELECT 1");
      return absl::OkStatus();
    } catch (const std::exception& e) {
      last_error = e.what();
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::UnavailableError(
      absl::StrCat("PostgreSQL at ", url, " is not accepting connections: ", last_error));
}

absl::Status PostgresServer::Stop() {
  if (external()) {
    return absl::FailedPreconditionError("cannot stop an external PostgreSQL server");
  }
  if (!running_ || getpid() != owner_pid_) return absl::OkStatus();
  absl::Status status =
      RunAsOwner("pg_ctl", {"stop", "-D", data_dir_, "-m", "fast", "-w", "-t", "60"});
  if (status.ok()) running_ = false;
  return status;
}

absl::Status PostgresServer::Restart() {
  if (external()) {
    return absl::FailedPreconditionError("cannot restart an external PostgreSQL server");
  }
  if (absl::Status status = Stop(); !status.ok()) return status;
  return Start();
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase(std::string name) {
  if (!running_) {
    return absl::FailedPreconditionError(
        last_start_error_.ok()
            ? std::string("PostgreSQL is not running")
            : absl::StrCat("PostgreSQL failed to start: ", last_start_error_.message()));
  }
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      return absl::InvalidArgumentError(absl::StrCat("name: want [a-z0-9_]*, got \"", name, "\""));
    }
  }
  if (name.empty()) name = "test";
  name.resize(std::min(name.size(), kMaxDatabasePrefix));

  // pid + counter is unique among live processes; retrying skips leftovers of a recycled pid.
  std::string last_error;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string database = absl::StrCat(name, "_", getpid(), "_", next_database_++);
    try {
      pqxx::connection connection(AdminUrl());
      pqxx::nontransaction tx(connection);  // CREATE DATABASE cannot run inside a transaction
      tx.exec0("CREATE DATABASE " + tx.quote_name(database));
      return UrlFor(database);
    } catch (const pqxx::broken_connection& e) {
      return absl::UnavailableError(absl::StrCat("CreateDatabase: ", e.what()));
    } catch (const pqxx::sql_error& e) {
      if (e.sqlstate() != "42P04") {  // duplicate_database
        return absl::InternalError(absl::StrCat("CreateDatabase ", database, ": ", e.what()));
      }
      last_error = e.what();
    }
  }
  return absl::AlreadyExistsError(absl::StrCat("CreateDatabase ", name, ": ", last_error));
}

std::string PostgresServer::AdminUrl() const {
  if (external()) return options_.external_admin_url;
  return AdminUrlForPort(port_);
}

std::string PostgresServer::UrlFor(const std::string& database) const {
  return ReplaceDatabase(AdminUrl(), database);
}

std::string PostgresServer::ServerLogTail() const { return Tail(root_dir_ + "/postgresql.log"); }

PostgresServer& SharedPostgres() {
  // Destroyed at exit, which stops a private server and removes its directory.
  static PostgresServer server([] {
    PostgresServerOptions options;
    options.external_admin_url = EnvOr("MERIDIAN_TEST_DATABASE_URL", "");
    return options;
  }());
  // Started once; a failure is kept in the server and reported by CreateDatabase.
  static const bool started = [] {
    (void)server.Start();
    return true;
  }();
  (void)started;
  return server;
}

}  // namespace meridian::testing
