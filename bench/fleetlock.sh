#!/usr/bin/env bash
# Benchmark: `cairn fleetlock serve` under the lock traffic of a node pool rolling out an update.
#
#   bench/fleetlock.sh [NODES=1000] [GROUPS=4] [SLOTS=25]
#   env: HOLD_MS=50 (a node's "reboot", slot held), RETRY_MS=100 (a node's pause after a full
#        answer), SPREAD_S=2 (nodes start spread over this), CAIRN_BIN=path (skip the build)
#
# Starts a three-member etcd cluster and two server replicas on loopback, then NODES simulated
# nodes (one asyncio task each, a new connection per request, like separate machines), split
# over GROUPS groups of SLOTS slots, node i in group i%GROUPS talking to replica (i/GROUPS)%2 (so
# both replicas write every group's key). Each node does what the agent will: steady-state (at
# boot), pre-reboot until granted, hold the slot HOLD_MS, steady-state. The default SPREAD_S=2 is
# a stress test (~1500 requests/s; a real pool's agents poll minutes apart); SPREAD_S=30 shows
# latency without queueing.
# Prints the request count, p50/p99 latency (all requests, and per endpoint and answer), and the
# CPU time per request of the two servers together and of etcd (from /proc, so robust to the
# load generator sharing the machine), plus the compare-and-set conflicts the servers retried.
#
# There is no ratio against a reference: the reference is airlock, which is neither packaged
# for Debian nor installable from the registries this project may use. The figures are absolute.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${1:-1000}
NGROUPS=${2:-4}
SLOTS=${3:-25}
export HOLD_MS=${HOLD_MS:-50} RETRY_MS=${RETRY_MS:-100} SPREAD_S=${SPREAD_S:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for t in etcd etcdctl python3 curl; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
TMP=$(mktemp -d /var/tmp/cairn-bench.XXXXXX)
CAIRN=$TMP/cairn
. bench/lib.sh  # cwd is the checkout (cd above)
bench_binary "$CAIRN"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- etcd: three members, data on disk (fsync included, as in production) -------------------
CLIENT=() PEER=()
for i in 0 1 2; do CLIENT+=("$(free_port)"); PEER+=("$(free_port)"); done
INITIAL="m0=http://127.0.0.1:${PEER[0]},m1=http://127.0.0.1:${PEER[1]},m2=http://127.0.0.1:${PEER[2]}"
ETCD_PIDS=()
for i in 0 1 2; do
  etcd --name "m$i" --data-dir "$TMP/m$i" \
    --listen-client-urls "http://127.0.0.1:${CLIENT[$i]}" --advertise-client-urls "http://127.0.0.1:${CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${PEER[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PEER[$i]}" \
    --initial-cluster "$INITIAL" --initial-cluster-state new --initial-cluster-token "bench-$$" \
    --logger zap --log-level error 2>"$TMP/etcd$i.log" &
  PIDS+=($!) ETCD_PIDS+=($!)
done
ENDPOINTS="http://127.0.0.1:${CLIENT[0]},http://127.0.0.1:${CLIENT[1]},http://127.0.0.1:${CLIENT[2]}"
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1

# --- two replicas, each logging every request to a file as in production --------------------
URLS=() SERVER_PIDS=()
for r in 0 1; do
  "$CAIRN" fleetlock serve --etcd "$ENDPOINTS" --listen 127.0.0.1:0 --slots "$SLOTS" \
    >"$TMP/serve$r.out" 2>"$TMP/serve$r.log" &
  PIDS+=($!) SERVER_PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$TMP/serve$r.out" 2>/dev/null && break; sleep 0.05; done
  URLS+=("$(sed -n 's/^listening on //p' "$TMP/serve$r.out")")
done

# utime+stime of the given pids, in clock ticks.
ticks() { for p in "$@"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk '{s += $1} END {print s}'; }
HZ=$(getconf CLK_TCK)
S0=$(ticks "${SERVER_PIDS[@]}") E0=$(ticks "${ETCD_PIDS[@]}")

python3 - "$NODES" "$NGROUPS" "${URLS[@]}" >"$TMP/result.json" <<'PY'
import asyncio, json, os, random, sys, time
nodes, ngroups, urls = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
hold, retry = (float(os.environ[k]) / 1000 for k in ("HOLD_MS", "RETRY_MS"))
spread = float(os.environ["SPREAD_S"])
samples = []  # (endpoint, status, seconds)

async def post(url, path, node, group):
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"client_params": {"id": node, "group": group}}).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nfleet-lock-protocol: true\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    t = time.perf_counter()
    r, w = await asyncio.open_connection(host, int(port))
    w.write(head + body)
    await w.drain()
    status = int((await r.readline()).split()[1])
    await r.read()
    w.close()
    samples.append((path, status, time.perf_counter() - t))
    return status

async def node(i):
    # Replica and group must vary independently, so both replicas write every group's key.
    url, name, group = urls[(i // ngroups) % len(urls)], f"node{i:05d}", f"pool{i % ngroups}"
    await asyncio.sleep(random.uniform(0, spread))
    assert (s := await post(url, "/v1/steady-state", name, group)) == 200, s
    while (s := await post(url, "/v1/pre-reboot", name, group)) != 200:
        assert s == 409, s
        await asyncio.sleep(retry)
    await asyncio.sleep(hold)
    assert (s := await post(url, "/v1/steady-state", name, group)) == 200, s

async def main():
    t = time.perf_counter()
    await asyncio.gather(*(node(i) for i in range(nodes)))
    return time.perf_counter() - t

wall = asyncio.run(main())
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
out = {"wall_s": wall, "requests": len(samples),
       "all": [pct([s for *_, s in samples], .5), pct([s for *_, s in samples], .99)]}
for key in sorted({(e, c) for e, c, _ in samples}):
    xs = [s for e, c, s in samples if (e, c) == key]
    out[f"{key[0]} {key[1]}"] = [len(xs), pct(xs, .5), pct(xs, .99)]
print(json.dumps(out))
PY

S1=$(ticks "${SERVER_PIDS[@]}") E1=$(ticks "${ETCD_PIDS[@]}")
CONFLICTS=0
for u in "${URLS[@]}"; do
  c=$(curl -sf "$u/metrics" | awk '$1 == "cairn_fleetlock_cas_conflicts_total" {print $2}')
  CONFLICTS=$((CONFLICTS + c))
done
HELD=$(ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" get --prefix com.coreos.airlock/ --print-value-only | grep -c '"holders":\[\]' || true)

python3 - "$TMP/result.json" "$HZ" "$S0" "$S1" "$E0" "$E1" "$CONFLICTS" "$HELD" "$NGROUPS" "$NODES" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
hz, s0, s1, e0, e1, conflicts, empty, ngroups, nodes = map(int, sys.argv[2:])
n = r["requests"]
print(f"fleetlock: {n} requests from {nodes} nodes in {r['wall_s']:.1f} s ({n / r['wall_s']:.0f} req/s)")
print(f"  latency all requests: p50 {r['all'][0]:.2f} ms, p99 {r['all'][1]:.2f} ms")
for k, v in r.items():
    if k.startswith("/v1/"):
        print(f"  {k:<22} {v[0]:>6} requests  p50 {v[1]:7.2f} ms  p99 {v[2]:7.2f} ms")
print(f"  CPU per request: servers {(s1 - s0) / hz / n * 1e6:.0f} us (two replicas together), "
      f"etcd {(e1 - e0) / hz / n * 1e6:.0f} us (three members together)")
print(f"  compare-and-set conflicts retried: {conflicts}; groups left with no holder: {empty}/{ngroups}")
print("  (absolute figures: airlock, the reference FleetLock server, is not installable here)")
PY
