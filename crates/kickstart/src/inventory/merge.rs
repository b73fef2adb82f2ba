//! Merging a host's layers (defaults, roles, host) and resolving the identity and list fields.

use std::collections::HashMap;

use super::fields::{
    check_crypt_hash, check_ssh_key, resolve_disk, resolve_network, resolve_ostree,
};
use super::*;
/// The merged view of a host's layers: last scalar wins, lists concatenate.
pub(super) struct Merged<'a> {
    scalars: HashMap<&'a str, &'a Node>,
    lists: HashMap<&'a str, Vec<&'a Node>>,
}

impl<'a> Merged<'a> {
    pub(super) fn new(layers: &'a [Layer]) -> Merged<'a> {
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

    pub(super) fn get(&self, k: &str) -> Option<&'a Node> {
        self.scalars.get(k).copied()
    }

    pub(super) fn str(&self, k: &str, d: &mut Diags) -> Option<(&'a str, &'a Loc)> {
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
    pub(super) fn strings(&self, k: &str, d: &mut Diags) -> Vec<(&'a str, &'a Loc)> {
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

pub(super) fn resolve(
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
    let builtin: Vec<&str> = cairn_sysctl::builtin().iter().map(|p| p.name).collect();
    let sysctl_presets = m
        .strings("sysctl-presets", d)
        .into_iter()
        .filter_map(|(p, loc)| match cairn_sysctl::find(p) {
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
pub(super) fn words(m: &Merged, k: &str, d: &mut Diags) -> Vec<String> {
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

pub(super) fn valid_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

pub(super) fn want_url(n: &Node, d: &mut Diags) -> Option<String> {
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

pub(super) fn want_ipv4(n: &Node, what: &str, d: &mut Diags) -> Option<Ipv4Addr> {
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
