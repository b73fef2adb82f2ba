//! RPM trees through `dnf --installroot`, with repositories from the treefile's directory only.
//!
//! Debian's rpm is built with `_dbpath` = `~/.rpmdb` (`rpm --eval %_dbpath`), so a plain
//! `dnf --installroot` on Debian writes the tree's rpmdb to `ROOT/root/.rpmdb`, where neither the
//! target distro's rpm nor OSTree expect it. dnf has no `--define`, but rpm reads `~/.rpmmacros`
//! last: we run dnf with `HOME` pointing at a private directory whose `.rpmmacros` sets
//! `%_dbpath` to `spec.dbpath` (default `/usr/lib/sysimage/rpm`, where Fedora >= 36, RHEL 10 and
//! rpm-ostree keep it: inside `/usr`, so it is part of the commit). `/var/lib/rpm` becomes a
//! symlink to it, as those distros ship it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{require_tool, run_tool, BackendError, Note, Progress};

/// Where the rpmdb lives inside trees cairn builds.
pub const DEFAULT_DBPATH: &str = "/usr/lib/sysimage/rpm";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DnfSpec {
    /// Directory holding the `.repo` files (the treefile's directory); the host's are never read.
    pub reposdir: PathBuf,
    /// Repository ids to enable (the treefile's `repos`); everything else stays disabled.
    pub repos: Vec<String>,
    pub releasever: Option<String>,
    /// rpm basearch (x86_64, aarch64...).
    pub arch: String,
    pub packages: Vec<String>,
    /// `repo-packages`: (repo id, packages) pinned to that repository.
    pub repo_packages: Vec<(String, Vec<String>)>,
    pub exclude_packages: Vec<String>,
    /// Install weak dependencies (`recommends`); rpm-ostree's default is true.
    pub recommends: bool,
    /// Install documentation (`documentation`); false adds `tsflags=nodocs`.
    pub documentation: bool,
    /// `install-langs`: only these locales' files (empty = all).
    pub install_langs: Vec<String>,
    /// rpmdb location inside the tree (absolute in-tree path).
    pub dbpath: String,
    /// Skip GPG signature checks (local test repos are unsigned); repo files may still set it.
    pub nogpgcheck: bool,
    /// Passed to dnf and the scriptlets it runs (compose's reproducibility setting).
    #[serde(skip)]
    pub source_date_epoch: Option<u64>,
}

impl DnfSpec {
    pub fn new(reposdir: PathBuf, repos: Vec<String>, packages: Vec<String>) -> DnfSpec {
        DnfSpec {
            reposdir,
            repos,
            releasever: None,
            arch: super::host_basearch().to_string(),
            packages,
            repo_packages: Vec::new(),
            exclude_packages: Vec::new(),
            recommends: true,
            documentation: true,
            install_langs: Vec::new(),
            dbpath: DEFAULT_DBPATH.to_string(),
            nogpgcheck: false,
            source_date_epoch: None,
        }
    }
}

/// The argv (without `dnf`) for one install transaction. `repo_pinned` is `Some(repo)` for a
/// `repo-packages` transaction, which enables only that repository.
pub fn argv(
    spec: &DnfSpec,
    rootfs: &Path,
    config: &Path,
    cache: bool,
    repo_pinned: Option<(&str, &[String])>,
) -> Vec<String> {
    let mut a = vec![
        "-y".to_string(),
        format!("--installroot={}", rootfs.display()),
        // A private, empty dnf.conf: the host's /etc/dnf/dnf.conf (and its repos or excludes)
        // must not leak into the image; the treefile's settings are the whole truth.
        format!("--config={}", config.display()),
        format!("--setopt=reposdir={}", spec.reposdir.display()),
        format!("--forcearch={}", spec.arch),
        format!(
            "--setopt=install_weak_deps={}",
            if spec.recommends { "True" } else { "False" }
        ),
    ];
    if let Some(r) = &spec.releasever {
        a.push(format!("--releasever={r}"));
    }
    if !spec.documentation {
        a.push("--setopt=tsflags=nodocs".into());
    }
    if !spec.install_langs.is_empty() {
        a.push(format!(
            "--setopt=override_install_langs={}",
            spec.install_langs.join(":")
        ));
    }
    if cache {
        // dnf resolves cachedir inside the installroot, so the cache is moved in and out
        // around the transaction (see `install`); keepcache keeps the downloaded RPMs.
        a.push("--setopt=keepcache=True".into());
    }
    if spec.nogpgcheck {
        a.push("--nogpgcheck".into());
    }
    let (repos, packages): (Vec<&str>, &[String]) = match repo_pinned {
        Some((repo, pkgs)) => (vec![repo], pkgs),
        None => (
            spec.repos.iter().map(String::as_str).collect(),
            &spec.packages,
        ),
    };
    // `--repo` disables every other repository.
    for r in repos {
        a.push(format!("--repo={r}"));
    }
    for x in &spec.exclude_packages {
        a.push(format!("--exclude={x}"));
    }
    a.push("install".into());
    a.extend(packages.iter().cloned());
    a
}

/// Installs `spec` into `rootfs` (created if absent). Pinned `repo-packages` go first, each in
/// its own transaction restricted to its repository, then the rest from all `repos`.
pub fn install(
    spec: &DnfSpec,
    rootfs: &Path,
    cachedir: Option<&Path>,
    progress: Progress,
) -> Result<(), BackendError> {
    require_tool("dnf", "dnf")?;
    if spec.repos.is_empty() {
        return Err(BackendError::Invalid(
            "the dnf backend needs `repos` (ids from .repo files beside the treefile)".into(),
        ));
    }
    std::fs::create_dir_all(rootfs)
        .map_err(BackendError::io(format!("creating {}", rootfs.display())))?;
    let home = tempfile::Builder::new()
        .prefix("cairn-rpmmacros-")
        .tempdir()
        .map_err(BackendError::io("creating a private HOME for rpm macros"))?;
    write_dbpath_macros(home.path(), &spec.dbpath)?;
    let config = home.path().join("dnf.conf");
    std::fs::write(&config, "[main]\n").map_err(BackendError::io("writing a private dnf.conf"))?;
    link_var_lib_rpm(rootfs, &spec.dbpath)?;
    let cache = cachedir.map(|c| c.join("dnf").join(&spec.arch));

    let mut transactions: Vec<Option<(&str, &[String])>> = spec
        .repo_packages
        .iter()
        .filter(|(_, p)| !p.is_empty())
        .map(|(r, p)| Some((r.as_str(), p.as_slice())))
        .collect();
    if !spec.packages.is_empty() {
        transactions.push(None);
    }
    // dnf's cache for root is /var/cache/dnf inside the installroot; a rename on the same
    // filesystem moves it in and out for free.
    let in_root_cache = rootfs.join("var/cache/dnf");
    for t in transactions {
        if let Some(c) = &cache {
            move_dir(c, &in_root_cache)?;
        }
        progress(Note::Step(&match t {
            Some((repo, pkgs)) => format!("dnf install {} package(s) from {repo}", pkgs.len()),
            None => format!("dnf install {} package(s)", spec.packages.len()),
        }));
        let mut cmd = Command::new("dnf");
        cmd.env("HOME", home.path()).env("LC_ALL", "C.UTF-8");
        if let Some(sde) = spec.source_date_epoch {
            cmd.env("SOURCE_DATE_EPOCH", sde.to_string());
        }
        cmd.args(argv(spec, rootfs, &config, cache.is_some(), t));
        let out = run_tool(cmd, progress);
        if let Some(c) = &cache {
            move_dir(&in_root_cache, c)?;
        }
        let out = out?;
        // dnf exits 0 on some "No match" cases with strict=False configs; trust the text too.
        let missing = missing_packages(&out.lines);
        if !missing.is_empty() {
            return Err(BackendError::MissingPackages {
                packages: missing,
                output: out.tail(30),
            });
        }
        if !out.success {
            return Err(BackendError::Failed {
                tool: "dnf".into(),
                output: out.tail(40),
                status: out.status,
            });
        }
    }
    Ok(())
}

/// Every build of `name` the enabled repositories offer, as `[EPOCH:]VERSION-RELEASE.ARCH`
/// (for lockfile errors: what the repositories have instead of the locked build).
pub fn available(spec: &DnfSpec, name: &str) -> Vec<String> {
    let Ok(tmp) = tempfile::Builder::new().prefix("cairn-dnfq-").tempdir() else {
        return Vec::new();
    };
    let config = tmp.path().join("dnf.conf");
    if std::fs::write(&config, "[main]\n").is_err() {
        return Vec::new();
    }
    let root = tmp.path().join("root");
    let mut a = argv(spec, &root, &config, false, Some(("", &[])));
    // argv ends with `--repo=` (the empty pinned repo) and `install`: replace both.
    a.retain(|x| x != "--repo=" && x != "install");
    a.extend(spec.repos.iter().map(|r| format!("--repo={r}")));
    a.extend([
        "repoquery".to_string(),
        "-q".into(),
        "--qf".into(),
        "%{epoch}:%{version}-%{release}.%{arch}".into(),
        name.to_string(),
    ]);
    let Ok(out) = Command::new("dnf")
        .args(&a)
        .env("LC_ALL", "C.UTF-8")
        .output()
    else {
        return Vec::new();
    };
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().strip_prefix("0:").unwrap_or(l.trim()).to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The .rpm files a dnf install can have used, by file name: the local (`file://`) baseurls of
/// the enabled repositories and the packages kept in the cache.
pub fn package_files(
    spec: &DnfSpec,
    cachedir: Option<&Path>,
) -> std::collections::BTreeMap<String, PathBuf> {
    let mut dirs: Vec<PathBuf> = local_baseurls(spec);
    if let Some(c) = cachedir {
        dirs.push(c.join("dnf").join(&spec.arch));
    }
    let mut out = std::collections::BTreeMap::new();
    for d in dirs {
        for e in walkdir::WalkDir::new(&d)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_file() && n.ends_with(".rpm") {
                out.entry(n).or_insert_with(|| e.path().to_path_buf());
            }
        }
    }
    out
}

/// `baseurl=file://DIR` of the enabled repositories in `spec.reposdir`.
fn local_baseurls(spec: &DnfSpec) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&spec.reposdir) else {
        return out;
    };
    for e in rd.flatten() {
        if e.path().extension().is_none_or(|x| x != "repo") {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut section = String::new();
        for l in text.lines().map(str::trim) {
            if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = s.to_string();
            } else if let Some(v) = l.strip_prefix("baseurl") {
                let v = v.trim_start().trim_start_matches('=').trim();
                if let (true, Some(p)) = (spec.repos.contains(&section), v.strip_prefix("file://"))
                {
                    out.push(PathBuf::from(p));
                }
            }
        }
    }
    out
}

/// Moves directory `from` to `to` (replacing `to`), by rename when possible, else by copy.
fn move_dir(from: &Path, to: &Path) -> Result<(), BackendError> {
    if !from.is_dir() {
        return Ok(());
    }
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p)
            .map_err(BackendError::io(format!("creating {}", p.display())))?;
    }
    let _ = std::fs::remove_dir_all(to);
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(BackendError::io("copying the dnf cache"))?;
    if !st.success() {
        return Err(BackendError::Failed {
            tool: "cp".into(),
            status: st.to_string(),
            output: String::new(),
        });
    }
    std::fs::remove_dir_all(from).map_err(BackendError::io(format!("removing {}", from.display())))
}

/// Writes `.rpmmacros` into `home` so rpm (and dnf through it) use `dbpath` inside the root.
pub fn write_dbpath_macros(home: &Path, dbpath: &str) -> Result<(), BackendError> {
    let f = home.join(".rpmmacros");
    std::fs::write(&f, format!("%_dbpath {dbpath}\n"))
        .map_err(BackendError::io(format!("writing {}", f.display())))
}

fn link_var_lib_rpm(rootfs: &Path, dbpath: &str) -> Result<(), BackendError> {
    let db = rootfs.join(dbpath.trim_start_matches('/'));
    std::fs::create_dir_all(&db).map_err(BackendError::io(format!("creating {}", db.display())))?;
    if dbpath == "/var/lib/rpm" {
        return Ok(());
    }
    let var_lib = rootfs.join("var/lib");
    std::fs::create_dir_all(&var_lib)
        .map_err(BackendError::io(format!("creating {}", var_lib.display())))?;
    let link = var_lib.join("rpm");
    if link.symlink_metadata().is_err() {
        let target = format!("../..{dbpath}");
        std::os::unix::fs::symlink(&target, &link)
            .map_err(BackendError::io(format!("linking {}", link.display())))?;
    }
    Ok(())
}

/// Package names dnf could not resolve, from its output.
pub fn missing_packages(lines: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut push = |n: &str| {
        let n = n.trim().to_string();
        if !n.is_empty() && !found.contains(&n) {
            found.push(n);
        }
    };
    for l in lines {
        let l = l.trim();
        if let Some(n) = l.strip_prefix("No match for argument: ") {
            push(n);
        } else if let Some(n) = l.strip_prefix("Error: Unable to find a match: ") {
            n.split_whitespace().for_each(&mut push);
        } else if let Some((_, rest)) = l.split_once("nothing provides ") {
            // "- nothing provides libfoo needed by bar-1-1.noarch"
            if let Some((n, _)) = rest.split_once(" needed by ") {
                push(n);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_carries_every_option() {
        let mut spec = DnfSpec::new(
            "/tf".into(),
            vec!["fedora".into(), "updates".into()],
            vec!["kernel".into(), "bash".into()],
        );
        spec.releasever = Some("40".into());
        spec.recommends = false;
        spec.documentation = false;
        spec.install_langs = vec!["en_US".into(), "de_DE".into()];
        spec.exclude_packages = vec!["nano".into()];
        spec.arch = "x86_64".into();
        let a = argv(&spec, Path::new("/r"), Path::new("/h/dnf.conf"), true, None);
        assert_eq!(
            a,
            [
                "-y",
                "--installroot=/r",
                "--config=/h/dnf.conf",
                "--setopt=reposdir=/tf",
                "--forcearch=x86_64",
                "--setopt=install_weak_deps=False",
                "--releasever=40",
                "--setopt=tsflags=nodocs",
                "--setopt=override_install_langs=en_US:de_DE",
                "--setopt=keepcache=True",
                "--repo=fedora",
                "--repo=updates",
                "--exclude=nano",
                "install",
                "kernel",
                "bash"
            ]
        );
        let pinned = vec!["special".to_string()];
        let a = argv(
            &spec,
            Path::new("/r"),
            Path::new("/h/dnf.conf"),
            false,
            Some(("updates", &pinned)),
        );
        let repos: Vec<_> = a.iter().filter(|s| s.starts_with("--repo=")).collect();
        assert_eq!(repos, ["--repo=updates"]);
        assert_eq!(a.last().unwrap(), "special");
    }

    #[test]
    fn parses_missing_packages() {
        let lines: Vec<String> = [
            "No match for argument: nosuchpkg",
            "Error: Unable to find a match: nosuchpkg other",
            "  - nothing provides libgone.so.1()(64bit) needed by foo-1-1.x86_64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            missing_packages(&lines),
            ["nosuchpkg", "other", "libgone.so.1()(64bit)"]
        );
    }
}
