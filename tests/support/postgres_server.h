#pragma once

#include <sys/types.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace meridian::testing {

// Returns a TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
// Racy by nature: bind it soon. Aborts the process when no socket can be bound at all, since no
// networked test could run on such a machine anyway.
int FreePort();

struct PostgresServerOptions {
  // Where the server's private directory (data dir, logs) is created with mkdtemp.
  // Empty: $TMPDIR, else /tmp. The private directory is removed by the destructor.
  std::string parent_dir;
  // PostgreSQL server binaries. Empty: $MERIDIAN_TEST_PG_BIN, else /usr/lib/postgresql/15/bin.
  std::string bin_dir;
  // When set, attach to this already-running server (a superuser URL to its maintenance database)
  // instead of starting one; Stop() and Restart() then return FailedPrecondition.
  std::string external_admin_url;
};

// A private PostgreSQL 15 for one test binary: initdb'd with trust auth and a `postgres`
// superuser, listening on 127.0.0.1 only at a free port (kept across Restart()), fsync and
// synchronous_commit on. As root, initdb and pg_ctl run as the `postgres` OS user via runuser.
// The destructor stops the server and deletes its directory.
// Start/Stop/Restart are not thread-safe; CreateDatabase and the accessors may be called from
// several threads once Start() has returned.
class PostgresServer {
 public:
  explicit PostgresServer(PostgresServerOptions options = {});
  ~PostgresServer();

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // initdb on first use, then start and wait until it accepts connections. No-op when running.
  // For an external server, checks that it accepts connections.
  absl::Status Start();
  // Fast shutdown (pg_ctl -m fast). No-op when not running.
  absl::Status Stop();
  // Stop, then Start on the same port and data dir: committed data survives.
  absl::Status Restart();

  // Creates a new empty database and returns its connection URL. `name` ([a-z0-9_], may be empty)
  // is a prefix: a unique suffix is appended so test processes sharing one server never collide.
  absl::StatusOr<std::string> CreateDatabase(std::string name);

  // Superuser URL of the `postgres` maintenance database,
  // e.g. postgresql://postgres@127.0.0.1:PORT/postgres.
  std::string AdminUrl() const;
  // Same server, other database.
  std::string UrlFor(const std::string& database) const;

  bool running() const { return running_; }
  bool external() const { return !options_.external_admin_url.empty(); }
  // 0 until the first successful Start() (and always for an external server).
  int port() const { return port_; }
  // Empty for an external server or before the first Start().
  const std::string& data_dir() const { return data_dir_; }

 private:
  absl::Status EnsureInitialized();
  absl::Status StartOnce(int port);
  absl::Status WaitUntilAcceptingConnections(const std::string& url);
  // Runs a PostgreSQL server binary as the cluster owner (runuser -u postgres when root).
  absl::Status RunAsOwner(const std::string& binary, std::vector<std::string> args);
  std::string ServerLogTail() const;

  PostgresServerOptions options_;
  pid_t owner_pid_;  // only the process that started the server stops it (not forked children)
  std::string root_dir_;
  std::string data_dir_;
  int port_ = 0;
  bool running_ = false;
  absl::Status last_start_error_;
  std::atomic<int> next_database_ = 0;
};

// A process-wide server. Attaches to $MERIDIAN_TEST_DATABASE_URL when set (as scripts/test does),
// otherwise starts a private server on first call. A failed start is reported by CreateDatabase.
// Thread-safe; lives until the process exits.
PostgresServer& SharedPostgres();

}  // namespace meridian::testing
