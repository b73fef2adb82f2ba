#!/usr/bin/env bash
# cairn's main job on the shipped defaults (see README "Quick start"): check the shipped treefiles,
# then compose the Debian 12 default (real packages from deb.debian.org, kernel + dracut initramfs
# with ostree's module) into ./build/repo and print ref, commit, version and package count.
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
echo "inspect it:  ostree --repo=build/repo log cairn/debian/12/x86_64/default"
