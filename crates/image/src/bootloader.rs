//! BIOS boot through syslinux: gptmbr.bin in the MBR, extlinux in the boot filesystem.
//!
//! `extlinux --install` only works on a mounted filesystem, the one step that needs a loop
//! device. It runs on the boot filesystem image before it is copied into the disk, so no
//! partition device nodes are needed (they do not appear without udev).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::disk::{self, run};
use super::ImageError;

/// The syslinux header ostree keeps above its regenerated LABEL entries.
///
/// `UI menu.c32` gives a menu whose first entry (ostree's default deployment) boots after the
/// timeout and whose entries can be edited with Tab (the Packer qemu-disk profile uses that: 5 s
/// leaves room for Packer's VNC typing to arrive under TCG, where 3 s did not).
/// `SERIAL 0 115200` mirrors it on ttyS0 for headless VMs.
pub const SYSLINUX_HEADER: &str = "\
# cairn: ostree regenerates the LABEL entries below on every deployment change and keeps these lines.
SERIAL 0 115200
UI menu.c32
PROMPT 0
TIMEOUT 50
MENU TITLE cairn
";

/// Selects ostree's syslinux backend for the sysroot at `root` before anything is deployed:
/// ostree reads the current config through `boot/syslinux/syslinux.cfg` and writes
/// `loader.N/syslinux.cfg`, so a first (header-only) config must exist in `loader.0`. The same
/// mechanism keeps it current when the machine later upgrades or rolls back. Runs as
/// [`ProvisionOptions::before_deploy`](cairn_ostree::deploy::ProvisionOptions), hence
/// `io::Result`; each error names its path.
pub fn select_syslinux_backend(root: &Path) -> std::io::Result<()> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))
    };
    let boot = root.join("boot");
    for dir in ["loader.0", "syslinux"] {
        std::fs::create_dir_all(boot.join(dir)).map_err(at(&boot.join(dir)))?;
    }
    let cfg = boot.join("loader.0/syslinux.cfg");
    std::fs::write(&cfg, SYSLINUX_HEADER).map_err(at(&cfg))?;
    for (target, link) in [
        ("loader.0", "loader"),
        ("../loader/syslinux.cfg", "syslinux/syslinux.cfg"),
    ] {
        let link = boot.join(link);
        std::os::unix::fs::symlink(target, &link).map_err(at(&link))?;
    }
    Ok(())
}

/// Where Debian's syslinux-common and extlinux packages put the pieces.
const MBR_CANDIDATES: &[&str] = &[
    "/usr/lib/syslinux/mbr/gptmbr.bin",
    "/usr/lib/EXTLINUX/gptmbr.bin",
];
const MODULE_DIRS: &[&str] = &["/usr/lib/syslinux/modules/bios"];
/// menu.c32 and the libraries it loads.
const MODULES: &[&str] = &["menu.c32", "libutil.c32", "libcom32.c32"];

fn find(candidates: &[&str], what: &str) -> Result<PathBuf, ImageError> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| ImageError::Tool {
            cmd: what.to_owned(),
            msg: format!(
                "not found in {} (Debian packages extlinux and syslinux-common; run scripts/setup.sh)",
                candidates.join(", ")
            ),
        })
}

/// Copies the menu modules into `boot/syslinux/` of the staging boot tree.
pub fn stage_modules(boot_tree: &Path) -> Result<(), ImageError> {
    let dir = find(MODULE_DIRS, "syslinux BIOS modules")?;
    let dest = boot_tree.join("syslinux");
    std::fs::create_dir_all(&dest).map_err(|e| ImageError::io(&dest, e))?;
    for m in MODULES {
        let src = dir.join(m);
        std::fs::copy(&src, dest.join(m)).map_err(|e| ImageError::io(&src, e))?;
    }
    Ok(())
}

/// Unmounts and removes the mount point on every exit path.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Installs extlinux into `/syslinux` of the ext4 image `boot_fs`.
pub fn install_extlinux(boot_fs: &Path, work: &Path) -> Result<(), ImageError> {
    let mnt = work.join("mnt-boot");
    std::fs::create_dir_all(&mnt).map_err(|e| ImageError::io(&mnt, e))?;
    run(Command::new("mount")
        .args(["-o", "loop"])
        .arg(boot_fs)
        .arg(&mnt))?;
    let guard = Mounted(mnt.clone());
    run(Command::new("extlinux")
        .arg("--install")
        .arg(mnt.join("syslinux")))?;
    drop(guard);
    Ok(())
}

/// Writes gptmbr.bin's boot code (the first 440 bytes: the partition table area stays sgdisk's)
/// and stores the boot partition's start in its boot sector's "hidden sectors" field: extlinux
/// installed on the bare filesystem image recorded 0 there.
pub fn finish_disk(disk_path: &Path, boot_offset: u64) -> Result<(), ImageError> {
    let mbr = find(MBR_CANDIDATES, "gptmbr.bin")?;
    let code = std::fs::read(&mbr).map_err(|e| ImageError::io(&mbr, e))?;
    if code.len() < 440 {
        return Err(ImageError::Tool {
            cmd: mbr.display().to_string(),
            msg: format!("{} bytes; expected at least 440", code.len()),
        });
    }
    disk::write_at(disk_path, 0, &code[..440])?;

    const HIDDEN_SECTORS: u64 = 0x1c;
    let current = disk::read_at(disk_path, boot_offset + HIDDEN_SECTORS, 4)?;
    if current == [0, 0, 0, 0] {
        let lba = u32::try_from(boot_offset / 512).map_err(|_| {
            ImageError::Size("the boot partition must start below 2 TiB".to_owned())
        })?;
        disk::write_at(disk_path, boot_offset + HIDDEN_SECTORS, &lba.to_le_bytes())?;
    }
    Ok(())
}
