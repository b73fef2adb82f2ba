#!/usr/bin/env bash
# Benchmark: what 10 slow readers cost everyone else on `cairn serve`.
#
#   bench/serve-slow.sh [DURATION=10s] [SLOW=10] [RATE=1K]
#   env: ROUNDS=3 (alone/with pairs, alternating), CONNS=16, THREADS=2 (wrk), CAIRN_BIN=path
#
# Serves a small repository (a 200 KB and a 4 KB object under /repo/objects/) and measures wrk's
# request rate on the 4 KB object alone, then while SLOW curl `--limit-rate RATE` downloads of
# the 200 KB object are in flight (each takes minutes at 1 KB/s, so they last the whole run),
# ROUNDS times each, alternating. Prints both medians and the ratio with/alone; the goal (issue
# 16) is a drop under 20%, a ratio above 0.80. Also checks that every slow reader was still
# connected at the end (none was cut by --send-timeout: a slow reader is not a stalled one).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
SLOW=${2:-10}
RATE=${3:-1K}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
for t in wrk curl; do
  command -v "$t" >/dev/null || { echo "bench: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
TMP=$(mktemp -d /var/tmp/cairn-bench-slow.XXXXXX)
CAIRN=$TMP/cairn
. bench/lib.sh
bench_binary "$CAIRN"
PIDS=()
SLOW_PIDS=()
cleanup() {
  for p in "${SLOW_PIDS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

bench_inventory 10 "$TMP/inventory.yaml" "$TMP/macs.txt"
REPO=$TMP/repo
mkdir -p "$REPO/objects/aa" "$REPO/objects/bb"
printf '[core]\nrepo_version=1\nmode=archive-z2\n' > "$REPO/config"
head -c 204800 /dev/urandom > "$REPO/objects/aa/big.filez"
head -c 4096 /dev/urandom > "$REPO/objects/bb/small.filez"

"$CAIRN" serve -i "$TMP/inventory.yaml" --repo "$REPO" --listen 127.0.0.1:0 \
  --access-log "$TMP/access.log" > "$TMP/cairn.out" 2> "$TMP/cairn.err" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$TMP/cairn.out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$TMP/cairn.out")
[ -n "$URL" ] || { cat "$TMP/cairn.err" >&2; exit 1; }

rate() {  # -> requests/s of one wrk run on the small object
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" "$URL/repo/objects/bb/small.filez" \
    | awk '/^Requests\/sec/ {print $2}'
}
start_slow() {
  local i
  for i in $(seq "$SLOW"); do
    curl -s --limit-rate "$RATE" -o /dev/null "$URL/repo/objects/aa/big.filez" &
    SLOW_PIDS+=($!)
  done
  sleep 1  # every slow reader connected and past its first window
}
stop_slow() {
  local p alive=0
  for p in "${SLOW_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  for p in "${SLOW_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SLOW_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SLOW_PIDS=()
  echo "$alive"
}

rate >/dev/null  # warm up (page cache, connections)
: > "$TMP/alone"; : > "$TMP/with"
for r in $(seq "$ROUNDS"); do
  rate >> "$TMP/alone"
  start_slow
  rate >> "$TMP/with"
  alive=$(stop_slow)
  if [ "$alive" != "$SLOW" ]; then
    echo "round $r: only $alive of $SLOW slow readers were still downloading" >&2
    exit 1
  fi
done
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
alone=$(median < "$TMP/alone")
with=$(median < "$TMP/with")
echo "wrk -t$THREADS -c$CONNS -d$DURATION on a 4 KB /repo/ object, $SLOW readers at $RATE/s on a 200 KB one, $(nproc) cores, medians of $ROUNDS rounds"
echo "alone: $alone req/s ($(paste -sd' ' "$TMP/alone"))"
echo "with slow readers: $with req/s ($(paste -sd' ' "$TMP/with"))"
awk -v a="$alone" -v w="$with" 'BEGIN {
  r = w / a
  printf "ratio with/alone: %.2fx (goal > 0.80x: %s)\n", r, (r > 0.80 ? "PASS" : "FAIL")
}'
