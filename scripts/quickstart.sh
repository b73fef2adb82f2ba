#!/usr/bin/env bash
# cairn's main job on the shipped defaults (see README "Quick start"): check the shipped treefiles,
# then compose the Debian 12 default (real packages from deb.debian.org, kernel + dracut initramfs
# with ostree's module) into ./build/repo and print ref, commit, version and package count.
# Then it renders the shipped inventory (kickstart/inventory.yaml) into ./build/pxe: per-host
# kickstarts installing that commit with ostreesetup, and pxelinux/GRUB/iPXE configs.
# Rerunning it with unchanged inputs takes about a second ("no changes").
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q
CAIRN="${CARGO_TARGET_DIR:-target}/release/cairn"
"$CAIRN" treefile check treefiles/*.yaml
mkdir -p build
"$CAIRN" compose treefiles/debian-12.yaml --repo build/repo --cachedir build/cache \
  --sbom build/debian-12.spdx.json
"$CAIRN" kickstart check --inventory kickstart/inventory.yaml
"$CAIRN" kickstart render --inventory kickstart/inventory.yaml --out build/pxe
echo "inspect it:  ostree --repo=build/repo log cairn/debian/12/x86_64/default"
echo "serve it:    $CAIRN serve --inventory kickstart/inventory.yaml --repo build/repo --listen 0.0.0.0:8080"
