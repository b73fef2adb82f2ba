#!/usr/bin/env bash
# Compose benchmark on the shipped default (treefiles/debian-12.yaml, real Debian packages):
# wall time per phase (packages, postprocess, commit) of a cold compose, of a forced recompose
# with a warm package cache, and of an unchanged recompose (goal: < 2 s, no package work).
#
#   bench/compose.sh [WORKDIR]     # default WORKDIR: /var/tmp/cairn-bench-compose
#   CAIRN=./cairn TREEFILE=treefiles/k8s-node.yaml bench/compose.sh
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
