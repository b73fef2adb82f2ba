//! Writing the disk: wiping, the GPT (sgdisk), block devices per partition (partition nodes on
//! real disks that have them, `losetup --offset --sizelimit` otherwise: loop devices never get
//! partition nodes without udev), filesystems and mounts. Everything attached or mounted is
//! released on every exit path ([`Session`]'s drop).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::parse::Fs;
use crate::plan::{Plan, PlannedPartition, MIB};
use crate::InstallError;

/// Runs a command; a failure carries its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, InstallError> {
    cairn_common::tool::run(
        cmd,
        "not installed (scripts/setup.sh installs it; cairn_install::TOOLS lists them all)",
    )
    .map_err(|f| InstallError::Tool {
        cmd: f.cmd.replace('"', ""),
        msg: f.msg,
    })
}

/// The size of a block device or image file, in bytes.
pub(crate) fn size_of(path: &Path) -> Result<(u64, bool), InstallError> {
    use std::io::Seek;
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path).map_err(|e| InstallError::Target {
        path: path.to_path_buf(),
        msg: format!("{e} (create an image file first, e.g. `truncate -s 20G disk.img`)"),
    })?;
    let block = meta.file_type().is_block_device();
    if !block && !meta.is_file() {
        return Err(InstallError::Target {
            path: path.to_path_buf(),
            msg: "neither a block device nor a regular file".into(),
        });
    }
    let mut f = std::fs::File::open(path).map_err(|e| InstallError::io(path, e))?;
    let size = f
        .seek(std::io::SeekFrom::End(0))
        .map_err(|e| InstallError::io(path, e))?;
    Ok((size, block))
}

/// Zeroes the first and last MiB: the MBR boot code, the protective MBR and both GPT copies.
/// Without them neither BIOS nor UEFI firmware finds anything to boot.
pub(crate) fn zap(path: &Path, size: u64) -> Result<(), InstallError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| InstallError::io(path, e))?;
    let zeros = vec![0u8; MIB as usize];
    f.write_all_at(&zeros, 0)
        .map_err(|e| InstallError::io(path, e))?;
    if size >= 2 * MIB {
        f.write_all_at(&zeros, size - MIB)
            .map_err(|e| InstallError::io(path, e))?;
    }
    f.sync_all().map_err(|e| InstallError::io(path, e))
}

/// The GPT, without the legacy-bootable attribute: that is set last, with the boot code.
pub(crate) fn partition(path: &Path, plan: &Plan) -> Result<(), InstallError> {
    let mut cmd = Command::new("sgdisk");
    cmd.arg("--clear");
    for p in &plan.partitions {
        let first = p.offset / 512;
        let last = (p.offset + p.size) / 512 - 1;
        cmd.arg(format!("--new={}:{first}:{last}", p.number))
            .arg(format!("--typecode={}:{}", p.number, p.type_code))
            .arg(format!("--change-name={}:{}", p.number, p.name));
    }
    run(cmd.arg(path))?;
    Ok(())
}

/// True when the kernel's node for `p` exists and spans exactly the planned range: a node left
/// from the old table (the kernel refuses to re-read a table while a partition is in use) must
/// never be written through.
fn node_matches(node: &str, p: &PlannedPartition) -> bool {
    let Some(name) = Path::new(node).file_name() else {
        return false;
    };
    let sys = Path::new("/sys/class/block").join(name);
    let read = |f: &str| -> Option<u64> {
        std::fs::read_to_string(sys.join(f))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    std::fs::metadata(node).is_ok()
        && read("start") == Some(p.offset / 512)
        && read("size") == Some(p.size / 512)
}

/// What the installer holds: loop devices and mounts, released in reverse order on drop.
pub(crate) struct Session {
    pub disk: PathBuf,
    pub block: bool,
    loops: Vec<String>,
    mounts: Vec<PathBuf>,
    rescanned: bool,
}

impl Session {
    pub fn new(disk: &Path, block: bool) -> Session {
        Session {
            disk: disk.to_path_buf(),
            block,
            loops: Vec::new(),
            mounts: Vec::new(),
            rescanned: false,
        }
    }

    /// A block device for `len` bytes at `offset` of the disk.
    pub fn loop_at(&mut self, offset: u64, len: u64) -> Result<String, InstallError> {
        let dev = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(format!("--offset={offset}"))
            .arg(format!("--sizelimit={len}"))
            .arg(&self.disk))?
        .trim()
        .to_owned();
        self.loops.push(dev.clone());
        Ok(dev)
    }

    /// The partition's device node when the kernel made one (real disks with devtmpfs), else a
    /// loop device over its byte range.
    pub fn partition_device(&mut self, p: &PlannedPartition) -> Result<String, InstallError> {
        // A loop device as TARGET never gets partition nodes here, and partitions `partx` adds to
        // one outlive its detach and trip the next user of that loop device: ranges only.
        let is_loop = self
            .disk
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("loop"));
        if self.block && !is_loop {
            if !self.rescanned {
                // Tells the kernel about the new table; fails harmlessly where nodes never appear.
                let _ = Command::new("partx").arg("-u").arg(&self.disk).output();
                self.rescanned = true;
            }
            let disk = self.disk.display().to_string();
            let sep = if disk.ends_with(|c: char| c.is_ascii_digit()) {
                "p"
            } else {
                ""
            };
            let node = format!("{disk}{sep}{}", p.number);
            for _ in 0..20 {
                if node_matches(&node, p) {
                    return Ok(node);
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        self.loop_at(p.offset, p.size)
    }

    pub fn mount(&mut self, dev: &str, at: &Path) -> Result<(), InstallError> {
        std::fs::create_dir_all(at).map_err(|e| InstallError::io(at, e))?;
        run(Command::new("mount").arg(dev).arg(at))?;
        self.mounts.push(at.to_path_buf());
        Ok(())
    }

    /// Takes over a mount made elsewhere (released with the others).
    pub fn adopt_mount(&mut self, at: &Path) {
        self.mounts.push(at.to_path_buf());
    }

    /// Unmounts and detaches everything, reporting the first failure.
    pub fn release(&mut self) -> Result<(), InstallError> {
        let mut first = None;
        while let Some(m) = self.mounts.pop() {
            if let Err(e) = run(Command::new("umount").arg(&m)) {
                let _ = Command::new("umount").arg("-l").arg(&m).output();
                first.get_or_insert(e);
            }
        }
        while let Some(l) = self.loops.pop() {
            if let Err(e) = run(Command::new("losetup").arg("-d").arg(&l)) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// A random RFC 4122 UUID from the kernel, chosen before mkfs so fstab and `root=` can name it.
pub(crate) fn new_uuid() -> Result<String, InstallError> {
    let p = Path::new("/proc/sys/kernel/random/uuid");
    Ok(std::fs::read_to_string(p)
        .map_err(|e| InstallError::io(p, e))?
        .trim()
        .to_owned())
}

pub(crate) fn mkfs(dev: &str, fs: Fs, uuid: &str, label: &str) -> Result<(), InstallError> {
    match fs {
        Fs::Xfs => run(Command::new("mkfs.xfs")
            .args(["-q", "-f", "-m"])
            .arg(format!("uuid={uuid}"))
            .args(["-L", label, dev]))?,
        // No 64bit feature on /boot: syslinux's ext4 reader is the conservative one.
        Fs::Ext4 if label == "boot" => run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-O", "^64bit", "-U", uuid, "-L", label, dev]))?,
        Fs::Ext4 => {
            run(Command::new("mkfs.ext4").args(["-q", "-F", "-U", uuid, "-L", label, dev]))?
        }
    };
    Ok(())
}

/// FAT32 for the ESP; returns its volume id as fstab and blkid spell it (`ABCD-1234`).
pub(crate) fn mkfs_esp(dev: &str) -> Result<String, InstallError> {
    let hex: String = new_uuid()?
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    // -I: the device is ours, exactly the ESP's range; mkfs.vfat's "partitions on the device"
    // guard trips on a reused loop device's stale view.
    run(Command::new("mkfs.vfat").args(["-I", "-F", "32", "-n", "EFI", "-i", &hex, dev]))?;
    Ok(format!("{}-{}", &hex[..4], &hex[4..]))
}
