//! The inventory: defaults, roles and hosts, merged into one fully resolved [`Host`] per machine.
//!
//! Merge order is defaults, then each role the host names (in the order it names them), then the
//! host itself. Scalars and the keys of the nested maps (`disk`, `ostree`, `network`, `pxe`)
//! override key by key; the list fields `ssh-keys`, `kernel-args` and `sysctl-presets` accumulate
//! (duplicates dropped, first occurrence kept), so a default admin key and a role's presets are not
//! lost when a host adds one of its own. `network.bond` is replaced as a whole.
//!
//! Loading never stops at the first problem: every diagnostic is collected with its position.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{Diagnostic, KickstartError};
use super::network::{netmask_to_prefix, parse_cidr, Ipv4Net, Mac};
use crate::yaml::{self, Loc, Node, Value};

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
    /// `dhcp` or `static`.
    pub bootproto: String,
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
    pub mode: String,
    pub slaves: Vec<String>,
    pub options: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Disk {
    pub device: String,
    pub fstype: String,
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
            unknown_key(d, &k.loc, &k.name, TOP_KEYS, "at the top level");
        } else if k.name == "api-version" && v.as_str() != Some("cairn/v1") {
            d.push(&v.loc, "api-version", "api-version must be `cairn/v1`");
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
    let mut roles: Vec<(String, Layer)> = Vec::new();
    if let Some(r) = root.get("roles") {
        match r.as_map() {
            Some(m) => {
                for (k, v) in m {
                    roles.push((k.name.clone(), flatten(v, false, d)));
                }
            }
            None => d.push(&r.loc, "type", "`roles` must map role names to settings"),
        }
    }
    let role_names: Vec<&str> = roles.iter().map(|(n, _)| n.as_str()).collect();
    match root.get("hosts") {
        None => d.push(&root.loc, "missing", "no `hosts:` list in the inventory"),
        Some(h) => match h.as_seq() {
            None => d.push(&h.loc, "type", "`hosts` must be a list of host mappings"),
            Some(items) => {
                for item in items {
                    let mut layers = vec![defaults.clone()];
                    let mut host_roles = Vec::new();
                    for rn in host_role_nodes(item, d) {
                        let Some(name) = rn.as_str() else {
                            d.push(&rn.loc, "type", "a role name must be a string");
                            continue;
                        };
                        match roles.iter().find(|(n, _)| n == name) {
                            Some((_, l)) => {
                                layers.push(l.clone());
                                host_roles.push(name.to_string());
                            }
                            None => d.push(
                                &rn.loc,
                                "unknown-role",
                                format!(
                                    "unknown role `{name}`{}",
                                    suggest(name, &role_names)
                                        .map(|s| format!("; did you mean `{s}`?"))
                                        .unwrap_or_else(|| format!(
                                            "; roles defined: {}",
                                            if role_names.is_empty() {
                                                "none".to_string()
                                            } else {
                                                role_names.join(", ")
                                            }
                                        ))
                                ),
                            ),
                        }
                    }
                    layers.push(flatten(item, true, d));
                    if let Some(host) = resolve(item, &layers, host_roles, inv.server.as_deref(), d)
                    {
                        inv.hosts.push(host);
                    }
                }
            }
        },
    }
    inv
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
        Some(s) => format!("unknown key `{key}`{context}; did you mean `{s}`?"),
        None => format!(
            "unknown key `{key}`{context}; known keys: {}",
            allowed.join(", ")
        ),
    };
    d.push(loc, "unknown-key", msg);
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(dist, c)| *dist <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The merged view of a host's layers: last scalar wins, lists concatenate.
struct Merged<'a> {
    scalars: HashMap<&'a str, &'a Node>,
    lists: HashMap<&'a str, Vec<&'a Node>>,
}

impl<'a> Merged<'a> {
    fn new(layers: &'a [Layer]) -> Merged<'a> {
        let mut m = Merged {
            scalars: HashMap::new(),
            lists: HashMap::new(),
        };
        for l in layers {
            for (k, v) in &l.scalars {
                m.scalars.insert(k.as_str(), v);
            }
            for (k, items) in &l.lists {
                m.lists.entry(k.as_str()).or_default().extend(items.iter());
            }
        }
        m
    }

    fn get(&self, k: &str) -> Option<&'a Node> {
        self.scalars.get(k).copied()
    }

    fn str(&self, k: &str, d: &mut Diags) -> Option<(&'a str, &'a Loc)> {
        let n = self.get(k)?;
        match &n.value {
            Value::String(s) if !s.trim().is_empty() => Some((s.as_str(), &n.loc)),
            Value::String(_) => {
                d.push(&n.loc, "empty", format!("`{k}` is empty"));
                None
            }
            _ => {
                d.push(
                    &n.loc,
                    "type",
                    format!("`{k}` must be a string, found a {}", n.type_name()),
                );
                None
            }
        }
    }

    /// List items as strings, duplicates dropped (first kept).
    fn strings(&self, k: &str, d: &mut Diags) -> Vec<(&'a str, &'a Loc)> {
        let mut out: Vec<(&str, &Loc)> = Vec::new();
        for n in self.lists.get(k).map(Vec::as_slice).unwrap_or(&[]) {
            match n.as_str() {
                Some(s) if !out.iter().any(|(o, _)| *o == s) => out.push((s, &n.loc)),
                Some(_) => {}
                None => d.push(&n.loc, "type", format!("items of `{k}` must be strings")),
            }
        }
        out
    }
}

fn resolve(
    item: &Node,
    layers: &[Layer],
    roles: Vec<String>,
    server: Option<&str>,
    d: &mut Diags,
) -> Option<Host> {
    item.as_map()?;
    let before = d.0.len();
    let m = Merged::new(layers);

    // Identity.
    let (hostname, fqdn, hostname_loc) = match item.get("hostname") {
        None => {
            d.push(&item.loc, "missing", "host has no `hostname`");
            (String::new(), String::new(), item.loc.clone())
        }
        Some(n) => match n.as_str() {
            Some(h) if valid_hostname(h) => {
                let domain = m.str("domain", d).map(|(s, _)| s);
                let fqdn = match (h.contains('.'), domain) {
                    (false, Some(dom)) => format!("{h}.{}", dom.trim_matches('.')),
                    _ => h.to_string(),
                };
                let short = h.split('.').next().unwrap_or(h).to_string();
                (short, fqdn.to_ascii_lowercase(), n.loc.clone())
            }
            _ => {
                d.push(
                    &n.loc,
                    "hostname",
                    "hostname must be dot-separated labels of letters, digits and inner `-` \
                     (RFC 1123), each at most 63 characters",
                );
                (String::new(), String::new(), n.loc.clone())
            }
        },
    };
    let mut macs = Vec::new();
    let mut mac_locs = Vec::new();
    let mac_nodes: Vec<&Node> = match (item.get("mac"), item.get("macs")) {
        (Some(n), None) | (None, Some(n)) => match &n.value {
            Value::Seq(s) => s.iter().collect(),
            _ => vec![n],
        },
        (Some(n), Some(_)) => {
            d.push(&n.loc, "conflict", "give either `mac` or `macs`, not both");
            vec![]
        }
        (None, None) => {
            d.push(
                &item.loc,
                "missing",
                format!("host `{hostname}` has no `mac` (PXE clients are matched by MAC)"),
            );
            vec![]
        }
    };
    for n in mac_nodes {
        match n.as_str().map(str::parse::<Mac>) {
            Some(Ok(mac)) => {
                macs.push(mac);
                mac_locs.push(n.loc.clone());
            }
            Some(Err(e)) => d.push(&n.loc, "bad-mac", e.to_string()),
            None => d.push(&n.loc, "bad-mac", "a MAC address must be a quoted string"),
        }
    }

    let (network, ip_loc) = resolve_network(&m, item, d);
    let disk = resolve_disk(&m, item, d);
    let ostree = resolve_ostree(&m, item, server, d);

    let kernel_args = m
        .strings("kernel-args", d)
        .into_iter()
        .filter_map(|(a, loc)| {
            if a.contains(['"', '\n']) || a.trim().is_empty() || a.contains(char::is_whitespace) {
                d.push(
                    loc,
                    "kernel-arg",
                    format!("kernel argument `{a}` must be one word without quotes; give one list item per argument"),
                );
                None
            } else {
                Some(a.to_string())
            }
        })
        .collect();
    let builtin: Vec<&str> = crate::sysctl::builtin().iter().map(|p| p.name).collect();
    let sysctl_presets = m
        .strings("sysctl-presets", d)
        .into_iter()
        .filter_map(|(p, loc)| match crate::sysctl::find(p) {
            Some(_) => Some(p.to_string()),
            None => {
                let hint = suggest(p, &builtin)
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("known presets: {}", builtin.join(", ")));
                d.push(
                    loc,
                    "unknown-preset",
                    format!("unknown sysctl preset `{p}`; {hint}"),
                );
                None
            }
        })
        .collect();
    let ssh_keys = m
        .strings("ssh-keys", d)
        .into_iter()
        .filter_map(|(k, loc)| match check_ssh_key(k) {
            Ok(()) => Some(k.trim().to_string()),
            Err(e) => {
                d.push(loc, "ssh-key", e);
                None
            }
        })
        .collect();
    let root_password = m
        .str("root-password", d)
        .and_then(|(p, loc)| match check_crypt_hash(p) {
            Ok(()) => Some(p.to_string()),
            Err(e) => {
                d.push(loc, "root-password", e);
                None
            }
        });
    let timezone = match m.str("timezone", d) {
        None => "UTC".to_string(),
        Some((tz, loc)) => {
            if !tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
                || tz.starts_with('/')
                || tz.contains("..")
            {
                d.push(
                    loc,
                    "timezone",
                    format!("`{tz}` is not a time zone name (e.g. Europe/Paris, UTC)"),
                );
            }
            tz.to_string()
        }
    };
    let pxe = Pxe {
        kernel: m
            .str("pxe.kernel", d)
            .map_or("images/pxeboot/vmlinuz", |(s, _)| s)
            .to_string(),
        initrd: m
            .str("pxe.initrd", d)
            .map_or("images/pxeboot/initrd.img", |(s, _)| s)
            .to_string(),
        append: words(&m, "pxe.append", d),
    };

    if d.0.len() > before {
        return None;
    }
    Some(Host {
        hostname,
        fqdn,
        macs,
        roles,
        network,
        disk,
        ostree,
        kernel_args,
        sysctl_presets,
        ssh_keys,
        root_password,
        timezone,
        pxe,
        locs: HostLocs {
            host: item.loc.clone(),
            hostname: hostname_loc,
            macs: mac_locs,
            ip: ip_loc,
        },
    })
}

/// A string of space-separated words, or a list of words.
fn words(m: &Merged, k: &str, d: &mut Diags) -> Vec<String> {
    match m.get(k) {
        None => vec![],
        Some(n) => match &n.value {
            Value::String(s) => s.split_whitespace().map(String::from).collect(),
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(String::from))
                .collect(),
            _ => {
                d.push(&n.loc, "type", format!("`{k}` must be a string or a list"));
                vec![]
            }
        },
    }
}

fn valid_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn want_url(n: &Node, d: &mut Diags) -> Option<String> {
    match n.as_str() {
        Some(s)
            if (s.starts_with("http://") || s.starts_with("https://"))
                && !s.contains(char::is_whitespace)
                && !s.contains('"') =>
        {
            Some(s.to_string())
        }
        _ => {
            d.push(&n.loc, "url", "expected an http:// or https:// URL");
            None
        }
    }
}

fn want_ipv4(n: &Node, what: &str, d: &mut Diags) -> Option<Ipv4Addr> {
    match n.as_str().map(str::parse::<Ipv4Addr>) {
        Some(Ok(ip)) => Some(ip),
        _ => {
            d.push(
                &n.loc,
                "bad-ip",
                format!("{what} must be an IPv4 address (e.g. 192.0.2.1)"),
            );
            None
        }
    }
}

fn resolve_network(m: &Merged, item: &Node, d: &mut Diags) -> (Network, Option<Loc>) {
    let mut net = Network {
        bootproto: "dhcp".into(),
        ip: None,
        prefix: None,
        netmask: None,
        gateway: None,
        dns: vec![],
        vlan: None,
        mtu: None,
        bond: None,
    };
    let ip_node = m.get("network.ip");
    let explicit = m.str("network.bootproto", d);
    net.bootproto = match (explicit, ip_node) {
        (Some(("static", _)), _) | (None, Some(_)) => "static".into(),
        (Some(("dhcp", _)), None) | (None, None) => "dhcp".into(),
        (Some(("dhcp", loc)), Some(_)) => {
            d.push(
                loc,
                "bootproto",
                "bootproto is `dhcp` but `network.ip` is set; drop one",
            );
            "dhcp".into()
        }
        (Some((other, loc)), _) => {
            d.push(
                loc,
                "bootproto",
                format!("bootproto `{other}` is not `dhcp` or `static`"),
            );
            "dhcp".into()
        }
    };
    let mut ip_loc = None;
    if net.bootproto == "static" {
        match ip_node {
            None => d.push(
                &item.loc,
                "missing",
                "static network needs `network.ip` (e.g. 192.0.2.10/24)",
            ),
            Some(n) => {
                ip_loc = Some(n.loc.clone());
                let mask = m.get("network.netmask");
                let parsed = match (n.as_str(), mask) {
                    (Some(s), None) if s.contains('/') => parse_cidr(s).map_err(|e| (n, e)),
                    (Some(s), Some(mn)) if !s.contains('/') => {
                        match (s.parse::<Ipv4Addr>(), want_ipv4(mn, "netmask", d)) {
                            (Ok(a), Some(mask)) => match netmask_to_prefix(mask) {
                                Some(p) => Ok(Ipv4Net { addr: a, prefix: p }),
                                None => {
                                    Err((mn, format!("netmask {mask} has non-contiguous bits")))
                                }
                            },
                            (Err(_), _) => Err((n, format!("`{s}` is not an IPv4 address"))),
                            (_, None) => Err((mn, String::new())),
                        }
                    }
                    (Some(_), Some(mn)) => {
                        Err((mn, "give either ip/prefix or ip + netmask, not both".into()))
                    }
                    (Some(s), None) => Err((
                        n,
                        format!("`{s}` needs a prefix (e.g. {s}/24) or a `netmask`"),
                    )),
                    (None, _) => {
                        Err((n, "`network.ip` must be a string like 192.0.2.10/24".into()))
                    }
                };
                match parsed {
                    Ok(net4) => {
                        if net4.is_reserved_addr() {
                            d.push(
                                &n.loc,
                                "ip-reserved",
                                format!(
                                    "{} is the network or broadcast address of {}/{}",
                                    net4.addr,
                                    net4.network(),
                                    net4.prefix
                                ),
                            );
                        }
                        net.ip = Some(net4.addr);
                        net.prefix = Some(net4.prefix);
                        net.netmask = Some(net4.netmask());
                        if let Some(gn) = m.get("network.gateway") {
                            if let Some(gw) = want_ipv4(gn, "gateway", d) {
                                if !net4.contains(gw) {
                                    d.push(&gn.loc, "gateway-outside-subnet", format!(
                                        "gateway {gw} is outside the host's subnet {}/{} (from ip {net4})",
                                        net4.network(), net4.prefix
                                    ));
                                } else if gw == net4.addr {
                                    d.push(
                                        &gn.loc,
                                        "gateway-is-host",
                                        format!("gateway {gw} is the host's own address"),
                                    );
                                }
                                net.gateway = Some(gw);
                            }
                        }
                        if let Some(sn) = m.get("network.subnet") {
                            match sn.as_str().map(parse_cidr) {
                                Some(Ok(sub)) => {
                                    if !sub.contains(net4.addr) || sub.prefix > net4.prefix {
                                        d.push(&n.loc, "ip-outside-subnet", format!(
                                            "{net4} is outside the declared subnet {}/{} (declared at {})",
                                            sub.network(), sub.prefix, sn.loc
                                        ));
                                    }
                                }
                                Some(Err(e)) => d.push(&sn.loc, "bad-subnet", e),
                                None => d.push(
                                    &sn.loc,
                                    "bad-subnet",
                                    "`subnet` must be a string like 192.0.2.0/24",
                                ),
                            }
                        }
                    }
                    Err((at, msg)) => {
                        if !msg.is_empty() {
                            d.push(&at.loc, "bad-ip", msg);
                        }
                    }
                }
            }
        }
    } else {
        for k in ["network.gateway", "network.netmask"] {
            if let Some(n) = m.get(k) {
                d.push(
                    &n.loc,
                    "dhcp-static-field",
                    format!("`{k}` is set but the host uses DHCP; add `network.ip` or drop it"),
                );
            }
        }
    }
    if let Some(n) = m.get("network.dns") {
        let items: Vec<&Node> = match &n.value {
            Value::Seq(s) => s.iter().collect(),
            _ => vec![n],
        };
        for i in items {
            match i.as_str().map(str::parse::<IpAddr>) {
                Some(Ok(ip)) => net.dns.push(ip),
                _ => d.push(&i.loc, "bad-ip", "DNS servers must be IP addresses"),
            }
        }
    }
    if let Some(n) = m.get("network.vlan") {
        match n.value {
            Value::Int(v) if (1..=4094).contains(&v) => net.vlan = Some(v as u16),
            _ => d.push(
                &n.loc,
                "vlan",
                "vlan must be an 802.1Q id between 1 and 4094",
            ),
        }
    }
    if let Some(n) = m.get("network.mtu") {
        match n.value {
            Value::Int(v) if (576..=65535).contains(&v) => net.mtu = Some(v as u32),
            _ => d.push(
                &n.loc,
                "mtu",
                "mtu must be an integer between 576 and 65535",
            ),
        }
    }
    if let Some(n) = m.get("network.bond") {
        net.bond = resolve_bond(n, d);
    }
    (net, ip_loc)
}

const BOND_MODES: &[&str] = &[
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];

fn resolve_bond(n: &Node, d: &mut Diags) -> Option<Bond> {
    let Some(map) = n.as_map() else {
        d.push(
            &n.loc,
            "type",
            "`network.bond` must be a mapping with name, mode and slaves",
        );
        return None;
    };
    let keys = ["name", "mode", "slaves", "options"];
    for (k, _) in map {
        if !keys.contains(&k.name.as_str()) {
            unknown_key(d, &k.loc, &k.name, &keys, " in `network.bond`");
        }
    }
    let ifname = |s: &str| {
        !s.is_empty()
            && s.len() <= 15
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let name = match n.get("name").and_then(Node::as_str) {
        Some(s) if ifname(s) => s.to_string(),
        _ => {
            d.push(
                &n.loc,
                "bond",
                "bond needs a `name` (an interface name like bond0)",
            );
            return None;
        }
    };
    let mode = n
        .get("mode")
        .and_then(Node::as_str)
        .unwrap_or("active-backup");
    if !BOND_MODES.contains(&mode) {
        d.push(
            n.get("mode").map_or(&n.loc, |m| &m.loc),
            "bond",
            format!("bond mode `{mode}` is not one of {}", BOND_MODES.join(", ")),
        );
    }
    let mut slaves = Vec::new();
    match n.get("slaves").and_then(Node::as_seq) {
        Some(items) if !items.is_empty() => {
            for i in items {
                match i.as_str() {
                    Some(s) if ifname(s) => slaves.push(s.to_string()),
                    _ => d.push(&i.loc, "bond", "bond slaves are interface names (e.g. ens1f0); anaconda does not take MACs here"),
                }
            }
        }
        _ => d.push(
            &n.loc,
            "bond",
            "bond needs a non-empty `slaves` list of interface names",
        ),
    }
    let options = n.get("options").and_then(Node::as_str).map(String::from);
    if let Some(o) = &options {
        if o.contains(char::is_whitespace) || o.contains('"') {
            d.push(
                &n.get("options").unwrap().loc,
                "bond",
                "bond options are comma-separated key=value, without spaces",
            );
        }
    }
    Some(Bond {
        name,
        mode: mode.to_string(),
        slaves,
        options,
    })
}

/// Sizes in MiB: a bare integer is MiB; suffixes M/MiB, G/GiB, T/TiB; `grow` when allowed.
fn size(m: &Merged, k: &str, default: Option<u64>, grow_ok: bool, d: &mut Diags) -> Option<u64> {
    let Some(n) = m.get(k) else { return default };
    let bad = |d: &mut Diags| {
        d.push(
            &n.loc,
            "size",
            format!(
                "`{k}` must be a size like 1024 (MiB), 512MiB, 20GiB{}",
                if grow_ok { " or `grow`" } else { "" }
            ),
        );
        default
    };
    match &n.value {
        Value::Int(i) if *i > 0 => Some(*i as u64),
        Value::String(s) if s == "grow" && grow_ok => None,
        Value::String(s) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let mult = match unit.trim() {
                "" | "M" | "MiB" | "MB" => 1,
                "G" | "GiB" | "GB" => 1024,
                "T" | "TiB" | "TB" => 1024 * 1024,
                _ => return bad(d),
            };
            match num.parse::<u64>() {
                Ok(v) if v > 0 => Some(v * mult),
                _ => bad(d),
            }
        }
        _ => bad(d),
    }
}

fn resolve_disk(m: &Merged, item: &Node, d: &mut Diags) -> Disk {
    let device = match m.str("disk.device", d) {
        Some((s, loc)) => {
            if s.contains(|c: char| c.is_whitespace() || c == '"' || c == ',') {
                d.push(
                    loc,
                    "disk",
                    format!("disk device `{s}` has spaces, quotes or commas"),
                );
            }
            s.to_string()
        }
        None => {
            if m.get("disk.device").is_none() {
                d.push(
                    &item.loc,
                    "missing",
                    "no `disk.device` for this host (set it in defaults, a role or the host)",
                );
            }
            String::new()
        }
    };
    let name_ok = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c))
    };
    let fstype = m
        .str("disk.fstype", d)
        .map_or("xfs", |(s, _)| s)
        .to_string();
    if !["xfs", "ext4", "ext3", "btrfs"].contains(&fstype.as_str()) {
        let loc = m.get("disk.fstype").map_or(&item.loc, |n| &n.loc);
        d.push(
            loc,
            "disk",
            format!("fstype `{fstype}` is not one of xfs, ext4, ext3, btrfs"),
        );
    }
    let vg = m.str("disk.vg", d).map_or("cairn", |(s, _)| s).to_string();
    if !name_ok(&vg) {
        d.push(
            m.get("disk.vg").map_or(&item.loc, |n| &n.loc),
            "disk",
            format!("volume group name `{vg}` has characters LVM refuses"),
        );
    }
    let boot_size = size(m, "disk.boot-size", Some(1024), false, d).unwrap_or(1024);
    let root_size = size(m, "disk.root-size", Some(10240), true, d);
    let var_size = size(m, "disk.var-size", None, true, d);
    Disk {
        device,
        fstype,
        vg,
        boot_size,
        root_size,
        var_size,
    }
}

fn resolve_ostree(m: &Merged, item: &Node, server: Option<&str>, d: &mut Diags) -> Ostree {
    let req = |k: &str, what: &str, d: &mut Diags| match m.str(k, d) {
        Some((s, loc)) => {
            if s.contains(|c: char| c.is_whitespace() || c == '"') {
                d.push(
                    loc,
                    "ostree",
                    format!("`{k}` must not contain spaces or quotes"),
                );
            }
            Some(s.to_string())
        }
        None => {
            if m.get(k).is_none() {
                d.push(
                    &item.loc,
                    "missing",
                    format!("no `{k}` ({what}) for this host"),
                );
            }
            None
        }
    };
    let osname = req("ostree.osname", "the stateroot name, e.g. fedora-iot", d).unwrap_or_default();
    let refname = req(
        "ostree.ref",
        "the branch to install, e.g. cairn/x86_64/base",
        d,
    )
    .unwrap_or_default();
    let remote = m
        .str("ostree.remote", d)
        .map_or(osname.clone(), |(s, _)| s.to_string());
    let url = match (m.get("ostree.url"), server) {
        (Some(n), _) => want_url(n, d).unwrap_or_default(),
        (None, Some(s)) => format!("{s}/repo/"),
        (None, None) => {
            d.push(
                &item.loc,
                "missing",
                "no `ostree.url` for this host, and no `server:` to default it to <server>/repo/",
            );
            String::new()
        }
    };
    let upgrade_url = m
        .get("ostree.upgrade-url")
        .and_then(|n| want_url(n, d))
        .unwrap_or_else(|| url.clone());
    let gpg = match m.get("ostree.gpg") {
        None => true,
        Some(n) => match n.value {
            Value::Bool(b) => b,
            _ => {
                d.push(&n.loc, "type", "`ostree.gpg` must be true or false");
                true
            }
        },
    };
    Ostree {
        osname,
        remote,
        url,
        upgrade_url,
        refname,
        gpg,
    }
}

/// Accepts only crypt(3) hashes of schemes worth using; anything else is taken as plaintext.
pub fn check_crypt_hash(p: &str) -> Result<(), String> {
    const SCHEMES: &[&str] = &["5", "6", "y", "gy", "7", "2a", "2b", "2y"];
    let plain = "root-password looks like plaintext; put a crypt hash here, e.g. from \
                 `openssl passwd -6` or `mkpasswd -m yescrypt` (it goes to `rootpw --iscrypted`)";
    let Some(rest) = p.strip_prefix('$') else {
        return Err(plain.into());
    };
    let (id, body) = rest.split_once('$').ok_or(plain)?;
    if id == "1" {
        return Err("root-password is an MD5-crypt ($1$) hash, which is broken; use `openssl passwd -6` or yescrypt".into());
    }
    if !SCHEMES.contains(&id) {
        return Err(format!(
            "root-password has unknown crypt scheme `${id}$`; use $6$ (SHA-512) or $y$ (yescrypt)"
        ));
    }
    let alphabet = |c: char| c.is_ascii_alphanumeric() || "./=,$".contains(c);
    let hash = body.rsplit('$').next().unwrap_or("");
    if !body.contains('$') && !id.starts_with('2') || hash.len() < 22 || !body.chars().all(alphabet)
    {
        return Err(format!(
            "root-password is not a complete `${id}$` crypt hash (salt and hash separated by `$`)"
        ));
    }
    Ok(())
}

fn check_ssh_key(k: &str) -> Result<(), String> {
    const TYPES: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    let mut parts = k.split_whitespace();
    let ty = parts.next().unwrap_or("");
    let body = parts.next().unwrap_or("");
    if k.contains(['"', '\n']) {
        return Err("SSH key must be a single line without double quotes".into());
    }
    if !TYPES.contains(&ty) {
        return Err(format!(
            "SSH key type `{ty}` is not one of {}",
            TYPES.join(", ")
        ));
    }
    if body.len() < 16
        || !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
    {
        return Err("SSH key has no base64 key after its type".into());
    }
    Ok(())
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
