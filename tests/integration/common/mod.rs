//! Shared fixtures: the cairn binary, the ../shared corpus, temp dirs and external tools.
#![allow(dead_code)]

pub mod etcd;
pub mod image;
pub mod metal;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod repo;
pub mod sysroot;

/// The cairn binary cargo built for this test run.
pub fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

/// Runs cairn with `args`, returning its output (never panics on a non-zero exit).
pub fn run_cairn<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    cairn().args(args).output().expect("spawn cairn")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The project root (where the top-level Cargo.toml is).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ has a parent")
        .to_path_buf()
}

/// `../shared/corpus` beside the checkout, or `None` with a loud message (a user's clone has none).
pub fn corpus() -> Option<PathBuf> {
    let p = project_root().join("../shared/corpus");
    if p.is_dir() {
        Some(p.canonicalize().unwrap())
    } else {
        eprintln!(
            "SKIP: {} is absent; real-world corpus tests need ../shared beside the checkout",
            p.display()
        );
        None
    }
}

/// True when `tool` is on PATH; otherwise prints a loud SKIP line naming it.
pub fn have_tool(tool: &str, why_absent: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        eprintln!("SKIP: `{tool}` not installed: {why_absent}");
    }
    found
}

/// A temp dir under /var/tmp (not tmpfs: OSTree repos want xattrs and real hardlinks).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cairn-test-")
        .tempdir_in("/var/tmp")
        .expect("tempdir")
}
pub mod compose;
pub mod treefile;

/// Blocks until `child` (started with `CAIRN_FAILPOINT=<point>=pause` and a piped stderr)
/// announces it is paused at `point`; panics if it exits first. The caller then SIGKILLs it.
pub fn wait_for_failpoint(child: &mut std::process::Child, point: &str) {
    use std::io::BufRead;
    let err = child.stderr.take().expect("stderr must be piped");
    let marker = format!("failpoint {point}: pausing");
    for line in std::io::BufReader::new(err).lines() {
        if line.expect("read cairn's stderr").contains(&marker) {
            return;
        }
    }
    panic!("cairn exited before reaching failpoint {point}");
}
