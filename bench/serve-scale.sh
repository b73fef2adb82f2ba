#!/usr/bin/env bash
# Memory at scale for `cairn serve` (run by `SCALE=1 bench/serve.sh`, or alone):
#
#   bench/serve-scale.sh [HOSTS_LIST="5000 50000"] [WORKERS_LIST="2 16"]
#   env: RELOADS=4, CAIRN_BIN=path (skip the build)
#
# For each host count and worker count: starts `cairn serve`, reports the startup time (spawn to
# "listening") and VmRSS, then RELOADS SIGHUP reloads, each timed from the signal to its "reload"
# log line, with VmRSS after each; once idle between reloads and once with wrk traffic on random
# /ks/<mac> between reloads (so every worker has touched every generation).
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS_LIST=${1:-"5000 50000"}
WORKERS_LIST=${2:-"2 16"}
RELOADS=${RELOADS:-4}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
TMP=$(mktemp -d /var/tmp/cairn-scale.XXXXXX)
CAIRN=$TMP/cairn
. bench/lib.sh
bench_binary "$CAIRN"
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
now_ms() { date +%s%3N; }
rss_mb() { awk '/^VmRSS/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }
wait_for() {  # FILE PATTERN COUNT: until FILE holds COUNT lines matching PATTERN (60 s at most)
  local i
  for i in $(seq 6000); do
    [ "$(grep -c "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
    sleep 0.01
  done
  echo "bench: timed out waiting for $2 in $1" >&2; exit 1
}

run() {  # HOSTS WORKERS TRAFFIC(0|1)
  local hosts=$1 workers=$2 traffic=$3 t0 t1 start rss line r url
  t0=$(now_ms)
  "$CAIRN" serve -i "$TMP/inv-$hosts.yaml" --listen 127.0.0.1:0 --workers "$workers" \
    --access-log /dev/null > "$TMP/out" 2> "$TMP/err" &
  PID=$!
  wait_for "$TMP/out" listening 1
  start=$(( $(now_ms) - t0 ))
  url=$(sed -n 's/^listening on //p' "$TMP/out")
  line=$(printf '%6d hosts %2d workers %-7s start %5d ms %5d MB | reload ms/MB:' \
    "$hosts" "$workers" "$([ "$traffic" = 1 ] && echo traffic || echo idle)" "$start" "$(rss_mb "$PID")")
  for r in $(seq "$RELOADS"); do
    if [ "$traffic" = 1 ]; then
      wrk -t 2 -c 32 -d 2s -s "$TMP/random.lua" "$url" > /dev/null
    fi
    t0=$(now_ms)
    kill -HUP "$PID"
    wait_for "$TMP/err" '"event":"reload"' "$r"
    t1=$(now_ms)
    # RSS once the replaced snapshot is freed and trimmed ("released"); before the fix there was
    # no such line, and WAIT_RELEASED=0 measures 0.3 s after the reload instead.
    if [ "${WAIT_RELEASED:-1}" = 1 ]; then wait_for "$TMP/err" '"event":"released"' "$r"; else sleep 0.3; fi
    line+=$(printf ' %5d/%-5d' "$((t1 - t0))" "$(rss_mb "$PID")")
  done
  echo "$line"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

for hosts in $HOSTS_LIST; do
  bench_inventory "$hosts" "$TMP/inv-$hosts.yaml" "$TMP/macs-$hosts.txt"
  {
    echo 'local macs = {}'
    echo 'for l in io.lines("'"$TMP/macs-$hosts.txt"'") do macs[#macs + 1] = l end'
    echo 'request = function() return wrk.format("GET", "/ks/" .. macs[math.random(#macs)]) end'
  } > "$TMP/random.lua"
  for workers in $WORKERS_LIST; do
    run "$hosts" "$workers" 0
    run "$hosts" "$workers" 1
  done
done
