//! Which deployment is "previous", and making it the default by reordering (Debian's 2022.7
//! `ostree` CLI has no set-default; `write_deployments` with a new order is what it would do).
//!
//! On a booted host: if a newer deployment is pending (the default is not the booted one), the
//! booted deployment becomes the default again (undo the pending update); otherwise the first
//! deployment after the booted one (the rollback). On a sysroot that is not booted (a temp dir,
//! an image being prepared) the default deployment stands in for the booted one.

use ostree::gio;

use super::error::{Context, DeployError};
use super::stage;
use super::sysroot::SysrootGuard;

/// The deployment running now, or the one that would boot next when nothing is booted.
pub(crate) fn booting(guard: &SysrootGuard, os: &str) -> Option<ostree::Deployment> {
    guard
        .booted_deployment()
        .filter(|b| b.osname() == os)
        .or_else(|| guard.deployments().into_iter().find(|d| d.osname() == os))
}

/// The first deployment of `os` after `d` in boot order that is not staged (a staged update is
/// never what "previous" means).
pub(crate) fn previous_of(
    guard: &SysrootGuard,
    d: &ostree::Deployment,
) -> Option<ostree::Deployment> {
    let all = guard.deployments();
    let pos = all.iter().position(|x| x.equal(d))?;
    all.into_iter()
        .skip(pos + 1)
        .find(|x| x.osname() == d.osname() && !stage::is_pending(guard, x))
}

/// The deployment `cairn rollback` makes the default.
pub(crate) fn target(guard: &SysrootGuard, os: &str) -> Option<ostree::Deployment> {
    let default = stage::next_default(guard, os)?;
    match guard.booted_deployment().filter(|b| b.osname() == os) {
        Some(b) if !b.equal(&default) => Some(b),
        Some(b) => previous_of(guard, &b),
        None => previous_of(guard, &default),
    }
}

/// Moves `d` to the front of the boot order; nothing else changes and nothing is deleted.
pub(crate) fn make_default(
    guard: &SysrootGuard,
    d: &ostree::Deployment,
) -> Result<(), DeployError> {
    let mut order: Vec<ostree::Deployment> = guard
        .deployments()
        .into_iter()
        .filter(|x| !x.equal(d) && !x.is_staged())
        .collect();
    order.insert(0, d.clone());
    guard
        .write_deployments(&order, gio::Cancellable::NONE)
        .ctx(|| format!("writing the new boot order in {}", guard.path().display()))
}
