#!/bin/sh
# /init of cairn's PXE installer (written by `cairn image build --format pxe`): mounts the API
# filesystems, loads the modules listed in /etc/cairn-installer/modules, brings a NIC up by DHCP,
# fetches the kickstart named by `inst.ks=URL` on the kernel command line (the parameter anaconda
# reads, so one iPXE script serves both), picks the disk the kickstart names and runs
# `cairn install`. Success: reboot (or power off if the kickstart says so). Failure: the log, then
# a shell on the console.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
exec </dev/console >/dev/console 2>&1
state=/run/cairn-installer
mkdir -p "$state"
say() { echo "cairn-installer: $*"; }

fail() {
  say "FAILED: $*"
  [ -s "$state/install.log" ] && { say "last lines of the install log:"; tail -n 40 "$state/install.log"; }
  say "dropping to a shell (the log is $state/install.log)"
  exec setsid cttyhack sh
}

say "starting ($(uname -r))"
while read -r m; do
  # EFI variables exist only when the firmware is UEFI.
  case "$m" in */efivarfs.ko*) [ -d /sys/firmware/efi ] || continue ;; esac
  insmod "/usr/lib/modules/$(uname -r)/$m" 2>"$state/insmod.err" ||
    say "insmod $m: $(cat "$state/insmod.err")"
done < /etc/cairn-installer/modules

ks=""; disk=""
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    inst.ks=*) ks=${arg#inst.ks=} ;;
    cairn.disk=*) disk=${arg#cairn.disk=} ;;
    cairn.shell=1) say "cairn.shell=1: shell before installing"; setsid cttyhack sh ;;
  esac
done
[ -n "$ks" ] || fail "no inst.ks=URL on the kernel command line"

# DHCP on each NIC in turn until one gets a lease (drivers may need a moment to appear).
up=""
for try in 1 2 3 4 5; do
  for d in /sys/class/net/*; do
    i=${d##*/}
    [ "$i" = lo ] && continue
    ip link set "$i" up
    if udhcpc -i "$i" -n -q -f -t 5 -T 2 -s /usr/share/udhcpc/default.script; then
      up=$i; break 2
    fi
  done
  sleep 2
done
[ -n "$up" ] || fail "no network: DHCP got no lease on any interface"
say "network up on $up: $(ip -4 addr show dev "$up" | sed -n 's/.*inet \([^ ]*\).*/\1/p')"

# One fetch: a build token is spent by the first successful read of the kickstart.
ksfile=$state/ks.cfg
if ! curl -fsS --retry 3 --retry-connrefused --retry-delay 3 --connect-timeout 20 -m 300 \
  -o "$ksfile" "$ks" 2>"$state/curl.err"; then
  rm -f "$ksfile"
  # cairn install owns where a failure is reported (a cairn serve URL's SERVER/failed/MAC):
  # given the URL it tries once more and, failing, posts the failed callback with its log. It
  # reads the kickstart before it looks at the target, so no disk is named or touched.
  cairn install --kickstart "$ks" /dev/null > "$state/install.log" 2>&1
  fail "cannot fetch the kickstart $ks: $(cat "$state/curl.err")"
fi
say "kickstart fetched ($(wc -c < "$ksfile") bytes)"

# The disk: cairn.disk= if given, else the kickstart's ignoredisk --only-use=, --ondisk= or
# --drives= (first one named).
if [ -z "$disk" ]; then
  disk=$(sed -n 's/.*--\(only-use\|ondisk\|drives\)=\([^ ,]*\).*/\2/p' "$ksfile" | head -n 1)
fi
disk=${disk#/dev/}
[ -n "$disk" ] || fail "the kickstart names no disk (ignoredisk --only-use=, part --ondisk=) and there is no cairn.disk="
n=0
until [ -b "/dev/$disk" ]; do
  n=$((n + 1))
  [ "$n" -ge 30 ] && fail "/dev/$disk (named by the kickstart) did not appear; disks: $(ls /sys/block | tr '\n' ' ')"
  sleep 1
done

say "installing onto /dev/$disk: cairn install --kickstart $ksfile /dev/$disk"
start=$(date +%s)
{ cairn install --kickstart "$ksfile" "/dev/$disk"; echo $? > "$state/rc"; } 2>&1 | tee "$state/install.log"
rc=$(cat "$state/rc" 2>/dev/null || echo 1)
[ "$rc" = 0 ] || fail "cairn install exited with $rc"
say "installed in $(( $(date +%s) - start ))s"
sync
if grep -qE '^(poweroff|halt|shutdown)([[:space:]]|$)' "$ksfile"; then
  say "powering off (the kickstart says so)"
  poweroff -f
else
  say "rebooting into the installed system"
  reboot -f
fi
sleep 30
fail "reboot did not happen"
