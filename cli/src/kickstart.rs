//! `cairn kickstart check|render|hosts`: flags and printing; the work is in `cairn_kickstart`.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;

use crate::args::Json;
use crate::output::{err, out, print_doc};
use crate::{Global, Status};
use cairn_kickstart::{self as kickstart, KickstartError, LoadOptions, Templates};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Validate an inventory: schema, MACs, addresses and subnets, presets, duplicates across
    /// hosts. Exits 1 and lists every problem as `file:line:col: ...` when there are any.
    #[command(
        after_help = "Examples:\n  cairn kickstart check --inventory kickstart/inventory.yaml\n  \
                            cairn kickstart check --inventory inv.yaml --json | jq '.errors[].code'"
    )]
    Check {
        /// The inventory YAML (defaults, roles, hosts).
        #[arg(long, short)]
        inventory: PathBuf,
        #[command(flatten)]
        out: Json,
    },
    /// Render every host to a kickstart, pxelinux/GRUB/iPXE configs and boot.ipxe, written
    /// atomically: OUT is replaced in one rename, or left as it was on any error.
    #[command(
        after_help = "Output layout:\n  OUT/ks/<mac>                       kickstart (one per MAC)\n  \
        OUT/pxelinux.cfg/01-<aa-bb-..>     pxelinux (BIOS PXE)\n  \
        OUT/grub/grub.cfg-01-<aa-bb-..>    GRUB (UEFI network boot)\n  \
        OUT/ipxe/<mac>                     iPXE script\n  \
        OUT/boot.ipxe, OUT/manifest.json\n\n\
        Example:\n  cairn kickstart render --inventory inv.yaml --out /srv/tftp/cairn --server-url http://10.0.0.1:8080"
    )]
    Render {
        /// The inventory YAML.
        #[arg(long, short)]
        inventory: PathBuf,
        /// Output directory (created, or replaced if it holds an earlier render).
        #[arg(long, short)]
        out: PathBuf,
        /// A directory whose ks.cfg.tera, pxelinux.tera, grub.cfg.tera, ipxe.tera or
        /// boot.ipxe.tera replace the built-in templates of the same name.
        #[arg(long)]
        templates: Option<PathBuf>,
        /// Base URL of the boot server (overrides the inventory's `server:`).
        #[arg(long)]
        server_url: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Print the fully merged hosts (defaults <- roles <- host) as JSON, to see what a host gets.
    Hosts {
        #[arg(long, short)]
        inventory: PathBuf,
        /// Base URL of the boot server (overrides the inventory's `server:`).
        #[arg(long)]
        server_url: Option<String>,
    },
}

#[derive(Serialize)]
struct CheckReport {
    inventory: PathBuf,
    ok: bool,
    hosts: usize,
    errors: Vec<kickstart::Diagnostic>,
}

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Check { inventory, out } => check(inventory, out, global),
        Cmd::Render {
            inventory,
            out,
            templates,
            server_url,
            json,
        } => {
            let inv = kickstart::load(&inventory, &LoadOptions { server_url })?;
            let tpl = Templates::load(templates.as_deref())?;
            let report = kickstart::render_to_dir(&inv, &tpl, &out)?;
            if json.json {
                print_doc("RenderReport", &report)?;
            } else if !global.quiet {
                out!(
                    "rendered {} hosts ({} files) into {}",
                    report.hosts,
                    report.files,
                    out.display()
                );
            }
            Ok(0)
        }
        Cmd::Hosts {
            inventory,
            server_url,
        } => {
            let inv = kickstart::load(&inventory, &LoadOptions { server_url })?;
            let body = serde_json::json!({
                "inventory": inv.path, "server": inv.server, "hosts": inv.hosts,
            });
            print_doc("InventoryHosts", &body)?;
            Ok(0)
        }
    }
}

fn check(inventory: PathBuf, o: Json, global: &Global) -> anyhow::Result<Status> {
    let (hosts, errors) = match kickstart::load(&inventory, &LoadOptions::default()) {
        Ok(inv) => (inv.hosts.len(), vec![]),
        Err(e @ (KickstartError::Invalid(_) | KickstartError::Yaml(_))) => (0, e.diagnostics()),
        Err(e) => return Err(e.into()),
    };
    let ok = errors.is_empty();
    if o.json {
        let report = CheckReport {
            inventory,
            ok,
            hosts,
            errors,
        };
        print_doc("InventoryCheck", &report)?;
    } else if ok {
        if !global.quiet {
            out!("{}: ok, {hosts} hosts", inventory.display());
        }
    } else {
        for e in &errors {
            err!("{e}");
        }
        err!(
            "{}: {} problem{}",
            inventory.display(),
            errors.len(),
            if errors.len() == 1 { "" } else { "s" }
        );
    }
    Ok(if ok { 0 } else { 1 })
}
