//! Sysctl presets: named sets of kernel tunables that workloads need, each with its reason.
//!
//! The same presets serve the image layer (`/usr/lib/sysctl.d`, written at compose time) and the
//! host layer (`/etc/sysctl.d`, written into a deployment). systemd-sysctl reads both; a file in
//! `/etc/sysctl.d` overrides a file of the same name in `/usr/lib/sysctl.d`, and across different
//! names the lexically later file wins per key.

/// One built-in preset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preset {
    pub name: &'static str,
    /// One line: why a node operator wants this.
    pub reason: &'static str,
    pub settings: &'static [(&'static str, &'static str)],
    /// Kernel modules the settings depend on (written to modules-load.d).
    pub modules: &'static [&'static str],
}

const BUILTIN: &[Preset] = &[
    Preset {
        name: "elasticsearch",
        reason: "Elasticsearch's bootstrap check refuses to start below vm.max_map_count=262144 \
                 (Elastic now recommends 1048576 for large heaps)",
        settings: &[("vm.max_map_count", "262144")],
        modules: &[],
    },
    Preset {
        name: "kubernetes-node",
        reason: "kube-proxy and CNI plugins need forwarding and bridged traffic visible to \
                 iptables; kubelet and pods exhaust the default inotify limits",
        settings: &[
            ("net.ipv4.ip_forward", "1"),
            ("net.bridge.bridge-nf-call-iptables", "1"),
            ("net.bridge.bridge-nf-call-ip6tables", "1"),
            ("fs.inotify.max_user_instances", "8192"),
            ("fs.inotify.max_user_watches", "524288"),
        ],
        modules: &["br_netfilter", "overlay"],
    },
    Preset {
        name: "ipv6-forwarding",
        reason: "dual-stack Kubernetes and routers must forward IPv6 packets",
        settings: &[("net.ipv6.conf.all.forwarding", "1")],
        modules: &[],
    },
    Preset {
        name: "high-connections",
        reason: "load balancers and busy API servers run out of listen backlog and ephemeral ports",
        settings: &[
            ("net.core.somaxconn", "65535"),
            ("net.ipv4.tcp_max_syn_backlog", "8192"),
            ("net.ipv4.ip_local_port_range", "1024 65535"),
        ],
        modules: &[],
    },
    Preset {
        name: "database",
        reason: "PostgreSQL/Redis-style servers want little swapping and no overcommit surprises",
        settings: &[("vm.swappiness", "1"), ("vm.overcommit_memory", "1")],
        modules: &[],
    },
    Preset {
        name: "hardening",
        reason: "baseline kernel hardening: hide kernel pointers, restrict dmesg and ptrace",
        settings: &[
            ("kernel.kptr_restrict", "2"),
            ("kernel.dmesg_restrict", "1"),
            ("kernel.yama.ptrace_scope", "1"),
        ],
        modules: &[],
    },
];

/// All built-in presets, in a stable order.
pub fn builtin() -> &'static [Preset] {
    BUILTIN
}

/// A built-in preset by name.
pub fn find(name: &str) -> Option<&'static Preset> {
    BUILTIN.iter().find(|p| p.name == name)
}
