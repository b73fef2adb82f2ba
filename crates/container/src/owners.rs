//! Which package owns which file of a commit, read from the package database inside the commit
//! (rpm's, queried with `rpm --dbpath`, or dpkg's `info/*.list`): the key for chunking layers by
//! package. The commit's `cairn.packages` manifest lists packages but not their files.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use cairn_ostree::repo::Repo;

use crate::{io, ContainerError};

// cairn compose moves /var content to usr/share/factory/var (recreated by tmpfiles at boot).
const RPMDB_DIRS: &[&str] = &[
    "usr/lib/sysimage/rpm",
    "usr/share/rpm",
    "usr/share/factory/var/lib/rpm",
    "var/lib/rpm",
];
const DPKG_INFO_DIRS: &[&str] = &[
    "usr/share/factory/var/lib/dpkg/info",
    "usr/share/dpkg/database/info",
    "var/lib/dpkg/info",
];

/// Repository paths (`usr/bin/sh`, `usr/etc/x` for /etc) -> package name.
pub type Owners = HashMap<String, String>;

/// Files under `dir` (a repository path) of the commit: relative name -> content checksum.
fn files_under(
    repo: &Repo,
    root_tree: &str,
    dir: &str,
) -> Result<Option<BTreeMap<String, String>>, ContainerError> {
    let mut tree = root_tree.to_string();
    for part in dir.split('/') {
        let t = repo.dirtree(&tree)?;
        match t.dirs.into_iter().find(|d| d.name == part) {
            Some(d) => tree = d.tree,
            None => return Ok(None),
        }
    }
    Ok(Some(repo.dirtree(&tree)?.files.into_iter().collect()))
}

/// A package path as the commit stores it.
fn repo_path(p: &str) -> String {
    let p = p.trim_start_matches('/');
    match p.strip_prefix("etc") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("usr/etc{rest}"),
        _ => p.to_string(),
    }
}

fn add(owners: &mut Owners, path: &str, pkg: &str) {
    // Several packages may list a path (shared directories, multilib): the first name in
    // sorted order wins, so ownership does not depend on query order.
    let e = owners
        .entry(repo_path(path))
        .or_insert_with(|| pkg.to_string());
    if pkg < e.as_str() {
        *e = pkg.to_string();
    }
}

fn from_rpmdb(
    repo: &Repo,
    files: &BTreeMap<String, String>,
    owners: &mut Owners,
) -> Result<(), ContainerError> {
    let tmp = tempfile::tempdir().map_err(io("creating a temporary rpmdb directory"))?;
    for (name, csum) in files {
        let (_, reader) = repo.open_content(csum)?;
        if let Some(mut r) = reader {
            let dest = tmp.path().join(name);
            let mut f =
                std::fs::File::create(&dest).map_err(io(format!("writing {}", dest.display())))?;
            std::io::copy(&mut r, &mut f).map_err(io(format!("writing {}", dest.display())))?;
        }
    }
    let out = Command::new("rpm")
        .arg("--dbpath")
        .arg(tmp.path())
        .args(["-qa", "--qf", "[%{=NAME}\t%{FILENAMES}\n]"])
        .output()
        .map_err(io(
            "running rpm (install the `rpm` package to chunk rpm-based commits)",
        ))?;
    if !out.status.success() {
        return Err(ContainerError::Tool {
            what: "rpm -qa (reading the commit's package database)".into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((pkg, path)) = line.split_once('\t') {
            add(owners, path, pkg);
        }
    }
    Ok(())
}

fn from_dpkg(
    repo: &Repo,
    files: &BTreeMap<String, String>,
    owners: &mut Owners,
) -> Result<(), ContainerError> {
    for (name, csum) in files {
        let Some(pkg) = name.strip_suffix(".list") else {
            continue;
        };
        // `libc6:amd64.list`: the package name is before the architecture.
        let pkg = pkg.split(':').next().unwrap_or(pkg);
        let (_, reader) = repo.open_content(csum)?;
        let mut text = String::new();
        if let Some(mut r) = reader {
            std::io::Read::read_to_string(&mut r, &mut text)
                .map_err(io(format!("reading dpkg list {name}")))?;
        }
        for path in text.lines().filter(|l| !l.is_empty() && *l != "/.") {
            add(owners, path, pkg);
        }
    }
    Ok(())
}

/// Symlinks at the top of the tree that point into it (merged /usr: `bin -> usr/bin`), as
/// name -> target without leading `/`.
fn top_symlinks(repo: &Repo, root: &str) -> Result<HashMap<String, String>, ContainerError> {
    let mut out = HashMap::new();
    for (name, csum) in repo.dirtree(root)?.files {
        if let (meta, None) = repo.open_content(&csum)? {
            if let cairn_ostree::repo::ContentKind::Symlink { target } = meta.kind {
                let t = target.trim_start_matches('/').trim_end_matches('/');
                if !t.is_empty() && !t.contains("..") {
                    out.insert(name, t.to_string());
                }
            }
        }
    }
    Ok(out)
}

/// Package paths through a top-level directory symlink (`bin/sh` when /bin links to usr/bin,
/// as dpkg lists files on merged-/usr Debian) also name the file where the commit stores it.
fn resolve_top_symlinks(owners: &mut Owners, links: &HashMap<String, String>) {
    let extra: Vec<(String, String)> = owners
        .iter()
        .filter_map(|(path, pkg)| {
            let (top, rest) = path.split_once('/')?;
            links.get(top).map(|t| (format!("{t}/{rest}"), pkg.clone()))
        })
        .collect();
    for (path, pkg) in extra {
        let e = owners.entry(path).or_insert_with(|| pkg.clone());
        if pkg < *e {
            *e = pkg;
        }
    }
}

/// The file owners of `commit`; empty when it carries no package database cairn can read.
pub fn read(repo: &Repo, commit: &str) -> Result<Owners, ContainerError> {
    let (root, _) = repo.commit_root(commit)?;
    let mut owners = Owners::new();
    'found: {
        for dir in RPMDB_DIRS {
            if let Some(files) = files_under(repo, &root, dir)? {
                if files
                    .keys()
                    .any(|f| f.starts_with("rpmdb") || f == "Packages")
                {
                    from_rpmdb(repo, &files, &mut owners)?;
                    break 'found;
                }
            }
        }
        for dir in DPKG_INFO_DIRS {
            if let Some(files) = files_under(repo, &root, dir)? {
                from_dpkg(repo, &files, &mut owners)?;
                break 'found;
            }
        }
    }
    if !owners.is_empty() {
        resolve_top_symlinks(&mut owners, &top_symlinks(repo, &root)?);
    }
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etc_maps_to_usr_etc_and_first_name_wins() {
        let mut o = Owners::new();
        add(&mut o, "/etc/cairn.conf", "zeta");
        add(&mut o, "/etc/cairn.conf", "alpha");
        add(&mut o, "/usr/bin/sh", "sh");
        add(&mut o, "/etcetera", "x");
        assert_eq!(o["usr/etc/cairn.conf"], "alpha");
        assert_eq!(o["usr/bin/sh"], "sh");
        assert_eq!(o["etcetera"], "x");
    }

    #[test]
    fn merged_usr_paths_resolve_through_top_symlinks() {
        let mut o = Owners::new();
        add(&mut o, "/bin/bash", "bash");
        add(&mut o, "/lib/x86_64-linux-gnu/libc.so.6", "libc6");
        add(&mut o, "/usr/bin/env", "coreutils");
        let links = HashMap::from([
            ("bin".to_string(), "usr/bin".to_string()),
            ("lib".to_string(), "usr/lib".to_string()),
        ]);
        resolve_top_symlinks(&mut o, &links);
        assert_eq!(o["usr/bin/bash"], "bash");
        assert_eq!(o["usr/lib/x86_64-linux-gnu/libc.so.6"], "libc6");
        assert_eq!(o["usr/bin/env"], "coreutils");
    }
}
