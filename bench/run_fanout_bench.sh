#!/usr/bin/env bash
# Runs the fan-out benchmark: for each N, fresh meridian-cp, etcd 3.4 and bare gRPC broadcast
# servers on free loopback ports (one throwaway PostgreSQL for the whole run), then
# meridian_fanout_load against the three in turn, then the comparison table. Servers are
# restarted per N so each N's "RSS before" is a clean baseline. Everything is torn down on exit.
#
#   bench/run_fanout_bench.sh [meridian_fanout_load flags...]   e.g. --writes 40
#
# Builds nothing: expects a build tree from scripts/run (build/) or at $BUILD_DIR.
# Env: BUILD_DIR         build tree holding controlplane/meridian-cp and bench/meridian_fanout_load
#      ETCD              etcd binary (default: etcd on PATH, Debian's etcd-server)
#      STREAMS           the N to measure (default "1000 5000 10000")
#      ROUNDS            measure each N this many times, every system afresh each round
#                        (default 1); the tables show medians and round-by-round ratios
#      CONNECTIONS       TCP connections the N streams share, per system (default 100)
#      WAIT_LOAD_BELOW   before each N, wait until the 1-minute load average is below this
#                        (default: do not wait); at most WAIT_LOAD_SECONDS (default 1200)
#      RESULTS           keep the results file here (default: a temp file, printed at the end)
#      CP_FLAGS          extra meridian-cp flags (e.g. "--xds-threads 4")
#      ROTATE            1: move the order the systems are measured in by one position each
#                        round (meridian, etcd, bare; then etcd, bare, meridian; ...), so
#                        none of them is always first; use a multiple of their count as ROUNDS
#      CONTROL           1: also start a second bare server and measure it after the first
#                        (target bare-b), so the tables show how far two runs of one system
#                        move apart (the A/A control); sets --targets itself, so pass none
#      KEEP_LOGS         copy the servers' logs (meridian-cp.log, etcd.log, bare.log) of the
#                        last N, and PostgreSQL's log of the whole run (checkpoints, and
#                        statements over 20 ms when KEEP_LOGS is set), into this directory
#                        before cleaning up
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/postgres.sh
source "${root}/scripts/lib/postgres.sh"
# shellcheck source=scripts/lib/ports.sh
source "${root}/scripts/lib/ports.sh"

build_dir="${BUILD_DIR:-${root}/build}"
cp_binary="${build_dir}/controlplane/meridian-cp"
load_binary="${build_dir}/bench/meridian_fanout_load"
bare_binary="${build_dir}/bench/meridian_bare_broadcast_server"
etcd_binary="${ETCD:-$(command -v etcd || true)}"
streams_list="${STREAMS:-1000 5000 10000}"
connections="${CONNECTIONS:-100}"
rounds="${ROUNDS:-1}"
read -r -a cp_flags <<<"${CP_FLAGS:-}"
wait_load_below="${WAIT_LOAD_BELOW:-}"
wait_load_seconds="${WAIT_LOAD_SECONDS:-1200}"
for binary in "${cp_binary}" "${load_binary}" "${bare_binary}"; do
  if [[ ! -x "${binary}" ]]; then
    echo "run_fanout_bench: ${binary} is missing; build first (scripts/run, or set BUILD_DIR)" >&2
    exit 1
  fi
done
if [[ -z "${etcd_binary}" || ! -x "${etcd_binary}" ]]; then
  echo "run_fanout_bench: etcd not found (apt-get install etcd-server, or set ETCD)" >&2
  exit 1
fi

# 10,000 streams over 100 connections need few descriptors, but more connections do.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 65536 2>/dev/null || true

load_average() { cut -d ' ' -f 1 /proc/loadavg; }

# wait_for_quiet_machine: bounded wait until the 1-minute load is below WAIT_LOAD_BELOW.
wait_for_quiet_machine() {
  [[ -n "${wait_load_below}" ]] || return 0
  local waited=0
  while awk -v load="$(load_average)" -v limit="${wait_load_below}" 'BEGIN { exit !(load >= limit) }'; do
    if ((waited >= wait_load_seconds)); then
      echo "run_fanout_bench: load still $(load_average) after ${waited}s; measuring anyway" >&2
      return 0
    fi
    sleep 15
    waited=$((waited + 15))
  done
  echo "run_fanout_bench: load $(load_average) after waiting ${waited}s" >&2
}

work_dir="$(mktemp -d -t meridian-fanout-bench.XXXXXX)"
# The postgres OS user (when running as root) must reach the data dir below.
chmod 755 "${work_dir}"
pg_data="${work_dir}/postgres"
results="${RESULTS:-${work_dir}/results.tsv}"
cp_pid=""
etcd_pid=""
bare_pid=""
bare_b_pid=""

stop_pid() {
  local pid="$1"
  if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
    kill -TERM "${pid}" 2>/dev/null || true
    # Bounded: a server that ignores SIGTERM for 20 s is killed.
    for _ in $(seq 1 100); do
      kill -0 "${pid}" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
  fi
}

stop_servers() {
  stop_pid "${cp_pid}"
  stop_pid "${etcd_pid}"
  stop_pid "${bare_pid}"
  stop_pid "${bare_b_pid}"
  cp_pid="" etcd_pid="" bare_pid="" bare_b_pid=""
}

# start_bare_server PID_VAR PORT NAME LABEL: starts a bare broadcast server on
# 127.0.0.1:PORT, logging to NAME.log, sets the variable PID_VAR to its pid before waiting
# (so the EXIT trap stops it if it never listens), and waits until it listens.
start_bare_server() {
  local pid_var="$1" port="$2" name="$3" label="$4"
  echo "${label}: starting on 127.0.0.1:${port}" >&2
  "${bare_binary}" --address 127.0.0.1 --port "${port}" >"${work_dir}/${name}.log" 2>&1 &
  printf -v "${pid_var}" '%s' "$!"
  meridian_wait_for 30 "$!" "${label}" "${work_dir}/${name}.log" meridian_port_open "${port}"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
tear_down() {
  stop_servers
  meridian_pg_stop "${pg_data}" || true
  if [[ -n "${KEEP_LOGS:-}" ]]; then
    cp "${work_dir}"/*.log "${pg_data}/postgresql.log" "${KEEP_LOGS}"/ 2>/dev/null || true
  fi
  rm -rf "${work_dir}"
}
trap tear_down EXIT
trap 'exit 130' INT TERM

pg_port="$(meridian_free_port)"
meridian_pg_start "${pg_data}" "${pg_port}"
meridian_pg_create_db "${pg_port}" meridian
# With KEEP_LOGS, a commit that stalls shows in the log with PostgreSQL's own timing
# (checkpoints are logged by default), so a slow write can be told apart from a slow client or
# scheduler. Only then: the statements that bring thousands of nodes in are long.
if [[ -n "${KEEP_LOGS:-}" ]]; then
  "${MERIDIAN_PG_BIN}/psql" -q -h 127.0.0.1 -p "${pg_port}" -U "${MERIDIAN_PG_SUPERUSER}" -d postgres \
    -c "ALTER SYSTEM SET log_min_duration_statement = '20ms'" -c "SELECT pg_reload_conf()" >/dev/null
fi
database_url="$(meridian_pg_url "${pg_port}" meridian)"

for streams in ${streams_list}; do
  for round in $(seq 1 "${rounds}"); do
    wait_for_quiet_machine

    etcd_port="$(meridian_free_port)"
    etcd_peer_port="$(meridian_free_port)"
    etcd_url="http://127.0.0.1:${etcd_port}"
    etcd_peer_url="http://127.0.0.1:${etcd_peer_port}"
    rm -rf "${work_dir}/etcd"
    echo "etcd: starting on 127.0.0.1:${etcd_port} ($("${etcd_binary}" --version | head -n 1))" >&2
    "${etcd_binary}" --name bench --data-dir "${work_dir}/etcd" \
      --listen-client-urls "${etcd_url}" --advertise-client-urls "${etcd_url}" \
      --listen-peer-urls "${etcd_peer_url}" --initial-advertise-peer-urls "${etcd_peer_url}" \
      --initial-cluster "bench=${etcd_peer_url}" \
      >"${work_dir}/etcd.log" 2>&1 &
    etcd_pid=$!
    meridian_wait_for 30 "${etcd_pid}" etcd "${work_dir}/etcd.log" curl -fsS --max-time 1 "${etcd_url}/health"

    bare_port="$(meridian_free_port)"
    start_bare_server bare_pid "${bare_port}" bare "bare broadcast server"

    control_flags=()
    if [[ "${CONTROL:-}" == 1 ]]; then
      bare_b_port="$(meridian_free_port)"
      start_bare_server bare_b_pid "${bare_b_port}" bare-b \
        "second bare broadcast server (A/A control)"
      control_flags=(--bare-b "127.0.0.1:${bare_b_port}" --bare-b-pid "${bare_b_pid}"
        --targets "meridian,etcd,bare,bare-b")
    fi

    grpc_port="$(meridian_free_port)"
    http_port="$(meridian_free_port)"
    echo "meridian-cp: starting on 127.0.0.1 grpc ${grpc_port} http ${http_port}" >&2
    "${cp_binary}" --database-url "${database_url}" --bind-address 127.0.0.1 \
      --grpc-port "${grpc_port}" --http-port "${http_port}" \
      --max-xds-streams $((streams * 2 + 1000)) "${cp_flags[@]}" >"${work_dir}/meridian-cp.log" 2>&1 &
    cp_pid=$!
    meridian_wait_for 60 "${cp_pid}" meridian-cp "${work_dir}/meridian-cp.log" \
      curl -fsS --max-time 1 "http://127.0.0.1:${http_port}/readyz"

    order_flags=()
    if [[ "${ROTATE:-}" == 1 ]]; then order_flags=(--rotate-targets "$((round - 1))"); fi
    echo "== N=${streams}, round ${round}/${rounds}, ${connections} connections, load $(load_average) ==" >&2
    "${load_binary}" --streams "${streams}" --connections "${connections}" \
      --meridian "127.0.0.1:${grpc_port}" --meridian-pid "${cp_pid}" \
      --etcd "127.0.0.1:${etcd_port}" --etcd-pid "${etcd_pid}" \
      --bare "127.0.0.1:${bare_port}" --bare-pid "${bare_pid}" "${control_flags[@]}" "${order_flags[@]}" \
      --results "${results}" "$@"
    stop_servers
  done
done

echo
echo "Fan-out benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, $(uname -sr)"
echo "load average now: $(cut -d ' ' -f 1-3 /proc/loadavg)"
"${load_binary}" --summarize "${results}"
