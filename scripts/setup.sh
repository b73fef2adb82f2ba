#!/usr/bin/env bash
# Idempotent: installs the system packages cairn builds and tests with, checks that every command
# they provide is really there afterwards, then checks the Rust toolchain. Safe to run any number
# of times; it only calls apt-get when something is missing. Quiet unless it installs something.
set -euo pipefail

# package:command pairs; a package with no command of its own to check is listed as package:-.
REQUIRED=(
  # build
  pkg-config:pkg-config libostree-dev:- libglib2.0-dev:- build-essential:cc
  # OSTree tooling: the ostree CLI is the test oracle; ostree-boot carries dracut's 98ostree module
  ostree:ostree ostree-boot:- gnupg:gpg
  # compose backends
  mmdebstrap:mmdebstrap debian-archive-keyring:- dnf:dnf rpm:rpmbuild createrepo-c:createrepo_c
  # images and VMs
  packer:packer qemu-utils:qemu-img qemu-system-x86:qemu-system-x86_64 e2fsprogs:mkfs.ext4
  dosfstools:mkfs.vfat gdisk:sgdisk fdisk:sfdisk extlinux:extlinux syslinux-common:-
  # UEFI: GRUB for the ESP (grub-mkstandalone), FAT without a mount (mtools), OVMF for the boot
  # test, and Debian's signed shim and GRUB for `image build --secure-boot` (their postinst does
  # nothing on a machine not booted by UEFI)
  grub-efi-amd64-bin:- grub-common:grub-mkstandalone mtools:mcopy ovmf:- shim-signed:- grub-efi-amd64-signed:-
  # cairn install (cairn_install::TOOLS): LVM metadata and XFS, besides the image tools above
  lvm2:lvm xfsprogs:mkfs.xfs util-linux:losetup
  # serving and benchmarks
  curl:curl nginx:nginx wrk:wrk hyperfine:hyperfine
  # fleetlock: etcd is the lock store (tests start their own members) and etcdctl the test
  # oracle; etcd-client compiles etcd's protos at build time (protoc plus the well-known types)
  etcd-server:etcd etcd-client:etcdctl protobuf-compiler:protoc libprotobuf-dev:-
  # misc tools the tests and scripts call
  python3:python3 python3-venv:- attr:setfattr jq:jq
  # the lockfile test checks rpm-ostree's lockfile schema with it
  python3-jsonschema:-
  # OCI images: skopeo moves them, docker-registry is the loopback registry the container tests
  # start; libzstd-dev builds ostree-ext for the interoperability check (tests/interop/)
  skopeo:skopeo docker-registry:docker-registry libzstd-dev:-
)

export DEBIAN_FRONTEND=noninteractive
# apt's own output goes to a log (shown in full if it fails), so a first run stays readable.
LOG=/var/log/cairn-setup.log
apt_install() {
  local names=()
  for a in "$@"; do [[ $a == -* ]] || names+=("$a"); done
  echo "setup: installing ${names[*]} (log: $LOG)" >&2
  {
    # Only refresh indexes when they are absent or a day old; keeps reruns fast.
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
      apt-get update -q
    fi
    apt-get install -y -q --no-install-recommends "$@"
  } >>"$LOG" 2>&1 || { cat "$LOG" >&2; echo "setup: apt-get failed (log: $LOG)" >&2; exit 1; }
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

need=()
for pc in "${REQUIRED[@]}"; do
  installed "${pc%%:*}" || need+=("${pc%%:*}")
done
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# Installing one package can remove another (a backported qemu-utils is removed when the stable
# qemu-system-x86 comes in), so every command is checked after the fact and its package put back.
missing_packages() {
  for pc in "${REQUIRED[@]}"; do
    local pkg=${pc%%:*} cmd=${pc#*:}
    if [ "$cmd" = - ]; then installed "$pkg" || echo "$pkg"
    else command -v "$cmd" >/dev/null 2>&1 || echo "$pkg"; fi
  done
}
for _ in 1 2; do
  mapfile -t again < <(missing_packages)
  [ ${#again[@]} -eq 0 ] && break
  # --reinstall: a package can be "installed" with its command gone (a diverted or deleted file).
  apt_install --reinstall "${again[@]}"
done
mapfile -t still < <(missing_packages)
if [ ${#still[@]} -gt 0 ]; then
  echo "setup: still missing after installing: ${still[*]} (apt-get may have removed them; see above)" >&2
  exit 1
fi

# pykickstart's ksvalidator: from PyPI into a private venv so the system Python stays untouched.
VENV=/opt/cairn-tools/venv
if [ ! -x "$VENV/bin/ksvalidator" ]; then
  echo "setup: installing pykickstart into $VENV" >&2
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pykickstart >>"$LOG" 2>&1 || { cat "$LOG" >&2; exit 1; }
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
