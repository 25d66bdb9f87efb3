#!/usr/bin/env bash
# Runs the write benchmark: a throwaway PostgreSQL (fsync and synchronous_commit on), a
# throwaway etcd 3.4 (default fsync behaviour), meridian-cp on free loopback ports, then
# meridian_write_bench against Meridian and etcd in the same run. Everything is torn down on exit.
#
#   bench/run_write_bench.sh [meridian_write_bench flags...]   e.g. --duration-seconds 10
#
# Builds nothing: expects a build tree from scripts/run (build/) or at $BUILD_DIR.
# Env: BUILD_DIR  build tree holding controlplane/meridian-cp and bench/meridian_write_bench
#      ETCD       etcd binary (default: etcd on PATH, Debian's etcd-server)
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/postgres.sh
source "${root}/scripts/lib/postgres.sh"
# shellcheck source=scripts/lib/ports.sh
source "${root}/scripts/lib/ports.sh"

build_dir="${BUILD_DIR:-${root}/build}"
cp_binary="${build_dir}/controlplane/meridian-cp"
bench_binary="${build_dir}/bench/meridian_write_bench"
etcd_binary="${ETCD:-$(command -v etcd || true)}"
for binary in "${cp_binary}" "${bench_binary}"; do
  if [[ ! -x "${binary}" ]]; then
    echo "run_write_bench: ${binary} is missing; build first (scripts/run, or set BUILD_DIR)" >&2
    exit 1
  fi
done
if [[ -z "${etcd_binary}" || ! -x "${etcd_binary}" ]]; then
  echo "run_write_bench: etcd not found (apt-get install etcd-server, or set ETCD)" >&2
  exit 1
fi

work_dir="$(mktemp -d -t meridian-write-bench.XXXXXX)"
# The postgres OS user (when running as root) must reach the data dir below.
chmod 755 "${work_dir}"
pg_data="${work_dir}/postgres"
cp_pid=""
etcd_pid=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
tear_down() {
  local pid
  for pid in "${cp_pid}" "${etcd_pid}"; do
    if [[ -n "${pid}" ]] && kill -0 "${pid}" 2>/dev/null; then
      kill -TERM "${pid}" 2>/dev/null || true
      wait "${pid}" 2>/dev/null || true
    fi
  done
  meridian_pg_stop "${pg_data}" || true
  rm -rf "${work_dir}"
}
trap tear_down EXIT
trap 'exit 130' INT TERM

pg_port="$(meridian_free_port)"
meridian_pg_start "${pg_data}" "${pg_port}"
meridian_pg_create_db "${pg_port}" meridian
database_url="$(meridian_pg_url "${pg_port}" meridian)"

etcd_port="$(meridian_free_port)"
etcd_peer_port="$(meridian_free_port)"
etcd_url="http://127.0.0.1:${etcd_port}"
etcd_peer_url="http://127.0.0.1:${etcd_peer_port}"
echo "etcd: starting on 127.0.0.1:${etcd_port} ($("${etcd_binary}" --version | head -n 1))" >&2
# A 10,000-put transaction needs more than the defaults (128 ops, 1.5 MiB requests).
"${etcd_binary}" --name bench --data-dir "${work_dir}/etcd" \
  --listen-client-urls "${etcd_url}" --advertise-client-urls "${etcd_url}" \
  --listen-peer-urls "${etcd_peer_url}" --initial-advertise-peer-urls "${etcd_peer_url}" \
  --initial-cluster "bench=${etcd_peer_url}" \
  --max-txn-ops=10000 --max-request-bytes=33554432 \
  >"${work_dir}/etcd.log" 2>&1 &
etcd_pid=$!
meridian_wait_for 30 "${etcd_pid}" etcd "${work_dir}/etcd.log" \
  curl -fsS -o /dev/null --max-time 1 "${etcd_url}/health"

grpc_port="$(meridian_free_port)"
http_port="$(meridian_free_port)"
echo "meridian-cp: starting on 127.0.0.1 grpc ${grpc_port} http ${http_port}" >&2
"${cp_binary}" --database-url "${database_url}" --bind-address 127.0.0.1 \
  --grpc-port "${grpc_port}" --http-port "${http_port}" >"${work_dir}/meridian-cp.log" 2>&1 &
cp_pid=$!
meridian_wait_for 60 "${cp_pid}" meridian-cp "${work_dir}/meridian-cp.log" \
  curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:${http_port}/readyz"

"${bench_binary}" --meridian "127.0.0.1:${grpc_port}" --etcd "127.0.0.1:${etcd_port}" \
  --database-url "${database_url}" "$@"
