//! The OSTree filesystem layout: `/usr/etc`, `/var` recreated by tmpfiles.d, state directories
//! as symlinks into `/var`, runtime mount points empty, no device nodes.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{io, PostprocessError};

/// (link, target): top-level state directories that live in /var on an OSTree system, the
/// names rpm-ostree and bootc use (`/root` is `/var/roothome`).
pub const TOPLEVEL_LINKS: &[(&str, &str)] = &[
    ("home", "var/home"),
    ("root", "var/roothome"),
    ("opt", "var/opt"),
    ("srv", "var/srv"),
    ("mnt", "var/mnt"),
    ("media", "run/media"),
    ("ostree", "sysroot/ostree"),
    ("usr/local", "../var/usrlocal"),
];

/// Removes device nodes, FIFOs and sockets: OSTree cannot store them (devtmpfs provides /dev).
pub fn drop_special_files(rootfs: &Path) -> Result<usize, PostprocessError> {
    let mut n = 0;
    let walker = walkdir::WalkDir::new(rootfs)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            // Never descend into a mounted pseudo-filesystem (there are none after a clean run).
            let rel = e.path().strip_prefix(rootfs).unwrap_or(e.path());
            rel != Path::new("proc") && rel != Path::new("sys")
        });
    for e in walker {
        let e = e.map_err(|e| PostprocessError::Io {
            what: "walking the tree".into(),
            source: e.into(),
        })?;
        let t = e.file_type();
        if t.is_block_device() || t.is_char_device() || t.is_fifo() || t.is_socket() {
            std::fs::remove_file(e.path())
                .map_err(io(format!("removing {}", e.path().display())))?;
            n += 1;
        }
    }
    Ok(n)
}

/// An empty /etc/machine-id: systemd generates the id on first boot (ConditionFirstBoot), so
/// machines deployed from one commit never share it.
pub fn empty_machine_id(rootfs: &Path) -> Result<(), PostprocessError> {
    let etc = rootfs.join("etc");
    if !etc.is_dir() {
        return Ok(());
    }
    let p = etc.join("machine-id");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, b"").map_err(io("writing etc/machine-id"))?;
    super::set_mode(&p, 0o444)
}

/// `/etc` becomes `/usr/etc`, the pristine copy OSTree 3-way merges into each deployment's /etc.
pub fn etc_to_usr_etc(rootfs: &Path) -> Result<(), PostprocessError> {
    let etc = rootfs.join("etc");
    let usr_etc = rootfs.join("usr/etc");
    if !etc.symlink_metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Ok(());
    }
    if usr_etc.exists() {
        let empty = std::fs::read_dir(&usr_etc)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(PostprocessError::Invalid(
                "the tree has both /etc and a non-empty /usr/etc; a root filesystem taken from an OSTree deployment \
                 must be given without /etc"
                    .into(),
            ));
        }
        std::fs::remove_dir(&usr_etc).map_err(io("removing empty usr/etc"))?;
    }
    std::fs::rename(&etc, &usr_etc).map_err(io("moving etc to usr/etc"))
}

/// Moves each top-level state directory's content into /var and replaces it with a symlink.
pub fn toplevel_links(rootfs: &Path) -> Result<(), PostprocessError> {
    for (link, target) in TOPLEVEL_LINKS {
        let lp = rootfs.join(link);
        let Some(parent) = lp.parent() else { continue };
        if !parent.is_dir() {
            continue;
        }
        let m = lp.symlink_metadata();
        if m.as_ref()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            continue;
        }
        let dest = parent.join(target);
        if let Ok(m) = m {
            if m.is_dir() && target.contains("var/") {
                // Keep the directory's own mode/owner (e.g. /root is 0700) for tmpfiles.d.
                if dest.symlink_metadata().is_err() {
                    std::fs::create_dir_all(dest.parent().unwrap_or(rootfs))
                        .map_err(io("creating var"))?;
                    std::fs::rename(&lp, &dest)
                        .map_err(io(format!("moving {link} to {target}")))?;
                } else {
                    move_children(&lp, &dest)?;
                    std::fs::remove_dir_all(&lp).map_err(io(format!("removing {link}")))?;
                }
            } else if m.is_dir() {
                std::fs::remove_dir_all(&lp).map_err(io(format!("removing {link}")))?;
            } else {
                std::fs::remove_file(&lp).map_err(io(format!("removing {link}")))?;
            }
        } else if *link == "root" {
            // A tree without /root still needs root's home, private.
            std::fs::create_dir_all(&dest).map_err(io("creating var/roothome"))?;
            super::set_mode(&dest, 0o700)?;
        }
        std::os::unix::fs::symlink(target, &lp)
            .map_err(io(format!("linking {link} -> {target}")))?;
    }
    Ok(())
}

fn move_children(from: &Path, to: &Path) -> Result<(), PostprocessError> {
    for e in std::fs::read_dir(from)
        .map_err(io(format!("reading {}", from.display())))?
        .flatten()
    {
        let dest = to.join(e.file_name());
        if dest.symlink_metadata().is_err() {
            std::fs::rename(e.path(), &dest)
                .map_err(io(format!("moving {}", e.path().display())))?;
        }
    }
    Ok(())
}

fn id_names(file: &Path) -> HashMap<u32, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// /var paths whose files are caches or logs of the build, not state the system needs.
fn is_build_debris(rel: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "var/log/",
        "var/cache/",
        "var/tmp/",
        "var/lib/apt/lists/",
        "var/lib/dnf/",
        "var/lib/systemd/random-seed",
        "var/lib/dbus/machine-id",
    ];
    PREFIXES.iter().any(|p| rel.starts_with(p))
}

/// Turns /var's content into `usr/lib/tmpfiles.d/cairn-var.conf` and empties /var.
///
/// OSTree never updates /var after the first deployment, so whatever packages put there must be
/// (re)created by systemd-tmpfiles at boot: directories become `d`, symlinks `L`, empty files
/// `f`, and files with content are kept under `/usr/share/factory/var` and copied with `C`
/// (copied only when absent, so local changes survive upgrades). Build caches and logs are
/// dropped. Returns the number of entries written.
pub fn var_to_tmpfiles(rootfs: &Path) -> Result<usize, PostprocessError> {
    let var = rootfs.join("var");
    if !var.is_dir() {
        std::fs::create_dir_all(&var).map_err(io("creating var"))?;
        return Ok(0);
    }
    let users = id_names(&rootfs.join("usr/etc/passwd"));
    let groups = id_names(&rootfs.join("usr/etc/group"));
    // uid/gid 0 is root even in a tree without passwd (a bare RPM tree).
    let name = |map: &HashMap<u32, String>, id: u32| {
        map.get(&id).cloned().unwrap_or_else(|| {
            if id == 0 {
                "root".into()
            } else {
                id.to_string()
            }
        })
    };
    let factory = rootfs.join("usr/share/factory");
    let mut lines = vec![
        "# Generated by cairn compose: the image's /var, recreated at boot (OSTree leaves /var alone after".to_string(),
        "# the first deployment). Files with content are copied from /usr/share/factory/var when absent.".to_string(),
    ];
    let mut entries = 0;
    for e in walkdir::WalkDir::new(&var).min_depth(1).sort_by_file_name() {
        let e = e.map_err(|e| PostprocessError::Io {
            what: "walking var".into(),
            source: e.into(),
        })?;
        let rel = e
            .path()
            .strip_prefix(rootfs)
            .expect("under rootfs")
            .to_string_lossy()
            .into_owned();
        let m = e
            .path()
            .symlink_metadata()
            .map_err(io(format!("stat {rel}")))?;
        let (user, group) = (name(&users, m.uid()), name(&groups, m.gid()));
        let mode = m.mode() & 0o7777;
        let path = format!("/{rel}");
        let t = m.file_type();
        if t.is_dir() {
            lines.push(format!(
                "d {} {:04o} {} {} -",
                tmpfiles_quote(&path),
                mode,
                user,
                group
            ));
        } else if t.is_symlink() {
            let target = std::fs::read_link(e.path()).map_err(io(format!("readlink {rel}")))?;
            lines.push(format!(
                "L {} - - - - {}",
                tmpfiles_quote(&path),
                target.display()
            ));
        } else if t.is_file() {
            if is_build_debris(&rel) {
                continue;
            }
            if m.len() == 0 {
                lines.push(format!(
                    "f {} {:04o} {} {} -",
                    tmpfiles_quote(&path),
                    mode,
                    user,
                    group
                ));
            } else {
                let dest = factory.join(&rel);
                std::fs::create_dir_all(dest.parent().expect("has parent"))
                    .map_err(io("creating factory dir"))?;
                std::fs::copy(e.path(), &dest)
                    .map_err(io(format!("copying {rel} to the factory")))?;
                std::os::unix::fs::chown(&dest, Some(m.uid()), Some(m.gid()))
                    .map_err(io("chown factory copy"))?;
                super::set_mode(&dest, mode)?;
                let src = format!("/usr/share/factory/{rel}");
                lines.push(format!(
                    "C {} - - - - {}",
                    tmpfiles_quote(&path),
                    tmpfiles_quote(&src)
                ));
            }
        } else {
            continue;
        }
        entries += 1;
    }
    let dir = rootfs.join("usr/lib/tmpfiles.d");
    std::fs::create_dir_all(&dir).map_err(io("creating usr/lib/tmpfiles.d"))?;
    lines.push(String::new());
    std::fs::write(dir.join("cairn-var.conf"), lines.join("\n"))
        .map_err(io("writing cairn-var.conf"))?;
    for e in std::fs::read_dir(&var)
        .map_err(io("reading var"))?
        .flatten()
    {
        let p = e.path();
        let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(io(format!("emptying {}", p.display())))?;
    }
    Ok(entries)
}

/// tmpfiles.d paths with spaces need C-style quoting.
fn tmpfiles_quote(p: &str) -> String {
    if p.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        format!("\"{}\"", p.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        p.to_string()
    }
}

/// Mount points and runtime directories exist and are empty; /sysroot holds the physical root.
pub fn runtime_dirs(rootfs: &Path) -> Result<(), PostprocessError> {
    for (d, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("run", 0o755),
        ("tmp", 0o1777),
        ("sysroot", 0o755),
        ("var", 0o755),
        ("boot", 0o755),
    ] {
        let p = rootfs.join(d);
        if p.symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            continue;
        }
        if p.is_dir() && matches!(d, "dev" | "proc" | "sys" | "run" | "tmp") {
            for e in std::fs::read_dir(&p)
                .map_err(io(format!("reading {d}")))?
                .flatten()
            {
                let ep = e.path();
                let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    std::fs::remove_dir_all(&ep)
                } else {
                    std::fs::remove_file(&ep)
                };
                r.map_err(io(format!("emptying {}", ep.display())))?;
            }
        }
        std::fs::create_dir_all(&p).map_err(io(format!("creating {d}")))?;
        super::set_mode(&p, mode)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_becomes_tmpfiles() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("var/lib/foo")).unwrap();
        std::fs::create_dir_all(r.join("var/log")).unwrap();
        std::fs::create_dir_all(r.join("usr/etc")).unwrap();
        std::fs::write(r.join("usr/etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(r.join("usr/etc/group"), "root:x:0:\n").unwrap();
        std::fs::write(r.join("var/lib/foo/state"), "data").unwrap();
        std::fs::write(r.join("var/lib/foo/empty"), "").unwrap();
        std::fs::write(r.join("var/log/build.log"), "noise").unwrap();
        std::os::unix::fs::symlink("/run", r.join("var/run")).unwrap();
        super::super::set_mode(&r.join("var/lib/foo"), 0o750).unwrap();
        let n = var_to_tmpfiles(r).unwrap();
        let conf = std::fs::read_to_string(r.join("usr/lib/tmpfiles.d/cairn-var.conf")).unwrap();
        assert!(conf.contains("d /var/lib/foo 0750 root root -"), "{conf}");
        assert!(
            conf.contains("f /var/lib/foo/empty 0644 root root -")
                || conf.contains("f /var/lib/foo/empty 06"),
            "{conf}"
        );
        assert!(
            conf.contains("C /var/lib/foo/state - - - - /usr/share/factory/var/lib/foo/state"),
            "{conf}"
        );
        assert!(conf.contains("L /var/run - - - - /run"), "{conf}");
        assert!(!conf.contains("build.log"));
        assert_eq!(
            std::fs::read_to_string(r.join("usr/share/factory/var/lib/foo/state")).unwrap(),
            "data"
        );
        assert_eq!(std::fs::read_dir(r.join("var")).unwrap().count(), 0);
        assert_eq!(n, 6);
    }
}
