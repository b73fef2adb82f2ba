#!/usr/bin/env bash
# Benchmark (not a test): `cairn commit` vs `ostree commit --canonical-permissions` on a real
# Debian minbase tree (~180 MB), into fresh archive repos, plus re-committing the unchanged
# tree into the same repo. Prints the median of each, the ratio cairn/ostree, and the goals
# table of issue 13 with the load average (the machine may be shared: ratios of one run are
# what to compare, absolute seconds are not).
#
#   bench/commit.sh [ROUNDS]        (default 3; the tree is cached in /var/tmp/cairn-bench)
#
# Needs root (mmdebstrap), mmdebstrap, ostree. Builds cairn in release mode first.
set -euo pipefail
ROUNDS=${1:-3}
CACHE=/var/tmp/cairn-bench
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$CACHE"

if [ ! -d "$CACHE/rootfs" ]; then
  echo "bench: building a minbase tree with mmdebstrap (once; cached in $CACHE/rootfs)" >&2
  rm -rf "$CACHE/rootfs.tmp"
  mmdebstrap --variant=minbase --quiet bookworm "$CACHE/rootfs.tmp" http://deb.debian.org/debian
  mv "$CACHE/rootfs.tmp" "$CACHE/rootfs"
fi
# OSTree stores no device nodes (a booted host mounts devtmpfs on /dev); both tools refuse them.
find "$CACHE/rootfs/dev" -mindepth 1 \( -type c -o -type b -o -type p -o -type s \) -delete

echo "bench: building cairn (release)" >&2
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet)
# Copy the binary: a shared target dir may be rewritten by other builds during the run.
BIN="$CACHE/cairn.bench"
cp "$TARGET/release/cairn" "$BIN"
"$BIN" commit --help >/dev/null 2>&1 || { echo "bench: $BIN has no commit command (another build raced?); rerun" >&2; exit 1; }

WORK=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

secs() { # run "$@"; print "wall cpu" seconds (cpu = user + sys, which the load barely changes)
  /usr/bin/time -o "$WORK/time" -f '%e %U %S' "$@" >/dev/null 2>"$WORK/stderr" \
    || { echo "bench: $* failed:" >&2; cat "$WORK/stderr" >&2; exit 1; }
  awk '{ printf "%.2f %.2f", $1, $2 + $3 }' "$WORK/time"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -a O_FRESH C_FRESH O_RE C_RE R_FRESH R_RE CPU_FRESH CPU_RE
for i in $(seq "$ROUNDS"); do
  rm -rf "$WORK"/o "$WORK"/c
  ostree init --repo="$WORK/o" --mode=archive
  "$BIN" -q repo init "$WORK/c" --mode archive
  sync
  # Alternate the order each round so page-cache warmth does not favour one tool.
  if (( i % 2 )); then
    O_FRESH+=("$(secs ostree commit --repo="$WORK/o" --canonical-permissions -b bench "$CACHE/rootfs")")
    C_FRESH+=("$(secs "$BIN" -q commit "$CACHE/rootfs" --repo "$WORK/c" --ref bench)")
  else
    C_FRESH+=("$(secs "$BIN" -q commit "$CACHE/rootfs" --repo "$WORK/c" --ref bench)")
    O_FRESH+=("$(secs ostree commit --repo="$WORK/o" --canonical-permissions -b bench "$CACHE/rootfs")")
  fi
  O_RE+=("$(secs ostree commit --repo="$WORK/o" --canonical-permissions -b bench "$CACHE/rootfs")")
  C_RE+=("$(secs "$BIN" -q commit "$CACHE/rootfs" --repo "$WORK/c" --ref bench)")
  read -r ofw ofc <<<"${O_FRESH[-1]}"; read -r cfw cfc <<<"${C_FRESH[-1]}"
  read -r orw orc <<<"${O_RE[-1]}"; read -r crw crc <<<"${C_RE[-1]}"
  O_FRESH[-1]=$ofw; C_FRESH[-1]=$cfw; O_RE[-1]=$orw; C_RE[-1]=$crw
  R_FRESH+=("$(echo "$cfw / $ofw" | bc -l)"); R_RE+=("$(echo "$crw / $orw" | bc -l)")
  CPU_FRESH+=("$(echo "$cfc / $ofc" | bc -l)"); CPU_RE+=("$(echo "$crc / $orc" | bc -l)")
  echo "round $i: fresh ostree ${ofw}s (cpu ${ofc}s) cairn ${cfw}s (cpu ${cfc}s); recommit ostree ${orw}s (cpu ${orc}s) cairn ${crw}s (cpu ${crc}s); load $(cut -d' ' -f1 /proc/loadavg)" >&2
done

# Same content either way (the checksum of the root tree + metadata).
oc=$(ostree show --repo="$WORK/o" bench | awk '/^ContentChecksum/ {print $2}')
cc=$(ostree show --repo="$WORK/c" bench | awk '/^ContentChecksum/ {print $2}')
[ "$oc" = "$cc" ] || { echo "bench: content differs: ostree $oc cairn $cc" >&2; exit 1; }

of=$(median "${O_FRESH[@]}"); cf=$(median "${C_FRESH[@]}")
orr=$(median "${O_RE[@]}"); cr=$(median "${C_RE[@]}")
size=$(du -sh "$CACHE/rootfs" | cut -f1)
echo "tree: $CACHE/rootfs ($size), $ROUNDS rounds, archive repos"
# The ratio per round (both tools ran back to back under the same load), then the median.
fr=$(median "${R_FRESH[@]}"); rr=$(median "${R_RE[@]}")
printf 'fresh commit:    ostree %ss  cairn %ss  median ratio cairn/ostree %.2fx (cpu time %.2fx)\n' "$of" "$cf" "$fr" "$(median "${CPU_FRESH[@]}")"
printf 'recommit (same): ostree %ss  cairn %ss  median ratio cairn/ostree %.2fx (cpu time %.2fx)\n' "$orr" "$cr" "$rr" "$(median "${CPU_RE[@]}")"
echo "load average (1/5/15 min): before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
met() { awk -v v="$1" -v g="$2" 'BEGIN { print (v <= g) ? "yes" : "NO" }'; }
echo
echo "| what | before (issue 13) | goal | measured | met |"
echo "|---|---|---|---|---|"
printf '| fresh commit to archive, cairn / ostree commit | 0.90x | <= 0.6x | %.2fx | %s |\n' "$fr" "$(met "$fr" 0.6)"
printf '| unchanged recommit, cairn / ostree commit | 1.04x | <= 0.1x | %.2fx | %s |\n' "$rr" "$(met "$rr" 0.1)"
