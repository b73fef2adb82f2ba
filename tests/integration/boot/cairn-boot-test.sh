#!/bin/sh
# cairn's boot test, inside the VM: reports the booted deployment on the serial console, then walks
# agent upgrade -> (the agent's own reboot) -> rollback -> reboot -> poweroff. Enabled only by
# `cairn.boottest=1` on the kernel command line (see cairn-boot-test.service); the step counter and
# the agent's event log live in /var, which every deployment shares.
#
# The upgrade is `cairn agent` as shipped (dist/systemd/cairn-agent.service) with the fleetlock
# strategy against the lock server the host names in `cairn.fleetlock=URL`: it stages with
# libostree, takes a slot, runs its pre-reboot hook (this script with `pre-reboot`), finalizes and
# runs `systemctl reboot` itself; in the next boot it checks health and gives the slot back.
set -u
dir=/var/lib/cairn-boot-test
events=$dir/agent-events.jsonl
if [ "${1:-}" = pre-reboot ]; then
  # The agent's pre-reboot hook: what is staged, as the agent is about to finalize it.
  cairn status --json > "$dir/pre-reboot-status.json"
  exit $?
fi
# Every write reopens the console: agetty's vhangup() on ttyS0 turns an fd held across it into EIO
# (and a Rust println! into a panic), so commands log to a file that is copied out afterwards.
say() { echo "CAIRN-BOOT-TEST: $*" > /dev/ttyS0; }
run() { "$@" > "$dir/out" 2>&1; rc=$?; sed 's/^/CAIRN-BOOT-TEST| /' "$dir/out" > /dev/ttyS0; return "$rc"; }
# The agent's events (one JSON object a line) and its stderr, copied to the console for the host.
dump() {
  sed 's/^/CAIRN-BOOT-TEST-EVENT: /' "$events" > /dev/ttyS0 2>/dev/null
  sed 's/^/CAIRN-BOOT-TEST| agent: /' "$dir/agent.stderr" > /dev/ttyS0 2>/dev/null
  [ -e "$dir/pre-reboot-status.json" ] &&
    say "pre-reboot-status $(tr -d '\n' < "$dir/pre-reboot-status.json")"
}
# Waits up to $2 seconds for an agent event named $1.
wait_event() {
  n=0
  until grep -q "\"event\":\"$1\"" "$events" 2>/dev/null; do
    n=$((n + 2)); [ "$n" -ge "$2" ] && return 1
    sleep 2
  done
}
mkdir -p "$dir"
step=$(cat "$dir/step" 2>/dev/null || echo 0)
booted=no; [ -e /run/ostree-booted ] && booted=yes
commit=$(ostree admin status 2>/dev/null | sed -n 's/^\* [^ ]* \([0-9a-f]\{64\}\)\..*/\1/p')
# The firmware that booted us, and whether Secure Boot was on (the last byte of the EFI variable).
firmware=bios; [ -d /sys/firmware/efi ] && firmware=uefi
sb=$(od -An -tu1 -j4 -N1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | tr -d ' ')
say "step=$step ostree-booted=$booted commit=$commit firmware=$firmware secureboot=${sb:-none}"
lock=$(sed -n 's/.*cairn\.fleetlock=\([^ ]*\).*/\1/p' /proc/cmdline)

# The agent's config and a drop-in sending its events to /var. Both are in this deployment's /etc,
# which libostree merges into the staged one when it finalizes at shutdown, so the agent starts by
# itself in the next boot. `agent-done` (in the shared /var) keeps it from starting in any
# deployment once the test is past the upgrade: after the rollback it would upgrade again.
agent_setup() {
  mkdir -p /etc/cairn /etc/systemd/system/cairn-agent.service.d
  cat > /etc/cairn/agent.toml <<EOF
[agent]
interval_secs = 5
jitter_secs = 1

[identity]
group = "boot-test"

[updates]
strategy = "fleetlock"

[updates.fleetlock]
servers = ["$lock"]

[hooks]
pre_reboot = [["/usr/libexec/cairn-boot-test", "pre-reboot"]]
EOF
  cat > /etc/systemd/system/cairn-agent.service.d/boot-test.conf <<EOF
[Unit]
ConditionPathExists=!$dir/agent-done

[Service]
StandardOutput=append:$events
StandardError=append:$dir/agent.stderr
EOF
  systemctl daemon-reload
}

# Under UEFI (the same image, booted by OVMF): `cairn upgrade` -> reboot -> `cairn rollback` ->
# reboot -> poweroff, no agent; with `cairn.boottest.once` (the Secure Boot image) one boot only.
if grep -q 'cairn\.boottest\.once' /proc/cmdline; then
  say "done agent=$(systemctl is-active cairn-agent.service)"
  systemctl poweroff
  exit 0
fi
if [ "$firmware" = uefi ]; then
  case "$step" in
    0) echo 1 > "$dir/step"; sync
       run cairn upgrade; say "upgrade rc=$?"
       systemctl reboot ;;
    1) echo 2 > "$dir/step"; sync
       run cairn rollback; say "rollback rc=$?"
       systemctl reboot ;;
    *) say "done agent=$(systemctl is-active cairn-agent.service)"
       systemctl poweroff ;;
  esac
  exit 0
fi

case "$step" in
  0) echo 1 > "$dir/step"; sync
     agent_setup
     say "agent start lock=$lock"
     systemctl start cairn-agent.service
     # The agent reboots the VM itself; reaching the end of this wait means it did not.
     wait_event rebooting 1200 && sleep 600
     say "the agent did not reboot"
     dump
     systemctl poweroff ;;
  1) echo 2 > "$dir/step"; sync
     # The agent started by itself in this boot: health check, then steady-state.
     wait_event slot-released 600; say "agent released rc=$?"
     touch "$dir/agent-done"
     systemctl stop cairn-agent.service
     dump
     run cairn rollback; say "rollback rc=$?"
     systemctl reboot ;;
  *) say "done agent=$(systemctl is-active cairn-agent.service)"
     systemctl poweroff ;;
esac
