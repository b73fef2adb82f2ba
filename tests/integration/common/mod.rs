//! Shared fixtures: the cairn binary, the ../shared corpus, temp dirs and external tools.
#![allow(dead_code)]

pub mod compose;
pub mod etcd;
pub mod http;
pub mod image;
pub mod metal;
pub mod registry;
pub mod repo;
pub mod sysroot;
pub mod treefile;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// Runs cairn with `args`, panicking with its output unless it succeeds.
pub fn cairn_ok<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let o = run_cairn(&args);
    assert!(
        o.status.success(),
        "cairn {args:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// Runs cairn with `args` (which ask for `--json`), asserting success; returns the document.
pub fn cairn_json<I, S>(args: I) -> serde_json::Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let o = cairn_ok(args);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// Runs `cmd`, panicking with its output on failure; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
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

/// True under CI (`CI=true`), where every test CI is meant to run must run.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The one way a test skips part of itself: a loud SKIP line outside CI; under CI a failure,
/// because scripts/setup.sh and the CI checkout provide everything these tests need. (Tools that
/// cannot exist on Debian at all go through [`impossible_here`] instead.)
pub fn skip(why: &str) {
    assert!(
        !in_ci(),
        "would SKIP under CI ({why}); CI must run this test"
    );
    eprintln!("SKIP: {why}");
    record_skip(why);
}

/// Appends a skip to `$CAIRN_SKIP_LOG` (scripts/test.sh sets it and prints the list after the
/// run): cargo shows a test that skipped part of itself as plain "ok", so the summary must say it.
pub fn record_skip(why: &str) {
    use std::io::Write as _;
    let Some(path) = std::env::var_os("CAIRN_SKIP_LOG") else {
        return;
    };
    let test = std::thread::current().name().unwrap_or("?").to_string();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = writeln!(f, "{test}: {why}");
    }
}

/// `../shared/corpus` beside the checkout, or `None` after [`skip`] (a user's clone has none).
pub fn corpus() -> Option<PathBuf> {
    let p = project_root().join("../shared/corpus");
    if p.is_dir() {
        Some(p.canonicalize().unwrap())
    } else {
        skip(&format!(
            "{} is absent; real-world corpus tests need ../shared beside the checkout",
            p.display()
        ));
        None
    }
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// True when `tool` is on PATH; otherwise [`skip`]s (a failure under CI) and returns false.
pub fn have_tool(tool: &str, why_absent: &str) -> bool {
    let found = on_path(tool);
    if !found {
        skip(&format!("`{tool}` not installed: {why_absent}"));
    }
    found
}

/// For tools Debian cannot have (rpm-ostree, anaconda): true when present; otherwise a loud
/// SKIP line, also under CI, naming what covers the gap.
pub fn impossible_here(tool: &str, what_covers_it: &str) -> bool {
    let found = on_path(tool);
    if !found {
        let why = format!("`{tool}` cannot be installed on Debian; {what_covers_it}");
        eprintln!("\n*** SKIP: {why}\n");
        record_skip(&why);
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
/// Blocks until `child` (started with `CAIRN_FAILPOINT=<point>=pause` and a piped stderr)
/// announces it is paused at `point`; panics if it exits first. The caller then SIGKILLs it.
pub fn wait_for_failpoint(child: &mut std::process::Child, point: &str) {
    // Generous: some failpoints sit behind a whole compose.
    let within = std::time::Duration::from_secs(20 * 60);
    wait_for_stderr(child, &format!("failpoint {point}: pausing"), within);
}

/// Blocks until `child` (with a piped stderr) writes a stderr line containing `marker`, and
/// returns that line. Panics if it exits first, or kills it and panics when `within` passes:
/// a missing line fails the test rather than hanging it. Consumes stderr.
pub fn wait_for_stderr(
    child: &mut std::process::Child,
    marker: &str,
    within: std::time::Duration,
) -> String {
    use std::io::BufRead;
    let err = child.stderr.take().expect("stderr must be piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { return };
            if line.contains(&wanted) {
                let _ = tx.send(line);
                return;
            }
        }
    });
    match rx.recv_timeout(within) {
        Ok(line) => line,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no {marker:?} on cairn's stderr within {within:?}");
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("cairn exited before writing {marker:?} on stderr")
        }
    }
}

/// A child process SIGKILLed and reaped when dropped: a failing test leaves no paused cairn
/// (holding a lock) behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a cairn server command (`cairn serve`, `cairn fleetlock serve`) with stderr going to
/// `stderr_log`, and reads the `listening on URL` line it prints first on stdout.
pub fn spawn_listening(mut cmd: Command, stderr_log: &Path) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(stderr_log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!(
                "no address line (got {line:?}); stderr: {}",
                std::fs::read_to_string(stderr_log).unwrap_or_default()
            )
        })
        .to_string();
    (child, url)
}

/// Clears the immutable bit libostree sets on deployment roots anywhere under `dir` (a fixture's
/// sysroot, or the many sysroots of a fleet test), so the temp dir can be removed on drop and a
/// test run leaves nothing behind in /var/tmp.
pub fn make_removable(dir: &Path) {
    let mut it = walkdir::WalkDir::new(dir).into_iter();
    while let Some(Ok(e)) = it.next() {
        if !e.file_type().is_dir() {
            continue;
        }
        let p = e.path();
        let is_deployment = p.parent().is_some_and(|d| d.ends_with("deploy"))
            && p.ancestors()
                .nth(3)
                .is_some_and(|o| o.ends_with("ostree/deploy"));
        if is_deployment {
            let _ = Command::new("chattr").arg("-i").arg(p).status();
            // A deployment is a whole OS tree: nothing further down needs the walk.
            it.skip_current_dir();
        }
    }
}
