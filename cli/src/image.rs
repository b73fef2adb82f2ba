//! `cairn image build`: flags and printing; the work is in `cairn_image`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::Json;
use crate::output::{err, out, print_doc};
use crate::{Global, Status};
use cairn_common::kv;
use cairn_image::{self as image, Format};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build a disk image that boots under BIOS and UEFI from an OSTree commit (no VM, no installer).
    ///
    /// GPT disk: a BIOS boot partition, an EFI system partition (GRUB), /boot (ext4, extlinux)
    /// and the root (ext4) holding an OSTree sysroot with the commit deployed through libostree.
    /// Both loaders read ostree's own syslinux configuration, so upgrades and rollbacks inside the
    /// machine keep the menu current. Needs root (extlinux is installed through a loop mount).
    #[command(after_help = "\
Examples:
  cairn image build --repo repo --ref cairn/debian/12/x86_64 --format qcow2 --size 8G \\
      --out debian.qcow2 --karg console=ttyS0,115200n8
  cairn image build --repo repo --ref cairn/debian/12/x86_64 --format vhd --size 30G --out azure.vhd \\
      --remote cairn=http://updates.example.com/repo")]
    Build(Box<BuildArgs>),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The OSTree repository holding the commit.
    #[arg(long)]
    repo: PathBuf,
    /// Ref (or commit checksum) to deploy.
    #[arg(long = "ref", value_name = "REF")]
    rev: String,
    /// Output format.
    #[arg(long, value_parser = crate::args::named::<Format>(), default_value = "qcow2")]
    format: Format,
    /// Virtual disk size, e.g. 8G or 4096M (rounded up to a whole MiB).
    #[arg(long, value_parser = image::parse_size)]
    size: u64,
    /// Size of the /boot partition.
    #[arg(long, value_parser = image::parse_size, default_value = "512M")]
    boot_size: u64,
    /// Output file (written atomically).
    #[arg(long = "out", value_name = "FILE")]
    out_file: PathBuf,
    /// Extra kernel argument (repeatable); root=UUID=... rw is always set.
    #[arg(long = "karg", value_name = "KARG")]
    kargs: Vec<String>,
    /// OSTree stateroot (OS) name.
    #[arg(long = "os", default_value = "default")]
    osname: String,
    /// Remote the machine upgrades from, NAME=URL; the deployment's origin becomes NAME:REF.
    #[arg(long, value_name = "NAME=URL", value_parser = parse_remote)]
    remote: Option<(String, String)>,
    /// UEFI Secure Boot: the ESP gets Debian's signed shim and GRUB instead of unsigned GRUB
    /// (Debian-signed kernels boot with Secure Boot on; see docs/image.md).
    #[arg(long)]
    secure_boot: bool,
    #[command(flatten)]
    out: Json,
}

/// `NAME=URL`: a remote without a URL could never be pulled from, so it is refused here.
fn parse_remote(s: &str) -> Result<(String, String), String> {
    let (name, url) = kv::split_owned(s, "NAME=URL").map_err(|e| e.to_string())?;
    if url.is_empty() {
        return Err(format!("`{s}`: expected NAME=URL with a non-empty URL"));
    }
    Ok((name, url))
}

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Build(a) => build(*a, global),
    }
}

fn build(a: BuildArgs, global: &Global) -> anyhow::Result<Status> {
    let opts = image::BuildOptions {
        repo: a.repo,
        rev: a.rev,
        format: a.format,
        size: a.size,
        boot_size: a.boot_size,
        out: a.out_file,
        kargs: a.kargs,
        osname: a.osname,
        remote: a.remote,
        esp_loader: if a.secure_boot {
            image::uefi::EspLoader::SecureBoot
        } else {
            image::uefi::EspLoader::Grub
        },
    };
    let started = std::time::Instant::now();
    let bar = (!global.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    let quiet = global.quiet;
    let result = image::build(&opts, &|step| match &bar {
        Some(b) => b.set_message(format!("image: {step}")),
        None if !quiet => err!("image: {step}"),
        None => {}
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result?;
    if a.out.json {
        print_doc("ImageBuildResult", &report)?;
    } else {
        out!(
            "{} ({:?}, {} MiB) deploys {} as {} in {:.1}s",
            report.out.display(),
            report.format,
            report.virtual_size >> 20,
            &report.commit[..12.min(report.commit.len())],
            report.osname,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(0)
}
