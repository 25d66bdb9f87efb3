#!/usr/bin/env python3
"""Change-to-traffic latency through the whole stack (meridian-cp, meridian-agent, HAProxy).

Driven by bench/run_agent_latency_bench.sh, which starts everything. For each of N changes it
writes through REST and polls through HAProxy until the new behaviour answers:
  structural: a new route /r<i> pointing at backend B (needs a HAProxy reload);
  endpoint:   the checkout endpoint moved between backends A and B (runtime API, no reload).
Prints p50/p99/max per kind and the agent's RSS. Figures only; nothing is asserted.
"""
import json
import sys
import time
import urllib.error
import urllib.request


def put(rest, path, body):
    request = urllib.request.Request(f"{rest}{path}", data=json.dumps(body).encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def fetch(proxy, path):
    request = urllib.request.Request(f"{proxy}{path}", headers={"Host": "bench.example.com"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return ""


def wait_for(proxy, path, expected, deadline_s=10.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if expected in fetch(proxy, path):
            return time.monotonic() - start
        time.sleep(0.002)
    return None


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    rest, proxy_port, backend_a, backend_b, agent_pid, changes = sys.argv[1:7]
    changes = int(changes)
    proxy = f"http://127.0.0.1:{proxy_port}"
    env = "/api/v1/environments/bench"
    http = {"ports": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
    put(rest, f"{env}/services/svc-a", {"spec": http})
    put(rest, f"{env}/services/svc-b", {"spec": http})
    put(rest, f"{env}/endpoints/a-1", {"spec": {"service": "svc-a", "address": "127.0.0.1",
                                                "port": int(backend_a)}})
    put(rest, f"{env}/endpoints/b-1", {"spec": {"service": "svc-b", "address": "127.0.0.1",
                                                "port": int(backend_b)}})
    rules = [{"match": {"path_prefix": "/"}, "destinations": [{"service": "svc-a"}]}]
    # Routes are matched in name order: the catch-all sorts last.
    put(rest, f"{env}/routes/zz-base", {"spec": {"hosts": ["bench.example.com"],
                                              "port": int(proxy_port), "rules": rules}})
    if wait_for(proxy, "/", "backend-a", 30) is None:
        sys.exit("bench: the proxy never served the base route")

    structural, endpoint = [], []
    for i in range(changes):
        start = time.monotonic()
        put(rest, f"{env}/routes/r{i}", {"spec": {
            "hosts": ["bench.example.com"], "port": int(proxy_port),
            "rules": [{"match": {"path_prefix": f"/r{i}/"},
                       "destinations": [{"service": "svc-b"}]}]}})
        waited = wait_for(proxy, f"/r{i}/x", "backend-b")
        if waited is not None:
            structural.append(time.monotonic() - start)
    for i in range(changes):
        target, name = (backend_b, "backend-b") if i % 2 == 0 else (backend_a, "backend-a")
        start = time.monotonic()
        put(rest, f"{env}/endpoints/a-1", {"spec": {"service": "svc-a", "address": "127.0.0.1",
                                                    "port": int(target)}})
        # Route r0.. send to svc-b; "/" goes to svc-a, whose only endpoint just moved.
        waited = wait_for(proxy, "/", name)
        if waited is not None:
            endpoint.append(time.monotonic() - start)

    print(f"change-to-traffic latency, {changes} changes each (write via REST until it answers "
          f"through HAProxy)")
    print(f"{'kind':<28}{'ok':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, values in (("structural (new route)", structural),
                          ("endpoint (runtime API)", endpoint)):
        if values:
            print(f"{label:<28}{len(values):>6}{percentile(values, 50) * 1000:>10.1f}"
                  f"{percentile(values, 99) * 1000:>10.1f}{max(values) * 1000:>10.1f}")
        else:
            print(f"{label:<28}{0:>6}  (no change became visible)")
    print(f"meridian-agent RSS: {rss_kb(int(agent_pid)) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
