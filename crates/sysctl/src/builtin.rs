//! The built-in preset table. Values are what upstream projects document as their minimum or
//! recommendation; the reason line says whose advice it is so operators can check it.

use super::Preset;

pub(super) const BUILTIN: &[Preset] = &[
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
    Preset {
        name: "network-buffers",
        reason:
            "10G+ links and long-RTT replication stall on the default 208 KiB socket buffer cap",
        settings: &[
            ("net.core.rmem_max", "16777216"),
            ("net.core.wmem_max", "16777216"),
            ("net.ipv4.tcp_rmem", "4096 87380 16777216"),
            ("net.ipv4.tcp_wmem", "4096 65536 16777216"),
            ("net.core.netdev_max_backlog", "16384"),
        ],
        modules: &[],
    },
    Preset {
        name: "file-handles",
        reason: "object stores, proxies and log shippers hold hundreds of thousands of open files",
        settings: &[("fs.file-max", "2097152"), ("fs.nr_open", "1048576")],
        modules: &[],
    },
    Preset {
        name: "container-host",
        reason: "rootless Podman and many containers need user namespaces and more PIDs and keys",
        settings: &[
            ("user.max_user_namespaces", "28633"),
            ("kernel.pid_max", "4194304"),
            ("kernel.keys.maxkeys", "2000"),
        ],
        modules: &["overlay"],
    },
];
