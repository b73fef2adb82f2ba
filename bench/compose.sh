#!/usr/bin/env bash
# Compose benchmark on the shipped default (treefiles/debian-12.yaml, real Debian packages):
# wall time per phase (packages, postprocess, commit) of a cold compose, of a forced recompose
# with a warm package cache, and of an unchanged recompose (goal: < 2 s, no package work); then
# a compose from a local snapshot of the same packages (`cairn snapshot`, fresh cache, offline
# under `unshare -n`) against the cold compose from the network mirror.
#
#   bench/compose.sh [WORKDIR]     # default WORKDIR: /var/tmp/cairn-bench-compose
#   CAIRN=./cairn TREEFILE=treefiles/k8s-node.yaml bench/compose.sh
#   SNAPSHOT=0 bench/compose.sh    # skip the snapshot part
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
WORK=${1:-/var/tmp/cairn-bench-compose}
TREEFILE=${TREEFILE:-treefiles/debian-12.yaml}
# CAIRN=/path/to/cairn skips the build (a shared target dir may hold another branch's binary).
if [ -z "${CAIRN:-}" ]; then
  cargo build --release -q
  CAIRN=${CARGO_TARGET_DIR:-target}/release/cairn
fi
rm -rf "$WORK"; mkdir -p "$WORK"

phases() { # $1 = label, $2 = json file
  jq -r --arg l "$1" '"\($l): status=\(.status) total=\(.timings.total)s packages=\(.timings.packages)s postprocess=\(.timings.postprocess)s commit=\(.timings.commit)s version=\(.version) packages=\(.packageCount)"' "$2"
}

"$CAIRN" compose "$TREEFILE" --repo "$WORK/repo" --cachedir "$WORK/cache" --json --quiet > "$WORK/cold.json"
phases "cold compose (empty cache)" "$WORK/cold.json"

"$CAIRN" compose "$TREEFILE" --repo "$WORK/repo" --cachedir "$WORK/cache" --json --quiet --force-nocache > "$WORK/warm.json"
phases "forced recompose (warm apt cache)" "$WORK/warm.json"

start=$(date +%s.%N)
"$CAIRN" compose "$TREEFILE" --repo "$WORK/repo" --cachedir "$WORK/cache" --json --quiet > "$WORK/unchanged.json"
end=$(date +%s.%N)
phases "unchanged recompose" "$WORK/unchanged.json"
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
printf 'unchanged recompose wall time (process start to exit): %.3fs (goal < 2s)\n' "$wall"
awk -v c="$(jq .timings.total "$WORK/cold.json")" -v u="$wall" 'BEGIN { printf "cold/unchanged ratio: %.0fx\n", c / u }'
du -sh "$WORK/repo" "$WORK/cache" | sed 's/^/size: /'

[ "${SNAPSHOT:-1}" = 0 ] && exit 0
start=$(date +%s.%N)
"$CAIRN" snapshot "$TREEFILE" --out "$WORK/snapshot" --cachedir "$WORK/snapshot-cache" --json --quiet > "$WORK/snapshot.json"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "cairn snapshot (resolve + download into a new cache): %.1fs\n", b - a }'
jq -r '"snapshot: \(.packages) packages, digest \(.digest)"' "$WORK/snapshot.json"
# Fresh cache and repository: everything comes from the snapshot directory, no network at all.
unshare -n "$CAIRN" compose "$TREEFILE" --repo "$WORK/repo-snap" --cachedir "$WORK/cache-snap" \
  --snapshot "$WORK/snapshot" --json --quiet > "$WORK/from-snapshot.json"
phases "compose from the local snapshot (empty cache, unshare -n)" "$WORK/from-snapshot.json"
awk -v n="$(jq .timings.packages "$WORK/cold.json")" -v s="$(jq .timings.packages "$WORK/from-snapshot.json")" \
  -v nt="$(jq .timings.total "$WORK/cold.json")" -v st="$(jq .timings.total "$WORK/from-snapshot.json")" \
  'BEGIN { printf "network mirror / local snapshot: packages phase %.1fs / %.1fs = %.2fx, total %.1fs / %.1fs = %.2fx\n", n, s, n / s, nt, st, nt / st }'
