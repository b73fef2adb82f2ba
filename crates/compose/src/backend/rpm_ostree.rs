//! rpm-ostree's own compose, where rpm-ostree is installed (Fedora/CentOS/RHEL build hosts).
//!
//! rpm-ostree does install, postprocess and commit itself; cairn renders the treefile for it
//! (cairn section lowered to standard keys) and passes its input hash and backend name as
//! `--add-metadata-string`. rpm-ostree records packages in its own `rpmostree.rpmdb.pkglist`;
//! cairn does not add `cairn.packages` on this path (no rpm-ostree on Debian to verify it).

use std::path::PathBuf;
use std::process::Command;

use super::{require_tool, run_tool, BackendError, Note, Progress};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RpmOstreeSpec {
    /// The treefile rendered for rpm-ostree (`Treefile::for_rpm_ostree().write_to(dir)`), with
    /// the original directory's `.repo` files copied beside it.
    pub rendered_treefile: PathBuf,
    pub repo: PathBuf,
    pub cachedir: PathBuf,
    /// Extra `--add-metadata-string=K=V` pairs.
    pub metadata: Vec<(String, String)>,
    /// Write the commit id here (`--write-commitid-to`).
    pub commitid_file: PathBuf,
    pub force_nocache: bool,
}

pub fn argv(spec: &RpmOstreeSpec) -> Vec<String> {
    let mut a = vec![
        "rpm-ostree".to_string(),
        "compose".into(),
        "tree".into(),
        "--unified-core".into(),
        format!("--repo={}", spec.repo.display()),
        format!("--cachedir={}", spec.cachedir.display()),
        format!("--write-commitid-to={}", spec.commitid_file.display()),
    ];
    if spec.force_nocache {
        a.push("--force-nocache".into());
    }
    for (k, v) in &spec.metadata {
        a.push(format!("--add-metadata-string={k}={v}"));
    }
    a.push(spec.rendered_treefile.display().to_string());
    a
}

/// Runs rpm-ostree; returns the new commit checksum (None: rpm-ostree found no changes).
pub fn install(spec: &RpmOstreeSpec, progress: Progress) -> Result<Option<String>, BackendError> {
    require_tool("rpm-ostree", "rpm-ostree (not packaged for Debian)")?;
    let _ = std::fs::remove_file(&spec.commitid_file);
    let a = argv(spec);
    progress(Note::Step("rpm-ostree compose tree"));
    let mut cmd = Command::new(&a[0]);
    cmd.args(&a[1..]);
    let out = run_tool(cmd, progress)?;
    if !out.success {
        let missing = super::dnf::missing_packages(&out.lines);
        if !missing.is_empty() {
            return Err(BackendError::MissingPackages {
                packages: missing,
                output: out.tail(30),
            });
        }
        return Err(BackendError::Failed {
            tool: "rpm-ostree".into(),
            output: out.tail(40),
            status: out.status,
        });
    }
    Ok(std::fs::read_to_string(&spec.commitid_file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_argv() {
        let spec = RpmOstreeSpec {
            rendered_treefile: "/src/.cairn-rpm-ostree-fcos.json".into(),
            repo: "/build/repo".into(),
            cachedir: "/build/cache".into(),
            metadata: vec![("cairn.input-hash".into(), "abc".into())],
            commitid_file: "/build/cache/commitid".into(),
            force_nocache: true,
        };
        assert_eq!(
            argv(&spec),
            [
                "rpm-ostree",
                "compose",
                "tree",
                "--unified-core",
                "--repo=/build/repo",
                "--cachedir=/build/cache",
                "--write-commitid-to=/build/cache/commitid",
                "--force-nocache",
                "--add-metadata-string=cairn.input-hash=abc",
                "/src/.cairn-rpm-ostree-fcos.json"
            ]
        );
    }
}
