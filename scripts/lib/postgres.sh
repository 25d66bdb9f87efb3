# shellcheck shell=bash
# Runs a private PostgreSQL 15 for development and tests: one data dir, one port, loopback only.
#
# The bootstrap superuser is always named `postgres` (initdb --username=postgres), whoever runs the
# script, and authentication is `trust`, so every URL has the same shape:
#   postgresql://postgres@127.0.0.1:PORT/DATABASE
# As root, initdb and pg_ctl run as the `postgres` OS user (PostgreSQL refuses to run as root) and
# the data dir is chowned to it; as anyone else they run as that user. Clients (psql, createdb,
# pg_isready) connect over TCP and run as the caller.
#
# Functions (all return non-zero on failure and log to stderr; only meridian_pg_url writes stdout):
#   meridian_pg_start DATADIR PORT    initdb if needed, start, wait until ready
#   meridian_pg_wait_ready PORT       bounded pg_isready loop
#   meridian_pg_create_db PORT NAME   create database NAME unless it exists
#   meridian_pg_url PORT [DATABASE]   print the connection URL (DATABASE defaults to meridian)
#   meridian_pg_stop DATADIR          fast shutdown; no-op when not running

MERIDIAN_PG_BIN="${MERIDIAN_PG_BIN:-/usr/lib/postgresql/15/bin}"
MERIDIAN_PG_SUPERUSER=postgres

# Runs a server-side command (initdb, pg_ctl) as the user that owns the cluster.
_meridian_pg_as_owner() {
  if ((EUID == 0)); then
    # cd / so the postgres user never trips over a cwd it cannot read.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Where the server puts its unix socket: inside the data dir, unless that path would exceed the
# ~107-byte sun_path limit, in which case unix sockets are disabled (we only use TCP anyway).
_meridian_pg_socket_dir() {
  local datadir="$1"
  if ((${#datadir} + 20 > 100)); then
    printf ''
  else
    printf '%s' "${datadir}"
  fi
}

_meridian_pg_log_tail() {
  local log="$1/postgresql.log"
  if [[ -r "${log}" ]]; then
    echo "---- last lines of ${log} ----" >&2
    tail -n 30 "${log}" >&2
  fi
}

# meridian_pg_init DATADIR: creates and configures the cluster unless DATADIR already holds one.
meridian_pg_init() {
  local datadir="$1"
  if [[ -f "${datadir}/PG_VERSION" ]]; then
    return 0
  fi
  if [[ "${datadir}" == *"'"* ]]; then
    echo "postgres: data dir path must not contain a single quote: ${datadir}" >&2
    return 1
  fi
  mkdir -p "${datadir}" || return 1
  chmod 700 "${datadir}" || return 1
  if ((EUID == 0)); then
    chown postgres:postgres "${datadir}" || return 1
    if ! runuser -u postgres -- test -w "${datadir}"; then
      echo "postgres: user 'postgres' cannot reach ${datadir}; a parent directory is not" \
        "world-traversable (chmod o+x it, or move the repo)" >&2
      return 1
    fi
  fi
  echo "postgres: initdb ${datadir}" >&2
  _meridian_pg_as_owner "${MERIDIAN_PG_BIN}/initdb" --pgdata="${datadir}" \
    --username="${MERIDIAN_PG_SUPERUSER}" --auth=trust --encoding=UTF8 --no-locale \
    >"${datadir}.initdb.log" 2>&1 || {
    echo "postgres: initdb failed:" >&2
    cat "${datadir}.initdb.log" >&2
    return 1
  }
  rm -f "${datadir}.initdb.log"
  # Written as the caller (root can write a postgres-owned file; a normal user owns it anyway).
  cat >>"${datadir}/postgresql.conf" <<CONF

# Added by scripts/lib/postgres.sh. Port and unix socket dir are passed at start (-p/-k) so the
# data dir keeps working if it moves or the port changes.
listen_addresses = '127.0.0.1'
fsync = on
synchronous_commit = on
max_connections = 200
CONF
}

# meridian_pg_wait_ready PORT [TIMEOUT_SECONDS]
meridian_pg_wait_ready() {
  local port="$1" timeout="${2:-60}"
  local attempts=$((timeout * 5)) i
  for ((i = 0; i < attempts; i++)); do
    if "${MERIDIAN_PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "${port}" \
      -U "${MERIDIAN_PG_SUPERUSER}" -d postgres; then
      return 0
    fi
    sleep 0.2
  done
  echo "postgres: not ready on 127.0.0.1:${port} after ${timeout}s" >&2
  return 1
}

# meridian_pg_start DATADIR PORT
meridian_pg_start() {
  local datadir port
  datadir="$(realpath -m "$1")"
  port="$2"
  if [[ ! "${port}" =~ ^[0-9]+$ ]]; then
    echo "postgres: bad port '${port}'" >&2
    return 1
  fi
  meridian_pg_init "${datadir}" || return 1
  if _meridian_pg_as_owner "${MERIDIAN_PG_BIN}/pg_ctl" status -D "${datadir}" >/dev/null 2>&1; then
    echo "postgres: a server is already running on ${datadir}; stop it first" \
      "(${MERIDIAN_PG_BIN}/pg_ctl stop -D ${datadir})" >&2
    return 1
  fi
  local socket_dir
  socket_dir="$(_meridian_pg_socket_dir "${datadir}")"
  echo "postgres: starting on 127.0.0.1:${port} (data ${datadir})" >&2
  # pg_ctl hands -o to a shell; the path was checked for single quotes in meridian_pg_init.
  if ! _meridian_pg_as_owner "${MERIDIAN_PG_BIN}/pg_ctl" start -D "${datadir}" -w -t 60 \
    -l "${datadir}/postgresql.log" -o "-p ${port} -k '${socket_dir}'" >/dev/null; then
    echo "postgres: failed to start" >&2
    _meridian_pg_log_tail "${datadir}"
    return 1
  fi
  meridian_pg_wait_ready "${port}" 60 || {
    _meridian_pg_log_tail "${datadir}"
    return 1
  }
}

# meridian_pg_create_db PORT NAME
meridian_pg_create_db() {
  local port="$1" name="$2" exists
  # Via stdin: psql interpolates :'name' (quoted literal) there, but not in -c.
  exists="$("${MERIDIAN_PG_BIN}/psql" -h 127.0.0.1 -p "${port}" -U "${MERIDIAN_PG_SUPERUSER}" \
    -d postgres -XtAq -v ON_ERROR_STOP=1 -v name="${name}" \
    <<<"SELECT 1 FROM pg_database WHERE datname = :'name';")" || return 1
  if [[ "${exists}" != "1" ]]; then
    "${MERIDIAN_PG_BIN}/createdb" -h 127.0.0.1 -p "${port}" -U "${MERIDIAN_PG_SUPERUSER}" \
      "${name}" || return 1
  fi
}

# meridian_pg_url PORT [DATABASE]
meridian_pg_url() {
  printf 'postgresql://%s@127.0.0.1:%s/%s\n' "${MERIDIAN_PG_SUPERUSER}" "$1" "${2:-meridian}"
}

# meridian_pg_stop DATADIR
meridian_pg_stop() {
  local datadir
  datadir="$(realpath -m "$1")"
  [[ -f "${datadir}/postmaster.pid" ]] || return 0
  _meridian_pg_as_owner "${MERIDIAN_PG_BIN}/pg_ctl" stop -D "${datadir}" -m fast -w -t 60 \
    >/dev/null 2>&1 || {
    echo "postgres: pg_ctl stop failed for ${datadir}" >&2
    return 1
  }
}
