//! `cairn install`: a machine's disk from the same kickstart cairn renders and serves to anaconda
//! hosts (one source of truth). Parse and plan first (parse.rs, commands.rs, post.rs, plan.rs: a
//! bad kickstart or a small disk never touches it), then partition, LVM and filesystems
//! (disk.rs, lvm.rs), the libostree deployment pulled straight from the kickstart's remote, the
//! target's configuration (target.rs, network.rs), the BIOS boot loader last, and the kickstart's
//! built or failed callback (http.rs).

mod commands;
mod disk;
pub mod http;
mod lvm;
pub mod network;
pub mod parse;
pub mod plan;
pub mod post;
mod run;
mod target;

use std::path::PathBuf;

use serde::Serialize;

pub use parse::{FinalAction, Kickstart};
pub use plan::Plan;
pub use run::install;

/// Every external program `cairn install` runs. An installer environment (the PXE initramfs)
/// must carry all of them, plus [`FILES`].
pub const TOOLS: &[&str] = &[
    "sgdisk",
    "partx",
    "losetup",
    "lvm",
    "mkfs.vfat",
    "mkfs.xfs",
    "mkfs.ext4",
    "mount",
    "umount",
    "extlinux",
    "grub-mkstandalone",
    "mcopy",
    "cp",
];

/// Files (and one directory) the boot loader installs read from the installer environment:
/// syslinux's for BIOS (Debian's syslinux-common and extlinux), GRUB's x86_64-efi modules, from
/// which grub-mkstandalone builds the UEFI loader (grub-efi-amd64-bin), and the glibc code-page
/// converter mcopy needs to write the ESP (libc-bin, libc6).
pub const FILES: &[&str] = &[
    "/usr/lib/syslinux/mbr/gptmbr.bin",
    "/usr/lib/syslinux/modules/bios/menu.c32",
    "/usr/lib/syslinux/modules/bios/libutil.c32",
    "/usr/lib/syslinux/modules/bios/libcom32.c32",
    "/usr/lib/grub/x86_64-efi",
    // mcopy converts FAT short names through iconv's CP850 (mtools' default code page): without
    // glibc's converter it cannot open the ESP at all.
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules",
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.d",
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache",
    "/usr/lib/x86_64-linux-gnu/gconv/IBM850.so",
];

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{}", kickstart_msg(source_name, *line, msg))]
    Kickstart {
        source_name: String,
        line: usize,
        msg: String,
    },
    #[error("fetching the kickstart {url}: {msg}")]
    Fetch { url: String, msg: String },
    #[error(
        "the target disk is too small: it has {} MiB, this kickstart needs at least {} MiB; \
         use a larger disk or smaller sizes in the inventory",
        have >> 20,
        need >> 20
    )]
    DiskTooSmall { have: u64, need: u64 },
    #[error("target {path}: {msg}")]
    Target { path: PathBuf, msg: String },
    #[error("{cmd}: {msg}")]
    Tool { cmd: String, msg: String },
    // The cause is the `source`, which error reports print after the path.
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cairn install needs root (partitioning, loop devices, mounts)")]
    NotRoot,
    #[error(transparent)]
    Deploy(#[from] cairn_ostree::deploy::DeployError),
    #[error(transparent)]
    Image(#[from] cairn_image::ImageError),
    #[error(transparent)]
    Failpoint(#[from] cairn_common::failpoint::Triggered),
}

fn kickstart_msg(source: &str, line: usize, msg: &str) -> String {
    if line == 0 {
        format!("{source}: {msg}")
    } else {
        format!("{source}:{line}: {msg}")
    }
}

impl InstallError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> InstallError {
        InstallError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// A kickstart file path or an http:// URL (with its `?token=`).
    pub kickstart: String,
    /// A block device or a disk image file (which must exist; its size is the disk's).
    pub target: PathBuf,
    /// GPG keyrings imported for the kickstart's remote (when it verifies signatures).
    pub gpg_keys: Vec<PathBuf>,
}

/// What a callback POST did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Callback {
    pub url: String,
    /// HTTP status, or `None` when no answer came.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// What was installed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallResult {
    pub target: PathBuf,
    /// The kickstart file, or its URL without the token.
    pub kickstart: String,
    pub commit: String,
    pub osname: String,
    /// Relative to the root filesystem, e.g. `ostree/deploy/cairn/deploy/CSUM.0`.
    pub deployment: PathBuf,
    pub origin: String,
    pub kargs: Vec<String>,
    pub plan: Plan,
    /// Filesystem UUID per mount point (`/`, `/boot`, `/boot/efi`, `/var`).
    pub uuids: std::collections::BTreeMap<String, String>,
    /// Files written under the deployment's /etc (and root's authorized_keys), absolute as the
    /// booted host sees them.
    pub files: Vec<String>,
    pub final_action: FinalAction,
    pub built: Option<Callback>,
}
