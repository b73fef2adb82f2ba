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

/// One host from its layers; `None` when anything about it is wrong (every problem is in `d`).
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
    let (hostname, fqdn, hostname_loc) = identity(item, &m, d);
    let (macs, mac_locs) = macs(item, &hostname, d);
    let (network, ip_loc) = resolve_network(&m, item, d);
    let disk = resolve_disk(&m, item, d);
    let ostree = resolve_ostree(&m, item, server, d);
    let kernel_args = checked_list(&m, "kernel-args", d, |a| {
        if a.contains(['"', '\n']) || a.trim().is_empty() || a.contains(char::is_whitespace) {
            Err(("kernel-arg", format!("kernel argument `{a}` must be one word without quotes; give one list item per argument")))
        } else {
            Ok(a.to_string())
        }
    });
    let sysctl_presets = checked_list(&m, "sysctl-presets", d, |p| {
        cairn_sysctl::find_builtin(p)
            .map(|_| p.to_string())
            .map_err(|e| ("unknown-preset", e.to_string()))
    });
    let ssh_keys = checked_list(&m, "ssh-keys", d, |k| {
        check_ssh_key(k)
            .map(|()| k.trim().to_string())
            .map_err(|e| ("ssh-key", e))
    });
    let root_password = m
        .str("root-password", d)
        .and_then(|(p, loc)| match check_crypt_hash(p) {
            Ok(()) => Some(p.to_string()),
            Err(e) => {
                d.push(loc, "root-password", e);
                None
            }
        });
    let timezone = timezone(&m, d);
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
    let Some(&mac) = macs.first() else {
        d.push(
            &item.loc,
            "missing",
            format!("host `{hostname}` has no MAC"),
        );
        return None;
    };
    Some(Host {
        hostname,
        fqdn,
        macs,
        mac,
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

/// The short name, the FQDN (with `domain` when the name has no dot) and where the name was given.
fn identity(item: &Node, m: &Merged, d: &mut Diags) -> (String, String, Loc) {
    let Some(n) = item.get("hostname") else {
        d.push(&item.loc, "missing", "host has no `hostname`");
        return (String::new(), String::new(), item.loc.clone());
    };
    let Some(h) = n.as_str().filter(|h| valid_hostname(h)) else {
        d.push(
            &n.loc,
            "hostname",
            "hostname must be dot-separated labels of letters, digits and inner `-` \
             (RFC 1123), each at most 63 characters",
        );
        return (String::new(), String::new(), n.loc.clone());
    };
    let domain = m.str("domain", d).map(|(s, _)| s);
    let fqdn = match (h.contains('.'), domain) {
        (false, Some(dom)) => format!("{h}.{}", dom.trim_matches('.')),
        _ => h.to_string(),
    };
    let short = h.split('.').next().unwrap_or(h).to_string();
    (short, fqdn.to_ascii_lowercase(), n.loc.clone())
}

/// `mac` or `macs` (one or a list), normalised, with where each was written.
fn macs(item: &Node, hostname: &str, d: &mut Diags) -> (Vec<Mac>, Vec<Loc>) {
    let nodes: Vec<&Node> = match (item.get("mac"), item.get("macs")) {
        (Some(n), None) | (None, Some(n)) => {
            match &n.value {
                // Render and serve name every file after the host's first MAC: none is no host.
                Value::Seq(s) if s.is_empty() => {
                    d.push(
                    &n.loc,
                    "missing",
                    format!("host `{hostname}` has an empty MAC list (PXE clients are matched by MAC)"),
                );
                    vec![]
                }
                Value::Seq(s) => s.iter().collect(),
                _ => vec![n],
            }
        }
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
    let mut macs = Vec::new();
    let mut locs = Vec::new();
    for n in nodes {
        match n.as_str().map(str::parse::<Mac>) {
            Some(Ok(mac)) => {
                macs.push(mac);
                locs.push(n.loc.clone());
            }
            Some(Err(e)) => d.push(&n.loc, "bad-mac", e.to_string()),
            None => d.push(&n.loc, "bad-mac", "a MAC address must be a quoted string"),
        }
    }
    (macs, locs)
}

/// The items of list `k` that `check` accepts; each refused one is a diagnostic `(code, message)`
/// at its own position.
fn checked_list(
    m: &Merged,
    k: &str,
    d: &mut Diags,
    check: impl Fn(&str) -> Result<String, (&'static str, String)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (item, loc) in m.strings(k, d) {
        match check(item) {
            Ok(v) => out.push(v),
            Err((code, msg)) => d.push(loc, code, msg),
        }
    }
    out
}

fn timezone(m: &Merged, d: &mut Diags) -> String {
    let Some((tz, loc)) = m.str("timezone", d) else {
        return "UTC".to_string();
    };
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
