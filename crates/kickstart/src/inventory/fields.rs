//! Resolvers of the nested fields: network (addresses, VLAN, bond), disk sizes, OSTree, and the
//! checks on secrets (password hashes, SSH keys).

use std::ops::RangeInclusive;

use super::choices::parse_named;
use super::merge::{want_ipv4, want_url, Merged};
use super::*;

pub(super) fn resolve_network(m: &Merged, item: &Node, d: &mut Diags) -> (Network, Option<Loc>) {
    let ip_node = m.get("network.ip");
    let mut net = Network {
        bootproto: bootproto(m, ip_node.is_some(), d),
        ip: None,
        prefix: None,
        netmask: None,
        gateway: None,
        dns: vec![],
        vlan: None,
        mtu: None,
        bond: None,
    };
    let mut ip_loc = None;
    match (net.bootproto, ip_node) {
        (Bootproto::Dhcp, _) => reject_static_fields(m, d),
        (Bootproto::Static, None) => d.push(
            &item.loc,
            "missing",
            "static network needs `network.ip` (e.g. 192.0.2.10/24)",
        ),
        (Bootproto::Static, Some(n)) => {
            ip_loc = Some(n.loc.clone());
            if let Some(net4) = static_address(m, n, d) {
                net.ip = Some(net4.addr);
                net.prefix = Some(net4.prefix);
                net.netmask = Some(net4.netmask());
                net.gateway = check_static(m, n, net4, d);
            }
        }
    }
    if let Some(n) = m.get("network.dns") {
        net.dns = dns_servers(n, d);
    }
    net.vlan = int_in(
        m,
        "network.vlan",
        1..=4094,
        "vlan must be an 802.1Q id between 1 and 4094",
        d,
    )
    .map(|v| v as u16);
    net.mtu = int_in(
        m,
        "network.mtu",
        576..=65535,
        "mtu must be an integer between 576 and 65535",
        d,
    )
    .map(|v| v as u32);
    net.bond = m.get("network.bond").and_then(|n| resolve_bond(n, d));
    (net, ip_loc)
}

/// An explicit `bootproto`, else `static` exactly when `network.ip` is set.
fn bootproto(m: &Merged, has_ip: bool, d: &mut Diags) -> Bootproto {
    let Some((s, loc)) = m.str("network.bootproto", d) else {
        return if has_ip {
            Bootproto::Static
        } else {
            Bootproto::Dhcp
        };
    };
    match parse_named(s, loc, "bootproto", "bootproto", d) {
        Some(Bootproto::Dhcp) if has_ip => {
            d.push(
                loc,
                "bootproto",
                "bootproto is `dhcp` but `network.ip` is set; drop one",
            );
            Bootproto::Dhcp
        }
        Some(b) => b,
        // Reported already; going on as DHCP still checks the rest of the network section.
        None => Bootproto::Dhcp,
    }
}

/// Static addressing fields on a DHCP host are a mistake, not something to ignore quietly.
fn reject_static_fields(m: &Merged, d: &mut Diags) {
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

/// The host's address and prefix: `network.ip` as ip/prefix, or as ip plus `network.netmask`.
fn static_address(m: &Merged, ip: &Node, d: &mut Diags) -> Option<Ipv4Net> {
    let Some(s) = ip.as_str() else {
        d.push(
            &ip.loc,
            "bad-ip",
            "`network.ip` must be a string like 192.0.2.10/24",
        );
        return None;
    };
    match (s.contains('/'), m.get("network.netmask")) {
        (true, None) => parse_cidr(s).map_err(|e| d.push(&ip.loc, "bad-ip", e)).ok(),
        (true, Some(mn)) => {
            d.push(
                &mn.loc,
                "bad-ip",
                "give either ip/prefix or ip + netmask, not both",
            );
            None
        }
        (false, None) => {
            d.push(
                &ip.loc,
                "bad-ip",
                format!("`{s}` needs a prefix (e.g. {s}/24) or a `netmask`"),
            );
            None
        }
        (false, Some(mn)) => address_with_netmask(s, ip, mn, d),
    }
}

fn address_with_netmask(s: &str, ip: &Node, mn: &Node, d: &mut Diags) -> Option<Ipv4Net> {
    // Both are checked, so a bad address and a bad netmask are reported together.
    let addr = s.parse::<Ipv4Addr>();
    let mask = want_ipv4(mn, "netmask", d);
    let Ok(addr) = addr else {
        d.push(&ip.loc, "bad-ip", format!("`{s}` is not an IPv4 address"));
        return None;
    };
    let mask = mask?;
    let Some(prefix) = netmask_to_prefix(mask) else {
        d.push(
            &mn.loc,
            "bad-ip",
            format!("netmask {mask} has non-contiguous bits"),
        );
        return None;
    };
    Some(Ipv4Net { addr, prefix })
}

/// Checks a static address against its own subnet, the gateway and the declared `subnet`;
/// returns the gateway.
fn check_static(m: &Merged, ip: &Node, net4: Ipv4Net, d: &mut Diags) -> Option<Ipv4Addr> {
    if net4.is_reserved_addr() {
        d.push(
            &ip.loc,
            "ip-reserved",
            format!(
                "{} is the network or broadcast address of {}/{}",
                net4.addr,
                net4.network(),
                net4.prefix
            ),
        );
    }
    let gateway = m.get("network.gateway").and_then(|gn| {
        let gw = want_ipv4(gn, "gateway", d)?;
        if !net4.contains(gw) {
            d.push(
                &gn.loc,
                "gateway-outside-subnet",
                format!(
                    "gateway {gw} is outside the host's subnet {}/{} (from ip {net4})",
                    net4.network(),
                    net4.prefix
                ),
            );
        } else if gw == net4.addr {
            d.push(
                &gn.loc,
                "gateway-is-host",
                format!("gateway {gw} is the host's own address"),
            );
        }
        Some(gw)
    });
    if let Some(sn) = m.get("network.subnet") {
        check_subnet(sn, ip, net4, d);
    }
    gateway
}

/// The declared `subnet` must contain the host's address and be no narrower than its prefix.
fn check_subnet(sn: &Node, ip: &Node, net4: Ipv4Net, d: &mut Diags) {
    let Some(text) = sn.as_str() else {
        d.push(
            &sn.loc,
            "bad-subnet",
            "`subnet` must be a string like 192.0.2.0/24",
        );
        return;
    };
    match parse_cidr(text) {
        Err(e) => d.push(&sn.loc, "bad-subnet", e),
        Ok(sub) if !sub.contains(net4.addr) || sub.prefix > net4.prefix => d.push(
            &ip.loc,
            "ip-outside-subnet",
            format!(
                "{net4} is outside the declared subnet {}/{} (declared at {})",
                sub.network(),
                sub.prefix,
                sn.loc
            ),
        ),
        Ok(_) => {}
    }
}

/// One DNS server or a list of them.
fn dns_servers(n: &Node, d: &mut Diags) -> Vec<IpAddr> {
    let items: Vec<&Node> = match &n.value {
        Value::Seq(s) => s.iter().collect(),
        _ => vec![n],
    };
    let mut dns = Vec::new();
    for i in items {
        match i.as_str().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => dns.push(ip),
            _ => d.push(&i.loc, "bad-ip", "DNS servers must be IP addresses"),
        }
    }
    dns
}

/// An integer key within `range`; out of range or not an integer is `msg` (code: the key's last
/// part, e.g. `vlan`).
fn int_in(
    m: &Merged,
    k: &'static str,
    range: RangeInclusive<i64>,
    msg: &str,
    d: &mut Diags,
) -> Option<i64> {
    let n = m.get(k)?;
    match n.value {
        Value::Int(v) if range.contains(&v) => Some(v),
        _ => {
            let code = k.rsplit('.').next().unwrap_or(k);
            d.push(&n.loc, code, msg);
            None
        }
    }
}

pub(super) fn resolve_bond(n: &Node, d: &mut Diags) -> Option<Bond> {
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
        .and_then(|mn| parse_named(mn.as_str()?, &mn.loc, "bond mode", "bond", d))
        .unwrap_or(BondMode::ActiveBackup);
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
    let options_node = n.get("options");
    let options = options_node.and_then(Node::as_str).map(String::from);
    if let (Some(o), Some(on)) = (&options, options_node) {
        if o.contains(char::is_whitespace) || o.contains('"') {
            d.push(
                &on.loc,
                "bond",
                "bond options are comma-separated key=value, without spaces",
            );
        }
    }
    Some(Bond {
        name,
        mode,
        slaves,
        options,
    })
}

/// Sizes in MiB: a bare integer is MiB; suffixes M/MiB, G/GiB, T/TiB; `grow` when allowed.
pub(super) fn size(
    m: &Merged,
    k: &str,
    default: Option<u64>,
    grow_ok: bool,
    d: &mut Diags,
) -> Option<u64> {
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
            // Found by fuzz/render: `2000000000000000000GiB` overflowed (a panic in debug
            // builds, a wrapped size in release ones).
            match num.parse::<u64>().ok().and_then(|v| v.checked_mul(mult)) {
                Some(v) if v > 0 => Some(v),
                _ => bad(d),
            }
        }
        _ => bad(d),
    }
}

pub(super) fn resolve_disk(m: &Merged, item: &Node, d: &mut Diags) -> Disk {
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
        .and_then(|(s, loc)| parse_named(s, loc, "fstype", "disk", d))
        .unwrap_or(Fstype::Xfs);
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

pub(super) fn resolve_ostree(
    m: &Merged,
    item: &Node,
    server: Option<&str>,
    d: &mut Diags,
) -> Ostree {
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

pub(super) fn check_ssh_key(k: &str) -> Result<(), String> {
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
