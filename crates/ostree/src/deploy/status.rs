//! `cairn status`: the host's deployments as a versioned, typed object (scripts rely on it).

use std::path::PathBuf;

use serde::Serialize;

use super::stage::{self, StagedStatus};
use super::state::{BootCounter, HealthEvent, State};
use super::sysroot::{Open, SysrootGuard};
use super::{
    commit_version, deployment_id, kargs_of, origin_image, origin_refspec, rollback, DeployError,
    Host,
};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    pub sysroot: PathBuf,
    /// True when this process runs on the sysroot it inspects (a booted OSTree host).
    pub is_booted: bool,
    /// Deployments in boot-menu order: index 0 is the default, except a staged deployment whose
    /// finalization is locked (libostree lists it first; the booted one boots next).
    pub deployments: Vec<DeploymentStatus>,
    /// The deployment waiting to become the default (`cairn upgrade --stage`), if any.
    pub staged: Option<StagedStatus>,
    pub health: HealthStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// Position in the boot menu, as `ostree admin` and `cairn pin`/`unpin` count.
    pub index: usize,
    pub osname: String,
    pub checksum: String,
    pub deployserial: i32,
    /// `<checksum>.<deployserial>`, the name of its directory under ostree/deploy/OS/deploy.
    pub id: String,
    /// The commit's `version` metadata, when set.
    pub version: Option<String>,
    /// What `cairn upgrade` follows (`remote:ref`, a local ref, a bare commit, or a container
    /// image reference such as `ostree-unverified-registry:HOST/NAME:TAG`).
    pub origin: Option<String>,
    pub booted: bool,
    pub default: bool,
    /// The deployment `cairn rollback` would make the default.
    pub rollback: bool,
    pub pinned: bool,
    /// Written but not the next boot's default by itself (see `HostStatus::staged`).
    pub staged: bool,
    /// Kernel arguments, without the boot-version-specific `ostree=` one libostree manages.
    pub kargs: Vec<String>,
    /// Consecutive boots whose required health checks failed (see `cairn health check`).
    pub failed_boots: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    pub counter: Option<BootCounter>,
    /// Failures and automatic rollbacks, oldest first.
    pub events: Vec<HealthEvent>,
}

pub fn status(host: &Host) -> Result<HostStatus, DeployError> {
    let guard = SysrootGuard::open(&host.sysroot, Open::Read)?;
    status_of(&guard, host.os.as_deref())
}

/// The status of an opened sysroot; `os` filters deployments (all when `None`).
pub(crate) fn status_of(guard: &SysrootGuard, os: Option<&str>) -> Result<HostStatus, DeployError> {
    let booted = guard.booted_deployment();
    let repo = guard.repo();
    let state = State {
        dir: guard.state_dir(),
    };
    let counter = state.counter()?;
    let all = guard.deployments();
    let pending = stage::pending(guard)?;
    let mut deployments = Vec::new();
    for (i, d) in all.iter().enumerate() {
        let osname = d.osname().to_string();
        if os.is_some_and(|o| o != osname) {
            continue;
        }
        let id = deployment_id(d);
        let failed_boots = counter
            .as_ref()
            .filter(|c| c.deployment == id)
            .map_or(0, |c| c.failed_boots);
        deployments.push(DeploymentStatus {
            index: i,
            checksum: d.csum().to_string(),
            deployserial: d.deployserial(),
            version: commit_version(&repo, &d.csum()),
            origin: origin_image(d).or_else(|| origin_refspec(d)),
            booted: booted.as_ref().is_some_and(|b| b.equal(d)),
            default: stage::next_default(guard, &osname).is_some_and(|n| n.equal(d)),
            rollback: rollback::target(guard, &osname).is_some_and(|t| t.equal(d)),
            pinned: d.is_pinned(),
            staged: pending.as_ref().is_some_and(|p| p.deployment.equal(d)),
            kargs: kargs_of(d)
                .into_iter()
                .filter(|a| super::kargs::key(a) != "ostree")
                .collect(),
            failed_boots,
            osname,
            id,
        });
    }
    Ok(HostStatus {
        sysroot: guard.path().to_path_buf(),
        is_booted: booted.is_some(),
        deployments,
        staged: pending.as_ref().map(stage::Pending::status),
        health: HealthStatus {
            counter,
            events: state.events()?,
        },
    })
}
