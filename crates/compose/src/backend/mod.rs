//! Package backends: each turns a plain spec into a populated root filesystem directory.
//!
//! Specs are independent of how the treefile spells things, so each backend can be driven
//! (and tested) without a treefile; `compose::plan` maps a treefile onto one of them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

pub mod debindex;
pub mod dnf;
pub mod mmdebstrap;
pub mod rootfs;
pub mod rpm_ostree;

pub use dnf::DnfSpec;
pub use mmdebstrap::MmdebstrapSpec;
pub use rootfs::RootfsSpec;
pub use rpm_ostree::RpmOstreeSpec;

/// What a running backend or postprocess step reports, for a progress line or a log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note<'a> {
    /// A step cairn starts ("dracut --add ostree for 6.1.0-28-amd64"): short, worth showing.
    Step(&'a str),
    /// One line a tool printed (stdout and stderr interleaved as they came): the log's content.
    Output(&'a str),
}

/// Where progress goes: a spinner, a log file, or nowhere.
pub type Progress<'a> = &'a mut dyn FnMut(Note);

/// Which package manager wrote the tree: decides how its package database is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageDb {
    /// `var/lib/dpkg/status`.
    Dpkg,
    /// An rpmdb at this path inside the tree.
    Rpm { dbpath: &'static str },
    /// No package database (plain root filesystem).
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{tool} is not installed (Debian package: {package})")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("package{} not found: {}", if .packages.len() == 1 { "" } else { "s" }, .packages.join(", "))]
    MissingPackages {
        packages: Vec<String>,
        output: String,
    },
    #[error("{tool} failed ({status}):\n{output}")]
    Failed {
        tool: String,
        status: String,
        output: String,
    },
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

impl BackendError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
        let what = what.into();
        move |error| BackendError::Io { what, error }
    }
}

/// Output of a finished tool run: every line (stdout and stderr interleaved as they came).
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub success: bool,
    pub status: String,
    pub lines: Vec<String>,
}

impl ToolOutput {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
    /// The last `n` lines, enough to show why a tool failed without flooding the terminal.
    pub fn tail(&self, n: usize) -> String {
        let start = self.lines.len().saturating_sub(n);
        self.lines[start..].join("\n")
    }
}

/// Runs `cmd`, streaming each output line to `progress` while collecting them all.
pub fn run_tool(mut cmd: Command, progress: Progress) -> Result<ToolOutput, BackendError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // If cairn is killed, the package manager dies with it instead of writing on into an
    // abandoned build tree.
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no parent memory.
    #[allow(unsafe_code)]
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(BackendError::io(format!("running {program}")))?;
    let (tx, rx) = mpsc::channel::<String>();
    let mut readers = Vec::new();
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    for stream in [
        Box::new(out) as Box<dyn std::io::Read + Send>,
        Box::new(err),
    ] {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                if tx.send(line).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut lines = Vec::new();
    for line in rx {
        progress(Note::Output(&line));
        lines.push(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .wait()
        .map_err(BackendError::io(format!("waiting for {program}")))?;
    Ok(ToolOutput {
        success: status.success(),
        status: status.to_string(),
        lines,
    })
}

/// True when `tool` is an executable on PATH.
pub fn tool_exists(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| is_executable(&d.join(tool))))
        .unwrap_or(false)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub(crate) fn require_tool(tool: &'static str, package: &'static str) -> Result<(), BackendError> {
    if tool_exists(tool) {
        Ok(())
    } else {
        Err(BackendError::ToolMissing { tool, package })
    }
}

/// rpm basearch -> Debian architecture name.
pub fn debian_arch(basearch: &str) -> Result<&'static str, BackendError> {
    Ok(match basearch {
        "x86_64" | "amd64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "ppc64le" | "ppc64el" => "ppc64el",
        "s390x" => "s390x",
        "i686" | "i386" => "i386",
        "armhfp" | "armv7hl" | "armhf" => "armhf",
        "riscv64" => "riscv64",
        other => {
            return Err(BackendError::Invalid(format!(
                "architecture `{other}` has no Debian equivalent (known: x86_64, aarch64, ppc64le, s390x, i686, armhfp, riscv64)"
            )))
        }
    })
}

/// The host's rpm basearch (what `--arch` defaults to).
pub fn host_basearch() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "i686",
        "arm" => "armhfp",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_mapping() {
        assert_eq!(debian_arch("x86_64").unwrap(), "amd64");
        assert_eq!(debian_arch("aarch64").unwrap(), "arm64");
        assert_eq!(debian_arch("ppc64le").unwrap(), "ppc64el");
        assert!(debian_arch("sparc")
            .unwrap_err()
            .to_string()
            .contains("sparc"));
    }

    #[test]
    fn run_tool_collects_both_streams() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let mut seen = Vec::new();
        let out = run_tool(cmd, &mut |n| seen.push(format!("{n:?}"))).unwrap();
        assert!(!out.success);
        assert!(out.lines.contains(&"out".to_string()) && out.lines.contains(&"err".to_string()));
        assert_eq!(seen.len(), 2);
    }
}
