//! Health-checked automatic rollback, in the spirit of greenboot.
//!
//! `cairn health check` is the boot-side command: it runs the executables in `required.d/` and
//! `wanted.d/` of the config dir (default: the booting deployment's `/etc/cairn/health`), then,
//! under the sysroot lock, updates a boot counter kept in `<sysroot>/ostree/cairn/`. A pass resets
//! the counter. A required failure increments it; when it reaches `max_attempts` the previous
//! deployment becomes the default and a `rolled-back` event is recorded. Wanted failures only warn.
//! Without a booted deployment (a sysroot in a temp dir) the default deployment is the one booting.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::state::{now, BootCounter, CheckRecord, EventKind, HealthEvent, State};
use super::sysroot::{Open, SysrootGuard};
use super::{deployment_id, os_name, rollback, DeployError, Host};
use crate::deploy::error::Context;

#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Directory holding `required.d/` and `wanted.d/`; `None`: `<booting deployment>/etc/cairn/health`.
    pub config: Option<PathBuf>,
    /// Failed boots before rolling back (default 3).
    pub max_attempts: u32,
    /// Per-check limit; a check still running then is killed and counts as failed.
    pub timeout: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            config: None,
            max_attempts: 3,
            timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub required: bool,
    pub passed: bool,
    /// Exit code, or a note (`killed after 300s`, `could not start: ...`).
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub deployment: String,
    pub config: PathBuf,
    pub checks: Vec<CheckResult>,
    pub passed: bool,
    pub failed_boots: u32,
    pub max_attempts: u32,
    /// Set when this run made the previous deployment the default.
    pub rolled_back_to: Option<String>,
}

/// Runs the checks once (one simulated or real boot) and updates the counter.
pub fn check(host: &Host, opts: &HealthOptions) -> Result<HealthReport, DeployError> {
    let (dep_id, config) = booting(host, opts)?;
    // The checks run without the sysroot lock: they may take minutes (up to `timeout` each),
    // and a `cairn deploy` or `rollback` meanwhile must not wait for them.
    let mut checks = run_dir(
        &config.join("required.d"),
        true,
        opts.timeout,
        &host.sysroot,
        &dep_id,
    )?;
    checks.extend(run_dir(
        &config.join("wanted.d"),
        false,
        opts.timeout,
        &host.sysroot,
        &dep_id,
    )?);
    let names = |required: bool| -> Vec<String> {
        checks
            .iter()
            .filter(|c| c.required == required && !c.passed)
            .map(|c| c.name.clone())
            .collect()
    };
    let record = CheckRecord {
        time: now(),
        passed: names(true).is_empty(),
        failed: names(true),
        warnings: names(false),
    };
    let passed = record.passed;
    let (failed_boots, rolled_back_to) = count_boot(host, opts, &dep_id, record)?;
    Ok(HealthReport {
        deployment: dep_id,
        config,
        checks,
        passed,
        failed_boots,
        max_attempts: opts.max_attempts,
        rolled_back_to,
    })
}

/// The booting deployment's id and the config dir its checks come from.
fn booting(host: &Host, opts: &HealthOptions) -> Result<(String, PathBuf), DeployError> {
    let guard = SysrootGuard::open(&host.sysroot, Open::Read)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let d = rollback::booting(&guard, &os).ok_or_else(|| DeployError::NoDeployments {
        os: os.clone(),
        sysroot: host.sysroot.clone(),
    })?;
    let config = opts
        .config
        .clone()
        .unwrap_or_else(|| guard.deployment_dir(&d).join("etc/cairn/health"));
    Ok((deployment_id(&d), config))
}

/// Under the sysroot lock: records this boot's result in the counter of deployment `dep_id`
/// and, at `max_attempts` failed boots, rolls back. Returns (failed boots, rolled back to).
fn count_boot(
    host: &Host,
    opts: &HealthOptions,
    dep_id: &str,
    record: CheckRecord,
) -> Result<(u32, Option<String>), DeployError> {
    let guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let d = rollback::booting(&guard, &os)
        .filter(|d| deployment_id(d) == dep_id)
        .ok_or_else(|| DeployError::State {
            what: "recording the health check".into(),
            why: format!(
                "the booting deployment changed from {dep_id} while checks ran; run again"
            ),
        })?;
    let state = State {
        dir: guard.state_dir(),
    };
    let mut counter = state
        .counter()?
        .filter(|c| c.deployment == dep_id)
        .unwrap_or(BootCounter {
            deployment: dep_id.to_string(),
            osname: os.clone(),
            ..Default::default()
        });
    let mut rolled_back_to = None;
    if record.passed {
        counter.failed_boots = 0;
    } else {
        counter.failed_boots += 1;
        let event = |kind, to: Option<String>| HealthEvent {
            time: record.time.clone(),
            kind,
            osname: os.clone(),
            deployment: dep_id.to_string(),
            failed_boots: counter.failed_boots,
            failed: record.failed.clone(),
            rolled_back_to: to,
        };
        state.record(event(EventKind::CheckFailed, None))?;
        if counter.failed_boots >= opts.max_attempts {
            match rollback::previous_of(&guard, &d) {
                Some(prev) => {
                    rollback::make_default(&guard, &prev)?;
                    let to = deployment_id(&prev);
                    state.record(event(EventKind::RolledBack, Some(to.clone())))?;
                    rolled_back_to = Some(to);
                }
                None => state.record(event(EventKind::NoRollbackTarget, None))?,
            }
        }
    }
    counter.last_check = Some(record);
    state.set_counter(&counter)?;
    Ok((counter.failed_boots, rolled_back_to))
}

/// Runs every executable file in `dir` in name order; a missing dir has no checks.
fn run_dir(
    dir: &Path,
    required: bool,
    timeout: Duration,
    sysroot: &Path,
    dep: &str,
) -> Result<Vec<CheckResult>, DeployError> {
    use std::os::unix::fs::PermissionsExt;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("reading {}", dir.display())),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    paths.sort();
    Ok(paths
        .iter()
        .map(|p| run_one(p, required, timeout, sysroot, dep))
        .collect())
}

fn run_one(
    path: &Path,
    required: bool,
    timeout: Duration,
    sysroot: &Path,
    dep: &str,
) -> CheckResult {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = |passed, detail: String| CheckResult {
        name: name.clone(),
        required,
        passed,
        detail,
    };
    let child = Command::new(path)
        .env("CAIRN_SYSROOT", sysroot)
        .env("CAIRN_DEPLOYMENT", dep)
        .stdin(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return result(false, format!("could not start: {e}")),
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                return result(
                    st.success(),
                    st.code()
                        .map_or_else(|| format!("{st}"), |c| format!("exit {c}")),
                )
            }
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return result(false, format!("killed after {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return result(false, format!("wait failed: {e}")),
        }
    }
}
