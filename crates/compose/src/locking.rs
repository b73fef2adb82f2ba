//! How snapshots and lockfiles change a compose: the backend reads the snapshot instead of the
//! mirror, locked versions are pinned, the input hash names both, and after installation the
//! resolution is checked against the lockfiles before anything is committed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::backend::{self, debindex::Index, BackendError};
use super::lockfile::{self, Locked, LockfileError, Problem};
use super::manifest::Package;
use super::plan::{BackendPlan, Plan};
use super::resolve::{self, Source};
use super::snapshot::{self, Opened};
use super::ComposeError;

/// The repository id a dnf compose from a snapshot enables (and nothing else).
pub const SNAPSHOT_REPO_ID: &str = "cairn-snapshot";

/// Points the plan's backend at `snap`, pins `locked` versions and adds both to the input hash.
/// Only the snapshot's digest is hashed, never its location: the same snapshot from a path or
/// a URL gives the same input hash (and commit).
pub fn apply(
    plan: &mut Plan,
    snap: Option<&Opened>,
    locked: &BTreeMap<String, Locked>,
    strict: bool,
) -> Result<(), ComposeError> {
    if let Some(s) = snap {
        point_at_snapshot(plan, s)?;
        plan.inputs
            .backend
            .push(("snapshot".into(), s.info.digest.clone()));
    }
    // Lockfiles are not part of the input hash: a compose pinned to what it would resolve anyway
    // gives the same commit. Whether the ref's commit already has the locked builds is decided
    // on its package manifest instead (`matches_commit`).
    if (!locked.is_empty() || strict) && matches!(plan.backend, BackendPlan::RpmOstree) {
        return Err(ComposeError::Treefile(
            "lockfiles and snapshots are applied by cairn's dnf backend; rpm-ostree takes its own \
             --ex-lockfile: compose with --backend dnf"
                .into(),
        ));
    }
    if let BackendPlan::Dnf(spec) = &mut plan.backend {
        if !locked.is_empty() {
            // Every locked build is asked for by its full name: dnf then resolves nothing else.
            spec.packages.retain(|p| !locked.contains_key(p));
            spec.packages
                .extend(locked.iter().map(|(n, l)| resolve::rpm_spec(n, &l.evra)));
        }
    }
    Ok(())
}

fn point_at_snapshot(plan: &mut Plan, s: &Opened) -> Result<(), ComposeError> {
    let mismatch = |want: &str| {
        ComposeError::Treefile(format!(
            "snapshot {} holds {} packages ({}), but this compose uses the {want} backend",
            s.location, s.info.backend, s.info.arch
        ))
    };
    match &mut plan.backend {
        BackendPlan::Mmdebstrap(spec) => {
            if s.info.backend != "mmdebstrap" || s.info.arch != spec.arch {
                return Err(mismatch("mmdebstrap"));
            }
            // The finished tree names the treefile's mirror, as a compose from it would.
            spec.run.final_sources = Some(spec.sources_line());
            let suite = s.info.suite.clone().unwrap_or_else(|| spec.suite.clone());
            spec.mirror = format!(
                "deb [trusted=yes] {} {suite} {}",
                s.location.apt_url(),
                s.info.components.join(" ")
            );
            Ok(())
        }
        BackendPlan::Dnf(spec) => {
            if s.info.backend != "dnf" {
                return Err(mismatch("dnf"));
            }
            spec.repos = vec![SNAPSHOT_REPO_ID.into()];
            for (repo, _) in &mut spec.repo_packages {
                *repo = SNAPSHOT_REPO_ID.into();
            }
            Ok(())
        }
        other => Err(mismatch(other.name())),
    }
}

/// True when a commit's package manifest (`cairn.packages`) already has every locked build it
/// contains, and (strict) nothing unlisted: the lockfiles ask for no change.
pub fn matches_commit(
    manifest_json: Option<&str>,
    locked: &BTreeMap<String, Locked>,
    strict: bool,
) -> bool {
    if locked.is_empty() && !strict {
        return true;
    }
    let Some(pkgs) = manifest_json.and_then(|j| serde_json::from_str::<Vec<Package>>(j).ok())
    else {
        return false;
    };
    pkgs.iter().all(|p| match locked.get(&p.name) {
        Some(l) => l.evra == format!("{}.{}", p.evr(), p.arch),
        None => !strict,
    })
}

/// The backend plan for one run: build-local paths for pins, index copies and the snapshot's
/// `.repo` file, and the compose's `SOURCE_DATE_EPOCH`.
pub fn for_run(
    plan: &BackendPlan,
    build: &Path,
    locked: &BTreeMap<String, Locked>,
    snap: Option<&Opened>,
    sde: Option<u64>,
) -> Result<BackendPlan, ComposeError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |error| ComposeError::Io { what, error }
    };
    let mut plan = plan.clone();
    match &mut plan {
        BackendPlan::Mmdebstrap(spec) => {
            if !locked.is_empty() {
                let pins = build.join("cairn-lockfile.pref");
                std::fs::write(&pins, resolve::apt_pins(locked))
                    .map_err(io("writing the lockfile's apt pins"))?;
                spec.run.pins = Some(pins);
            }
            spec.run.lists_out = Some(build.join("apt-lists"));
            spec.run.source_date_epoch = sde;
        }
        BackendPlan::Dnf(spec) => {
            if let Some(s) = snap {
                let dir = build.join("repos.d");
                std::fs::create_dir_all(&dir).map_err(io("creating the snapshot repo dir"))?;
                std::fs::write(
                    dir.join("cairn-snapshot.repo"),
                    format!(
                        "[{SNAPSHOT_REPO_ID}]\nname=cairn snapshot\nbaseurl={}\ngpgcheck=0\nmetadata_expire=0\n",
                        s.location.url()
                    ),
                )
                .map_err(io("writing the snapshot's .repo file"))?;
                spec.reposdir = dir;
            }
            spec.source_date_epoch = sde;
        }
        _ => {}
    }
    Ok(plan)
}

/// Reads back what the package phase installed, with digests and files.
pub fn resolution(
    plan: &BackendPlan,
    installed: &[Package],
    cachedir: &Path,
    snap: Option<&Opened>,
) -> Result<(Vec<Source>, Option<Index>), ComposeError> {
    match plan {
        BackendPlan::Mmdebstrap(spec) => {
            let lists = spec.run.lists_out.clone().unwrap_or_default();
            let index = Index::read(&lists)?;
            let archive = cachedir.join("apt-archives").join(&spec.arch);
            let roots: Vec<PathBuf> = match snap.map(|s| &s.location) {
                Some(snapshot::Location::Dir(d)) => vec![d.clone()],
                _ => Vec::new(),
            };
            Ok((
                resolve::debian(installed, &index, &archive, &roots),
                Some(index),
            ))
        }
        BackendPlan::Dnf(spec) => {
            let files = backend::dnf::package_files(spec, Some(cachedir));
            Ok((resolve::rpm(installed, &files), None))
        }
        other => Err(ComposeError::Treefile(format!(
            "the {} backend has no package repositories: lockfiles and snapshots need mmdebstrap or dnf",
            other.name()
        ))),
    }
}

/// Checks the resolution against the lockfiles; the error lists every problem.
pub fn check(
    plan: &BackendPlan,
    sources: &[Source],
    index: Option<&Index>,
    locked: &BTreeMap<String, Locked>,
    strict: bool,
) -> Result<(), ComposeError> {
    let resolved: Vec<_> = sources.iter().map(|s| s.resolved.clone()).collect();
    let mut available = |name: &str| match (plan, index) {
        (_, Some(i)) => i.builds_of(name),
        (BackendPlan::Dnf(spec), None) => backend::dnf::available(spec, name),
        _ => Vec::new(),
    };
    lockfile::check(&resolved, locked, strict, &mut available).map_err(ComposeError::from)
}

/// dnf refuses a locked build the repositories no longer have ("No match for argument:
/// NAME-EVRA"): the same lockfile error as a version mismatch, with what they have instead.
pub fn explain_missing(
    e: BackendError,
    plan: &BackendPlan,
    locked: &BTreeMap<String, Locked>,
) -> ComposeError {
    let (BackendError::MissingPackages { packages, .. }, BackendPlan::Dnf(spec)) = (&e, plan)
    else {
        return e.into();
    };
    let problems: Vec<Problem> = locked
        .iter()
        .filter(|(n, l)| packages.contains(&resolve::rpm_spec(n, &l.evra)))
        .map(|(n, l)| Problem::Version {
            name: n.clone(),
            expected: l.evra.clone(),
            found: "no such build in the repositories".into(),
            available: backend::dnf::available(spec, n),
        })
        .collect();
    if problems.is_empty() {
        return e.into();
    }
    LockfileError::Mismatch { problems }.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_with_the_locked_builds_needs_no_rebuild() {
        let manifest = r#"[{"name":"bash","version":"5.2","release":"1","arch":"x86_64"},{"name":"extra","version":"1","arch":"all"}]"#;
        let lock = |evra: &str| {
            BTreeMap::from([(
                "bash".to_string(),
                Locked {
                    evra: evra.into(),
                    digest: None,
                },
            )])
        };
        assert!(matches_commit(Some(manifest), &lock("5.2-1.x86_64"), false));
        assert!(!matches_commit(
            Some(manifest),
            &lock("5.3-1.x86_64"),
            false
        ));
        // Strict: `extra` is in no lockfile, so the compose must run (and fail).
        assert!(!matches_commit(Some(manifest), &lock("5.2-1.x86_64"), true));
        assert!(matches_commit(None, &BTreeMap::new(), false));
        assert!(!matches_commit(None, &lock("5.2-1.x86_64"), false));
    }
}
