#!/usr/bin/env bash
# cairn's main job on the shipped defaults (see README "Quick start").
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q
CAIRN=target/release/cairn
"$CAIRN" treefile render treefiles/debian-12.yaml
