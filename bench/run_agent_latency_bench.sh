#!/usr/bin/env bash
# Change-to-traffic latency: throwaway PostgreSQL, meridian-cp, meridian-agent driving HAProxy,
# two tiny backends, all on loopback; then bench/agent_latency.py. Torn down on exit.
#
#   bench/run_agent_latency_bench.sh [changes]     (default 50)
#
# Builds nothing: expects build/ from scripts/run, or BUILD_DIR.
# shellcheck source-path=SCRIPTDIR/..
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/postgres.sh
source "${root}/scripts/lib/postgres.sh"
# shellcheck source=scripts/lib/ports.sh
source "${root}/scripts/lib/ports.sh"
build_dir="${BUILD_DIR:-${root}/build}"
changes="${1:-50}"

work="$(mktemp -d /tmp/meridian-agent-bench.XXXXXX)"
chmod 755 "${work}"  # the postgres user must reach its data dir
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  meridian_pg_stop "${work}/pg" >/dev/null 2>&1 || true
  rm -rf "${work}"
}
trap cleanup EXIT

pg_port="$(meridian_free_port)"
meridian_pg_start "${work}/pg" "${pg_port}" >/dev/null
meridian_pg_create_db "${pg_port}" meridian >/dev/null
grpc_port="$(meridian_free_port)"
rest_port="$(meridian_free_port)"
proxy_port="$(meridian_free_port)"
backend_a="$(meridian_free_port)"
backend_b="$(meridian_free_port)"
python3 "${root}/scripts/lib/demo_backend.py" backend-a "${backend_a}" & pids+=($!)
python3 "${root}/scripts/lib/demo_backend.py" backend-b "${backend_b}" & pids+=($!)
"${build_dir}/controlplane/meridian-cp" --database-url "$(meridian_pg_url "${pg_port}" meridian)" \
  --grpc-port "${grpc_port}" --http-port "${rest_port}" --bind-address 127.0.0.1 \
  >"${work}/cp.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:${rest_port}/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
"${build_dir}/agent/meridian-agent" --control-plane "127.0.0.1:${grpc_port}" --node-id bench \
  --environment bench --bind-address 127.0.0.1 --work-dir "${work}/agent" \
  --admin-address "127.0.0.1:$(meridian_free_port)" >"${work}/agent.log" 2>&1 &
agent_pid=$!
pids+=("${agent_pid}")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
python3 "${root}/bench/agent_latency.py" "http://127.0.0.1:${rest_port}" "${proxy_port}" \
  "${backend_a}" "${backend_b}" "${agent_pid}" "${changes}"
