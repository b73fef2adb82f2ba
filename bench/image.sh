#!/usr/bin/env bash
# Treefile -> bootable qcow2, two ways, in one run:
#   native:  cairn compose + cairn image build --format qcow2
#   packer:  cairn compose + cairn image build --format raw (the base) + packer build of the
#            qemu-disk template (boots the image once under QEMU, then qcow2 + vhd post-processors)
# Prints both times and the ratio. The compose is shared (done once, timed separately), so the
# ratio compares the image step itself. Under TCG (no KVM) the Packer boot dominates.
#
#   bench/image.sh [TREEFILE]        (default treefiles/debian-12.yaml; run as root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
treefile=${1:-$root/treefiles/debian-12.yaml}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
# Debug build: every step that costs time here is an external tool (libostree, mkfs, qemu-img, QEMU).
cargo build -q --manifest-path "$root/Cargo.toml"
# /dev/kvm can exist without working (as on these build machines): TCG unless asked, ACCEL=kvm.
accel=${ACCEL:-tcg}

work=$(mktemp -d /var/tmp/cairn-bench-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
# A private copy: the shared target directory may be rebuilt by someone else mid-run.
cp "$CARGO_TARGET_DIR/debug/cairn" "$work/cairn"
cairn=$work/cairn
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(now)
"$cairn" compose "$treefile" --repo "$work/repo" --quiet >/dev/null
t1=$(now)
ref=$(ostree --repo="$work/repo" refs | head -n 1)
kargs=(--karg console=ttyS0,115200n8)

# native
t2=$(now)
"$cairn" image build --repo "$work/repo" --ref "$ref" --format qcow2 --size 4G \
  --out "$work/native.qcow2" "${kargs[@]}" --quiet >/dev/null
t3=$(now)

# packer template 2
t4=$(now)
"$cairn" image build --repo "$work/repo" --ref "$ref" --format raw --size 4G \
  --out "$work/base.raw" "${kargs[@]}" --quiet >/dev/null
"$cairn" packer render --profile qemu-disk --out "$work/packer" --quiet \
  --var base_image="$work/base.raw" --var accelerator=$accel --var output_directory="$work/out" \
  --var memory=2048
(cd "$work" && CHECKPOINT_DISABLE=1 PACKER_LOG=0 packer build -color=false packer >"$work/packer.log" 2>&1) \
  || { tail -n 30 "$work/packer.log"; exit 1; }
t5=$(now)

compose=$(secs "$t0" "$t1"); native=$(secs "$t2" "$t3"); packer=$(secs "$t4" "$t5")
printf 'accelerator:              %s\n' "$accel"
printf 'compose (shared):         %8.1f s\n' "$compose"
printf 'native image build:       %8.1f s\n' "$native"
printf 'packer (qemu-disk) path:  %8.1f s\n' "$packer"
printf 'ratio packer/native:      %8.1f x\n' "$(awk -v p="$packer" -v n="$native" 'BEGIN { print p / n }')"
qemu-img info "$work/native.qcow2" | sed -n '2,3p'
qemu-img info "$work/out/cairn-disk.qcow2" | sed -n '2,3p'
