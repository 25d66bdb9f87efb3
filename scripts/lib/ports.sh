# shellcheck shell=bash
# Loopback ports and readiness waits shared by scripts/test and the bench scripts.
# Functions only; sourcing it runs nothing.

# meridian_free_port: a loopback port nothing listens on right now. Racy by nature: use it at
# once (callers retry or fail loudly). Below the kernel's ephemeral range (32768+), so no
# outgoing connection is holding it.
meridian_free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 12000))
    if ! meridian_port_open "${port}"; then
      echo "${port}"
      return 0
    fi
  done
  echo "meridian_free_port: no free port found" >&2
  return 1
}

# meridian_port_open PORT: something accepts connections on 127.0.0.1:PORT.
meridian_port_open() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# meridian_wait_for SECONDS PID WHAT LOG COMMAND...: runs COMMAND every 0.2 s until it
# succeeds, for at most SECONDS; gives up early if process PID has exited. On failure prints
# the tail of LOG and returns 1.
meridian_wait_for() {
  local seconds="$1" pid="$2" what="$3" log="$4" i
  shift 4
  for ((i = 0; i < seconds * 5; i++)); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.2
  done
  echo "${what} not ready after ${seconds}s or exited; last log lines:" >&2
  tail -n 30 "${log}" >&2 || true
  return 1
}
