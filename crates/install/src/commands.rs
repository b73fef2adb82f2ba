//! Turning each tokenized kickstart command into its typed record (see parse.rs), with the checks
//! that need only the command itself; `check_complete` checks the kickstart as a whole.

use crate::parse::{
    Autopart, Cmd, Ctx, FinalAction, Fs, Kickstart, LogVol, Network, OstreeSetup, Part, PartTarget,
    RootPw, Size, Timezone, VolGroup,
};
use crate::InstallError;

pub(crate) fn apply(cx: &Ctx, ks: &mut Kickstart, c: &Cmd) -> Result<(), InstallError> {
    match c.name.as_str() {
        // Installer UI and locale of the installer itself: nothing to do on the disk.
        "text" | "lang" | "keyboard" | "zerombr" | "reqpart" => {}
        "timezone" => timezone(cx, ks, c)?,
        "rootpw" => rootpw(cx, ks, c)?,
        "sshkey" => {
            if c.get("username").unwrap_or("root") != "root" {
                return Err(cx.err(c.line, "`sshkey` for users other than root is not supported (cairn install creates no users)"));
            }
            ks.ssh_keys.push(c.args[0].clone());
        }
        "network" => ks.networks.push(network(cx, c)?),
        "ignoredisk" => set_drive(cx, ks, c, c.get("only-use").or(c.get("drives")))?,
        "clearpart" => {
            if !c.has("all") {
                return Err(cx.err(c.line, "`clearpart` without --all is not supported: cairn install always writes a new partition table"));
            }
            ks.clearpart = true;
            set_drive(cx, ks, c, c.get("drives"))?;
        }
        "part" | "partition" => part(cx, ks, c)?,
        "volgroup" => ks.volgroups.push(VolGroup {
            name: c.args[0].clone(),
            pvs: c.args[1..].to_vec(),
            pesize_kib: match c.get("pesize") {
                Some(v) => number(cx, c, "pesize", v)?,
                None => 4096,
            },
            line: c.line,
        }),
        "logvol" => ks.logvols.push(LogVol {
            mount: mount_point(cx, c, &c.args[0])?,
            vg: c.need(cx, "vgname")?.to_owned(),
            name: c.need(cx, "name")?.to_owned(),
            fs: fstype(cx, c)?,
            size: size(cx, c)?,
            line: c.line,
        }),
        "autopart" => {
            let lvm = match c.get("type").unwrap_or("lvm") {
                "lvm" => true,
                "plain" => false,
                t => {
                    return Err(cx.err(
                        c.line,
                        format!("`autopart --type={t}` is not supported (lvm or plain)"),
                    ))
                }
            };
            ks.autopart = Some(Autopart {
                lvm,
                fs: fstype(cx, c)?,
                line: c.line,
            });
        }
        "bootloader" => {
            if let Some(loc) = c.get("location") {
                if loc != "mbr" {
                    return Err(cx.err(c.line, format!("`bootloader --location={loc}` is not supported (mbr: the boot loader goes on the target disk)")));
                }
            }
            if let Some(t) = c.get("timeout") {
                ks.boot_timeout = Some(t.parse().map_err(|_| {
                    cx.err(
                        c.line,
                        format!("`bootloader --timeout={t}`: expected whole seconds"),
                    )
                })?);
            }
            if let Some(a) = c.get("append") {
                ks.kargs = cairn_ostree::deploy::kargs::split(a);
            }
        }
        "ostreesetup" => {
            ks.ostree = Some(OstreeSetup {
                osname: c.need(cx, "osname")?.to_owned(),
                remote: c.get("remote").unwrap_or(c.need(cx, "osname")?).to_owned(),
                url: c.need(cx, "url")?.to_owned(),
                rref: c.need(cx, "ref")?.to_owned(),
                gpg: !c.has("nogpg"),
                line: c.line,
            });
        }
        "reboot" => ks.final_action = FinalAction::Reboot,
        "poweroff" => ks.final_action = FinalAction::Poweroff,
        other => unreachable!("{other} has a Spec but no handler"),
    }
    Ok(())
}

fn set_drive(cx: &Ctx, ks: &mut Kickstart, c: &Cmd, d: Option<&str>) -> Result<(), InstallError> {
    let Some(d) = d else { return Ok(()) };
    if d.contains(',') {
        return Err(cx.err(
            c.line,
            format!(
                "`{} {d}`: cairn install writes one disk; name one drive",
                c.name
            ),
        ));
    }
    match &ks.drive {
        Some(prev) if prev != d => Err(cx.err(
            c.line,
            format!(
                "drive `{d}` differs from `{prev}` named earlier: cairn install writes one disk"
            ),
        )),
        _ => {
            ks.drive = Some(d.to_owned());
            Ok(())
        }
    }
}

fn timezone(cx: &Ctx, ks: &mut Kickstart, c: &Cmd) -> Result<(), InstallError> {
    let name = &c.args[0];
    let ok = !name.starts_with('/')
        && !name.split('/').any(|p| p.is_empty() || p == "..")
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "/_-+".contains(ch));
    if !ok {
        return Err(cx.err(
            c.line,
            format!("`timezone {name}`: not a time zone name such as Europe/Paris or UTC"),
        ));
    }
    ks.timezone = Some(Timezone {
        name: name.clone(),
        utc: c.has("utc") || c.has("isUtc"),
    });
    Ok(())
}

fn rootpw(cx: &Ctx, ks: &mut Kickstart, c: &Cmd) -> Result<(), InstallError> {
    ks.root = Some(match (c.has("lock"), c.has("iscrypted"), c.args.first()) {
        (true, _, _) => RootPw::Locked,
        (false, true, Some(h)) if h.starts_with('$') && !h.contains(':') => RootPw::Crypted(h.clone()),
        (false, true, _) => return Err(cx.err(c.line, "`rootpw --iscrypted` needs a crypt(3) hash such as $6$... (openssl passwd -6)")),
        (false, false, _) => return Err(cx.err(c.line, "`rootpw` with a plaintext password is not supported: use --iscrypted with a hash, or --lock")),
    });
    Ok(())
}

fn number(cx: &Ctx, c: &Cmd, key: &str, v: &str) -> Result<u64, InstallError> {
    v.parse().map_err(|_| {
        cx.err(
            c.line,
            format!("`{} --{key}={v}`: expected a whole number", c.name),
        )
    })
}

fn size(cx: &Ctx, c: &Cmd) -> Result<Size, InstallError> {
    let grow = c.has("grow");
    let mib = match c.get("size") {
        Some(v) => number(cx, c, "size", v)?,
        None if grow => 1,
        None => return Err(cx.err(c.line, format!("`{}` needs --size (MiB) or --grow", c.name))),
    };
    Ok(Size { mib, grow })
}

fn fstype(cx: &Ctx, c: &Cmd) -> Result<Fs, InstallError> {
    match c.get("fstype").unwrap_or("xfs") {
        "xfs" => Ok(Fs::Xfs),
        "ext4" => Ok(Fs::Ext4),
        f => Err(cx.err(
            c.line,
            format!("`{} --fstype={f}` is not supported (xfs or ext4)", c.name),
        )),
    }
}

/// `/`, `/boot` and `/var` are the mount points an OSTree host has room for: everything else
/// lives under /var or comes from the commit.
fn mount_point(cx: &Ctx, c: &Cmd, m: &str) -> Result<String, InstallError> {
    match m {
        "/" | "/boot" | "/var" => Ok(m.to_owned()),
        _ => Err(cx.err(c.line, format!("`{} {m}`: mount point {m} is not supported (/, /boot and /var; swap and other mounts are not)", c.name))),
    }
}

fn part(cx: &Ctx, ks: &mut Kickstart, c: &Cmd) -> Result<(), InstallError> {
    set_drive(cx, ks, c, c.get("ondisk"))?;
    let what = &c.args[0];
    let target = if what.starts_with("pv.") {
        PartTarget::Pv(what.clone())
    } else {
        PartTarget::Mount {
            path: mount_point(cx, c, what)?,
            fs: fstype(cx, c)?,
        }
    };
    ks.parts.push(Part {
        target,
        size: size(cx, c)?,
        line: c.line,
    });
    Ok(())
}

fn network(cx: &Ctx, c: &Cmd) -> Result<Network, InstallError> {
    let mut n = Network {
        device: c.get("device").map(str::to_owned),
        line: c.line,
        ..Network::default()
    };
    match c.get("bootproto").unwrap_or("dhcp") {
        "dhcp" => n.dhcp = true,
        "static" => {
            n.ip = Some(c.need(cx, "ip")?.to_owned());
            n.netmask = Some(c.need(cx, "netmask")?.to_owned());
        }
        b => {
            return Err(cx.err(
                c.line,
                format!("`network --bootproto={b}` is not supported (dhcp or static)"),
            ))
        }
    }
    for (key, v) in [
        ("ip", c.get("ip")),
        ("netmask", c.get("netmask")),
        ("gateway", c.get("gateway")),
    ] {
        if let Some(v) = v {
            v.parse::<std::net::Ipv4Addr>().map_err(|_| {
                cx.err(
                    c.line,
                    format!("`network --{key}={v}`: expected an IPv4 address"),
                )
            })?;
        }
    }
    n.gateway = c.get("gateway").map(str::to_owned);
    let list = |v: Option<&str>| -> Vec<String> {
        v.map(|s| {
            s.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    n.nameservers = list(c.get("nameserver"));
    for ns in &n.nameservers {
        ns.parse::<std::net::IpAddr>().map_err(|_| {
            cx.err(
                c.line,
                format!("`network --nameserver`: `{ns}` is not an IP address"),
            )
        })?;
    }
    n.bond_slaves = list(c.get("bondslaves"));
    for kv in list(c.get("bondopts")) {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            cx.err(
                c.line,
                format!("`network --bondopts`: `{kv}` is not key=value"),
            )
        })?;
        n.bond_opts.push((k.to_owned(), v.to_owned()));
    }
    if !n.bond_slaves.is_empty() && n.device.is_none() {
        return Err(cx.err(c.line, "`network --bondslaves` needs --device=<bond name>"));
    }
    link_settings(cx, c, &mut n)?;
    crate::network::check_bond_opts(&n).map_err(|m| cx.err(c.line, m))?;
    Ok(n)
}

/// VLAN, MTU, onboot and hostname of a `network` line.
fn link_settings(cx: &Ctx, c: &Cmd, n: &mut Network) -> Result<(), InstallError> {
    if let Some(v) = c.get("vlanid") {
        n.vlan = Some(
            v.parse()
                .ok()
                .filter(|id| (1..4095).contains(id))
                .ok_or_else(|| {
                    cx.err(c.line, format!("`network --vlanid={v}`: expected 1..4094"))
                })?,
        );
    }
    if let Some(v) = c.get("mtu") {
        n.mtu = Some(
            v.parse()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| {
                    cx.err(c.line, format!("`network --mtu={v}`: expected 68..65535"))
                })?,
        );
    }
    if let Some(o) = c.get("onboot") {
        if o != "yes" && o != "on" && o != "true" {
            return Err(cx.err(c.line, format!("`network --onboot={o}` is not supported: cairn install writes interfaces that come up at boot")));
        }
    }
    n.hostname = c.get("hostname").map(str::to_owned);
    if let Some(h) = &n.hostname {
        let ok = h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                    && !l.starts_with('-')
            });
        if !ok {
            return Err(cx.err(
                c.line,
                format!("`network --hostname={h}`: not a valid host name"),
            ));
        }
    }
    Ok(())
}

/// What a kickstart must have, and the cross-references between commands.
pub(crate) fn check_complete(cx: &Ctx, ks: &Kickstart) -> Result<(), InstallError> {
    if ks.ostree.is_none() {
        return Err(cx.err(
            0,
            "no `ostreesetup`: cairn install deploys an OSTree commit and needs --url and --ref",
        ));
    }
    if ks.autopart.is_some() && (!ks.parts.is_empty() || !ks.logvols.is_empty()) {
        let line = ks.autopart.map(|a| a.line).unwrap_or(0);
        return Err(cx.err(
            line,
            "`autopart` together with part/logvol: use one or the other",
        ));
    }
    if ks.autopart.is_none() && ks.parts.is_empty() {
        return Err(cx.err(
            0,
            "no disk layout: add `part` lines (with volgroup/logvol) or `autopart`",
        ));
    }
    Ok(())
}
