//! `cairn packer render|profiles`: flags and printing; the work is in `cairn_packer`.

use std::path::PathBuf;

use clap::Subcommand;

use crate::args::Json;
use crate::output::{out, print_doc};
use crate::{Global, Status};
use cairn_packer as packer;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Write a Packer (HCL2) template directory for a profile.
    ///
    /// The directory holds PROFILE.pkr.hcl, the files it uses (http/ks.cfg, scripts/vhd.sh) and,
    /// when --var is given, cairn.auto.pkrvars.hcl (Packer loads it by itself). Build it with
    /// `packer build DIR` from a directory where the output directory does not exist yet.
    #[command(after_help = "\
Built-in profiles:
  qemu-iso       install from an installer ISO with a generated kickstart (BIOS) -> qcow2, vhd
  qemu-iso-efi   the same under UEFI (OVMF)
  qemu-disk      boot a `cairn image build` image once -> qcow2, vhd (disk_size fitted to the image)
  openstack      boot a Glance image on OpenStack and snapshot it

Examples:
  cairn packer render --profile qemu-disk --out build/packer --var base_image=cairn.qcow2 --var accelerator=tcg
  cd build && packer validate packer && packer build packer")]
    Render {
        /// A built-in profile name or a profile YAML file (see packer/profiles/).
        #[arg(long, short)]
        profile: String,
        /// Directory to write the template into (created if missing).
        #[arg(long, short)]
        out: PathBuf,
        /// Override a template variable, KEY=VALUE (typed: numbers must be whole numbers).
        #[arg(long = "var", value_name = "KEY=VALUE", value_parser = packer::parse_var)]
        vars: Vec<(String, String)>,
        #[command(flatten)]
        json: Json,
    },
    /// List the built-in profiles.
    Profiles {
        #[command(flatten)]
        out: Json,
    },
}

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Render {
            profile,
            out,
            vars,
            json,
        } => {
            let p = packer::profile::load(&profile)?;
            let r = packer::render(&p, &out, &vars)?;
            if json.json {
                print_doc("PackerRender", &r)?;
            } else if !global.quiet {
                for f in &r.files {
                    out!("{}", f.display());
                }
            }
            Ok(0)
        }
        Cmd::Profiles { out: o } => profiles(o),
    }
}

fn profiles(o: Json) -> anyhow::Result<Status> {
    let all = packer::profile::BUILTIN
        .iter()
        .map(|(name, _)| packer::profile::load(name))
        .collect::<Result<Vec<_>, _>>()?;
    if o.json {
        let list: Vec<_> = all
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name, "profileKind": p.kind, "description": p.description,
                })
            })
            .collect();
        print_doc(
            "PackerProfileList",
            &serde_json::json!({ "profiles": list }),
        )?;
    } else {
        for p in &all {
            out!("{:<14} {}", p.name, p.description);
        }
    }
    Ok(0)
}
