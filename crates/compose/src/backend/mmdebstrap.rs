//! Debian/Ubuntu trees through mmdebstrap (directory format, run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{require_tool, run_tool, BackendError, Note, Progress};

/// What an mmdebstrap install needs; independent of the treefile spelling.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MmdebstrapSpec {
    pub suite: String,
    pub mirror: String,
    pub components: Vec<String>,
    /// mmdebstrap variant: minbase, apt, required, important, standard...
    pub variant: String,
    /// Debian architecture name (amd64, arm64...): see `super::debian_arch`.
    pub arch: String,
    pub packages: Vec<String>,
    /// What compose adds for lockfiles, snapshots and reproducibility; not from the treefile.
    #[serde(skip)]
    pub run: DebRun,
}

/// Per-run settings of an mmdebstrap install that the treefile does not spell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DebRun {
    /// An apt preferences file pinning locked versions, in force while packages install and
    /// removed before the tree is committed.
    pub pins: Option<PathBuf>,
    /// Where apt's package indexes are copied after installation (lockfile digests, snapshots).
    pub lists_out: Option<PathBuf>,
    /// The `sources.list` line the finished tree gets, when `mirror` is a snapshot: the image
    /// names the real mirror, never the build's snapshot path.
    pub final_sources: Option<String>,
    pub source_date_epoch: Option<u64>,
}

impl MmdebstrapSpec {
    /// The `sources.list` line mmdebstrap writes for a plain mirror URL.
    pub fn sources_line(&self) -> String {
        format!(
            "deb {} {} {}",
            self.mirror,
            self.suite,
            self.components.join(" ")
        )
    }
}

impl Default for MmdebstrapSpec {
    fn default() -> Self {
        MmdebstrapSpec {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            components: vec!["main".into()],
            variant: "minbase".into(),
            arch: "amd64".into(),
            packages: Vec::new(),
            run: DebRun::default(),
        }
    }
}

/// The argv (without the program) that installs `spec` into `rootfs`.
///
/// With a cachedir, downloaded .debs are synced into the chroot's apt archive before the
/// download step and back out after installation, so a recompose with the same package set
/// downloads nothing. `--skip=essential/unlink` keeps the essential set's .debs in the archive
/// so they are cached too; the final cleanup still empties the tree's apt cache.
pub fn argv(spec: &MmdebstrapSpec, rootfs: &Path, cachedir: Option<&Path>) -> Vec<String> {
    let mut a = vec![
        format!("--variant={}", spec.variant),
        format!("--architectures={}", spec.arch),
        format!("--components={}", spec.components.join(",")),
        "--format=directory".to_string(),
        // The tree is built as root; a fixed mode keeps the result independent of the umask.
        "--mode=root".to_string(),
    ];
    if !spec.packages.is_empty() {
        a.push(format!("--include={}", spec.packages.join(",")));
    }
    if let Some(c) = cachedir {
        let c = c.display().to_string();
        a.push("--skip=essential/unlink".into());
        a.push(format!(
            "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives {}",
            shell_quote(&c)
        ));
        a.push(format!(
            "--setup-hook=sync-in {} /var/cache/apt/archives/",
            shell_quote(&c)
        ));
        a.push(format!(
            "--customize-hook=sync-out /var/cache/apt/archives {}",
            shell_quote(&c)
        ));
    }
    a.extend(run_hooks(&spec.run));
    a.push(spec.suite.clone());
    a.push(rootfs.display().to_string());
    a.push(spec.mirror.clone());
    a
}

/// Hooks for the lockfile pins, the index copy and the final sources.list.
fn run_hooks(run: &DebRun) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(p) = &run.pins {
        a.push("--setup-hook=mkdir -p \"$1\"/etc/apt/preferences.d".to_string());
        a.push(format!(
            "--setup-hook=cp {} \"$1\"/etc/apt/preferences.d/cairn-lockfile",
            shell_quote(&p.display().to_string())
        ));
        a.push("--customize-hook=rm -f \"$1\"/etc/apt/preferences.d/cairn-lockfile".into());
    }
    if let Some(l) = &run.lists_out {
        let l = shell_quote(&l.display().to_string());
        a.push(format!("--customize-hook=mkdir -p {l}"));
        a.push(format!("--customize-hook=sync-out /var/lib/apt/lists {l}"));
    }
    if let Some(line) = &run.final_sources {
        a.push(format!(
            "--customize-hook=printf '%s\\n' {} > \"$1\"/etc/apt/sources.list",
            shell_quote(line)
        ));
    }
    a
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Installs `spec` into `rootfs` (which must not exist or be empty).
pub fn install(
    spec: &MmdebstrapSpec,
    rootfs: &Path,
    cachedir: Option<&Path>,
    progress: Progress,
) -> Result<(), BackendError> {
    require_tool("mmdebstrap", "mmdebstrap")?;
    let cache: Option<PathBuf> = cachedir.map(|c| c.join("apt-archives").join(&spec.arch));
    if let Some(c) = &cache {
        std::fs::create_dir_all(c)
            .map_err(BackendError::io(format!("creating {}", c.display())))?;
    }
    progress(Note::Step(&format!(
        "mmdebstrap {} {} + {} package(s)",
        spec.suite,
        spec.variant,
        spec.packages.len()
    )));
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(argv(spec, rootfs, cache.as_deref()));
    // Debian's kernel hooks (/etc/kernel/postinst.d/{dracut,initramfs-tools}) skip building an
    // initramfs when INITRD=No: postprocess builds the one OSTree needs (dracut --add ostree)
    // anyway, so the install-time image would be built only to be thrown away.
    cmd.env("INITRD", "No");
    // mmdebstrap then drops its own logs and caches and clamps what it writes (its
    // cleanup/reproducible step); dpkg and maintainer scripts see it too.
    if let Some(t) = spec.run.source_date_epoch {
        cmd.env("SOURCE_DATE_EPOCH", t.to_string());
    }
    let out = run_tool(cmd, progress)?;
    if out.success {
        return Ok(());
    }
    let missing = missing_packages(&out.lines);
    if !missing.is_empty() {
        return Err(BackendError::MissingPackages {
            packages: missing,
            output: out.tail(30),
        });
    }
    Err(BackendError::Failed {
        tool: "mmdebstrap".into(),
        output: out.tail(40),
        status: out.status,
    })
}

/// Package names apt could not find, from its error lines.
pub fn missing_packages(lines: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for l in lines {
        let l = l.trim();
        // apt: "E: Unable to locate package NAME"
        let name = l
            .strip_prefix("E: Unable to locate package ")
            // apt: "E: Package 'NAME' has no installation candidate"
            .or_else(|| {
                l.strip_prefix("E: Package '")
                    .and_then(|r| r.split_once("' has no installation candidate"))
                    .map(|(n, _)| n)
            })
            // apt's solver: " NAME : Depends: OTHER but it is not installable" names OTHER.
            .or_else(|| {
                l.split_once(" Depends: ")
                    .and_then(|(_, r)| r.split_once(" but it is not installable"))
                    .map(|(n, _)| n.split_whitespace().next().unwrap_or(n))
            });
        if let Some(n) = name {
            let n = n.trim().to_string();
            if !n.is_empty() && !found.contains(&n) {
                found.push(n);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_shape() {
        let spec = MmdebstrapSpec {
            packages: vec!["systemd".into(), "dbus".into()],
            ..Default::default()
        };
        let a = argv(&spec, Path::new("/t/root"), None);
        assert_eq!(
            a,
            [
                "--variant=minbase",
                "--architectures=amd64",
                "--components=main",
                "--format=directory",
                "--mode=root",
                "--include=systemd,dbus",
                "bookworm",
                "/t/root",
                "http://deb.debian.org/debian"
            ]
        );
        let a = argv(&spec, Path::new("/t/root"), Some(Path::new("/c/it's")));
        assert!(a.contains(&"--skip=essential/unlink".to_string()));
        assert!(
            a.contains(&"--setup-hook=sync-in '/c/it'\\''s' /var/cache/apt/archives/".to_string())
        );
    }

    #[test]
    fn parses_missing_packages() {
        let lines: Vec<String> = [
            "I: running apt-get update...",
            "E: Unable to locate package nosuch-pkg",
            "E: Package 'virtual-only' has no installation candidate",
            " foo : Depends: libgone1 but it is not installable",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            missing_packages(&lines),
            ["nosuch-pkg", "virtual-only", "libgone1"]
        );
    }
}
