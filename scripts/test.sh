#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, format, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace -- --test-threads="${CAIRN_TEST_THREADS:-2}"
