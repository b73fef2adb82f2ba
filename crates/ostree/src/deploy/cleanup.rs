//! `cairn cleanup`: drop old deployments beyond `--keep`, then libostree's cleanup (orphaned
//! deployment dirs, old boot versions, unreferenced repository objects).
//! The default, the booted, the rollback target and pinned deployments are never removed.

use ostree::gio;
use serde::Serialize;

use super::error::{Context, DeployError};
use super::sysroot::{Open, SysrootGuard};
use super::{deployment_id, os_name, rollback, stage, Host};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupOutcome {
    /// `<checksum>.<deployserial>` of each removed deployment.
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

pub fn cleanup(host: &Host, keep: Option<usize>) -> Result<CleanupOutcome, DeployError> {
    if keep == Some(0) {
        return Err(DeployError::KeepZero);
    }
    let mut guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let all = guard.deployments();
    let booted = guard.booted_deployment();
    let rollback = rollback::target(&guard, &os);
    let mut seen = 0usize;
    let (mut kept, mut removed) = (Vec::new(), Vec::new());
    for d in &all {
        if d.osname() != os {
            kept.push(d.clone());
            continue;
        }
        seen += 1;
        let protected = seen == 1
            || d.is_pinned()
            || stage::is_pending(&guard, d)
            || booted.as_ref().is_some_and(|b| b.equal(d))
            || rollback.as_ref().is_some_and(|r| r.equal(d));
        if protected || keep.is_none_or(|k| seen <= k) {
            kept.push(d.clone());
        } else {
            removed.push(d.clone());
        }
    }
    if !removed.is_empty() {
        guard
            .write_deployments(&kept, gio::Cancellable::NONE)
            .ctx(|| "writing the remaining deployments".into())?;
    }
    guard
        .cleanup(gio::Cancellable::NONE)
        .ctx(|| format!("cleaning up {}", host.sysroot.display()))?;
    guard.reload()?;
    Ok(CleanupOutcome {
        removed: removed.iter().map(deployment_id).collect(),
        kept: kept
            .iter()
            .filter(|d| d.osname() == os)
            .map(deployment_id)
            .collect(),
    })
}
