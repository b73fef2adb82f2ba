#!/usr/bin/env bash
# Benchmark: `cairn serve` vs nginx serving the same pre-rendered kickstarts, and render time.
#
#   bench/serve.sh [HOSTS=5000] [DURATION=10s] [CONNECTIONS=64]
#   SCALE=1 bench/serve.sh: instead, memory at scale (bench/serve-scale.sh: startup, reload time
#   and RSS at 5,000 and 50,000 hosts, 2 and 16 workers, idle and under traffic; about 3 minutes)
#   env: ROUNDS=3 (wrk rounds per server, alternating), RENDER_RUNS=5, THREADS=2 (wrk threads),
#        CAIRN_BIN=path (skip the build)
#
# Generates a HOSTS-host inventory and times `cairn kickstart render` (goal: < 1 s for 5000
# hosts) into a fresh OUT, re-rendering an unchanged inventory over OUT, and re-rendering when
# every document changed. Then runs wrk with random /ks/<mac> requests against `cairn serve`
# and against nginx (private config on another loopback port, no daemon, pid/logs in a temp
# dir) serving the rendered files, ROUNDS times each, alternating, and prints the medians of
# requests/s and p99, the server CPU time per request (robust to other load on the machine),
# and the ratio cairn/nginx. Like for like: both run one worker per CPU (nginx
# `worker_processes auto`, cairn's default `--workers 0`) and both log every request to a file
# through a buffer flushed every 200 ms (nginx `access_log ... buffer=64k flush=200ms`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SCALE:-0}" = 1 ]; then exec bench/serve-scale.sh; fi
HOSTS=${1:-5000}
DURATION=${2:-10s}
CONNS=${3:-64}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for t in wrk nginx curl /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
TMP=$(mktemp -d /var/tmp/cairn-bench.XXXXXX)
chmod 755 "$TMP"  # nginx workers run unprivileged and must read the rendered files
CAIRN=$TMP/cairn
. bench/lib.sh  # cwd is the checkout (cd above)
bench_binary "$CAIRN"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

# --- the inventory: every host static, a third in a role, varied MAC spellings ---------------
INV=$TMP/inventory.yaml
MACS=$TMP/macs.txt
bench_inventory "$HOSTS" "$INV" "$MACS"
"$CAIRN" kickstart check -i "$INV" >/dev/null

# --- render time --------------------------------------------------------------------------
OUT=$TMP/out
RUNS=${RENDER_RUNS:-5}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
# Runs a render RUNS times (PREP before each, untimed; both strings are evaluated per run, with
# the run number in $i); prints "wall_ms_median wall_ms_max cpu_ms_median".
timed_renders() {  # PREP-COMMAND RENDER-ARGS
  local prep=$1 args=$2 i
  : > "$TMP/times"
  for i in $(seq "$RUNS"); do
    eval "$prep"
    eval "set -- $args"
    /usr/bin/time -f '%e %U %S' -o "$TMP/t1" "$CAIRN" kickstart render -q -i "$INV" "$@" >/dev/null
    awk '{printf "%d %d\n", $1 * 1000, ($2 + $3) * 1000}' "$TMP/t1" >> "$TMP/times"
  done
  echo "$(cut -d' ' -f1 "$TMP/times" | median) $(cut -d' ' -f1 "$TMP/times" | sort -n | tail -1) $(cut -d' ' -f2 "$TMP/times" | median)"
}
RENDER_FS=$(df --output=fstype "$TMP" | tail -1)
read -r FRESH_MS FRESH_MAX FRESH_CPU < <(timed_renders 'rm -rf "$OUT.fresh"' '--out "$OUT.fresh"')
rm -rf "$OUT.fresh"
# Every document differs from the previous render's: alternate the server URL.
read -r CHANGED_MS CHANGED_MAX CHANGED_CPU < <(timed_renders : \
  '--out "$OUT" --server-url "http://127.0.0.1:$((2 + i % 2))"')
# Last, the common case: re-render with nothing changed (leaves OUT as nginx will serve it).
"$CAIRN" kickstart render -q -i "$INV" --out "$OUT"
read -r SAME_MS SAME_MAX SAME_CPU < <(timed_renders : '--out "$OUT"')
SHM_LINE=""
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  SHM=$(mktemp -d /dev/shm/cairn-bench.XXXXXX)
  read -r SHM_MS SHM_MAX SHM_CPU < <(timed_renders 'rm -rf "$SHM/out"' '--out "$SHM/out"')
  rm -rf "$SHM"
  SHM_LINE=$(printf 'render %d hosts, fresh OUT on tmpfs:   median %5d ms (max %5d ms), cpu %5d ms' \
    "$HOSTS" "$SHM_MS" "$SHM_MAX" "$SHM_CPU")
fi

# --- servers ------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$CAIRN" serve -i "$INV" --listen 127.0.0.1:0 --server-url http://127.0.0.1:1 \
  --access-log "$TMP/cairn-access.log" > "$TMP/cairn.out" 2> "$TMP/cairn.err" &
CAIRN_PID=$!
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
  access_log $TMP/nginx/access.log combined buffer=64k flush=200ms;
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
NGINX_MASTER=$!
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
  io.write(string.format("RESULT %.0f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000, errors,
    summary.requests))
end
LUA

# CPU time (clock ticks, user + system) of processes, threads included.
ticks() { local p t=0; for p in "$@"; do t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo "$t"; }
NGINX_PIDS="$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')"
HZ=$(getconf CLK_TCK)
# -> "req/s p99_ms errors cpu_us_per_request"
run_wrk() {  # URL PIDS...
  local url=$1 t0 t1; shift
  t0=$(ticks "$@")
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$TMP/random.lua" "$url" > "$TMP/wrk.out"
  t1=$(ticks "$@")
  awk -v dt=$((t1 - t0)) -v hz="$HZ" '/^RESULT/ {printf "%s %s %s %.2f\n", $2, $3, $4, dt / hz * 1e6 / $5}' "$TMP/wrk.out"
}
run_wrk "$CAIRN_URL" "$CAIRN_PID" >/dev/null  # warm up both (page cache, open_file_cache)
run_wrk "$NGINX_URL" $NGINX_PIDS >/dev/null
ROUNDS=${ROUNDS:-3}
: > "$TMP/c.txt"; : > "$TMP/n.txt"
for r in $(seq "$ROUNDS"); do
  run_wrk "$CAIRN_URL" "$CAIRN_PID" >> "$TMP/c.txt"
  run_wrk "$NGINX_URL" $NGINX_PIDS >> "$TMP/n.txt"
  paste -d' ' "$TMP/c.txt" "$TMP/n.txt" | sed -n "${r}p" | awk -v r="$r" '{printf "round %d: cairn %d req/s, nginx %d req/s: %.2fx\n", r, $1, $5, $1 / $5}' >&2
done
col() { cut -d' ' -f"$2" "$1" | median; }
C_RPS=$(col "$TMP/c.txt" 1); C_P99=$(col "$TMP/c.txt" 2); C_ERR=$(col "$TMP/c.txt" 3); C_CPU=$(col "$TMP/c.txt" 4)
N_RPS=$(col "$TMP/n.txt" 1); N_P99=$(col "$TMP/n.txt" 2); N_ERR=$(col "$TMP/n.txt" 3); N_CPU=$(col "$TMP/n.txt" 4)
[ "$(wc -l < "$TMP/cairn-access.log")" -gt 0 ] || { echo "bench: cairn wrote no access log" >&2; exit 1; }

echo "hosts: $HOSTS, wrk -t$THREADS -c$CONNS -d$DURATION, random /ks/<mac>, $(nproc) cores, medians of $ROUNDS rounds"
goal() { [ "$1" -lt 1000 ] && echo PASS || echo FAIL; }
printf 'render %d hosts, fresh OUT on %s:      median %5d ms (max %5d ms), cpu %5d ms; goal < 1000 ms: %s\n' \
  "$HOSTS" "$RENDER_FS" "$FRESH_MS" "$FRESH_MAX" "$FRESH_CPU" "$(goal "$FRESH_MS")"
printf 'render %d hosts, unchanged, over OUT:  median %5d ms (max %5d ms), cpu %5d ms; goal < 1000 ms: %s\n' \
  "$HOSTS" "$SAME_MS" "$SAME_MAX" "$SAME_CPU" "$(goal "$SAME_MS")"
printf 'render %d hosts, all changed, over OUT: median %5d ms (max %5d ms), cpu %5d ms; goal < 1000 ms: %s\n' \
  "$HOSTS" "$CHANGED_MS" "$CHANGED_MAX" "$CHANGED_CPU" "$(goal "$CHANGED_MS")"
[ -n "$SHM_LINE" ] && echo "$SHM_LINE"
printf '%-6s %10s req/s   p99 %8s ms   errors %s   server cpu %6s us/request\n' \
  cairn "$C_RPS" "$C_P99" "$C_ERR" "$C_CPU" nginx "$N_RPS" "$N_P99" "$N_ERR" "$N_CPU"
awk -v c="$C_RPS" -v n="$N_RPS" -v cp="$C_P99" -v np="$N_P99" -v cc="$C_CPU" -v nc="$N_CPU" 'BEGIN {
  printf "ratio cairn/nginx: throughput %.2fx, p99 %.2fx, cpu/request %.2fx (lower is better); goal throughput >= 1.00x: %s\n",
    c / n, cp / np, cc / nc, (c >= n ? "PASS" : "FAIL") }'
