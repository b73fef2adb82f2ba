#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, layout and MSRV checks, format, lints,
# unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
./scripts/check-layout.sh
./scripts/check-msrv.sh
cargo fmt --all -- --check
# The workspace lints (Cargo.toml) add too_many_lines (clippy.toml: 100) and too_many_arguments.
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked -- --test-threads="${CAIRN_TEST_THREADS:-2}"
