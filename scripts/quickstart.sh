#!/usr/bin/env bash
# cairn's main job on the shipped defaults (see README "Quick start"). For now: check every shipped
# treefile and render the Debian 12 default, flattened, as rpm-ostree's --print-only would.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q
CAIRN="${CARGO_TARGET_DIR:-target}/release/cairn"
"$CAIRN" treefile check treefiles/*.yaml
"$CAIRN" treefile render treefiles/debian-12.yaml
