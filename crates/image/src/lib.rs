//! Native disk images from an OSTree commit, without a VM.
//!
//! Steps: pick filesystem UUIDs; deploy the commit into a staging sysroot through libostree (kargs
//! `root=UUID=...`); split its `boot/` off; `mkfs.ext4 -d` each tree into its own image; install
//! extlinux into the boot image; fill an ESP image with GRUB for UEFI (`uefi`); lay out a sparse GPT disk with sgdisk and `dd` the images in at
//! their partition offsets; convert with qemu-img. Everything is MiB-aligned, so a VHD is valid
//! for Azure as is.

pub mod bootloader;
mod disk;
mod staging;
pub mod uefi;

use std::path::{Path, PathBuf};

use cairn_common::named::Named;
use cairn_ostree::deploy;
use serde::Serialize;

pub use disk::{parse_size, Layout, Partition};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    // The cause is the `source`, which error reports print after the path.
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{cmd}: {msg}")]
    Tool { cmd: String, msg: String },
    #[error("size: {0}")]
    Size(String),
    #[error("--karg {0:?}: root= is chosen by cairn (the root filesystem's UUID); drop it")]
    RootKarg(String),
    #[error("--os {0:?}: a stateroot name is letters, digits, `-`, `_` and `.`")]
    BadOsName(String),
    #[error("cairn image build needs root: extlinux is installed through a loop mount, and the image's files must keep their owners")]
    NotRoot,
    #[error(transparent)]
    Deploy(#[from] deploy::DeployError),
}

impl ImageError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ImageError {
        ImageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Qcow2,
    /// Fixed-size VHD (Azure's format).
    Vhd,
}

impl Named for Format {
    const ALL: &'static [Format] = &[Format::Raw, Format::Qcow2, Format::Vhd];
    fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub repo: PathBuf,
    /// Ref or commit checksum in `repo`.
    pub rev: String,
    pub format: Format,
    /// Virtual disk size in bytes (rounded up to MiB).
    pub size: u64,
    pub boot_size: u64,
    pub out: PathBuf,
    /// Extra kernel arguments (after `root=UUID=... rw`).
    pub kargs: Vec<String>,
    pub osname: String,
    /// Remote (name, URL) the image upgrades from; its origin becomes `NAME:REF`.
    pub remote: Option<(String, String)>,
    /// The ESP's boot chain: unsigned GRUB, or shim + Debian's signed GRUB (`--secure-boot`).
    pub esp_loader: uefi::EspLoader,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildReport {
    pub out: PathBuf,
    pub format: Format,
    pub virtual_size: u64,
    pub commit: String,
    pub osname: String,
    pub deployment: PathBuf,
    pub origin: String,
    pub kargs: Vec<String>,
    pub root_uuid: String,
    pub boot_uuid: String,
    /// The ESP's FAT volume serial as `blkid` shows it (`XXXX-XXXX`).
    pub esp_uuid: String,
    pub secure_boot: bool,
    pub layout: Layout,
}

/// A random RFC 4122 UUID from the kernel, chosen before mkfs so it can go into `root=UUID=`.
fn new_uuid() -> Result<String, ImageError> {
    let p = Path::new("/proc/sys/kernel/random/uuid");
    Ok(std::fs::read_to_string(p)
        .map_err(|e| ImageError::io(p, e))?
        .trim()
        .to_owned())
}

/// Appends the image's mounts to the deployment's /etc/fstab.
fn append_fstab(deployment: &Path, lines: &str) -> Result<(), ImageError> {
    let fstab = deployment.join("etc/fstab");
    let mut text = std::fs::read_to_string(&fstab).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(lines);
    std::fs::write(&fstab, text).map_err(|e| ImageError::io(&fstab, e))
}

fn valid_osname(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The ESP's FAT image in `work`, holding the UEFI loader for the boot filesystem `boot_uuid`;
/// returns it with its volume serial as `blkid` shows it.
fn make_esp(
    work: &Path,
    layout: &Layout,
    boot_uuid: &str,
    loader: uefi::EspLoader,
) -> Result<(PathBuf, String), ImageError> {
    let esp_img = work.join("esp.vfat");
    let esp_tree = work.join("esp");
    uefi::populate_esp_with(&esp_tree, boot_uuid, loader)?;
    // The FAT serial comes from the boot filesystem's UUID: unique per image, no second draw.
    let serial: String = boot_uuid.chars().filter(|c| *c != '-').take(8).collect();
    disk::mkfs_vfat(&esp_img, layout.esp.size, &esp_tree, &serial, "ESP")?;
    let shown = format!("{}-{}", &serial[..4], &serial[4..]).to_uppercase();
    Ok((esp_img, shown))
}

/// Refuses what would fail late or build an unbootable image: not root, bad kargs, bad `--os`.
fn check_inputs(opts: &BuildOptions) -> Result<(), ImageError> {
    if !rustix::process::geteuid().is_root() {
        return Err(ImageError::NotRoot);
    }
    // The same rules as `cairn kargs` (no control characters, balanced quotes); kept as given
    // otherwise, so repeated keys such as `console=tty0 console=ttyS0` stay repeated.
    for k in &opts.kargs {
        deploy::kargs::validate(k)?;
    }
    if let Some(k) = opts.kargs.iter().find(|k| k.starts_with("root=")) {
        return Err(ImageError::RootKarg(k.clone()));
    }
    if !valid_osname(&opts.osname) {
        return Err(ImageError::BadOsName(opts.osname.clone()));
    }
    Ok(())
}

/// Builds the image; `progress` receives one line per step.
pub fn build(opts: &BuildOptions, progress: &dyn Fn(&str)) -> Result<BuildReport, ImageError> {
    check_inputs(opts)?;
    let layout = disk::layout(opts.size, opts.boot_size)?;
    let out_dir = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| ImageError::io(&out_dir, e))?;
    // Next to the output: the raw disk is as large as the image, and /tmp may be a small tmpfs.
    let staging = staging::Staging::new_in(&out_dir)?;
    let work = staging.path();
    let root = work.join("sysroot");
    std::fs::create_dir_all(&root).map_err(|e| ImageError::io(&root, e))?;

    let root_uuid = new_uuid()?;
    let boot_uuid = new_uuid()?;
    let mut kargs = vec![format!("root=UUID={root_uuid}"), "rw".to_owned()];
    kargs.extend(opts.kargs.iter().cloned());
    let fstab = format!(
        "# cairn image build: the physical root and the boot filesystem, by UUID.\n\
         UUID={root_uuid} / ext4 defaults 1 1\n\
         UUID={boot_uuid} /boot ext4 defaults 1 2\n"
    );

    progress(&format!("deploying {} into a staging sysroot", opts.rev));
    let deployed = deploy::provision(
        &root,
        &deploy::ProvisionOptions {
            repo: &opts.repo,
            rev: &opts.rev,
            osname: &opts.osname,
            kargs: &kargs,
            remote: opts.remote.as_ref().map(|(n, u)| (n.as_str(), u.as_str())),
            before_deploy: Some(&bootloader::select_syslinux_backend),
        },
    )?;
    append_fstab(&root.join(&deployed.deployment), &fstab)?;

    // The physical root keeps an empty /boot as the mount point of the boot filesystem.
    let boot_tree = work.join("boot");
    std::fs::rename(root.join("boot"), &boot_tree).map_err(|e| ImageError::io(&boot_tree, e))?;
    std::fs::create_dir(root.join("boot")).map_err(|e| ImageError::io(&root, e))?;
    bootloader::stage_modules(&boot_tree)?;

    progress("making the boot filesystem");
    let boot_img = work.join("boot.ext4");
    // No 64bit feature: syslinux's ext4 reader is the conservative one.
    disk::mkfs_ext4(
        &boot_img,
        layout.boot.size,
        &boot_tree,
        &boot_uuid,
        "boot",
        &["^64bit"],
    )?;
    progress("installing extlinux");
    bootloader::install_extlinux(&boot_img, work)?;

    progress("making the EFI system partition");
    let (esp_img, esp_uuid) = make_esp(work, &layout, &boot_uuid, opts.esp_loader)?;

    progress("making the root filesystem");
    let root_img = work.join("root.ext4");
    disk::mkfs_ext4(&root_img, layout.root.size, &root, &root_uuid, "root", &[])?;
    disk::set_immutable(&root_img, &format!("/{}", deployed.deployment.display()))?;

    progress("assembling the disk");
    let raw = work.join("disk.raw");
    disk::sparse_file(&raw, layout.disk_size)?;
    disk::partition(&raw, &layout)?;
    disk::dd_into(&esp_img, &raw, layout.esp.offset)?;
    disk::dd_into(&boot_img, &raw, layout.boot.offset)?;
    disk::dd_into(&root_img, &raw, layout.root.offset)?;
    bootloader::finish_disk(&raw, layout.boot.offset)?;
    for f in [&esp_img, &boot_img, &root_img] {
        let _ = std::fs::remove_file(f);
    }

    // Written next to the output and renamed, so a failed build never leaves a partial image.
    let tmp_out = work.join("out.img");
    match opts.format {
        Format::Raw => std::fs::rename(&raw, &tmp_out).map_err(|e| ImageError::io(&raw, e))?,
        f => {
            progress(&format!("converting to {}", f.name()));
            disk::convert(&raw, f, &tmp_out)?;
        }
    }
    std::fs::rename(&tmp_out, &opts.out).map_err(|e| ImageError::io(&opts.out, e))?;

    Ok(BuildReport {
        out: opts.out.clone(),
        format: opts.format,
        virtual_size: layout.disk_size,
        commit: deployed.commit,
        osname: opts.osname.clone(),
        deployment: deployed.deployment,
        origin: deployed.origin_refspec,
        kargs: deployed.kargs,
        root_uuid,
        boot_uuid,
        esp_uuid,
        secure_boot: opts.esp_loader == uefi::EspLoader::SecureBoot,
        layout,
    })
}
