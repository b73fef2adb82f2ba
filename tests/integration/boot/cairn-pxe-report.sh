#!/bin/sh
# cairn's PXE test, inside the installed machine: reports what the installation set up on the
# serial console (hostname, addresses, routes, kernel command line, the sysctl values of every
# cairn preset file), then powers off. Enabled only by `cairn.pxetest=1` on the kernel command
# line, which the test's inventory puts there through `kernel-args`.
set -u
say() { echo "CAIRN-PXE-TEST: $*" > /dev/ttyS0; }
booted=no; [ -e /run/ostree-booted ] && booted=yes
commit=$(ostree admin status 2>/dev/null | sed -n 's/^\* [^ ]* \([0-9a-f]\{64\}\)\..*/\1/p')
say "booted ostree-booted=$booted commit=$commit"
say "hostname $(hostname)"
# The address may take a moment when network-online is not waited for by the network manager.
n=0
while [ "$n" -lt 30 ] && ! ip -4 -o addr show scope global | grep -q inet; do sleep 1; n=$((n + 1)); done
for a in $(ip -4 -o addr show scope global | awk '{print $4}'); do say "addr $a"; done
say "route $(ip -4 route show default | head -n 1)"
say "cmdline $(cat /proc/cmdline)"
for f in /etc/sysctl.d/60-cairn-*.conf; do
  [ -e "$f" ] || continue
  sed -n 's/^\([a-z0-9_./-]*\) *= *\(.*\)$/\1/p' "$f" | while read -r k; do
    say "sysctl $k=$(sysctl -n "$k" 2>/dev/null | tr '\t' ' ')"
  done
done
say "done"
systemctl poweroff
