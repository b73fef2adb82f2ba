//! What would make two composes of the same inputs differ: build logs, caches and backup
//! files, Python bytecode, /etc/shadow's last-change days and file times after
//! `SOURCE_DATE_EPOCH`. Removed or clamped before the kernel step, so dracut (`--reproducible`)
//! packs clamped mtimes into the initramfs.

use std::path::Path;

use super::{io, PostprocessError};

/// Build debris whose content depends on when or where the compose ran. machine-id and
/// `/var/log`, `/var/cache` are handled by the layout step; these are the rest.
const DEBRIS: &[&str] = &[
    // dpkg's and the shadow tools' backups: the state before the last write, with timestamps.
    "var/lib/dpkg/status-old",
    "var/lib/dpkg/diversions-old",
    "var/lib/dpkg/statoverride-old",
    "var/lib/dpkg/available-old",
    "etc/passwd-",
    "etc/group-",
    "etc/shadow-",
    "etc/gshadow-",
    "etc/subuid-",
    "etc/subgid-",
    // ldconfig's aux cache stores inode numbers and ctimes.
    "var/cache/ldconfig/aux-cache",
    // man-db and fontconfig caches carry mtimes and the order files were found in.
    "var/cache/man",
    "var/cache/fontconfig",
    "usr/lib/fontconfig/cache",
    "var/lib/systemd/random-seed",
    "var/lib/dbus/machine-id",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/apt",
    "var/log/bootstrap.log",
];

/// What [`scrub`] changed, for the compose log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scrubbed {
    pub removed: usize,
    pub pycache_dirs: usize,
    pub clamped_mtimes: usize,
    pub shadow_entries: usize,
}

/// Removes nondeterministic build debris; with `sde`, also clamps `/etc/shadow` last-change
/// days and every mtime newer than it.
pub fn scrub(rootfs: &Path, sde: Option<u64>) -> Result<Scrubbed, PostprocessError> {
    let mut s = Scrubbed::default();
    for rel in DEBRIS {
        let p = rootfs.join(rel);
        let Ok(m) = p.symlink_metadata() else {
            continue;
        };
        let r = if m.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(io(format!("removing /{rel}")))?;
        s.removed += 1;
    }
    s.pycache_dirs = remove_pycache(rootfs)?;
    if let Some(t) = sde {
        s.shadow_entries = clamp_shadow(&rootfs.join("etc/shadow"), t / 86_400)?;
        s.clamped_mtimes = clamp_mtimes(rootfs, t)?;
    }
    Ok(s)
}

/// Python bytecode is not reproducible (marshal output depends on reference counts before
/// 3.12) and is an optimisation only: the interpreter runs the sources without it.
fn remove_pycache(rootfs: &Path) -> Result<usize, PostprocessError> {
    let mut n = 0;
    let mut it = walkdir::WalkDir::new(rootfs.join("usr"))
        .sort_by_file_name()
        .into_iter();
    while let Some(e) = it.next() {
        let Ok(e) = e else { continue };
        if e.file_type().is_dir() && e.file_name() == "__pycache__" {
            std::fs::remove_dir_all(e.path())
                .map_err(io(format!("removing {}", e.path().display())))?;
            it.skip_current_dir();
            n += 1;
        }
    }
    Ok(n)
}

/// Field 3 of /etc/shadow (days since 1970 of the last password change) is written with the
/// build day; anything after `day` becomes `day`.
fn clamp_shadow(path: &Path, day: u64) -> Result<usize, PostprocessError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(0);
    };
    let (out, n) = clamp_shadow_text(&text, day);
    if n > 0 {
        std::fs::write(path, out).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(n)
}

fn clamp_shadow_text(text: &str, day: u64) -> (String, usize) {
    let mut n = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(':').map(String::from).collect();
            if let Some(d) = f.get(2).and_then(|d| d.parse::<u64>().ok()) {
                if d > day {
                    f[2] = day.to_string();
                    n += 1;
                }
            }
            f.join(":")
        })
        .collect();
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    (out, n)
}

/// Sets every mtime (and atime) newer than `t` to `t`, symlinks included, never following them.
fn clamp_mtimes(rootfs: &Path, t: u64) -> Result<usize, PostprocessError> {
    use rustix::fs::{AtFlags, Timespec, Timestamps, CWD};
    use std::os::unix::fs::MetadataExt;
    let ts = Timespec {
        tv_sec: t as i64,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    let mut n = 0;
    for e in walkdir::WalkDir::new(rootfs)
        .into_iter()
        .filter_map(Result::ok)
    {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if m.mtime() > t as i64 {
            rustix::fs::utimensat(CWD, e.path(), &times, AtFlags::SYMLINK_NOFOLLOW).map_err(
                |err| PostprocessError::Io {
                    what: format!("clamping the mtime of {}", e.path().display()),
                    error: err.into(),
                },
            )?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_debris_bytecode_shadow_and_mtimes() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for f in [
            "var/lib/dpkg/status-old",
            "etc/passwd-",
            "var/cache/ldconfig/aux-cache",
            "usr/lib/python3/dist-packages/x/__pycache__/a.cpython-311.pyc",
            "usr/lib/python3/dist-packages/x/a.py",
        ] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), "x").unwrap();
        }
        std::fs::write(
            r.join("etc/shadow"),
            "root:*:20000:0:99999:7:::\nold:*:100:0:99999:7:::\nnone:*::0:99999:7:::\n",
        )
        .unwrap();
        let s = scrub(r, Some(19_000 * 86_400)).unwrap();
        assert_eq!((s.removed, s.pycache_dirs, s.shadow_entries), (3, 1, 1));
        assert!(s.clamped_mtimes > 0);
        assert!(!r.join("etc/passwd-").exists());
        assert!(r.join("usr/lib/python3/dist-packages/x/a.py").is_file());
        assert_eq!(
            std::fs::read_to_string(r.join("etc/shadow")).unwrap(),
            "root:*:19000:0:99999:7:::\nold:*:100:0:99999:7:::\nnone:*::0:99999:7:::\n"
        );
        use std::os::unix::fs::MetadataExt;
        let m = r.join("etc/shadow").metadata().unwrap();
        assert_eq!(m.mtime(), 19_000 * 86_400);
        // Without SOURCE_DATE_EPOCH nothing is clamped.
        assert_eq!(scrub(r, None).unwrap().clamped_mtimes, 0);
    }
}
