//! The inventory: defaults, roles and hosts, merged into one fully resolved [`Host`] per machine.
//!
//! Merge order is defaults, then each role the host names (in the order it names them), then the
//! host itself. Scalars and the keys of the nested maps (`disk`, `ostree`, `network`, `pxe`)
//! override key by key; the list fields `ssh-keys`, `kernel-args` and `sysctl-presets` accumulate
//! (duplicates dropped, first occurrence kept), so a default admin key and a role's presets are not
//! lost when a host adds one of its own. `network.bond` is replaced as a whole.
//!
//! Loading never stops at the first problem: every diagnostic is collected with its position.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use cairn_common::API_VERSION;
use serde::Serialize;

use super::error::{Diagnostic, KickstartError};
use super::network::{netmask_to_prefix, parse_cidr, Ipv4Net, Mac};
use cairn_common::suggest::did_you_mean;
use cairn_yaml::{self as yaml, Loc, Node, Value};

mod choices;
mod fields;
mod merge;

pub use choices::{BondMode, Bootproto, Fstype};
pub use fields::check_crypt_hash;
use merge::{resolve, want_url};

/// Options that come from the command line rather than the file.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Overrides the inventory's `server:`: the base URL hosts reach `cairn serve` at.
    pub server_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub path: PathBuf,
    /// Base URL of the boot server (no trailing slash), used for callbacks and default URLs.
    pub server: Option<String>,
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Host {
    /// Short host name (first label).
    pub hostname: String,
    pub fqdn: String,
    /// Normalised; the first one is the primary (its form names the callbacks).
    pub macs: Vec<Mac>,
    /// The primary MAC, `macs[0]`: a host without one is refused, so render and serve name
    /// files and tokens after it without a check.
    #[serde(skip)]
    pub mac: Mac,
    pub roles: Vec<String>,
    pub network: Network,
    pub disk: Disk,
    pub ostree: Ostree,
    pub kernel_args: Vec<String>,
    pub sysctl_presets: Vec<String>,
    pub ssh_keys: Vec<String>,
    /// A crypt(3) hash; `None` locks the root account.
    pub root_password: Option<String>,
    pub timezone: String,
    pub pxe: Pxe,
    #[serde(skip)]
    pub locs: HostLocs,
}

/// Where the identifying fields of a host were written, for cross-host diagnostics.
#[derive(Debug, Clone)]
pub struct HostLocs {
    pub host: Loc,
    pub hostname: Loc,
    pub macs: Vec<Loc>,
    pub ip: Option<Loc>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Network {
    pub bootproto: Bootproto,
    pub ip: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub netmask: Option<Ipv4Addr>,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<IpAddr>,
    pub vlan: Option<u16>,
    pub mtu: Option<u32>,
    pub bond: Option<Bond>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bond {
    pub name: String,
    pub mode: BondMode,
    pub slaves: Vec<String>,
    pub options: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Disk {
    pub device: String,
    pub fstype: Fstype,
    pub vg: String,
    /// Sizes in MiB; `None` = grow to fill the free space.
    pub boot_size: u64,
    pub root_size: Option<u64>,
    pub var_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Ostree {
    pub osname: String,
    pub remote: String,
    /// Where the installer pulls from.
    pub url: String,
    /// Where the installed host pulls upgrades from (defaults to `url`).
    pub upgrade_url: String,
    #[serde(rename = "ref")]
    pub refname: String,
    pub gpg: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pxe {
    /// Installer kernel and initrd: a path on the TFTP/HTTP root, or an absolute URL.
    pub kernel: String,
    pub initrd: String,
    /// Extra installer command-line arguments (not the installed system's: see `kernel-args`).
    pub append: Vec<String>,
}

const TOP_KEYS: &[&str] = &["api-version", "server", "defaults", "roles", "hosts"];
const SPEC_KEYS: &[&str] = &[
    "domain",
    "timezone",
    "root-password",
    "ssh-keys",
    "kernel-args",
    "sysctl-presets",
    "disk",
    "ostree",
    "network",
    "pxe",
];
const HOST_ONLY_KEYS: &[&str] = &["hostname", "mac", "macs", "role", "roles"];
const LIST_KEYS: &[&str] = &["ssh-keys", "kernel-args", "sysctl-presets"];
const NESTED: &[(&str, &[&str])] = &[
    (
        "disk",
        &[
            "device",
            "fstype",
            "vg",
            "boot-size",
            "root-size",
            "var-size",
        ],
    ),
    (
        "ostree",
        &["osname", "remote", "url", "upgrade-url", "ref", "gpg"],
    ),
    (
        "network",
        &[
            "bootproto",
            "ip",
            "netmask",
            "gateway",
            "dns",
            "vlan",
            "mtu",
            "bond",
            "subnet",
        ],
    ),
    ("pxe", &["kernel", "initrd", "append"]),
];

/// Reads and fully validates an inventory file.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Inventory, KickstartError> {
    let src = std::fs::read_to_string(path).map_err(|source| KickstartError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&src, path, opts)
}

/// Validates inventory text read from `path` (the path only names positions).
pub fn parse(src: &str, path: &Path, opts: &LoadOptions) -> Result<Inventory, KickstartError> {
    let root = yaml::parse(src, path)?;
    let mut d = Diags::default();
    let inv = build(&root, path, opts, &mut d);
    if d.0.is_empty() {
        super::check::cross_check(&inv, &mut d.0);
    }
    if d.0.is_empty() {
        Ok(inv)
    } else {
        Err(KickstartError::Invalid(d.0))
    }
}

#[derive(Default)]
pub(crate) struct Diags(pub Vec<Diagnostic>);

impl Diags {
    pub fn push(&mut self, loc: &Loc, code: &'static str, message: impl Into<String>) {
        self.0.push(Diagnostic {
            loc: loc.clone(),
            code,
            message: message.into(),
        });
    }
}

/// One layer flattened to `key` / `map.key` paths, so merging is a plain key override.
#[derive(Default, Clone)]
struct Layer {
    scalars: Vec<(String, Node)>,
    lists: Vec<(String, Vec<Node>)>,
}

fn build(root: &Node, path: &Path, opts: &LoadOptions, d: &mut Diags) -> Inventory {
    let mut inv = Inventory {
        path: path.to_path_buf(),
        server: None,
        hosts: Vec::new(),
    };
    let Some(top) = root.as_map() else {
        d.push(
            &root.loc,
            "type",
            format!(
                "the inventory must be a mapping with `defaults`, `roles` and `hosts`, not a {}",
                root.type_name()
            ),
        );
        return inv;
    };
    for (k, v) in top {
        if !TOP_KEYS.contains(&k.name.as_str()) {
            unknown_key(d, &k.loc, &k.name, TOP_KEYS, " at the top level");
        } else if k.name == "api-version" && v.as_str() != Some(API_VERSION) {
            d.push(
                &v.loc,
                "api-version",
                format!("api-version must be `{API_VERSION}`"),
            );
        }
    }
    inv.server = match &opts.server_url {
        Some(s) => Some(s.trim_end_matches('/').to_string()),
        None => root
            .get("server")
            .and_then(|n| want_url(n, d))
            .map(|s| s.trim_end_matches('/').to_string()),
    };
    let defaults = match root.get("defaults") {
        Some(n) => flatten(n, false, d),
        None => Layer::default(),
    };
    let roles = roles(root, d);
    for item in host_items(root, d) {
        let (mut layers, host_roles) = role_layers(item, &defaults, &roles, d);
        layers.push(flatten(item, true, d));
        if let Some(host) = resolve(item, &layers, host_roles, inv.server.as_deref(), d) {
            inv.hosts.push(host);
        }
    }
    inv
}

fn roles(root: &Node, d: &mut Diags) -> Vec<(String, Layer)> {
    let Some(r) = root.get("roles") else {
        return Vec::new();
    };
    let Some(m) = r.as_map() else {
        d.push(&r.loc, "type", "`roles` must map role names to settings");
        return Vec::new();
    };
    m.iter()
        .map(|(k, v)| (k.name.clone(), flatten(v, false, d)))
        .collect()
}

fn host_items<'a>(root: &'a Node, d: &mut Diags) -> &'a [Node] {
    let Some(h) = root.get("hosts") else {
        d.push(&root.loc, "missing", "no `hosts:` list in the inventory");
        return &[];
    };
    h.as_seq().unwrap_or_else(|| {
        d.push(&h.loc, "type", "`hosts` must be a list of host mappings");
        &[]
    })
}

/// The defaults and the layers of the roles a host names, in its order, with those role names.
fn role_layers(
    item: &Node,
    defaults: &Layer,
    roles: &[(String, Layer)],
    d: &mut Diags,
) -> (Vec<Layer>, Vec<String>) {
    let mut layers = vec![defaults.clone()];
    let mut names = Vec::new();
    for rn in host_role_nodes(item, d) {
        let Some(name) = rn.as_str() else {
            d.push(&rn.loc, "type", "a role name must be a string");
            continue;
        };
        match roles.iter().find(|(n, _)| n == name) {
            Some((_, l)) => {
                layers.push(l.clone());
                names.push(name.to_string());
            }
            None => d.push(&rn.loc, "unknown-role", unknown_role(name, roles)),
        }
    }
    (layers, names)
}

fn unknown_role(name: &str, roles: &[(String, Layer)]) -> String {
    let defined: Vec<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
    match suggest(name, &defined) {
        Some(s) => format!("unknown role `{name}`{}", did_you_mean(Some(s))),
        None if defined.is_empty() => format!("unknown role `{name}`; roles defined: none"),
        None => format!(
            "unknown role `{name}`; roles defined: {}",
            defined.join(", ")
        ),
    }
}

fn host_role_nodes<'a>(item: &'a Node, d: &mut Diags) -> Vec<&'a Node> {
    match (item.get("role"), item.get("roles")) {
        (Some(r), None) => vec![r],
        (None, Some(rs)) => match rs.as_seq() {
            Some(s) => s.iter().collect(),
            None => vec![rs],
        },
        (Some(r), Some(_)) => {
            d.push(
                &r.loc,
                "conflict",
                "give either `role` or `roles`, not both",
            );
            vec![]
        }
        (None, None) => vec![],
    }
}

fn flatten(node: &Node, is_host: bool, d: &mut Diags) -> Layer {
    let mut layer = Layer::default();
    let Some(map) = node.as_map() else {
        d.push(
            &node.loc,
            "type",
            format!(
                "expected a mapping of host settings, found a {}",
                node.type_name()
            ),
        );
        return layer;
    };
    let allowed: Vec<&str> = if is_host {
        SPEC_KEYS.iter().chain(HOST_ONLY_KEYS).copied().collect()
    } else {
        SPEC_KEYS.to_vec()
    };
    for (k, v) in map {
        let key = k.name.as_str();
        if !allowed.contains(&key) {
            let hint = if HOST_ONLY_KEYS.contains(&key) {
                " (it belongs to a host entry, not to defaults or a role)"
            } else {
                ""
            };
            unknown_key(d, &k.loc, key, &allowed, hint);
            continue;
        }
        if HOST_ONLY_KEYS.contains(&key) {
            continue; // read directly from the host node
        }
        if let Some((_, sub)) = NESTED.iter().find(|(n, _)| *n == key) {
            let Some(m) = v.as_map() else {
                d.push(&v.loc, "type", format!("`{key}` must be a mapping"));
                continue;
            };
            for (sk, sv) in m {
                if sub.contains(&sk.name.as_str()) {
                    layer
                        .scalars
                        .push((format!("{key}.{}", sk.name), sv.clone()));
                } else {
                    unknown_key(d, &sk.loc, &sk.name, sub, &format!(" in `{key}`"));
                }
            }
        } else if LIST_KEYS.contains(&key) {
            match &v.value {
                Value::Seq(items) => layer.lists.push((key.to_string(), items.clone())),
                Value::Null => layer.lists.push((key.to_string(), vec![])),
                _ => d.push(&v.loc, "type", format!("`{key}` must be a list")),
            }
        } else {
            layer.scalars.push((key.to_string(), v.clone()));
        }
    }
    layer
}

fn unknown_key(d: &mut Diags, loc: &Loc, key: &str, allowed: &[&str], context: &str) {
    let msg = match suggest(key, allowed) {
        Some(s) => format!("unknown key `{key}`{context}{}", did_you_mean(Some(s))),
        None => format!(
            "unknown key `{key}`{context}; known keys: {}",
            allowed.join(", ")
        ),
    };
    d.push(loc, "unknown-key", msg);
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    cairn_common::suggest::closest(word, candidates.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt_hashes() {
        assert!(check_crypt_hash("$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/").is_ok());
        assert!(check_crypt_hash(
            "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"
        )
        .is_ok());
        assert!(check_crypt_hash("hunter2")
            .unwrap_err()
            .contains("plaintext"));
        assert!(check_crypt_hash("$1$abc$def").unwrap_err().contains("MD5"));
        assert!(check_crypt_hash("$6$").is_err());
        assert!(check_crypt_hash("$9$aaaa$bbbb")
            .unwrap_err()
            .contains("unknown crypt"));
    }

    /// One host with everything required, plus `network`.
    fn with_network(network: &str) -> String {
        format!(
            "hosts:\n  - hostname: a\n    mac: \"52:54:00:00:00:01\"\n    disk: {{ device: sda }}\n    \
             ostree: {{ osname: x, ref: r, url: \"http://x/\" }}\n    network: {network}\n"
        )
    }

    fn load_str(src: &str) -> Result<Inventory, Vec<String>> {
        parse(src, Path::new("inv.yaml"), &LoadOptions::default())
            .map_err(|e| e.diagnostics().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn bootproto_is_typed_where_the_inventory_is_read() {
        let net = |n: &str| load_str(&with_network(n)).unwrap().hosts[0].network.clone();
        assert_eq!(net("{ mtu: 1500 }").bootproto, Bootproto::Dhcp);
        let s = net("{ ip: 192.0.2.10/24 }");
        assert_eq!(s.bootproto, Bootproto::Static);
        assert_eq!(s.netmask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        let s = net("{ bootproto: static, ip: 192.0.2.10, netmask: 255.255.255.0 }");
        assert_eq!((s.bootproto, s.prefix), (Bootproto::Static, Some(24)));
        assert_eq!(
            load_str(&with_network("{ bootproto: statc }")).unwrap_err(),
            ["inv.yaml:6:27: bootproto must be dhcp or static, not `statc` (did you mean `static`?)"]
        );
        assert_eq!(
            load_str(&with_network("{ bootproto: dhcp, ip: 192.0.2.10/24 }")).unwrap_err(),
            ["inv.yaml:6:27: bootproto is `dhcp` but `network.ip` is set; drop one"]
        );
    }

    #[test]
    fn static_addresses_are_checked_against_gateway_and_subnet() {
        let errs = |n: &str| load_str(&with_network(n)).unwrap_err();
        assert_eq!(
            errs("{ ip: 192.0.2.0/24, gateway: 198.51.100.1 }"),
            [
                "inv.yaml:6:20: 192.0.2.0 is the network or broadcast address of 192.0.2.0/24",
                "inv.yaml:6:43: gateway 198.51.100.1 is outside the host's subnet 192.0.2.0/24 (from ip 192.0.2.0/24)",
            ]
        );
        assert_eq!(
            errs("{ ip: 192.0.2.300, netmask: 255.255.0.999 }"),
            [
                "inv.yaml:6:42: netmask must be an IPv4 address (e.g. 192.0.2.1)",
                "inv.yaml:6:20: `192.0.2.300` is not an IPv4 address",
            ]
        );
        assert_eq!(
            errs("{ ip: 192.0.2.5, netmask: 255.0.255.0 }"),
            ["inv.yaml:6:40: netmask 255.0.255.0 has non-contiguous bits"]
        );
        assert_eq!(
            errs("{ ip: 192.0.2.5/24, subnet: 192.0.2.0/25, vlan: 0 }"),
            [
                "inv.yaml:6:20: 192.0.2.5/24 is outside the declared subnet 192.0.2.0/25 (declared at inv.yaml:6:42)",
                "inv.yaml:6:62: vlan must be an 802.1Q id between 1 and 4094",
            ]
        );
        assert_eq!(
            errs("{ gateway: 192.0.2.1 }"),
            ["inv.yaml:6:25: `network.gateway` is set but the host uses DHCP; add `network.ip` or drop it"]
        );
    }

    #[test]
    fn closed_sets_suggest_the_nearest_name() {
        let src = with_network("{ bond: { name: bond0, mode: active-backp, slaves: [eno1] } }")
            .replace("device: sda", "device: sda, fstype: ext5");
        assert_eq!(
            load_str(&src).unwrap_err(),
            [
                "inv.yaml:6:43: bond mode must be balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb or balance-alb, not `active-backp` (did you mean `active-backup`?)",
                "inv.yaml:4:34: fstype must be xfs, ext4, ext3 or btrfs, not `ext5` (did you mean `ext4`?)",
            ]
        );
    }

    #[test]
    fn a_size_too_large_for_64_bits_is_refused_not_wrapped() {
        let src = with_network("{}").replace(
            "device: sda",
            "device: sda, var-size: 2000000000000000000GiB",
        );
        let errs = load_str(&src).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("must be a size"), "{errs:?}");
        let src = with_network("{}").replace("device: sda", "device: sda, var-size: 16384TiB");
        assert_eq!(
            load_str(&src).unwrap().hosts[0].disk.var_size,
            Some(16384 << 20)
        );
    }

    #[test]
    fn did_you_mean() {
        assert_eq!(suggest("hostnme", &["hostname", "macs"]), Some("hostname"));
        assert_eq!(
            suggest("kubernetes-nod", &["kubernetes-node", "database"]),
            Some("kubernetes-node")
        );
        assert_eq!(suggest("zzz", &["hostname"]), None);
    }
}
