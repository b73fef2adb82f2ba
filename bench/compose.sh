#!/usr/bin/env bash
# Compose benchmark on the shipped default (treefiles/debian-12.yaml, real Debian packages):
# wall time per phase (packages, postprocess, commit) of a cold compose, of a compose with one
# package more (a treefile including the default plus `tree`: the package cache, the initramfs
# cache and the objects already in the repo are reused), and of an unchanged recompose; then the
# goals table of issue 13. Optionally (SNAPSHOT=1) a compose from a local snapshot of the same
# packages (`cairn snapshot`, fresh cache, offline under `unshare -n`) against the cold one.
#
#   bench/compose.sh [WORKDIR]     # default WORKDIR: /var/tmp/cairn-bench-compose
#   CAIRN=./cairn TREEFILE=treefiles/k8s-node.yaml bench/compose.sh
#   FORCED=1 bench/compose.sh      # also a --force-nocache recompose (warm apt cache only)
#   SNAPSHOT=1 bench/compose.sh    # also the snapshot part
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
WORK=${1:-/var/tmp/cairn-bench-compose}
TREEFILE=${TREEFILE:-treefiles/debian-12.yaml}
EXTRA_PACKAGE=${EXTRA_PACKAGE:-tree}
# CAIRN=/path/to/cairn skips the build (a shared target dir may hold another branch's binary).
if [ -z "${CAIRN:-}" ]; then
  cargo build --release -q
  CAIRN=${CARGO_TARGET_DIR:-target}/release/cairn
fi
rm -rf "$WORK"; mkdir -p "$WORK"
cp "$CAIRN" "$WORK/cairn"; CAIRN=$WORK/cairn
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

phases() { # $1 = label, $2 = json file
  jq -r --arg l "$1" '"\($l): status=\(.status) total=\(.timings.total)s packages=\(.timings.packages)s postprocess=\(.timings.postprocess)s commit=\(.timings.commit)s initramfsCached=\(.initramfsCached) objectsWritten=\(.objectsWritten) version=\(.version) packages=\(.packageCount)"' "$2"
}
compose() { # $1 = treefile, $2 = json out, rest: extra args
  local tf=$1 out=$2; shift 2
  "$CAIRN" compose "$tf" --repo "$WORK/repo" --cachedir "$WORK/cache" --json --quiet "$@" > "$out"
}

compose "$TREEFILE" "$WORK/cold.json"
phases "cold compose (empty caches)" "$WORK/cold.json"

# One package more: the default treefile included as is, plus one small package.
PLUS=$WORK/plus-one.yaml
printf 'include: %s\npackages:\n  - %s\n' "$(realpath "$TREEFILE")" "$EXTRA_PACKAGE" > "$PLUS"
compose "$PLUS" "$WORK/changed.json"
phases "one package changed (+$EXTRA_PACKAGE)" "$WORK/changed.json"

start=$(date +%s.%N)
compose "$PLUS" "$WORK/unchanged.json"
end=$(date +%s.%N)
phases "unchanged recompose" "$WORK/unchanged.json"
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')

if [ "${FORCED:-0}" = 1 ]; then
  compose "$PLUS" "$WORK/forced.json" --force-nocache
  phases "forced recompose (--force-nocache: warm apt cache, no initramfs cache)" "$WORK/forced.json"
fi
du -sh "$WORK/repo" "$WORK/cache" | sed 's/^/size: /'

cold=$(jq .timings.total "$WORK/cold.json"); changed=$(jq .timings.total "$WORK/changed.json")
ratio=$(awk -v c="$changed" -v t="$cold" 'BEGIN { printf "%.2f", c / t }')
met() { awk -v v="$1" -v g="$2" 'BEGIN { print (v < g || v == g) ? "yes" : "NO" }'; }
echo "load average (1/5/15 min): before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
echo
echo "| what | before (issue 13) | goal | measured | met |"
echo "|---|---|---|---|---|"
printf '| compose with one package changed / cold compose | ~1.0x | <= 0.4x | %.2fx (%ss / %ss) | %s |\n' \
  "$ratio" "$changed" "$cold" "$(met "$ratio" 0.4)"
printf '| unchanged recompose (input hash), wall time | 0.055 s | < 1 s | %.3f s | %s |\n' \
  "$wall" "$(met "$wall" 0.999)"

[ "${SNAPSHOT:-0}" = 1 ] || exit 0
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
