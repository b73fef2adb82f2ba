#!/usr/bin/env bash
# cairn's main job on the shipped defaults (see README "Quick start"): check the shipped treefiles,
# then compose the Debian 12 default (real packages from deb.debian.org, kernel + dracut initramfs
# with ostree's module) into ./build/repo and print ref, commit, version and package count.
# Then it renders the shipped inventory (kickstart/inventory.yaml) into ./build/pxe: per-host
# kickstarts installing that commit with ostreesetup, and pxelinux/GRUB/iPXE configs.
# Rerunning it with unchanged inputs takes about a second ("no changes").
#
# Terse on purpose: the compose's tool output (mmdebstrap, apt, dracut) goes to the log file it
# names (build/cache/logs/) and is shown only if the compose fails; cargo's output only if the
# build fails. VERBOSE=1 streams the compose's tool output instead.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "quickstart: cargo build --release (the first build takes a few minutes)"
if ! build_output=$(cargo build --release -q 2>&1); then
  printf '%s\n' "$build_output" >&2
  exit 1
fi
CAIRN="${CARGO_TARGET_DIR:-target}/release/cairn"
"$CAIRN" treefile check treefiles/*.yaml
mkdir -p build
"$CAIRN" compose treefiles/debian-12.yaml --repo build/repo --cachedir build/cache \
  --sbom build/debian-12.spdx.json ${VERBOSE:+--verbose}
"$CAIRN" kickstart check --inventory kickstart/inventory.yaml
"$CAIRN" kickstart render --inventory kickstart/inventory.yaml --out build/pxe
echo "inspect it:  ostree --repo=build/repo log cairn/debian/12/x86_64/default"
echo "serve it:    $CAIRN serve --inventory kickstart/inventory.yaml --repo build/repo --listen 0.0.0.0:8080"
