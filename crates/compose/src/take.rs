//! `cairn snapshot`: a compose's package phase whose result is kept as a package repository
//! (the packages of the resolution and its lockfile) instead of being committed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::plan::BackendPlan;
use super::run::{self, ComposeOptions, Event, PackageJob, Phase};
use super::snapshot::{self, AptTarget, DebFile, SnapshotError, SnapshotInfo};
use super::{lockfile, ComposeError};
use cairn_treefile::Backend;

#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    pub treefile: PathBuf,
    /// The snapshot directory to create (absent or empty).
    pub out: PathBuf,
    pub backend: Option<Backend>,
    /// Default: `cairn-cache` beside `out`.
    pub cachedir: Option<PathBuf>,
    pub arch: Option<String>,
    pub vars: Vec<(String, String)>,
    /// Resolve to exactly these versions (the snapshot then holds what the lockfiles name).
    pub lockfiles: Vec<PathBuf>,
    pub lockfile_strict: bool,
}

/// The result of `cairn snapshot`; the body of a `SnapshotResult` document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotReport {
    pub out: PathBuf,
    pub lockfile: PathBuf,
    #[serde(flatten)]
    pub info: SnapshotInfo,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

/// Resolves and downloads the treefile's packages, then writes them as a repository to
/// `opts.out`. The directory appears complete or not at all (written beside it, then renamed).
pub fn snapshot(
    opts: &SnapshotOptions,
    events: &mut dyn FnMut(Event),
) -> Result<SnapshotReport, ComposeError> {
    let started = Instant::now();
    check_out(&opts.out)?;
    let copts = ComposeOptions {
        treefile: opts.treefile.clone(),
        repo: opts.out.clone(),
        backend: opts.backend,
        cachedir: opts.cachedir.clone(),
        arch: opts.arch.clone(),
        vars: opts.vars.clone(),
        lockfiles: opts.lockfiles.clone(),
        lockfile_strict: opts.lockfile_strict,
        ..Default::default()
    };
    let p = run::prepare(&copts, events)?;
    let timestamp = p
        .sde
        .unwrap_or_else(|| chrono::Utc::now().timestamp() as u64);
    let build = run::build_dir(&p.cachedir)?;
    let pj = PackageJob {
        plan: &p.plan,
        cachedir: &p.cachedir,
        locked: &p.locked,
        strict: opts.lockfile_strict,
        snapshot: None,
        sde: p.sde,
        want_sources: true,
    };
    let t = Instant::now();
    events(Event::Start(Phase::Packages));
    let installed = run::install_and_resolve(&pj, build.path(), events)?;
    events(Event::Done(Phase::Packages, t.elapsed().as_secs_f64()));
    let sources = installed.sources.unwrap_or_default();
    let resolved: Vec<_> = sources.iter().map(|s| s.resolved.clone()).collect();
    let lock = lockfile::from_resolution(
        &resolved,
        chrono::DateTime::from_timestamp(timestamp as i64, 0).unwrap_or_default(),
    );
    events(Event::Step("writing the snapshot repository"));
    let tmp = opts.out.with_file_name(format!(
        ".{}.tmp-{}",
        opts.out
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let info = match &p.plan.backend {
        BackendPlan::Mmdebstrap(spec) => {
            let mut debs = Vec::new();
            for s in &sources {
                let (Some(stanza), Some(file)) = (&s.stanza, &s.file) else {
                    return Err(missing_file(&s.resolved.name, &s.resolved.evra));
                };
                debs.push(DebFile {
                    stanza,
                    file: file.clone(),
                });
            }
            let target = AptTarget {
                suite: &spec.suite,
                components: &spec.components,
                arch: &spec.arch,
                timestamp,
            };
            snapshot::write_apt(&tmp, &debs, &target, &lock)?
        }
        BackendPlan::Dnf(_) => {
            let mut rpms = Vec::new();
            for s in &sources {
                let Some(f) = &s.file else {
                    return Err(missing_file(&s.resolved.name, &s.resolved.evra));
                };
                rpms.push(f.clone());
            }
            snapshot::write_rpm(&tmp, &rpms, &p.tf.arch, timestamp, &lock)?
        }
        other => {
            return Err(ComposeError::Treefile(format!(
            "the {} backend installs from no package repository: snapshots need mmdebstrap or dnf",
            other.name()
        )))
        }
    };
    let _ = std::fs::remove_dir(&opts.out);
    std::fs::rename(&tmp, &opts.out).map_err(|error| ComposeError::Io {
        what: format!("moving the snapshot into {}", opts.out.display()),
        error,
    })?;
    Ok(SnapshotReport {
        lockfile: opts.out.join(snapshot::LOCK_FILE),
        out: opts.out.clone(),
        info,
        seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        warnings: p.warnings,
    })
}

fn missing_file(name: &str, evra: &str) -> ComposeError {
    SnapshotError::Invalid {
        location: format!("{name} {evra}"),
        reason: "the package file is neither in the cache nor in a local repository".into(),
    }
    .into()
}

/// A snapshot never mixes with other content: `out` must be absent or empty.
fn check_out(out: &Path) -> Result<(), ComposeError> {
    let non_empty = std::fs::read_dir(out)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty {
        return Err(ComposeError::Treefile(format!(
            "{}: exists and is not empty; a snapshot is written into a new directory (remove it or choose another --out)",
            out.display()
        )));
    }
    Ok(())
}
