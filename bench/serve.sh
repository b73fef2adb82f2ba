#!/usr/bin/env bash
# Benchmark: `cairn serve` vs nginx serving the same pre-rendered kickstarts, and render time.
#
#   bench/serve.sh [HOSTS=5000] [DURATION=10s] [CONNECTIONS=64]
#
# Generates a HOSTS-host inventory, times `cairn kickstart render` (goal: < 1 s for 5000 hosts),
# then runs wrk with random /ks/<mac> requests against `cairn serve` and against nginx (private
# config on another loopback port, no daemon, pid/logs in a temp dir) serving the rendered files.
# Both log every request to a file. Prints requests/s and p99 for each and the ratio cairn/nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${1:-5000}
DURATION=${2:-10s}
CONNS=${3:-64}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
for t in wrk nginx hyperfine curl; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
TMP=$(mktemp -d /var/tmp/cairn-bench.XXXXXX)
chmod 755 "$TMP"  # nginx workers run unprivileged and must read the rendered files
CAIRN=$TMP/cairn
# Copy the binary: the target dir may be shared and rebuilt underneath a long run.
# CAIRN_BIN=path skips the build (e.g. a binary copied right after `cargo build --release`).
if [ -n "${CAIRN_BIN:-}" ]; then
  cp "$CAIRN_BIN" "$CAIRN"
else
  cargo build --release --quiet --bin cairn
  cp "$CARGO_TARGET_DIR/release/cairn" "$CAIRN"
fi
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

# --- the inventory: every host static, a third in a role, varied MAC spellings ---------------
INV=$TMP/inventory.yaml
MACS=$TMP/macs.txt
{
  cat <<'YAML'
server: http://127.0.0.1:1
defaults:
  domain: bench.example.com
  root-password: "$6$cairnexample$3yGplWObU2CLtbRf1OFSYXQFSaYHAEoeB/vVBKTAvTxv38aRju5hGci2xXC1xIoaouP8lvJewTUaFFsMhcoRC1"
  ssh-keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFNMcTTw+M9xm8hFXzUOdk9NRLdAHOpVW7BSiUUWwp0a admin@example.com"]
  kernel-args: ["console=ttyS0,115200n8"]
  sysctl-presets: [hardening]
  disk: { device: sda, root-size: 20GiB }
  ostree: { osname: cairn, ref: cairn/x86_64/base, gpg: false }
  network: { subnet: 10.0.0.0/16, gateway: 10.0.0.1, dns: [10.0.0.53] }
roles:
  k8s-node: { sysctl-presets: [kubernetes-node] }
hosts:
YAML
  awk -v n="$HOSTS" 'BEGIN {
    for (i = 0; i < n; i++) {
      hi = int(i / 256); lo = i % 256
      printf "  - hostname: node%05d\n    mac: \"52:54:00:01:%02x:%02x\"\n", i, hi, lo
      printf "    network: { ip: 10.0.%d.%d/16 }\n", 1 + int(i / 250), 2 + i % 250
      if (i % 3 == 0) print "    role: k8s-node"
    } }'
} > "$INV"
awk -v n="$HOSTS" 'BEGIN { for (i = 0; i < n; i++) printf "52:54:00:01:%02x:%02x\n", int(i/256), i%256 }' > "$MACS"
"$CAIRN" kickstart check -i "$INV" >/dev/null

# --- render time: on the temp dir's disk, and on tmpfs (file-system cost vs cairn's own) -----
OUT=$TMP/out
render_time() {  # DIR -> "mean_ms max_ms"
  hyperfine --style none --warmup 1 --runs 5 --export-json "$TMP/render.json" \
    "$CAIRN kickstart render -q -i $INV --out $1" >/dev/null 2>&1
  jq -r '"\(.results[0].mean * 1000 | floor) \(.results[0].max * 1000 | floor)"' "$TMP/render.json"
}
read -r RENDER_MS RENDER_MAX_MS < <(render_time "$OUT")
RENDER_FS=$(df --output=fstype "$TMP" | tail -1)
SHM_LINE=""
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  SHM=$(mktemp -d /dev/shm/cairn-bench.XXXXXX)
  read -r SHM_MS SHM_MAX_MS < <(render_time "$SHM/out")
  rm -rf "$SHM"
  SHM_LINE=$(printf 'render %d hosts on tmpfs: mean %d ms (max %d ms)' "$HOSTS" "$SHM_MS" "$SHM_MAX_MS")
fi
# CPU time of one render (what cairn itself spends, independent of the disk).
/usr/bin/time -f '%U %S' -o "$TMP/cpu.txt" "$CAIRN" kickstart render -q -i "$INV" --out "$OUT"
read -r R_USER R_SYS < "$TMP/cpu.txt"

# --- servers ------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$CAIRN" serve -i "$INV" --listen 127.0.0.1:0 --server-url http://127.0.0.1:1 \
  --access-log "$TMP/cairn-access.log" > "$TMP/cairn.out" 2> "$TMP/cairn.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$TMP/cairn.out" 2>/dev/null && break; sleep 0.1; done
CAIRN_URL=$(sed -n 's/^listening on //p' "$TMP/cairn.out")

NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat > "$TMP/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log $TMP/nginx/access.log;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  open_file_cache max=10000 inactive=60s;
  default_type text/plain;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /ks/ { alias $OUT/ks/; }
  }
}
NGINX
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" &
PIDS+=($!)
NGINX_URL=http://127.0.0.1:$NGINX_PORT
for _ in $(seq 100); do curl -fs -o /dev/null "$NGINX_URL/ks/$(head -1 "$MACS")" && break; sleep 0.1; done

# Same document from both, or the comparison is meaningless.
M=$(sed -n '77p' "$MACS")
cmp <(curl -fsS "$CAIRN_URL/ks/$M") <(curl -fsS "$NGINX_URL/ks/$M") \
  || { echo "bench: cairn and nginx serve different kickstarts" >&2; exit 1; }

cat > "$TMP/random.lua" <<LUA
local macs = {}
for line in io.lines("$MACS") do macs[#macs + 1] = line end
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
request = function()
  return wrk.format("GET", "/ks/" .. macs[math.random(#macs)])
end
done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %.0f %.3f %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000, errors))
end
LUA

run_wrk() { wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$TMP/random.lua" "$1" | awk '/^RESULT/ {print $2, $3, $4}'; }
run_wrk "$CAIRN_URL" >/dev/null  # warm up both (page cache, open_file_cache)
run_wrk "$NGINX_URL" >/dev/null
read -r C_RPS C_P99 C_ERR < <(run_wrk "$CAIRN_URL")
read -r N_RPS N_P99 N_ERR < <(run_wrk "$NGINX_URL")

echo "hosts: $HOSTS, wrk -t$THREADS -c$CONNS -d$DURATION, random /ks/<mac>, $(nproc) cores"
printf 'render %d hosts on %s: mean %d ms (max %d ms), cpu user %ss sys %ss; goal < 1000 ms: %s\n' \
  "$HOSTS" "$RENDER_FS" "$RENDER_MS" "$RENDER_MAX_MS" "$R_USER" "$R_SYS" \
  "$([ "$RENDER_MS" -lt 1000 ] && echo PASS || echo FAIL)"
[ -n "$SHM_LINE" ] && echo "$SHM_LINE"
printf '%-6s %10s req/s   p99 %8s ms   errors %s\n' cairn "$C_RPS" "$C_P99" "$C_ERR" nginx "$N_RPS" "$N_P99" "$N_ERR"
awk -v c="$C_RPS" -v n="$N_RPS" -v cp="$C_P99" -v np="$N_P99" 'BEGIN {
  printf "ratio cairn/nginx: throughput %.2fx, p99 %.2fx (lower is better); goal throughput >= 1.00x: %s\n",
    c / n, cp / np, (c >= n ? "PASS" : "FAIL") }'
