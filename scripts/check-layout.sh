#!/usr/bin/env bash
# Checks the architecture the README describes, so it cannot drift silently:
# - the pure domains build without libostree (no ostree-sys anywhere in their dependency tree);
# - cairn-ostree is the only crate that depends on ostree, gio or glib directly;
# - the command layer (cli/) is the only crate that depends on clap.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for c in cairn-common cairn-yaml cairn-sysctl cairn-treefile cairn-kickstart cairn-packer cairn-fleet; do
  tree=$(cargo tree --locked -q -p "$c" -e normal,build --prefix none)
  if grep -q '^ostree-sys ' <<<"$tree"; then
    echo "check-layout: $c pulls in libostree (ostree-sys); the pure domains must not" >&2
    fail=1
  fi
done
direct=$(cargo metadata --format-version 1 --locked --no-deps | jq -r '.packages[]
  | .name as $n | .dependencies[] | select(.kind == null) | "\($n) \(.name)"')
while read -r crate dep; do
  case "$dep" in
    ostree | gio | glib) [ "$crate" = cairn-ostree ] || { echo "check-layout: $crate depends on $dep directly; only cairn-ostree may" >&2; fail=1; } ;;
    clap) [ "$crate" = cairn ] || { echo "check-layout: $crate depends on clap; only the command layer (cli/) may" >&2; fail=1; } ;;
  esac
done <<<"$direct"
[ $fail -eq 0 ] && echo "check-layout: ok" >&2
exit $fail
