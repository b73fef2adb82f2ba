//! A tree from an existing root filesystem: a directory or a tarball (e.g. an exported container).
//!
//! Copies go through GNU `cp -a` and GNU `tar` rather than hand-written Rust: they already handle
//! hardlinks, sparse files, xattrs/ACLs, device nodes, every compression (`tar -a` picks gzip, xz,
//! zstd, bzip2 by suffix) and the long tail of ownership corner cases, and both are in every
//! Debian base system.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{require_tool, run_tool, BackendError, Note, Progress};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RootfsSpec {
    /// A directory or a tar archive (optionally compressed).
    pub path: PathBuf,
}

/// The command (program + args) that materializes `spec` into `rootfs`.
pub fn argv(spec: &RootfsSpec, rootfs: &Path) -> Vec<String> {
    if spec.path.is_dir() {
        // `SRC/.` copies the contents, not the directory itself; --reflink=auto shares extents
        // where the filesystem can and copies otherwise.
        vec![
            "cp".into(),
            "-a".into(),
            "--reflink=auto".into(),
            "--".into(),
            format!("{}/.", spec.path.display()),
            rootfs.display().to_string(),
        ]
    } else {
        vec![
            "tar".into(),
            "--extract".into(),
            "--file".into(),
            spec.path.display().to_string(),
            "--directory".into(),
            rootfs.display().to_string(),
            "--auto-compress".into(),
            "--preserve-permissions".into(),
            "--same-owner".into(),
            "--numeric-owner".into(),
            "--xattrs".into(),
            "--xattrs-include=*".into(),
            "--acls".into(),
        ]
    }
}

pub fn install(spec: &RootfsSpec, rootfs: &Path, progress: Progress) -> Result<(), BackendError> {
    let meta = spec.path.metadata().map_err(BackendError::io(format!(
        "rootfs source {}",
        spec.path.display()
    )))?;
    std::fs::create_dir_all(rootfs)
        .map_err(BackendError::io(format!("creating {}", rootfs.display())))?;
    let a = argv(spec, rootfs);
    require_tool(
        if meta.is_dir() { "cp" } else { "tar" },
        if meta.is_dir() { "coreutils" } else { "tar" },
    )?;
    progress(Note::Step(&format!(
        "copying {} into the tree",
        spec.path.display()
    )));
    let mut cmd = Command::new(&a[0]);
    cmd.args(&a[1..]);
    let out = run_tool(cmd, progress)?;
    if !out.success {
        return Err(BackendError::Failed {
            tool: a[0].clone(),
            output: out.tail(40),
            status: out.status,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarball_argv() {
        let a = argv(
            &RootfsSpec {
                path: "/nonexistent/rootfs.tar.zst".into(),
            },
            Path::new("/r"),
        );
        assert_eq!(
            &a[..4],
            ["tar", "--extract", "--file", "/nonexistent/rootfs.tar.zst"]
        );
        assert!(a.contains(&"--xattrs-include=*".to_string()));
    }
}
