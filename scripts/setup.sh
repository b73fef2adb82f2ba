#!/usr/bin/env bash
# Idempotent: installs the system packages cairn builds and tests with, then checks the Rust toolchain.
# Safe to run any number of times; it only calls apt-get when something is missing.
set -euo pipefail

APT_PACKAGES=(
  # build
  pkg-config libostree-dev libglib2.0-dev build-essential
  # OSTree tooling: the ostree CLI is the test oracle; ostree-boot carries dracut's 98ostree module
  ostree ostree-boot gnupg
  # compose backends
  mmdebstrap debian-archive-keyring dnf rpm createrepo-c
  # images and VMs
  packer qemu-utils qemu-system-x86 e2fsprogs dosfstools gdisk fdisk extlinux syslinux-common
  # serving and benchmarks
  curl nginx wrk hyperfine
  # misc tools the tests call
  python3 python3-venv attr jq
)

need=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Only refresh indexes when they are absent or a day old; keeps reruns fast.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
    apt-get update -q
  fi
  apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# pykickstart's ksvalidator: from PyPI into a private venv so the system Python stays untouched.
VENV=/opt/cairn-tools/venv
if [ ! -x "$VENV/bin/ksvalidator" ]; then
  echo "setup: installing pykickstart into $VENV" >&2
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pykickstart
fi
ln -sf "$VENV/bin/ksvalidator" /usr/local/bin/ksvalidator

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: no Rust toolchain found (cargo). Install rustup's stable toolchain, then rerun." >&2
    exit 1
  fi
fi
echo "setup: ok ($(cargo --version))" >&2
