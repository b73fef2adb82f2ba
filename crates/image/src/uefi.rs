//! UEFI boot: the EFI system partition's files (GRUB, or shim + Debian's signed GRUB) and the
//! GRUB configuration that follows ostree's boot menu.
//!
//! ostree's syslinux backend rewrites `loader/syslinux.cfg` on the boot filesystem on every
//! deployment change (extlinux reads it under BIOS). The GRUB configuration on the ESP never
//! changes: at each boot it finds the boot filesystem by UUID and `source`s that same file, with
//! syslinux's keywords (`LABEL`, `KERNEL`, `INITRD`, `APPEND`, ...) defined as GRUB functions that
//! turn each entry into a `menuentry`. Upgrades and rollbacks inside the machine therefore change
//! the UEFI menu exactly as they change the BIOS one, with no cairn code at upgrade time, and the
//! configuration only needs GRUB's script engine, `search`, `ext2`, `linux`: all in Debian's
//! signed GRUB, which carries neither `syslinuxcfg` nor `blscfg`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::disk::run;
use super::ImageError;

/// Which UEFI boot chain goes onto the ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EspLoader {
    /// GRUB built from grub-efi-amd64-bin with `grub-mkstandalone`, unsigned: any firmware with
    /// Secure Boot off.
    #[default]
    Grub,
    /// Debian's Microsoft-signed shim, Debian's signed GRUB and MokManager: also boots with
    /// Secure Boot on (Debian-signed kernels; others need a MOK).
    SecureBoot,
}

/// The removable-media path every UEFI firmware boots without a boot entry.
pub const FALLBACK_LOADER: &str = "EFI/BOOT/BOOTX64.EFI";

/// Where the GRUB configuration goes for `loader`: next to the standalone GRUB (it sources
/// `$cmdpath/grub.cfg`), or in `EFI/debian`, the prefix built into Debian's signed GRUB (its
/// fallback to `$cmdpath` first searches every disk for `/.disk/info` and prints two errors).
pub fn grub_cfg_path(loader: EspLoader) -> &'static str {
    match loader {
        EspLoader::Grub => "EFI/BOOT/grub.cfg",
        EspLoader::SecureBoot => "EFI/debian/grub.cfg",
    }
}

/// The GRUB configuration for a boot filesystem with UUID `boot_fs_uuid`.
///
/// Each syslinux `LABEL` closes the entry before it (`cairn_entry`); the values travel as
/// `menuentry` arguments ($2.. in its body) because a body is evaluated only when chosen. Header
/// lines (`SERIAL`, `UI`, `MENU`, `TIMEOUT`, ...) are no-ops: OVMF and most firmware already
/// mirror the console, and GRUB's own timeout is fixed here. The first entry, ostree's default
/// deployment, is GRUB's default; the rollback deployment is the second.
pub fn grub_cfg(boot_fs_uuid: &str) -> String {
    format!(
        "\
# cairn: written once by `cairn image build`; the menu comes from ostree's loader/syslinux.cfg
# on the boot filesystem, which ostree rewrites on every upgrade and rollback.
insmod part_gpt
insmod ext2
search --no-floppy --fs-uuid --set=root {boot_fs_uuid}
set default=0
set timeout=5
function cairn_entry {{
  if [ -n \"$cairn_kernel\" ]; then
    menuentry \"$cairn_label\" \"$cairn_kernel\" \"$cairn_initrd\" \"$cairn_append\" {{
      linux \"$2\" $4
      if [ -n \"$3\" ]; then initrd \"$3\"; fi
    }}
  fi
  unset cairn_kernel
  unset cairn_initrd
  unset cairn_append
}}
function LABEL {{ cairn_entry; set cairn_label=\"$*\"; }}
function KERNEL {{ set cairn_kernel=\"$1\"; }}
function LINUX {{ set cairn_kernel=\"$1\"; }}
function INITRD {{ set cairn_initrd=\"$1\"; }}
function APPEND {{ set cairn_append=\"$*\"; }}
function SERIAL {{ true; }}
function UI {{ true; }}
function PROMPT {{ true; }}
function TIMEOUT {{ true; }}
function MENU {{ true; }}
function DEFAULT {{ true; }}
if [ -f /loader/syslinux.cfg ]; then
  source /loader/syslinux.cfg
  cairn_entry
else
  echo \"cairn: no /loader/syslinux.cfg on the boot filesystem {boot_fs_uuid}\"
fi
"
    )
}

/// What the standalone GRUB runs first: the configuration beside it on the ESP.
const EMBEDDED_CFG: &str = "source $cmdpath/grub.cfg\n";

/// Modules loaded before the embedded configuration runs (the rest are in its memdisk).
const GRUB_MODULES: &str = "part_gpt part_msdos fat ext2 search search_fs_uuid normal \
                            configfile test echo linux gzio all_video";

/// Writes the UEFI boot loader into `esp_dir` (the ESP's root, or a directory that will become
/// it): `EFI/BOOT/BOOTX64.EFI` (GRUB) and `EFI/BOOT/grub.cfg`, which finds the boot filesystem
/// by `boot_fs_uuid` and follows ostree's boot menu there.
pub fn populate_esp(esp_dir: &Path, boot_fs_uuid: &str) -> Result<(), ImageError> {
    populate_esp_with(esp_dir, boot_fs_uuid, EspLoader::Grub)
}

/// [`populate_esp`] with a choice of boot chain. With [`EspLoader::SecureBoot`]:
/// `EFI/BOOT/BOOTX64.EFI` is shim, `EFI/BOOT/grubx64.efi` Debian's signed GRUB (which shim
/// loads from its own directory), `EFI/BOOT/mmx64.efi` MokManager, and the configuration goes
/// to `EFI/debian/grub.cfg`.
pub fn populate_esp_with(
    esp_dir: &Path,
    boot_fs_uuid: &str,
    loader: EspLoader,
) -> Result<(), ImageError> {
    if !valid_uuid(boot_fs_uuid) {
        return Err(ImageError::Tool {
            cmd: "populate_esp".to_owned(),
            msg: format!("{boot_fs_uuid:?} is not a filesystem UUID (8-4-4-4-12 hex digits)"),
        });
    }
    let boot_dir = esp_dir.join("EFI/BOOT");
    mkdir(&boot_dir)?;
    match loader {
        EspLoader::Grub => build_standalone_grub(&esp_dir.join(FALLBACK_LOADER))?,
        EspLoader::SecureBoot => {
            for (src, dest) in [
                (find(SHIM, "shim-signed")?, FALLBACK_LOADER),
                (
                    find(SIGNED_GRUB, "grub-efi-amd64-signed")?,
                    "EFI/BOOT/grubx64.efi",
                ),
                (find(MOK_MANAGER, "shim-signed")?, "EFI/BOOT/mmx64.efi"),
            ] {
                let dest = esp_dir.join(dest);
                std::fs::copy(&src, &dest).map_err(|e| ImageError::io(&src, e))?;
            }
        }
    }
    let cfg = esp_dir.join(grub_cfg_path(loader));
    if let Some(dir) = cfg.parent() {
        mkdir(dir)?;
    }
    std::fs::write(&cfg, grub_cfg(boot_fs_uuid)).map_err(|e| ImageError::io(&cfg, e))
}

fn valid_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn mkdir(dir: &Path) -> Result<(), ImageError> {
    std::fs::create_dir_all(dir).map_err(|e| ImageError::io(dir, e))
}

/// Debian's packages: shim-signed, grub-efi-amd64-signed.
const SHIM: &[&str] = &["/usr/lib/shim/shimx64.efi.signed"];
const MOK_MANAGER: &[&str] = &["/usr/lib/shim/mmx64.efi.signed"];
const SIGNED_GRUB: &[&str] = &["/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"];

fn find(candidates: &[&str], package: &str) -> Result<PathBuf, ImageError> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| ImageError::Tool {
            cmd: "--secure-boot".to_owned(),
            msg: format!(
                "{} not found (Debian package {package}; run scripts/setup.sh)",
                candidates.join(", ")
            ),
        })
}

/// `grub-mkstandalone -O x86_64-efi`: one EFI binary holding GRUB's core, the modules it needs
/// preloaded and a memdisk with [`EMBEDDED_CFG`]. No locales, themes or fonts: a text menu.
fn build_standalone_grub(out: &Path) -> Result<(), ImageError> {
    let platform = Path::new("/usr/lib/grub/x86_64-efi");
    if !platform.join("modinfo.sh").exists() {
        return Err(ImageError::Tool {
            cmd: "grub-mkstandalone -O x86_64-efi".to_owned(),
            msg: format!(
                "{} is missing (Debian package grub-efi-amd64-bin; run scripts/setup.sh)",
                platform.display()
            ),
        });
    }
    let dir = out.parent().unwrap_or(Path::new("."));
    let embedded = dir.join(".cairn-embedded-grub.cfg");
    std::fs::write(&embedded, EMBEDDED_CFG).map_err(|e| ImageError::io(&embedded, e))?;
    let result = run(Command::new("grub-mkstandalone")
        .args(["-O", "x86_64-efi", "--locales=", "--themes=", "--fonts="])
        .arg(format!("--modules={GRUB_MODULES}"))
        .arg("-o")
        .arg(out)
        .arg(format!("boot/grub/grub.cfg={}", embedded.display())));
    let _ = std::fs::remove_file(&embedded);
    result.map(drop).map_err(|e| match e {
        ImageError::Tool { cmd, msg } if msg.contains("not installed") => ImageError::Tool {
            cmd,
            msg: "not installed (Debian package grub-efi-amd64-bin; run scripts/setup.sh)"
                .to_owned(),
        },
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_finds_the_boot_fs_and_sources_ostrees_menu() {
        let cfg = grub_cfg("0f3c2d1e-aaaa-4bbb-8ccc-0123456789ab");
        assert!(cfg.contains(
            "search --no-floppy --fs-uuid --set=root 0f3c2d1e-aaaa-4bbb-8ccc-0123456789ab\n"
        ));
        assert!(cfg.contains("source /loader/syslinux.cfg\n"));
        // Every keyword ostree's syslinux backend writes (and cairn's header uses) is defined.
        for kw in [
            "LABEL", "KERNEL", "INITRD", "APPEND", "SERIAL", "UI", "PROMPT", "TIMEOUT", "MENU",
        ] {
            assert!(cfg.contains(&format!("function {kw} {{")), "{kw}");
        }
        for kw in super::super::bootloader::SYSLINUX_HEADER
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next())
        {
            assert!(cfg.contains(&format!("function {kw} {{")), "{kw}");
        }
        assert_eq!(cfg.matches('{').count(), cfg.matches('}').count());
    }

    /// Every file under `dir`, relative, sorted.
    fn files(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    todo.push(e.path());
                } else {
                    let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                    out.push(rel);
                }
            }
        }
        out.sort();
        out
    }

    /// What `cairn install` gets from the public entry point, with the real grub-mkstandalone and
    /// Debian's signed binaries (scripts/setup.sh installs both).
    #[test]
    fn populate_esp_writes_a_loader_and_its_config_and_nothing_else() {
        let uuid = "0f3c2d1e-aaaa-4bbb-8ccc-0123456789ab";
        let dir = tempfile::tempdir().unwrap();
        populate_esp(dir.path(), uuid).unwrap();
        assert_eq!(
            files(dir.path()),
            ["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grub.cfg"]
        );
        let efi = std::fs::read(dir.path().join(FALLBACK_LOADER)).unwrap();
        assert_eq!(&efi[..2], b"MZ");
        let cfg = std::fs::read_to_string(dir.path().join("EFI/BOOT/grub.cfg")).unwrap();
        assert_eq!(cfg, grub_cfg(uuid));

        let dir = tempfile::tempdir().unwrap();
        populate_esp_with(dir.path(), uuid, EspLoader::SecureBoot).unwrap();
        assert_eq!(
            files(dir.path()),
            [
                "EFI/BOOT/BOOTX64.EFI",
                "EFI/BOOT/grubx64.efi",
                "EFI/BOOT/mmx64.efi",
                "EFI/debian/grub.cfg"
            ]
        );
        let shim = std::fs::read(dir.path().join(FALLBACK_LOADER)).unwrap();
        assert!(shim == std::fs::read(SHIM[0]).unwrap());
    }

    #[test]
    fn a_bad_uuid_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let e = populate_esp(dir.path(), "not-a-uuid; reboot").unwrap_err();
        assert!(e.to_string().contains("not a filesystem UUID"), "{e}");
        assert!(!dir.path().join("EFI").exists());
        assert!(valid_uuid("0f3c2d1e-aaaa-4bbb-8ccc-0123456789ab"));
        assert!(!valid_uuid("0f3c2d1e-aaaa-4bbb-8ccc-0123456789a"));
    }
}
