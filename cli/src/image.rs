//! `cairn image build`: flags and printing; the work is in `cairn_image`.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::Json;
use crate::output::{err, out, print_doc};
use crate::{Global, Status};
use cairn_common::kv;
use cairn_common::named::Named;
use cairn_image::{self as image, Format};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build a disk image that boots under BIOS and UEFI from an OSTree commit (no VM, no
    /// installer), or with `--format pxe` the kernel and initramfs of a PXE installer for it.
    ///
    /// GPT disk: a BIOS boot partition, an EFI system partition (GRUB), /boot (ext4, extlinux)
    /// and the root (ext4) holding an OSTree sysroot with the commit deployed through libostree.
    /// Both loaders read ostree's own syslinux configuration, so upgrades and rollbacks inside the
    /// machine keep the menu current. Needs root (extlinux is installed through a loop mount).
    ///
    /// `--format pxe --out DIR` writes DIR/vmlinuz (the commit's kernel) and DIR/initrd.img: this
    /// cairn binary, the tools `cairn install` runs, busybox and the commit's disk/NIC/filesystem
    /// modules, with an /init that DHCPs, fetches `inst.ks=URL` and runs `cairn install`.
    #[command(after_help = "\
Examples:
  cairn image build --repo repo --ref cairn/debian/12/x86_64 --format qcow2 --size 8G \\
      --out debian.qcow2 --karg console=ttyS0,115200n8
  cairn image build --repo repo --ref cairn/debian/12/x86_64 --format vhd --size 30G --out azure.vhd \\
      --remote cairn=http://updates.example.com/repo
  cairn image build --repo repo --ref cairn/debian/12/x86_64 --format pxe \\
      --out /srv/cairn/files/images/pxeboot")]
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
    /// Virtual disk size, e.g. 8G or 4096M (rounded up to a whole MiB); required for disks.
    #[arg(long, value_parser = image::parse_size)]
    size: Option<u64>,
    /// Size of the /boot partition.
    #[arg(long, value_parser = image::parse_size, default_value = "512M")]
    boot_size: u64,
    /// Output file (written atomically); a directory for `--format pxe`.
    #[arg(long = "out", value_name = "FILE|DIR")]
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
    if a.format == Format::Pxe {
        return build_pxe(a, global);
    }
    let Some(size) = a.size else {
        anyhow::bail!("--size is required for --format {}", a.format.name());
    };
    let opts = image::BuildOptions {
        repo: a.repo,
        rev: a.rev,
        format: a.format,
        size,
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
    let report = with_progress(global, |p| image::build(&opts, p))?;
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

/// Runs `f` with a spinner on a terminal, plain `image: STEP` lines on stderr otherwise.
fn with_progress<T>(
    global: &Global,
    f: impl FnOnce(&dyn Fn(&str)) -> Result<T, image::ImageError>,
) -> Result<T, image::ImageError> {
    let bar = (!global.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(std::time::Duration::from_millis(120));
        b
    });
    let quiet = global.quiet;
    let result = f(&|step| match &bar {
        Some(b) => b.set_message(format!("image: {step}")),
        None if !quiet => err!("image: {step}"),
        None => {}
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    result
}

/// `--format pxe`: the installer's kernel and initramfs for the commit, with this binary inside.
fn build_pxe(a: BuildArgs, global: &Global) -> anyhow::Result<Status> {
    let cairn = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the running cairn binary: {e}"))?;
    let opts = image::PxeOptions {
        repo: a.repo,
        rev: a.rev,
        out: a.out_file,
        cairn,
        // The installer carries exactly what `cairn install` runs and copies.
        tools: cairn_install::TOOLS
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
        files: cairn_install::FILES.iter().map(PathBuf::from).collect(),
    };
    let started = std::time::Instant::now();
    let report = with_progress(global, |p| image::build_pxe(&opts, p))?;
    if a.out.json {
        print_doc("PxeBuildResult", &report)?;
    } else {
        out!(
            "{}: vmlinuz ({}) and initrd.img ({} MiB, {} files, {} modules) for {} in {:.1}s",
            report.out.display(),
            report.kernel_version,
            report.initrd_size >> 20,
            report.files,
            report.modules.len(),
            &report.commit[..12.min(report.commit.len())],
            started.elapsed().as_secs_f64()
        );
        if !report.modules_absent.is_empty() {
            err!(
                "image: this kernel has no {} (neither module nor built in); machines needing them will not find their disk or NIC",
                report.modules_absent.join(", ")
            );
        }
    }
    Ok(0)
}
