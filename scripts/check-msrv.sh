#!/usr/bin/env bash
# Checks that the workspace's rust-version is a true minimum: no locked dependency declares a
# newer one. Standard-library use newer than rust-version is caught by clippy's incompatible_msrv
# lint, which reads the same field (scripts/test.sh runs clippy with -D warnings).
set -euo pipefail
cd "$(dirname "$0")/.."
meta=$(cargo metadata --format-version 1 --locked)
ours=$(jq -r '[.packages[] | select(.source == null) | .rust_version] | unique | .[]' <<<"$meta")
if [ "$(wc -l <<<"$ours")" -ne 1 ]; then
  echo "check-msrv: workspace members disagree on rust-version: $(tr '\n' ' ' <<<"$ours")" >&2
  exit 1
fi
newest=$(jq -r '.packages[] | select(.source != null and .rust_version != null)
  | "\(.rust_version) \(.name) \(.version)"' <<<"$meta" | sort -V | tail -1)
need=${newest%% *}
# 1.88 and 1.88.0 are the same requirement.
norm() { awk -F. '{ printf "%d.%d.%d\n", $1, $2, $3 }' <<<"$1"; }
# Compare as versions: the larger of the two sorts last.
if [ "$(printf '%s\n%s\n' "$(norm "$ours")" "$(norm "$need")" | sort -V | tail -1)" != "$(norm "$ours")" ]; then
  echo "check-msrv: rust-version is $ours but $newest needs $need; raise workspace.package.rust-version" >&2
  exit 1
fi
echo "check-msrv: rust-version $ours (newest dependency requirement: $newest)" >&2
