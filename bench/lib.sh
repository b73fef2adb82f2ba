# Shared by the bench scripts (sourced, not run).

# bench_binary DEST: a private copy of the release cairn at DEST. The target dir may be shared
# with other checkouts and rebuilt underneath a long run, so the bench never runs it in place.
# CAIRN_BIN=path skips the build (e.g. a binary copied right after `cargo build --release`).
bench_binary() {
  if [ -n "${CAIRN_BIN:-}" ]; then
    cp "$CAIRN_BIN" "$1"
  else
    cargo build --release --quiet --bin cairn
    cp "${CARGO_TARGET_DIR:-target}/release/cairn" "$1"
  fi
}
