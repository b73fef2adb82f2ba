//! Staged upgrades: a new deployment that is written but does not boot until it is finalized.
//!
//! Two mechanisms, one behaviour. On a booted host it is libostree's staging (`stage_tree`;
//! `ostree-finalize-staged.service` writes the boot entries at shutdown) plus its finalization
//! lock, the file `/run/ostree/staged-deployment-locked`, whose presence makes the finalize
//! service skip it: an unplanned reboot boots the current deployment again (and, `/run` being a
//! tmpfs, the staged one is dropped). `cairn finalize` removes the lock. libostree 2022.7 refuses
//! to stage on a sysroot that is not booted (a directory: images, tests), so there the deployment
//! is written second in the boot order, recorded in `<sysroot>/ostree/cairn/staged.json`, and
//! `cairn finalize` moves it to the front.

use std::path::Path;

use ostree::gio;
use serde::Serialize;

use super::error::{Context, DeployError};
use super::state::{now, StagedRecord, State};
use super::sysroot::{Open, SysrootGuard};
use super::{deployment_id, os_name, rollback, Host};

/// libostree's finalization lock (ostree-sysroot-private.h, honoured by 2022.7's
/// `ostree admin finalize-staged`).
pub const FINALIZATION_LOCK: &str = "/run/ostree/staged-deployment-locked";

/// How a pending deployment will become the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// libostree staging on a booted host: finalized at shutdown unless locked.
    Libostree,
    /// A sysroot that is not booted: only `cairn finalize` makes it the default.
    Cairn,
}

/// The deployment waiting to become the default, as `cairn status` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedStatus {
    /// `<checksum>.<deployserial>`.
    pub deployment: String,
    pub checksum: String,
    pub mechanism: Mechanism,
    /// True when a reboot now would still boot the current default (finalization is locked,
    /// or, on a sysroot that is not booted, always until `cairn finalize`).
    pub locked: bool,
}

/// A pending deployment of an opened sysroot.
pub(crate) struct Pending {
    pub deployment: ostree::Deployment,
    pub mechanism: Mechanism,
    pub locked: bool,
}

impl Pending {
    pub fn status(&self) -> StagedStatus {
        StagedStatus {
            deployment: deployment_id(&self.deployment),
            checksum: self.deployment.csum().to_string(),
            mechanism: self.mechanism,
            locked: self.locked,
        }
    }
}

fn state(guard: &SysrootGuard) -> State {
    State {
        dir: guard.state_dir(),
    }
}

/// The cairn-staged deployment of a sysroot that is not booted, if its record still names one
/// (a later deploy may have removed it; the record is then stale and ignored).
pub(crate) fn cairn_staged(
    guard: &SysrootGuard,
) -> Result<Option<ostree::Deployment>, DeployError> {
    if guard.is_booted() {
        return Ok(None);
    }
    let Some(rec) = state(guard).staged()? else {
        return Ok(None);
    };
    Ok(guard
        .deployments()
        .into_iter()
        .skip(1)
        .find(|d| deployment_id(d) == rec.deployment && d.osname() == rec.osname))
}

/// True when `d` is staged by either mechanism (never a rollback target, never pinned).
pub(crate) fn is_pending(guard: &SysrootGuard, d: &ostree::Deployment) -> bool {
    d.is_staged()
        || cairn_staged(guard)
            .ok()
            .flatten()
            .is_some_and(|s| s.equal(d))
}

pub(crate) fn pending(guard: &SysrootGuard) -> Result<Option<Pending>, DeployError> {
    if let Some(d) = guard.staged_deployment() {
        return Ok(Some(Pending {
            deployment: d,
            mechanism: Mechanism::Libostree,
            locked: Path::new(FINALIZATION_LOCK).exists(),
        }));
    }
    Ok(cairn_staged(guard)?.map(|d| Pending {
        deployment: d,
        mechanism: Mechanism::Cairn,
        locked: true,
    }))
}

/// Where the default sits among deployments in boot order, each given as (of the OS asked about,
/// staged by libostree): the first of the OS, except a libostree-staged one while finalization
/// is locked. libostree lists its staged deployment first, but a locked one does not boot next:
/// the booted deployment does, as on a sysroot in a directory, where the staged one is second.
pub(crate) fn default_index(deployments: &[(bool, bool)], locked: bool) -> Option<usize> {
    deployments
        .iter()
        .position(|&(ours, staged)| ours && !(staged && locked))
}

/// The deployment of `os` the next boot starts (see [`default_index`]).
pub(crate) fn next_default(guard: &SysrootGuard, os: &str) -> Option<ostree::Deployment> {
    let all = guard.deployments();
    let keys: Vec<(bool, bool)> = all
        .iter()
        .map(|d| (d.osname() == os, d.is_staged()))
        .collect();
    let i = default_index(&keys, Path::new(FINALIZATION_LOCK).exists())?;
    all.into_iter().nth(i)
}

/// Takes libostree's finalization lock (before staging, so no shutdown can finalize in between).
pub(crate) fn lock_finalization() -> Result<(), DeployError> {
    let path = Path::new(FINALIZATION_LOCK);
    let what = || format!("creating the finalization lock {}", path.display());
    std::fs::create_dir_all(path.parent().expect("has a parent")).ctx(what)?;
    std::fs::write(path, b"").ctx(what)
}

pub(crate) fn unlock_finalization() -> Result<(), DeployError> {
    match std::fs::remove_file(FINALIZATION_LOCK) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).ctx(|| format!("removing the finalization lock {FINALIZATION_LOCK}"))
        }
        _ => Ok(()),
    }
}

/// Writes the boot order `[default, new, rest]` for a sysroot that is not booted and records
/// `new` as staged. As `simple_write_deployment` does for a new default, only deployments of
/// other OSes and pinned ones are kept besides these two (so a previous staged one goes).
pub(crate) fn write_kept_out(
    guard: &SysrootGuard,
    default: &ostree::Deployment,
    new: &ostree::Deployment,
) -> Result<(), DeployError> {
    let mut order = vec![default.clone(), new.clone()];
    order.extend(guard.deployments().into_iter().filter(|d| {
        !d.equal(default) && (d.osname() != new.osname() || d.is_pinned()) && !d.is_staged()
    }));
    guard
        .write_deployments(&order, gio::Cancellable::NONE)
        .ctx(|| format!("writing the boot order in {}", guard.path().display()))?;
    state(guard).set_staged(Some(&StagedRecord {
        deployment: deployment_id(new),
        osname: new.osname().to_string(),
        time: now(),
    }))
}

/// Forgets a cairn-staged deployment: a new default supersedes it.
pub(crate) fn forget(guard: &SysrootGuard) -> Result<(), DeployError> {
    state(guard).set_staged(None)
}

/// Makes the pending deployment the one the next boot starts.
pub(crate) fn make_next(guard: &mut SysrootGuard, p: &Pending) -> Result<(), DeployError> {
    match p.mechanism {
        Mechanism::Libostree => unlock_finalization(),
        Mechanism::Cairn => {
            rollback::make_default(guard, &p.deployment)?;
            forget(guard)?;
            guard.reload()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizeOutcome {
    /// The deployment that boots next.
    pub deployment: String,
    pub checksum: String,
    pub mechanism: Mechanism,
    /// The default before (on a booted host: the booted deployment).
    pub from: String,
}

/// Makes the staged deployment the next boot's default: removes the finalization lock on a
/// booted host (libostree writes the boot entries at shutdown), moves it to the front of the
/// boot order on a sysroot that is not booted.
pub fn finalize(host: &Host) -> Result<FinalizeOutcome, DeployError> {
    let mut guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let p = pending(&guard)?
        .filter(|p| p.deployment.osname() == os)
        .ok_or_else(|| DeployError::NothingStaged(os.clone()))?;
    let from = rollback::booting(&guard, &os)
        .map(|d| deployment_id(&d))
        .unwrap_or_default();
    make_next(&mut guard, &p)?;
    Ok(FinalizeOutcome {
        deployment: deployment_id(&p.deployment),
        checksum: p.deployment.csum().to_string(),
        mechanism: p.mechanism,
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::default_index;

    #[test]
    fn a_locked_libostree_staged_deployment_is_not_the_default() {
        // [staged v2, booted v1], as libostree lists them on a booted host.
        let booted_host = [(true, true), (true, false)];
        assert_eq!(default_index(&booted_host, true), Some(1));
        // Finalized (lock removed): v2 boots next.
        assert_eq!(default_index(&booted_host, false), Some(0));
        // Another OS first, and a sysroot in a directory (nothing staged by libostree).
        assert_eq!(
            default_index(&[(false, false), (true, false)], true),
            Some(1)
        );
        assert_eq!(
            default_index(&[(true, false), (true, false)], true),
            Some(0)
        );
        assert_eq!(default_index(&[(false, false)], false), None);
    }
}
