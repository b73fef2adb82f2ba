#!/usr/bin/env bash
# Builds one fuzz target with cargo-afl and fuzzes it for SECONDS, seeded from the project's real
# inputs (treefiles/, kickstart/, the shared corpus, the host's sysctl.d). Prints runtime, execs,
# corpus paths, edge coverage and crashes; exits 1 when a crash was found (each crash input is
# listed: copy it to tests/fuzz-regressions/TARGET/ once fixed).
#
#   fuzz/run.sh TARGET SECONDS        TARGET: yaml treefile inventory sysctl render serve_request
#   NICE=19 (default) runs afl at that niceness; OUT=dir keeps findings elsewhere.
# Installs cargo-afl (which brings its own AFL++) on first use: only fuzzing needs it, so CI's
# setup does not pay for it. A rerun resumes nothing: it starts over from the seeds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
secs=${2:?usage: fuzz/run.sh TARGET SECONDS}
case " yaml treefile inventory sysctl render serve_request " in
*" $target "*) ;;
*) echo "unknown target $target" >&2; exit 2 ;;
esac
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-afl >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-afl (once)" >&2
    cargo install --locked cargo-afl
fi
export CARGO_TARGET_DIR=$root/target/afl
out=${OUT:-$CARGO_TARGET_DIR/out/$target}
seeds=$CARGO_TARGET_DIR/seeds/$target
corpus=${CORPUS:-$root/../shared/corpus}
if [ ! -d "$corpus" ]; then
    echo "note: no shared corpus at $corpus (set CORPUS=); seeding from this checkout only" >&2
    corpus=$root/treefiles
fi

nice -n "${NICE:-19}" cargo afl build --release --quiet --manifest-path "$here/afl/Cargo.toml" --bin "$target"

rm -rf "$seeds" "$out"
mkdir -p "$seeds" "$out"
seed() { cat > "$(mktemp "$seeds/seed.XXXXXX")"; }
yaml_files() {
    find "$root/treefiles" "$root/kickstart" "$corpus/treefiles" -type f \
        \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) -size -64k 2>/dev/null | sort
}
# A treefile input packs an entry file with the YAML/JSON files beside it (its includes), in the
# `#% FILE name` format fuzz/src/lib.rs reads.
pack_treefile() {
    local entry=$1 dir
    dir=$(dirname "$entry")
    printf '#%% FILE %s\n' "$(basename "$entry")"
    cat "$entry"
    find "$dir" -maxdepth 2 -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) \
        -size -16k ! -path "$entry" | sort | head -20 | while read -r f; do
        printf '\n#%% FILE %s\n' "${f#"$dir"/}"
        cat "$f"
    done
}
inventory_seeds() {
    seed < "$root/kickstart/inventory.yaml"
    # A small one the fuzzer mutates faster.
    printf 'api-version: cairn/v1\nserver: http://192.0.2.1:8080\ndefaults: {root-password: "!"}\nhosts:\n  - hostname: a\n    mac: \"52:54:00:00:00:01\"\n    network: {ip: 192.0.2.10/24, gateway: 192.0.2.1}\n' | seed
}
macs=$(grep -oiE '([0-9a-f]{2}:){5}[0-9a-f]{2}' "$root/kickstart/inventory.yaml" | sort -u | head -3)
case $target in
yaml)
    yaml_files | while read -r f; do seed < "$f"; done ;;
treefile)
    find "$root/treefiles" "$corpus/treefiles" -type f \( -name '*.yaml' -o -name '*.json' \) \
        -size -16k 2>/dev/null | sort | head -60 | while read -r f; do
        pack_treefile "$f" | head -c 65536 | seed
    done ;;
inventory | render)
    inventory_seeds ;;
sysctl)
    for f in /etc/sysctl.d/*.conf /usr/lib/sysctl.d/*.conf "$root"/tests/integration/*.conf; do
        [ -f "$f" ] && seed < "$f"
    done
    printf '# a reason\n# cairn-modules: br_netfilter overlay\nnet.ipv4.ip_forward = 1\n-vm/max_map_count=262144\n' | seed ;;
serve_request)
    for m in $macs; do
        printf '\0/ks/%s' "$m" | seed
        printf '\0/ks?mac=%s&token=abc' "$m" | seed
        printf '\0/grub/grub.cfg-01-%s' "${m//:/-}" | seed
        printf '\0/pxelinux/01-%s' "${m//:/-}" | seed
        printf '\0/ipxe?mac=%s' "$m" | seed
        printf '\1/built/%s' "$m" | seed
    done
    for t in /repo/objects/ab/cdef.filez /repo/config '/repo/../config' /repo/%2e%2e/x /boot.ipxe /healthz \
        '/ks/aabb.ccdd.eeff' '/failed/AA-BB-CC-DD-EE-FF'; do
        printf '\0%s' "$t" | seed
    done ;;
esac
[ "$(ls "$seeds" | wc -l)" -gt 0 ] || { echo "no seeds for $target" >&2; exit 1; }

dicts=$HOME/.local/share/afl.rs/AFLplusplus/dictionaries
dict=()
case $target in
yaml | treefile | inventory | render) dict=(-x "$dicts/yaml.dict") ;;
serve_request) dict=(-x "$dicts/url.dict") ;;
esac
[ ${#dict[@]} -eq 0 ] || [ -f "${dict[1]}" ] || dict=()

# Shared cores: no CPU pinning, no frequency check; no core dumps needed to see a crash.
export AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
    AFL_NO_UI=1 AFL_QUIET=1 AFL_SKIP_CRASHES=0
start=$(date +%s)
nice -n "${NICE:-19}" cargo afl fuzz -V "$secs" "${dict[@]}" -i "$seeds" -o "$out" \
    -- "$CARGO_TARGET_DIR/release/$target" > "$out/afl.log" 2>&1 || {
    tail -30 "$out/afl.log" >&2
    exit 1
}
rm -rf /dev/shm/cairn-fuzz-serve "${TMPDIR:-/tmp}/cairn-fuzz-serve"
stats=$out/default/fuzzer_stats
get() { awk -v k="$1" '$1 == k {print $3}' "$stats"; }
crashes=$(get saved_crashes)
printf '%s: %ss, %s execs (%s/s), %s corpus paths, edge coverage %s, %s crashes, %s hangs\n' \
    "$target" "$(($(date +%s) - start))" "$(get execs_done)" "$(get execs_per_sec)" \
    "$(get corpus_count)" "$(get bitmap_cvg)" "$crashes" "$(get saved_hangs)"
if [ "$crashes" != 0 ]; then
    ls "$out"/default/crashes/id:* >&2
    exit 1
fi
