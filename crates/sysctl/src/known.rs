//! Keys cairn knows without asking the running kernel, and what kind of value each takes.
//!
//! Shipped because a compose host's /proc/sys lacks keys of modules it has not loaded (e.g.
//! `net.bridge.*` needs br_netfilter) and a build container may have no /proc/sys at all. A `*`
//! component matches one path component (an interface name).

/// What a key's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One integer.
    Int,
    /// Whitespace-separated integers (e.g. `ip_local_port_range`, `tcp_rmem`).
    Ints,
    /// Free text (e.g. `kernel.core_pattern`).
    Text,
}

use Kind::*;

pub(super) const KNOWN: &[(&str, Kind)] = &[
    ("fs.aio-max-nr", Int),
    ("fs.file-max", Int),
    ("fs.inotify.max_queued_events", Int),
    ("fs.inotify.max_user_instances", Int),
    ("fs.inotify.max_user_watches", Int),
    ("fs.nr_open", Int),
    ("fs.protected_fifos", Int),
    ("fs.protected_hardlinks", Int),
    ("fs.protected_regular", Int),
    ("fs.protected_symlinks", Int),
    ("fs.suid_dumpable", Int),
    ("kernel.core_pattern", Text),
    ("kernel.core_uses_pid", Int),
    ("kernel.dmesg_restrict", Int),
    ("kernel.hostname", Text),
    ("kernel.keys.maxbytes", Int),
    ("kernel.keys.maxkeys", Int),
    ("kernel.kptr_restrict", Int),
    ("kernel.panic", Int),
    ("kernel.panic_on_oops", Int),
    ("kernel.perf_event_paranoid", Int),
    ("kernel.pid_max", Int),
    ("kernel.printk", Ints),
    ("kernel.randomize_va_space", Int),
    ("kernel.sched_autogroup_enabled", Int),
    ("kernel.sysrq", Int),
    ("kernel.threads-max", Int),
    ("kernel.unprivileged_bpf_disabled", Int),
    ("kernel.unprivileged_userns_clone", Int),
    ("kernel.yama.ptrace_scope", Int),
    ("net.bridge.bridge-nf-call-arptables", Int),
    ("net.bridge.bridge-nf-call-ip6tables", Int),
    ("net.bridge.bridge-nf-call-iptables", Int),
    ("net.core.default_qdisc", Text),
    ("net.core.netdev_max_backlog", Int),
    ("net.core.optmem_max", Int),
    ("net.core.rmem_default", Int),
    ("net.core.rmem_max", Int),
    ("net.core.somaxconn", Int),
    ("net.core.wmem_default", Int),
    ("net.core.wmem_max", Int),
    ("net.ipv4.conf.*.accept_redirects", Int),
    ("net.ipv4.conf.*.accept_source_route", Int),
    ("net.ipv4.conf.*.forwarding", Int),
    ("net.ipv4.conf.*.log_martians", Int),
    ("net.ipv4.conf.*.rp_filter", Int),
    ("net.ipv4.conf.*.send_redirects", Int),
    ("net.ipv4.icmp_echo_ignore_broadcasts", Int),
    ("net.ipv4.ip_forward", Int),
    ("net.ipv4.ip_local_port_range", Ints),
    ("net.ipv4.ip_local_reserved_ports", Text),
    ("net.ipv4.ip_nonlocal_bind", Int),
    ("net.ipv4.neigh.default.gc_thresh1", Int),
    ("net.ipv4.neigh.default.gc_thresh2", Int),
    ("net.ipv4.neigh.default.gc_thresh3", Int),
    ("net.ipv4.tcp_congestion_control", Text),
    ("net.ipv4.tcp_fin_timeout", Int),
    ("net.ipv4.tcp_keepalive_intvl", Int),
    ("net.ipv4.tcp_keepalive_probes", Int),
    ("net.ipv4.tcp_keepalive_time", Int),
    ("net.ipv4.tcp_max_syn_backlog", Int),
    ("net.ipv4.tcp_max_tw_buckets", Int),
    ("net.ipv4.tcp_mtu_probing", Int),
    ("net.ipv4.tcp_rmem", Ints),
    ("net.ipv4.tcp_slow_start_after_idle", Int),
    ("net.ipv4.tcp_syncookies", Int),
    ("net.ipv4.tcp_tw_reuse", Int),
    ("net.ipv4.tcp_wmem", Ints),
    ("net.ipv6.conf.*.accept_ra", Int),
    ("net.ipv6.conf.*.accept_redirects", Int),
    ("net.ipv6.conf.*.disable_ipv6", Int),
    ("net.ipv6.conf.*.forwarding", Int),
    ("net.ipv6.neigh.default.gc_thresh1", Int),
    ("net.ipv6.neigh.default.gc_thresh2", Int),
    ("net.ipv6.neigh.default.gc_thresh3", Int),
    ("net.netfilter.nf_conntrack_max", Int),
    ("net.netfilter.nf_conntrack_tcp_timeout_established", Int),
    ("user.max_user_namespaces", Int),
    ("vm.dirty_background_ratio", Int),
    ("vm.dirty_ratio", Int),
    ("vm.max_map_count", Int),
    ("vm.min_free_kbytes", Int),
    ("vm.nr_hugepages", Int),
    ("vm.overcommit_memory", Int),
    ("vm.overcommit_ratio", Int),
    ("vm.panic_on_oom", Int),
    ("vm.swappiness", Int),
    ("vm.vfs_cache_pressure", Int),
    ("vm.zone_reclaim_mode", Int),
];

/// The shipped entry for a dotted key, `*` components matching any one component.
pub fn lookup(key: &str) -> Option<Kind> {
    let parts: Vec<&str> = key.split('.').collect();
    KNOWN.iter().find_map(|(pattern, kind)| {
        let pat: Vec<&str> = pattern.split('.').collect();
        (pat.len() == parts.len() && pat.iter().zip(&parts).all(|(p, k)| *p == "*" || p == k))
            .then_some(*kind)
    })
}

/// Every shipped key, for suggestions.
pub fn all() -> impl Iterator<Item = &'static str> {
    KNOWN.iter().map(|(k, _)| *k)
}
