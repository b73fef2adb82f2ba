//! kickstart `network` lines → systemd-networkd files (the shipped Debian tree runs
//! systemd-networkd; see treefiles/debian-12.yaml). Pure: file names and contents.

use crate::parse::Network;

/// bondopts keys and the `[Bond]` setting each becomes; `miimon` and the delays are in ms.
const BOND_OPTS: &[(&str, &str)] = &[
    ("mode", "Mode"),
    ("miimon", "MIIMonitorSec"),
    ("lacp_rate", "LACPTransmitRate"),
    ("xmit_hash_policy", "TransmitHashPolicy"),
    ("updelay", "UpDelaySec"),
    ("downdelay", "DownDelaySec"),
    ("ad_select", "AdSelect"),
    ("min_links", "MinLinks"),
];

pub(crate) fn check_bond_opts(n: &Network) -> Result<(), String> {
    for (k, _) in &n.bond_opts {
        if !BOND_OPTS.iter().any(|(o, _)| o == k) {
            let known: Vec<&str> = BOND_OPTS.iter().map(|(o, _)| *o).collect();
            return Err(format!(
                "`network --bondopts`: option `{k}` is not supported (supported: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.split(':').count() == 6
        && s.split(':')
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `[Match]` for a device given by name or by MAC; no device matches every ethernet link.
fn match_section(dev: Option<&str>) -> String {
    match dev {
        Some(d) if is_mac(d) => format!("[Match]\nMACAddress={}\n", d.to_ascii_lowercase()),
        Some(d) => format!("[Match]\nName={d}\n"),
        None => "[Match]\nType=ether\n".to_owned(),
    }
}

fn prefix_len(mask: &str) -> Option<u32> {
    let m: std::net::Ipv4Addr = mask.parse().ok()?;
    let bits = u32::from(m);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then(|| bits.leading_ones())
}

/// The `[Network]` addressing of the interface that carries the address.
fn addressing(n: &Network) -> String {
    let mut s = String::from("[Network]\n");
    if n.dhcp {
        s.push_str("DHCP=yes\n");
    }
    if let (Some(ip), Some(mask)) = (&n.ip, &n.netmask) {
        let len = prefix_len(mask).unwrap_or(32);
        s.push_str(&format!("Address={ip}/{len}\n"));
    }
    if let Some(gw) = &n.gateway {
        s.push_str(&format!("Gateway={gw}\n"));
    }
    for ns in &n.nameservers {
        s.push_str(&format!("DNS={ns}\n"));
    }
    s
}

fn mtu(n: &Network) -> String {
    n.mtu
        .map(|m| format!("\n[Link]\nMTUBytes={m}\n"))
        .unwrap_or_default()
}

const HEADER: &str = "# Written by cairn install from the kickstart's `network` line";

/// Renders every `network` line; file names are unique and sort in dependency order.
pub fn render(networks: &[Network]) -> Result<Vec<(String, String)>, String> {
    let mut files = Vec::new();
    for (i, n) in networks.iter().enumerate() {
        let head = format!("{HEADER} {}.\n", n.line);
        let dev = n.device.as_deref();
        let tag = match dev {
            Some(d) if is_mac(d) => format!("{i}-{}", d.replace(':', "")),
            Some(d) => format!("{i}-{d}"),
            None => format!("{i}-ether"),
        };
        // The interface the address lives on: the VLAN on top if any, else the bond or device.
        let mut top = dev.map(str::to_owned);
        let mut lower_extra = String::new();
        if !n.bond_slaves.is_empty() {
            let bond = dev.ok_or("a bond needs --device")?;
            let mtu_line = n.mtu.map(|m| format!("MTUBytes={m}\n")).unwrap_or_default();
            let mut netdev =
                format!("{head}[NetDev]\nName={bond}\nKind=bond\n{mtu_line}\n[Bond]\n");
            for (k, v) in &n.bond_opts {
                let (_, key) = BOND_OPTS
                    .iter()
                    .find(|(o, _)| o == k)
                    .ok_or("unchecked bondopt")?;
                let v = if key.ends_with("Sec") {
                    format!("{v}ms")
                } else {
                    v.clone()
                };
                netdev.push_str(&format!("{key}={v}\n"));
            }
            files.push((format!("10-cairn-{tag}.netdev"), netdev));
            for (j, s) in n.bond_slaves.iter().enumerate() {
                files.push((
                    format!("20-cairn-{tag}-slave{j}.network"),
                    format!("{head}{}\n[Network]\nBond={bond}\n", match_section(Some(s))),
                ));
            }
        }
        if let Some(id) = n.vlan {
            let vname = format!("vlan{id}");
            let mtu_line = n.mtu.map(|m| format!("MTUBytes={m}\n")).unwrap_or_default();
            files.push((
                format!("10-cairn-{tag}-{vname}.netdev"),
                format!("{head}[NetDev]\nName={vname}\nKind=vlan\n{mtu_line}\n[VLAN]\nId={id}\n"),
            ));
            lower_extra = format!("VLAN={vname}\nLinkLocalAddressing=no\n");
            if n.bond_slaves.is_empty() {
                files.push((
                    format!("30-cairn-{tag}.network"),
                    format!(
                        "{head}{}\n[Network]\n{lower_extra}{}",
                        match_section(dev),
                        mtu(n)
                    ),
                ));
            }
            top = Some(vname);
        }
        let mut net = format!("{head}{}\n{}", match_section(top.as_deref()), addressing(n));
        if n.vlan.is_some() && !n.bond_slaves.is_empty() {
            // The bond carries the VLAN: its own .network links the two.
            files.push((
                format!("30-cairn-{tag}.network"),
                format!("{head}{}\n[Network]\n{lower_extra}", match_section(dev)),
            ));
        }
        if n.vlan.is_none() {
            net.push_str(&mtu(n));
        }
        files.push((format!("40-cairn-{tag}.network"), net));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(f: impl FnOnce(&mut Network)) -> Network {
        let mut n = Network {
            line: 7,
            ..Network::default()
        };
        f(&mut n);
        n
    }

    #[test]
    fn static_by_mac_becomes_one_network_file() {
        let files = render(&[net(|n| {
            n.device = Some("52:54:00:00:00:11".into());
            n.ip = Some("192.0.2.11".into());
            n.netmask = Some("255.255.255.0".into());
            n.gateway = Some("192.0.2.1".into());
            n.nameservers = vec!["192.0.2.53".into(), "2001:db8::53".into()];
        })])
        .unwrap();
        assert_eq!(files.len(), 1);
        let (name, text) = &files[0];
        assert_eq!(name, "40-cairn-0-525400000011.network");
        assert!(
            text.contains("[Match]\nMACAddress=52:54:00:00:00:11\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "Address=192.0.2.11/24\nGateway=192.0.2.1\nDNS=192.0.2.53\nDNS=2001:db8::53\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn vlan_and_bond_get_netdevs() {
        let files = render(&[net(|n| {
            n.device = Some("52:54:00:00:00:12".into());
            n.dhcp = true;
            n.vlan = Some(120);
            n.mtu = Some(9000);
        })])
        .unwrap();
        let all: String = files.iter().map(|(n, t)| format!("=={n}\n{t}")).collect();
        assert!(
            all.contains("Kind=vlan\nMTUBytes=9000\n\n[VLAN]\nId=120\n"),
            "{all}"
        );
        assert!(
            all.contains("MACAddress=52:54:00:00:00:12\n\n[Network]\nVLAN=vlan120\n"),
            "{all}"
        );
        assert!(
            all.contains("[Match]\nName=vlan120\n\n[Network]\nDHCP=yes\n"),
            "{all}"
        );

        let files = render(&[net(|n| {
            n.device = Some("bond0".into());
            n.dhcp = true;
            n.bond_slaves = vec!["ens1f0".into(), "ens1f1".into()];
            n.bond_opts = vec![
                ("mode".into(), "802.3ad".into()),
                ("miimon".into(), "100".into()),
            ];
        })])
        .unwrap();
        let all: String = files.iter().map(|(n, t)| format!("=={n}\n{t}")).collect();
        assert!(all.contains("Name=bond0\nKind=bond\n"), "{all}");
        assert!(
            all.contains("[Bond]\nMode=802.3ad\nMIIMonitorSec=100ms\n"),
            "{all}"
        );
        assert!(
            all.contains("[Match]\nName=ens1f1\n\n[Network]\nBond=bond0\n"),
            "{all}"
        );
    }
}
