//! Rendering hosts to kickstarts and boot-loader configs with tera, in memory or to a directory.

use std::path::Path;

use cairn_common::named::Named;
use serde::Serialize;
use tera::Tera;

use super::error::KickstartError;
use super::inventory::{Host, Inventory};
use super::network::Mac;

/// The template names, and the built-in version of each (the top-level `kickstart/` directory).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "ks.cfg.tera",
        include_str!("../../../kickstart/ks.cfg.tera"),
    ),
    (
        "pxelinux.tera",
        include_str!("../../../kickstart/pxelinux.tera"),
    ),
    (
        "grub.cfg.tera",
        include_str!("../../../kickstart/grub.cfg.tera"),
    ),
    ("ipxe.tera", include_str!("../../../kickstart/ipxe.tera")),
    (
        "boot.ipxe.tera",
        include_str!("../../../kickstart/boot.ipxe.tera"),
    ),
];

/// The compiled template set.
pub struct Templates {
    tera: Tera,
    /// Which templates came from the user's directory (for reports).
    pub overridden: Vec<String>,
}

/// Every document one host needs, as served or written.
#[derive(Debug, Clone)]
pub struct HostDocs {
    pub kickstart: String,
    pub pxelinux: String,
    pub grub: String,
    pub ipxe: String,
}

impl Templates {
    /// The built-in templates, each replaced by `dir/<name>` when that file exists.
    pub fn load(dir: Option<&Path>) -> Result<Templates, KickstartError> {
        let mut tera = Tera::default();
        let mut overridden = Vec::new();
        for (name, builtin) in TEMPLATES {
            let custom = dir.map(|d| d.join(name)).filter(|p| p.is_file());
            let src = match &custom {
                Some(p) => {
                    overridden.push(name.to_string());
                    std::fs::read_to_string(p).map_err(|source| KickstartError::Read {
                        path: p.clone(),
                        source,
                    })?
                }
                None => builtin.to_string(),
            };
            tera.add_raw_template(name, &src)
                .map_err(|e| template_error(name, custom.as_deref(), &e))?;
        }
        if let Some(d) = dir {
            if !d.is_dir() {
                return Err(KickstartError::Read {
                    path: d.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "template directory does not exist",
                    ),
                });
            }
        }
        Ok(Templates { tera, overridden })
    }

    fn render(&self, name: &str, ctx: &tera::Context) -> Result<String, KickstartError> {
        self.tera
            .render(name, ctx)
            .map_err(|e| template_error(name, None, &e))
    }

    /// Renders a host's documents. `token`, when given, is appended to the kickstart URL the boot
    /// configs point at (one-time build tokens of `cairn serve`).
    pub fn render_host(
        &self,
        inv: &Inventory,
        host: &Host,
        token: Option<&str>,
    ) -> Result<HostDocs, KickstartError> {
        let ctx = tera::Context::from_serialize(context(inv, host, token))
            .map_err(|e| template_error("context", None, &e))?;
        Ok(HostDocs {
            kickstart: self.render("ks.cfg.tera", &ctx)?,
            pxelinux: self.render("pxelinux.tera", &ctx)?,
            grub: self.render("grub.cfg.tera", &ctx)?,
            ipxe: self.render("ipxe.tera", &ctx)?,
        })
    }

    /// The generic `boot.ipxe` that chains every machine to `/ipxe?mac=...`.
    pub fn render_boot_ipxe(&self, server: &str) -> Result<String, KickstartError> {
        let mut ctx = tera::Context::new();
        ctx.insert("server", server);
        self.render("boot.ipxe.tera", &ctx)
    }
}

fn template_error(name: &str, path: Option<&Path>, e: &dyn std::error::Error) -> KickstartError {
    // tera puts the useful part (line, unknown variable) in the source chain.
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    KickstartError::Template {
        name: path.map_or(name.to_string(), |p| p.display().to_string()),
        msg,
    }
}

#[derive(Serialize)]
struct Ctx<'a> {
    inventory: String,
    hostname: &'a str,
    fqdn: &'a str,
    mac: String,
    mac_dashed: String,
    macs: Vec<String>,
    server: Option<&'a str>,
    ks_url: String,
    built_url: Option<String>,
    failed_url: Option<String>,
    token: Option<&'a str>,
    network: NetCtx,
    disk: DiskCtx<'a>,
    ostree: OstreeCtx<'a>,
    kernel_args: String,
    presets: Vec<&'static cairn_sysctl::Preset>,
    ssh_keys: &'a [String],
    root_password: Option<&'a str>,
    timezone: &'a str,
    roles: &'a [String],
    pxe: PxeCtx,
}

#[derive(Serialize)]
struct NetCtx {
    device: String,
    bootproto: &'static str,
    ip: Option<String>,
    netmask: Option<String>,
    prefix: Option<u8>,
    gateway: Option<String>,
    nameservers: String,
    vlan: Option<u16>,
    mtu: Option<u32>,
    bond_slaves: String,
    bond_opts: String,
}

/// Template-facing names are snake_case (tera identifiers); the inventory's are kebab-case.
#[derive(Serialize)]
struct DiskCtx<'a> {
    device: &'a str,
    fstype: &'a str,
    vg: &'a str,
    boot_size: u64,
    root_size: Option<u64>,
    var_size: Option<u64>,
}

#[derive(Serialize)]
struct OstreeCtx<'a> {
    osname: &'a str,
    remote: &'a str,
    url: &'a str,
    upgrade_url: &'a str,
    #[serde(rename = "ref")]
    refname: &'a str,
    gpg: bool,
}

#[derive(Serialize)]
struct PxeCtx {
    kernel: String,
    initrd: String,
    kernel_url: String,
    initrd_url: String,
    append: String,
}

fn context<'a>(inv: &'a Inventory, h: &'a Host, token: Option<&'a str>) -> Ctx<'a> {
    let server = inv.server.as_deref();
    let mac = h.mac;
    let base = server.unwrap_or("");
    let q = token.map(|t| format!("?token={t}")).unwrap_or_default();
    let n = &h.network;
    let (bond_slaves, bond_opts) = match &n.bond {
        Some(b) => (
            b.slaves.join(","),
            std::iter::once(format!("mode={}", b.mode.name()))
                .chain(b.options.clone())
                .collect::<Vec<_>>()
                .join(","),
        ),
        None => (String::new(), String::new()),
    };
    let abs = |p: &str| {
        if p.starts_with("http://") || p.starts_with("https://") {
            p.to_string()
        } else {
            format!("{base}/files/{}", p.trim_start_matches('/'))
        }
    };
    Ctx {
        inventory: inv.path.display().to_string(),
        hostname: &h.hostname,
        fqdn: &h.fqdn,
        mac: mac.to_string(),
        mac_dashed: mac.dashed(),
        macs: h.macs.iter().map(Mac::to_string).collect(),
        server,
        ks_url: format!("{base}/ks/{mac}{q}"),
        built_url: server.map(|s| format!("{s}/built/{mac}")),
        failed_url: server.map(|s| format!("{s}/failed/{mac}")),
        token,
        network: NetCtx {
            device: n
                .bond
                .as_ref()
                .map_or_else(|| mac.to_string(), |b| b.name.clone()),
            bootproto: n.bootproto.name(),
            ip: n.ip.map(|i| i.to_string()),
            netmask: n.netmask.map(|i| i.to_string()),
            prefix: n.prefix,
            gateway: n.gateway.map(|i| i.to_string()),
            nameservers: n
                .dns
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
            vlan: n.vlan,
            mtu: n.mtu,
            bond_slaves,
            bond_opts,
        },
        disk: DiskCtx {
            device: &h.disk.device,
            fstype: h.disk.fstype.name(),
            vg: &h.disk.vg,
            boot_size: h.disk.boot_size,
            root_size: h.disk.root_size,
            var_size: h.disk.var_size,
        },
        ostree: OstreeCtx {
            osname: &h.ostree.osname,
            remote: &h.ostree.remote,
            url: &h.ostree.url,
            upgrade_url: &h.ostree.upgrade_url,
            refname: &h.ostree.refname,
            gpg: h.ostree.gpg,
        },
        kernel_args: h.kernel_args.join(" "),
        presets: h
            .sysctl_presets
            .iter()
            .filter_map(|p| cairn_sysctl::find(p))
            .collect(),
        ssh_keys: &h.ssh_keys,
        root_password: h.root_password.as_deref(),
        timezone: &h.timezone,
        roles: &h.roles,
        pxe: PxeCtx {
            kernel: h.pxe.kernel.clone(),
            initrd: h.pxe.initrd.clone(),
            kernel_url: abs(&h.pxe.kernel),
            initrd_url: abs(&h.pxe.initrd),
            append: h.pxe.append.join(" "),
        },
    }
}
