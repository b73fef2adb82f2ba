# Shared by the bench scripts (sourced, not run).

# bench_binary DEST: a private copy of the release cairn at DEST. The target dir may be shared
# with other checkouts and rebuilt underneath a long run, so the bench never runs it in place.
# CAIRN_BIN=path skips the build (e.g. a binary copied right after `cargo build --release`).
bench_binary() {
  if [ -n "${CAIRN_BIN:-}" ]; then
    cp "$CAIRN_BIN" "$1"
  else
    cargo build --release --quiet --bin cairn
    cp "${CARGO_TARGET_DIR:-target}/release/cairn" "$1"
  fi
}

# bench_inventory N INV MACS: an N-host inventory at INV (every host static, a third in a role)
# and its MACs, one a line, at MACS. Shared by the throughput and the scale runs of serve.sh.
bench_inventory() {
  local n=$1 inv=$2 macs=$3
  {
    cat <<'YAML'
server: http://127.0.0.1:1
defaults:
  domain: bench.example.com
  root-password: "$6$cairnexample$3yGplWObU2CLtbRf1OFSYXQFSaYHAEoeB/vVBKTAvTxv38aRju5hGci2xXC1xIoaouP8lvJewTUaFFsMhcoRC1"
  ssh-keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFNMcTTw+M9xm8hFXzUOdk9NRLdAHOpVW7BSiUUWwp0a admin@example.com"]
  kernel-args: ["console=ttyS0,115200n8"]
  sysctl-presets: [hardening]
  disk: { device: sda, root-size: 20GiB }
  ostree: { osname: cairn, ref: cairn/x86_64/base, gpg: false }
  network: { subnet: 10.0.0.0/16, gateway: 10.0.0.1, dns: [10.0.0.53] }
roles:
  k8s-node: { sysctl-presets: [kubernetes-node] }
hosts:
YAML
    # Up to 63,750 hosts fit the MAC and /16 address patterns.
    awk -v n="$n" 'BEGIN {
      for (i = 0; i < n; i++) {
        hi = int(i / 256); lo = i % 256
        printf "  - hostname: node%05d\n    mac: \"52:54:00:01:%02x:%02x\"\n", i, hi, lo
        printf "    network: { ip: 10.0.%d.%d/16 }\n", 1 + int(i / 250), 2 + i % 250
        if (i % 3 == 0) print "    role: k8s-node"
      } }'
  } > "$inv"
  awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) printf "52:54:00:01:%02x:%02x\n", int(i/256), i%256 }' > "$macs"
}
