# shellcheck shell=bash
# `scripts/run --demo`: a control plane, a local meridian-agent driving HAProxy, two sample
# backends and the example shop config, all on loopback. Sourced by scripts/run after the build;
# expects ${root}, ${database_url}, ${grpc_port}, ${rest_port}.

meridian_demo() {
  local build="${root}/build"
  local work="${root}/.data/demo"
  local ctl=("${build}/controlplane/ctl/meridianctl" --server "http://127.0.0.1:${rest_port}" -e demo
             --actor demo)
  mkdir -p "${work}"
  local pids=()
  # shellcheck disable=SC2317  # invoked by the trap
  demo_stop() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "${pid}" 2>/dev/null || true; done
    wait 2>/dev/null || true
  }
  trap 'demo_stop; stop_postgres 2>/dev/null || true' EXIT
  trap 'exit 130' INT TERM

  python3 "${root}/scripts/lib/demo_backend.py" checkout 18101 & pids+=($!)
  python3 "${root}/scripts/lib/demo_backend.py" checkout-canary 18102 & pids+=($!)
  "${build}/controlplane/meridian-cp" --database-url "${database_url}" \
    --grpc-port "${grpc_port}" --http-port "${rest_port}" >"${work}/meridian-cp.log" 2>&1 &
  pids+=($!)
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS "http://127.0.0.1:${rest_port}/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "${build}/agent/meridian-agent" --control-plane "127.0.0.1:${grpc_port}" --node-id demo-node \
    --environment demo --zone a --bind-address 127.0.0.1 --work-dir "${work}/agent" \
    --admin-address 127.0.0.1:19000 >"${work}/meridian-agent.log" 2>&1 &
  pids+=($!)

  "${ctl[@]}" --comment "demo shop" apply -f "${root}/docs/examples/shop.yaml"
  for ((i = 0; i < 100; i++)); do
    curl -fsS -H 'Host: shop.example.com' http://127.0.0.1:18180/ >/dev/null 2>&1 && break
    sleep 0.1
  done

  cat <<DEMO

Meridian demo is running (logs in ${work}):
  control plane  REST http://127.0.0.1:${rest_port}, gRPC 127.0.0.1:${grpc_port}
  agent          admin http://127.0.0.1:19000/status, HAProxy on 127.0.0.1:18180
  backends       checkout 127.0.0.1:18101, checkout-canary 127.0.0.1:18102

Send traffic through the proxy (about 90% checkout, 10% canary):
  for i in \$(seq 20); do curl -s -H 'Host: shop.example.com' http://127.0.0.1:18180/; done | sort | uniq -c

Shift the canary to 50/50, then check that the agent applied it:
  ${build}/controlplane/ctl/meridianctl --server http://127.0.0.1:${rest_port} -e demo apply -f docs/examples/canary-50.yaml
  ${build}/controlplane/ctl/meridianctl --server http://127.0.0.1:${rest_port} -e demo status --wait

Ctrl-C stops everything.
DEMO
  wait "${pids[2]}"
}
