//! Treefile-driven edits: files, units, groups, sysctl presets, os-release.

use std::path::{Component, Path, PathBuf};

use super::{io, PostprocessError, PostprocessSpec};
use crate::backend::PackageDb;

/// `dest` (absolute or relative, from the treefile) as a path inside `rootfs`; refuses `..`.
fn in_tree(rootfs: &Path, dest: &str) -> Result<PathBuf, PostprocessError> {
    let rel = Path::new(dest.trim_start_matches('/'));
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(PostprocessError::Invalid(format!(
            "`{dest}` is not a plain path inside the tree"
        )));
    }
    Ok(rootfs.join(rel))
}

pub fn remove_files(rootfs: &Path, paths: &[String]) -> Result<(), PostprocessError> {
    for p in paths {
        let full = in_tree(rootfs, p)?;
        match full.symlink_metadata() {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(&full).map_err(io(format!("removing {p}")))?
            }
            Ok(_) => std::fs::remove_file(&full).map_err(io(format!("removing {p}")))?,
            // rpm-ostree tolerates absent paths: the same list serves several variants.
            Err(_) => {}
        }
    }
    Ok(())
}

pub fn add_files(rootfs: &Path, files: &[(PathBuf, String)]) -> Result<(), PostprocessError> {
    use std::os::unix::fs::PermissionsExt;
    for (src, dest) in files {
        let full = in_tree(rootfs, dest)?;
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("creating parent of {dest}")))?;
        }
        let m = src
            .metadata()
            .map_err(io(format!("add-files source {}", src.display())))?;
        if m.is_dir() {
            return Err(PostprocessError::Invalid(format!(
                "add-files source {} is a directory; list files one by one",
                src.display()
            )));
        }
        let _ = std::fs::remove_file(&full);
        std::fs::copy(src, &full).map_err(io(format!("copying {} to {dest}", src.display())))?;
        // Keep the source's permission bits (an executable stays executable), owned by root.
        super::set_mode(&full, m.permissions().mode() & 0o7777)?;
        rustix::fs::chown(
            &full,
            Some(rustix::fs::Uid::ROOT),
            Some(rustix::fs::Gid::ROOT),
        )
        .map_err(|e| PostprocessError::Io {
            what: format!("chown {dest}"),
            error: e.into(),
        })?;
    }
    Ok(())
}

/// Removes the files of each package matching any of its regexes; returns how many.
pub fn remove_from_packages(
    rootfs: &Path,
    spec: &PostprocessSpec,
) -> Result<usize, PostprocessError> {
    let mut removed = 0;
    for (pkg, patterns) in &spec.remove_from_packages {
        let res: Vec<regex::Regex> = patterns
            .iter()
            .map(|p| {
                regex::Regex::new(p).map_err(|e| {
                    PostprocessError::Invalid(format!(
                        "remove-from-packages {pkg}: bad regex `{p}`: {e}"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        for f in package_files(rootfs, spec.db.unwrap_or(PackageDb::None), pkg)? {
            if !res.iter().any(|r| r.is_match(&f)) {
                continue;
            }
            let full = in_tree(rootfs, &f)?;
            // Directories stay: other packages may own files in them.
            if let Ok(m) = full.symlink_metadata() {
                if !m.is_dir() {
                    std::fs::remove_file(&full).map_err(io(format!("removing {f}")))?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}

/// Paths owned by `pkg`, from the tree's own package database.
pub fn package_files(
    rootfs: &Path,
    db: PackageDb,
    pkg: &str,
) -> Result<Vec<String>, PostprocessError> {
    match db {
        PackageDb::Dpkg => {
            // dpkg -L reads exactly these files; reading them directly needs no chroot.
            let info = rootfs.join("var/lib/dpkg/info");
            let mut candidates = vec![info.join(format!("{pkg}.list"))];
            if let Ok(rd) = std::fs::read_dir(&info) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if n.starts_with(&format!("{pkg}:")) && n.ends_with(".list") {
                        candidates.push(e.path());
                    }
                }
            }
            let Some(list) = candidates.iter().find(|p| p.is_file()) else {
                return Err(PostprocessError::Invalid(format!(
                    "remove-from-packages: package `{pkg}` is not installed"
                )));
            };
            let text =
                std::fs::read_to_string(list).map_err(io(format!("reading {}", list.display())))?;
            Ok(text
                .lines()
                .filter(|l| l.starts_with('/') && *l != "/.")
                .map(String::from)
                .collect())
        }
        PackageDb::Rpm { dbpath } => {
            let out = std::process::Command::new("rpm")
                .arg("-ql")
                .arg("--root")
                .arg(rootfs)
                .arg("--dbpath")
                .arg(dbpath)
                .arg(pkg)
                .output()
                .map_err(io("running rpm -ql"))?;
            if !out.status.success() {
                return Err(PostprocessError::Invalid(format!(
                    "remove-from-packages: package `{pkg}` is not installed ({})",
                    String::from_utf8_lossy(&out.stdout).trim()
                )));
            }
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with('/'))
                .map(String::from)
                .collect())
        }
        PackageDb::None => Err(PostprocessError::Invalid(
            "remove-from-packages needs a package database (dpkg or rpm); this tree has none"
                .into(),
        )),
    }
}

const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

fn find_unit(rootfs: &Path, unit: &str) -> Option<(PathBuf, String)> {
    // A template instance (foo@bar.service) is installed from its template (foo@.service).
    let template = unit
        .split_once('@')
        .and_then(|(a, b)| b.rsplit_once('.').map(|(_, suf)| format!("{a}@.{suf}")));
    for name in std::iter::once(unit.to_string()).chain(template) {
        for d in UNIT_DIRS {
            let p = rootfs.join(d).join(&name);
            if p.symlink_metadata().is_ok() {
                return Some((p, format!("/{d}/{name}")));
            }
        }
    }
    None
}

/// `(WantedBy + RequiredBy targets, Alias names)` from a unit file's [Install] section.
pub fn unit_install_targets(text: &str) -> (Vec<(String, &'static str)>, Vec<String>) {
    let mut in_install = false;
    let mut wants = Vec::new();
    let mut aliases = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_install = l == "[Install]";
            continue;
        }
        if !in_install || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            match k {
                "WantedBy" => wants.extend(v.split_whitespace().map(|t| (t.to_string(), "wants"))),
                "RequiredBy" => {
                    wants.extend(v.split_whitespace().map(|t| (t.to_string(), "requires")))
                }
                "Alias" => aliases.extend(v.split_whitespace().map(String::from)),
                _ => {}
            }
        }
    }
    (wants, aliases)
}

/// Enablement symlinks under etc/systemd/system (moved to usr/etc later), like `systemctl enable`.
pub fn enable_units(rootfs: &Path, units: &[String]) -> Result<Vec<String>, PostprocessError> {
    let mut links = Vec::new();
    for unit in units {
        let (file, target) = find_unit(rootfs, unit).ok_or_else(|| {
            PostprocessError::Invalid(format!("units: `{unit}` not found in the tree (looked in /etc/systemd/system, /usr/lib/systemd/system)"))
        })?;
        // Follow a unit that is itself a symlink (an alias) to read the real [Install].
        let text = std::fs::read_to_string(resolve_in_tree(rootfs, &file))
            .map_err(io(format!("reading unit {}", file.display())))?;
        let (wants, aliases) = unit_install_targets(&text);
        if wants.is_empty() && aliases.is_empty() {
            return Err(PostprocessError::Invalid(format!(
                "units: `{unit}` has no [Install] section (WantedBy=/RequiredBy=/Alias=), so it cannot be enabled"
            )));
        }
        let sysdir = rootfs.join("etc/systemd/system");
        for (t, kind) in wants {
            let dir = sysdir.join(format!("{t}.{kind}"));
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            replace_symlink(&target, &dir.join(unit))?;
            links.push(format!("/etc/systemd/system/{t}.{kind}/{unit}"));
        }
        for a in aliases {
            std::fs::create_dir_all(&sysdir).map_err(io("creating etc/systemd/system"))?;
            replace_symlink(&target, &sysdir.join(&a))?;
            links.push(format!("/etc/systemd/system/{a}"));
        }
    }
    Ok(links)
}

/// Resolves symlinks of `p` against `rootfs` as root (absolute targets stay inside the tree).
fn resolve_in_tree(rootfs: &Path, p: &Path) -> PathBuf {
    let mut cur = p.to_path_buf();
    for _ in 0..16 {
        match std::fs::read_link(&cur) {
            Ok(t) if t.is_absolute() => cur = rootfs.join(t.strip_prefix("/").unwrap_or(&t)),
            Ok(t) => cur = cur.parent().unwrap_or(rootfs).join(t),
            Err(_) => break,
        }
    }
    cur
}

fn replace_symlink(target: &str, link: &Path) -> Result<(), PostprocessError> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).map_err(io(format!("linking {}", link.display())))
}

pub fn set_default_target(rootfs: &Path, target: &str) -> Result<(), PostprocessError> {
    let (_, path) = find_unit(rootfs, target).ok_or_else(|| {
        PostprocessError::Invalid(format!("default-target: `{target}` not found in the tree"))
    })?;
    let dir = rootfs.join("etc/systemd/system");
    std::fs::create_dir_all(&dir).map_err(io("creating etc/systemd/system"))?;
    replace_symlink(&path, &dir.join("default.target"))
}

/// cairn keeps /etc/passwd and /etc/group whole (no nss-altfiles split into /usr/lib), so every
/// group already lives in /etc/group; what `etc-group-members` can still promise is that the
/// named groups exist there, which this checks.
pub fn check_group_members(rootfs: &Path, groups: &[String]) -> Result<(), PostprocessError> {
    if groups.is_empty() {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(rootfs.join("etc/group")).map_err(io("reading etc/group"))?;
    let names: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
    let missing: Vec<&String> = groups
        .iter()
        .filter(|g| !names.contains(&g.as_str()))
        .collect();
    if !missing.is_empty() {
        return Err(PostprocessError::Invalid(format!(
            "etc-group-members: group(s) {} not in the tree's /etc/group (add the package that creates them, or a postprocess `groupadd`)",
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

/// Writes the image layer of the sysctl presets and inline settings under `usr/lib`, rendered
/// by the shared `cairn_sysctl` renderer (`sysctl.d/60-cairn-<preset>.conf`,
/// `sysctl.d/61-cairn-treefile.conf` for inline settings so they win, and
/// `modules-load.d/cairn-<preset>.conf` for the modules a preset's keys need).
pub fn write_sysctl(
    rootfs: &Path,
    presets: &[String],
    inline: &[(String, String)],
) -> Result<(), PostprocessError> {
    if presets.is_empty() && inline.is_empty() {
        return Ok(());
    }
    let mut owned = Vec::new();
    for name in presets {
        let p = cairn_sysctl::find_builtin(name)
            .map_err(|e| PostprocessError::Invalid(e.to_string()))?;
        owned.push(cairn_sysctl::OwnedPreset::from(p));
    }
    if !inline.is_empty() {
        owned.push(cairn_sysctl::OwnedPreset::inline("treefile", inline));
    }
    for (rel, content) in cairn_sysctl::render_owned(&owned) {
        let dest = rootfs.join("usr/lib").join(rel);
        std::fs::create_dir_all(dest.parent().expect("has parent"))
            .map_err(io("creating usr/lib/sysctl.d"))?;
        std::fs::write(&dest, content).map_err(io(format!("writing {}", dest.display())))?;
    }
    Ok(())
}

/// os-release text with `from` replaced by `version` in VERSION, VERSION_ID and PRETTY_NAME, and
/// `OSTREE_VERSION` set (what rpm-ostree's mutate-os-release does).
pub fn os_release_mutate(text: &str, from: &str, version: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match key {
            Some("VERSION" | "VERSION_ID" | "PRETTY_NAME") => {
                out.push_str(&line.replace(from, version))
            }
            Some("OSTREE_VERSION") => continue,
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out.push_str(&format!("OSTREE_VERSION='{version}'\n"));
    out
}

pub fn mutate_os_release(rootfs: &Path, from: &str, version: &str) -> Result<(), PostprocessError> {
    // usr/lib/os-release is the real file on Debian and Fedora (etc/os-release links to it).
    let p = rootfs.join("usr/lib/os-release");
    let p = if p
        .symlink_metadata()
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
    {
        resolve_in_tree(rootfs, &p)
    } else {
        p
    };
    let text = std::fs::read_to_string(&p)
        .map_err(io("reading usr/lib/os-release for mutate-os-release"))?;
    if !text.contains(from) {
        return Err(PostprocessError::Invalid(format!(
            "mutate-os-release: `{from}` does not occur in /usr/lib/os-release, so the version would not show"
        )));
    }
    // Write a new file rather than in place: the old inode may be hardlinked elsewhere.
    let tmp = p.with_extension("cairn-tmp");
    std::fs::write(&tmp, os_release_mutate(&text, from, version))
        .map_err(io("writing os-release"))?;
    std::fs::rename(&tmp, &p).map_err(io("replacing os-release"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_section() {
        let (w, a) = unit_install_targets(
            "[Unit]\nWantedBy=ignored.target\n[Install]\nWantedBy=multi-user.target graphical.target\nRequiredBy=x.target\n# WantedBy=no.target\nAlias=sshd.service\n",
        );
        assert_eq!(
            w,
            [
                ("multi-user.target".to_string(), "wants"),
                ("graphical.target".to_string(), "wants"),
                ("x.target".to_string(), "requires")
            ]
        );
        assert_eq!(a, ["sshd.service"]);
    }

    #[test]
    fn os_release() {
        let t = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";
        let m = os_release_mutate(t, "12", "12.20260101.1");
        assert!(m.contains("VERSION=\"12.20260101.1 (bookworm)\""));
        assert!(m.contains("VERSION_ID=\"12.20260101.1\""));
        assert!(m.contains("PRETTY_NAME=\"Debian GNU/Linux 12.20260101.1 (bookworm)\""));
        assert!(m.contains("NAME=\"Debian GNU/Linux\"\n"));
        assert!(m.ends_with("OSTREE_VERSION='12.20260101.1'\n"));
    }

    #[test]
    fn paths_stay_inside() {
        assert!(in_tree(Path::new("/r"), "/etc/../../x").is_err());
        assert_eq!(
            in_tree(Path::new("/r"), "/etc/x").unwrap(),
            Path::new("/r/etc/x")
        );
    }
}
