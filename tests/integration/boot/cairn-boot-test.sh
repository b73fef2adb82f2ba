#!/bin/sh
# cairn's boot test, inside the VM: reports the booted deployment on the serial console, then walks
# upgrade -> reboot -> rollback -> reboot -> poweroff. Enabled only by `cairn.boottest=1` on the
# kernel command line (see cairn-boot-test.service); the step counter lives in /var, which every
# deployment shares.
set -u
# Every write reopens the console: agetty's vhangup() on ttyS0 turns an fd held across it into EIO
# (and a Rust println! into a panic), so commands log to a file that is copied out afterwards.
say() { echo "CAIRN-BOOT-TEST: $*" > /dev/ttyS0; }
run() { "$@" > "$dir/out" 2>&1; rc=$?; sed 's/^/CAIRN-BOOT-TEST| /' "$dir/out" > /dev/ttyS0; return "$rc"; }
dir=/var/lib/cairn-boot-test
mkdir -p "$dir"
step=$(cat "$dir/step" 2>/dev/null || echo 0)
booted=no; [ -e /run/ostree-booted ] && booted=yes
commit=$(ostree admin status 2>/dev/null | sed -n 's/^\* [^ ]* \([0-9a-f]\{64\}\)\..*/\1/p')
say "step=$step ostree-booted=$booted commit=$commit"
retry() {
  n=0
  until run "$@"; do
    rc=$?
    # 77: nothing new; anything else may be the network coming up.
    [ "$rc" = 77 ] && return 77
    n=$((n + 1)); [ "$n" -ge 20 ] && return "$rc"
    sleep 3
  done
}
case "$step" in
  0) echo 1 > "$dir/step"; sync
     retry cairn upgrade; say "upgrade rc=$?"
     systemctl reboot ;;
  1) echo 2 > "$dir/step"; sync
     run cairn rollback; say "rollback rc=$?"
     systemctl reboot ;;
  *) say "done"
     systemctl poweroff ;;
esac
