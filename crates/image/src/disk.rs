//! The disk: GPT layout (sgdisk), filesystem images (`mkfs.ext4 -d`, `mkfs.vfat` + `mcopy`),
//! assembly (`dd`) and conversion (`qemu-img`). No step mounts anything except extlinux's install (see bootloader.rs).

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::ImageError;

pub const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;

/// One GPT partition, in bytes from the start of the disk.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    pub number: u32,
    pub name: &'static str,
    /// sgdisk type code: EF02 BIOS boot, EF00 EFI system, 8300 Linux filesystem.
    pub type_code: &'static str,
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    pub disk_size: u64,
    pub bios_boot: Partition,
    /// The EFI system partition (FAT32): the UEFI boot loader.
    pub esp: Partition,
    pub boot: Partition,
    pub root: Partition,
}

/// The ESP's size: FAT32 needs at least 65525 clusters (33 MiB with 512-byte clusters), and the
/// loaders take under 5 MiB; 64 MiB leaves room for a firmware update capsule or two.
pub const ESP_SIZE: u64 = 64 * MIB;

/// Everything MiB-aligned: partitions start on 1 MiB boundaries (what every partitioner does) and
/// the disk is a whole number of MiB (what Azure demands of a VHD). The last MiB stays free for
/// GPT's backup header.
pub fn layout(disk_size: u64, boot_size: u64) -> Result<Layout, ImageError> {
    let disk_size = disk_size.div_ceil(MIB) * MIB;
    let boot_size = boot_size.div_ceil(MIB) * MIB;
    let bios_boot = Partition {
        number: 1,
        name: "bios",
        type_code: "EF02",
        offset: MIB,
        size: MIB,
    };
    let esp = Partition {
        number: 2,
        name: "esp",
        type_code: "EF00",
        offset: 2 * MIB,
        size: ESP_SIZE,
    };
    let boot = Partition {
        number: 3,
        name: "boot",
        type_code: "8300",
        offset: esp.offset + esp.size,
        size: boot_size,
    };
    let root_offset = boot.offset + boot.size;
    let min_root = 64 * MIB;
    if disk_size < root_offset + min_root + MIB {
        return Err(ImageError::Size(format!(
            "{} MiB is too small: the ESP and /boot take {} MiB; give at least {} MiB",
            disk_size / MIB,
            root_offset / MIB,
            (root_offset + min_root + MIB) / MIB
        )));
    }
    let root = Partition {
        number: 4,
        name: "root",
        type_code: "8300",
        offset: root_offset,
        size: disk_size - root_offset - MIB,
    };
    Ok(Layout {
        disk_size,
        bios_boot,
        esp,
        boot,
        root,
    })
}

/// Runs a command, turning a failure into an error carrying its stderr.
pub fn run(cmd: &mut Command) -> Result<String, ImageError> {
    cairn_common::tool::run(cmd, "not installed (run scripts/setup.sh)").map_err(|f| {
        ImageError::Tool {
            cmd: f.cmd,
            msg: f.msg,
        }
    })
}

/// A sparse file of `size` bytes.
pub fn sparse_file(path: &Path, size: u64) -> Result<(), ImageError> {
    let f = std::fs::File::create(path).map_err(|e| ImageError::io(path, e))?;
    f.set_len(size).map_err(|e| ImageError::io(path, e))
}

/// Writes the GPT with sgdisk. The boot partition carries the "legacy BIOS bootable" attribute
/// (bit 2), which is how syslinux's gptmbr.bin finds the partition to chain to.
pub fn partition(disk: &Path, l: &Layout) -> Result<(), ImageError> {
    let mut cmd = Command::new("sgdisk");
    cmd.arg("--clear");
    for p in [&l.bios_boot, &l.esp, &l.boot, &l.root] {
        let first = p.offset / SECTOR;
        let last = (p.offset + p.size) / SECTOR - 1;
        cmd.arg(format!("--new={}:{first}:{last}", p.number))
            .arg(format!("--typecode={}:{}", p.number, p.type_code))
            .arg(format!("--change-name={}:{}", p.number, p.name));
    }
    cmd.arg(format!("--attributes={}:set:2", l.boot.number));
    cmd.arg(disk);
    run(&mut cmd)?;
    Ok(())
}

/// `mkfs.ext4 -d DIR` into a fresh image of `size` bytes, with a chosen UUID and label.
pub fn mkfs_ext4(
    image: &Path,
    size: u64,
    tree: &Path,
    uuid: &str,
    label: &str,
    extra_features: &[&str],
) -> Result<(), ImageError> {
    sparse_file(image, size)?;
    let mut cmd = Command::new("mkfs.ext4");
    cmd.args([
        "-q",
        "-F",
        "-U",
        uuid,
        "-L",
        label,
        "-E",
        "lazy_itable_init=1",
    ]);
    if !extra_features.is_empty() {
        cmd.arg("-O").arg(extra_features.join(","));
    }
    cmd.arg("-d").arg(tree).arg(image);
    run(&mut cmd).map_err(|e| match e {
        ImageError::Tool { msg, .. }
            if msg.contains("Could not allocate") || msg.contains("No space") =>
        {
            ImageError::Size(format!(
                "the {label} filesystem ({} MiB) cannot hold {}: give a larger --size",
                size / MIB,
                tree.display()
            ))
        }
        e => e,
    })?;
    Ok(())
}

/// A FAT32 filesystem image of `size` bytes holding `tree` (`mkfs.vfat`, then `mcopy -s`: no
/// mount). `volume_id` is the 8-hex-digit serial, shown as the filesystem's UUID (`XXXX-XXXX`).
pub fn mkfs_vfat(
    image: &Path,
    size: u64,
    tree: &Path,
    volume_id: &str,
    label: &str,
) -> Result<(), ImageError> {
    sparse_file(image, size)?;
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-S", "512", "-i", volume_id, "-n", label])
        .arg(image))?;
    let entries: Vec<std::path::PathBuf> = std::fs::read_dir(tree)
        .map_err(|e| ImageError::io(tree, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| ImageError::io(tree, e))?;
    if entries.is_empty() {
        return Ok(());
    }
    // -s recursive, -p keep attributes, -Q stop at the first error; `::/` is the image's root.
    run(Command::new("mcopy")
        .args(["-s", "-p", "-Q", "-i"])
        .arg(image)
        .args(&entries)
        .arg("::/")
        .env("MTOOLS_SKIP_CHECK", "1"))?;
    Ok(())
}

/// Sets the immutable flag on `path` inside an unmounted ext4 image (debugfs), which
/// `mkfs.ext4 -d` does not copy. ostree marks deployment roots immutable so nothing writes into them.
pub fn set_immutable(fs_image: &Path, path: &str) -> Result<(), ImageError> {
    const EXT4_IMMUTABLE_FL: u32 = 0x10;
    let stat = run(Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat {path}"))
        .arg(fs_image))?;
    let flags = stat
        .lines()
        .find_map(|l| l.split("Flags: 0x").nth(1))
        .and_then(|v| u32::from_str_radix(v.split_whitespace().next()?, 16).ok())
        .ok_or_else(|| ImageError::Tool {
            cmd: format!("debugfs stat {path}"),
            msg: "no Flags field in its output".to_owned(),
        })?;
    run(Command::new("debugfs")
        .arg("-w")
        .arg("-R")
        .arg(format!(
            "set_inode_field {path} flags 0x{:x}",
            flags | EXT4_IMMUTABLE_FL
        ))
        .arg(fs_image))?;
    Ok(())
}

/// Copies a filesystem image into the disk at `offset`, keeping holes (`conv=sparse`).
pub fn dd_into(fs_image: &Path, disk: &Path, offset: u64) -> Result<(), ImageError> {
    debug_assert_eq!(offset % MIB, 0);
    run(Command::new("dd")
        .arg(format!("if={}", fs_image.display()))
        .arg(format!("of={}", disk.display()))
        .args(["bs=1M", "conv=notrunc,sparse", "status=none"])
        .arg(format!("seek={}", offset / MIB)))?;
    Ok(())
}

/// Writes `bytes` at `offset` in `path` (MBR boot code, VBR fields).
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| ImageError::io(path, e))?;
    f.write_all_at(bytes, offset)
        .map_err(|e| ImageError::io(path, e))
}

pub fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, ImageError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset)
        .map_err(|e| ImageError::io(path, e))?;
    Ok(buf)
}

/// raw -> `format` at `out`. Fixed VHD with `force_size` keeps the MiB-aligned size exact
/// (qemu-img would otherwise round it to a CHS geometry, which Azure rejects).
pub fn convert(raw: &Path, format: super::Format, out: &Path) -> Result<(), ImageError> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["convert", "-f", "raw"]);
    match format {
        super::Format::Raw => unreachable!("raw needs no conversion"),
        super::Format::Pxe => unreachable!("pxe is not a disk (pxe::build_pxe)"),
        super::Format::Qcow2 => {
            cmd.args(["-O", "qcow2"]);
        }
        super::Format::Vhd => {
            cmd.args(["-O", "vpc", "-o", "subformat=fixed,force_size"]);
        }
    }
    cmd.arg(raw).arg(out);
    run(&mut cmd)?;
    Ok(())
}

/// Parses `8G`, `8GiB`, `4096M`, `512MiB`, `1T` or a plain byte count.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 8G, 4096M or 8589934592"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => MIB,
        "g" | "gib" | "gb" => 1 << 30,
        "t" | "tib" | "tb" => 1 << 40,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use K, M, G or T)")),
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?}: size out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("8G").unwrap(), 8 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1048576").unwrap(), MIB);
        assert!(parse_size("8X").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn layout_is_mib_aligned_and_leaves_room_for_the_backup_gpt() {
        let l = layout(2 * 1024 * MIB + 123, 256 * MIB).unwrap();
        assert_eq!(l.disk_size, 2049 * MIB);
        for p in [&l.bios_boot, &l.esp, &l.boot, &l.root] {
            assert_eq!(p.offset % MIB, 0);
            assert_eq!(p.size % MIB, 0);
        }
        assert_eq!(l.esp.offset, l.bios_boot.offset + l.bios_boot.size);
        assert_eq!(l.boot.offset, l.esp.offset + l.esp.size);
        assert_eq!(l.root.offset, l.boot.offset + l.boot.size);
        assert_eq!(l.root.offset + l.root.size, l.disk_size - MIB);
        assert!(layout(300 * MIB, 256 * MIB).is_err());
    }
}
