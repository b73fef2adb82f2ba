#!/usr/bin/env bash
# cairn deploy / rollback vs the ostree CLI on the same commit and sysroot layout.
#
#   bench/deploy.sh [ROUNDS]      (default 9 rounds, after 2 warmup rounds; needs root)
#
# Two sysroots are prepared identically (same remote, same pulled commit, same first deployment
# made by `ostree admin deploy`); then each tool works on its own sysroot:
#   deploy:   `cairn deploy --os OS origin:REF`  vs  `ostree admin deploy --os=OS origin:REF`
#             (no pull: both deploy the already-pulled ref; each round adds a deployment and drops
#             the one before the merge deployment, so both stay at two deployments)
#   rollback: `cairn rollback` (reorders the two deployments with write_deployments) vs
#             `ostree admin undeploy 0` — Debian's ostree 2022.7 CLI has no set-default/rollback;
#             undeploy 0 is its closest way to make the previous deployment the default (it also
#             deletes the dropped deployment, so it does more work; the re-deploy between rounds is
#             untimed).
# Figures: medians of interleaved rounds; ratio = cairn / ostree (goal <= 1.05).
# The tree is /usr/include (about 8k files) plus a kernel and initramfs, so checkout cost matters.
set -euo pipefail
ROUNDS=${1:-9}
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
OS=benchos
REF=benchos/x86_64/stable

WORK=$(mktemp -d /var/tmp/cairn-bench-deploy.XXXXXX)
cleanup() {
  chattr -i "$WORK"/sys-*/ostree/deploy/*/deploy/* 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The target dir is shared with other worktrees: copy this checkout's binary away at once and
# check it is the one with host commands.
CAIRN=$WORK/cairn
for _ in 1 2 3; do
  cargo build --release -q -p cairn
  cp "$CARGO_TARGET_DIR/release/cairn" "$CAIRN"
  "$CAIRN" rollback --help >/dev/null 2>&1 && break
done
"$CAIRN" rollback --help >/dev/null

TREE=$WORK/tree
mkdir -p "$TREE/usr/lib/modules/6.1.0-bench" "$TREE/usr/etc"
cp -a /usr/include "$TREE/usr/include"
head -c 8M /dev/urandom >"$TREE/usr/lib/modules/6.1.0-bench/vmlinuz"
head -c 16M /dev/urandom >"$TREE/usr/lib/modules/6.1.0-bench/initramfs.img"
printf 'NAME=Bench\nID=benchos\nVERSION=1\nPRETTY_NAME="Bench 1"\n' >"$TREE/usr/lib/os-release"
echo 'bench' >"$TREE/usr/etc/hostname"
ostree init --repo="$WORK/remote" --mode=archive
ostree commit --repo="$WORK/remote" --canonical-permissions -b "$REF" --tree=dir="$TREE" \
  --add-metadata-string=version=1 >/dev/null
ostree summary -u --repo="$WORK/remote"

for tool in ostree cairn; do
  S=$WORK/sys-$tool
  mkdir -p "$S"
  ostree admin init-fs "$S" >/dev/null
  ostree admin --sysroot="$S" os-init "$OS" >/dev/null
  ostree --repo="$S/ostree/repo" remote add --no-gpg-verify origin "file://$WORK/remote"
  ostree --repo="$S/ostree/repo" pull origin "$REF" >/dev/null
  ostree admin --sysroot="$S" deploy --os="$OS" --karg=root=/dev/vda3 "origin:$REF" >/dev/null
done
SO=$WORK/sys-ostree
SC=$WORK/sys-cairn

# Rounds are interleaved (ostree, cairn, then cairn, ostree...) so load from other processes on
# the machine hits both tools alike; the median of each tool's rounds is reported.
now_ms() { echo $(($(date +%s%N) / 1000000)); }
timed() { # file, command...: appends the command's wall time in ms to file
  local f=$1 t0
  shift
  t0=$(now_ms)
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  echo $(($(now_ms) - t0)) >>"$f"
}
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

od() { ostree admin --sysroot="$SO" deploy --os="$OS" "origin:$REF"; }
cd_() { "$CAIRN" --quiet deploy --sysroot "$SC" --os "$OS" "origin:$REF"; }
ou() { ostree admin --sysroot="$SO" undeploy 0; }
cr() { "$CAIRN" --quiet rollback --sysroot "$SC" --os "$OS"; }

# Rounds -2..0 warm up (timed to /dev/null); the order of the two tools alternates per round so
# neither always runs on a cache the other just warmed.
# AFTER (optional) runs untimed after each round.
alternate() { # NAME_OSTREE FN_OSTREE NAME_CAIRN FN_CAIRN [AFTER]
  for i in $(seq -2 "$ROUNDS"); do
    f() { [ "$i" -gt 0 ] && echo "$WORK/$1" || echo /dev/null; }
    if [ $((i % 2)) -eq 0 ]; then
      timed "$(f "$1")" "$2"; timed "$(f "$3")" "$4"
    else
      timed "$(f "$3")" "$4"; timed "$(f "$1")" "$2"
    fi
    [ -z "${5:-}" ] || "$5" >/dev/null 2>&1
  done
}
alternate d-ostree od d-cairn cd_
# After each undeploy, ostree's sysroot gets its second deployment back (untimed).
alternate r-ostree ou r-cairn cr od
printf 'deploy   (%s rounds): ostree admin deploy     %6s ms   cairn deploy   %6s ms\n' \
  "$ROUNDS" "$(median "$WORK/d-ostree")" "$(median "$WORK/d-cairn")"
printf 'rollback (%s rounds): ostree admin undeploy 0 %6s ms   cairn rollback %6s ms\n' \
  "$ROUNDS" "$(median "$WORK/r-ostree")" "$(median "$WORK/r-cairn")"

# Both sysroots must still look alike: same number of deployments, same kernel arguments.
[ "$(ostree admin --sysroot="$SC" status | grep -c "^  $OS ")" -eq 2 ] || { echo "cairn sysroot lost deployments" >&2; exit 1; }
grep -q 'root=/dev/vda3' "$SC"/boot/loader/entries/*.conf || { echo "cairn dropped kargs" >&2; exit 1; }

ratio() { echo "scale=3; $(median "$1") / $(median "$2")" | bc -l | sed 's/^\./0./'; }
echo "ratios (cairn / ostree, goal <= 1.05):"
echo "  deploy:   $(ratio "$WORK/d-cairn" "$WORK/d-ostree")"
echo "  rollback: $(ratio "$WORK/r-cairn" "$WORK/r-ostree") (vs undeploy 0, see header)"
