//! A/B deployment of OSTree commits on a sysroot: deploy, upgrade, rollback, kernel arguments,
//! pins, cleanup and health-checked automatic rollback. Everything goes through libostree's
//! Sysroot API; `ostree admin` reads the result (it is the test oracle).
//!
//! Guarantees: the merge deployment is always passed to libostree, so the 3-way /etc merge carries
//! local changes and kernel arguments are inherited (never an empty list, which would drop
//! `root=`); `/var` is never written; the booted, rollback and pinned deployments survive cleanup.
//! A deploy interrupted at any point leaves the previous boot configuration in place: the new
//! deployment only becomes visible when libostree swaps the boot loader configuration.

mod cleanup;
mod error;
mod health;
pub mod kargs;
mod provision;
mod provision_remote;
mod pull;
mod rollback;
mod stage;
mod state;
mod status;
mod sysroot;

use std::path::{Path, PathBuf};

use ostree::{gio, glib};
use serde::Serialize;

use crate::is_checksum;

pub use cleanup::{cleanup, CleanupOutcome};
use error::Context;
pub use error::DeployError;
pub use health::{check as health_check, CheckResult, HealthOptions, HealthReport};
pub use kargs::KargEdits;
pub use provision::{provision, BeforeDeploy, ProvisionOptions, Provisioned};
pub use provision_remote::{provision_from_remote, RemoteChange, RemoteProvisionOptions};
pub use pull::Remote;
pub use stage::{finalize, FinalizeOutcome, Mechanism, StagedStatus, FINALIZATION_LOCK};
use state::write_atomic;
pub use state::{BootCounter, CheckRecord, EventKind, HealthEvent};
pub use status::{status, DeploymentStatus, HealthStatus, HostStatus};
use sysroot::{is_live, Open, SysrootGuard};

use cairn_sysctl as sysctl;

/// Which sysroot and which OS (stateroot) a host command works on.
#[derive(Debug, Clone)]
pub struct Host {
    /// `/` for the running host, or the root of a sysroot in a directory.
    pub sysroot: PathBuf,
    /// The stateroot; `None`: the booted one, else the default deployment's.
    pub os: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// A ref (`stable`, `remote:ref`) or a commit checksum.
    pub rev: String,
    /// Pull `rev` from this remote first (added to the sysroot repo when it has a URL and is
    /// missing). Without it, `rev` must already be in the sysroot repository.
    pub remote: Option<Remote>,
    /// `KEY=VALUE` arguments replacing those of the same key inherited from the merge deployment.
    pub kargs: Vec<String>,
    /// Presets written into the new deployment's `/etc/sysctl.d` (and modules-load.d).
    pub presets: Vec<String>,
    /// User presets (sysctl.d files named after the preset).
    pub preset_dir: Option<PathBuf>,
    /// Validate and report the plan; change nothing.
    pub dry_run: bool,
    /// The container image `rev` was pulled from (`ostree-unverified-registry:...`): recorded in
    /// the origin as `container-image-reference`, so `upgrade` pulls the image again.
    pub container_image: Option<String>,
}

/// What a deploy did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployOutcome {
    pub osname: String,
    /// `None` only in a dry run whose rev is not pulled yet.
    pub checksum: Option<String>,
    pub version: Option<String>,
    pub origin: String,
    /// `<checksum>.<serial>` whose /etc and kernel arguments were merged, if any.
    pub merge: Option<String>,
    /// The new deployment's `<checksum>.<serial>` (`None` in a dry run).
    pub deployment: Option<String>,
    /// Kernel arguments of the new deployment; `None` when inherited unchanged.
    pub kargs: Option<Vec<String>>,
    /// Files written, relative to the deployment root.
    pub files: Vec<PathBuf>,
    pub initialized: bool,
    pub dry_run: bool,
}

/// cairn's state dir on a sysroot (`<sysroot>/ostree/cairn`): boot counter, health events, the
/// staged record, and the update agent's state. It survives deployments and rollbacks.
pub fn state_dir(sysroot: &Path) -> PathBuf {
    sysroot.join("ostree/cairn")
}

/// `<checksum>.<deployserial>`, as ostree names deployment directories.
pub(crate) fn deployment_id(d: &ostree::Deployment) -> String {
    format!("{}.{}", d.csum(), d.deployserial())
}

/// The deployment's kernel arguments from its boot configuration (including `ostree=`).
pub(crate) fn kargs_of(d: &ostree::Deployment) -> Vec<String> {
    d.bootconfig()
        .and_then(|b| b.get("options"))
        .map(|o| kargs::split(&o))
        .unwrap_or_default()
}

/// The `origin/refspec` a deployment tracks.
pub(crate) fn origin_refspec(d: &ostree::Deployment) -> Option<String> {
    d.origin()?
        .string("origin", "refspec")
        .ok()
        .map(|s| s.to_string())
}

/// The origin key of a deployment that follows a container image (rpm-ostree and bootc use it).
pub const ORIGIN_CONTAINER_IMAGE: &str = "container-image-reference";

/// The container image a deployment follows, if it came from one.
pub(crate) fn origin_image(d: &ostree::Deployment) -> Option<String> {
    d.origin()?
        .string("origin", ORIGIN_CONTAINER_IMAGE)
        .ok()
        .map(|s| s.to_string())
}

/// Initializes `sysroot` when it is an empty directory and returns its repository's path, for
/// callers that write objects themselves (container image pulls) before deploying.
pub fn prepare_sysroot(sysroot: &Path) -> Result<PathBuf, DeployError> {
    let guard = SysrootGuard::open(sysroot, Open::LockCreate)?;
    Ok(guard.path().join("ostree/repo"))
}

/// The container image the next upgrade of `host` pulls: the one its merge deployment (or, on
/// a sysroot that is not booted, its default deployment) follows; `None` for an OSTree ref.
pub fn tracked_image(host: &Host) -> Result<Option<String>, DeployError> {
    let guard = SysrootGuard::open(&host.sysroot, Open::Read)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let default = default_deployment(&guard, &os, host)?;
    let merge = guard.merge_deployment(Some(&os)).unwrap_or(default);
    Ok(origin_image(&merge))
}

/// The commit's `version` metadata.
pub(crate) fn commit_version(repo: &ostree::Repo, csum: &str) -> Option<String> {
    let (commit, _) = repo.load_commit(csum).ok()?;
    let meta = glib::VariantDict::new(Some(&commit.child_value(0)));
    meta.lookup::<String>("version").ok().flatten()
}

/// The OS to work on: given, else the booted deployment's, else the default's.
pub(crate) fn os_name(guard: &SysrootGuard, os: Option<&str>) -> Result<String, DeployError> {
    if let Some(os) = os {
        return Ok(os.to_string());
    }
    guard
        .booted_deployment()
        .or_else(|| guard.deployments().into_iter().next())
        .map(|d| d.osname().to_string())
        .ok_or(DeployError::NeedOsName)
}

/// The default deployment of `os` (the next boot's; see [`stage::default_index`]): what upgrade
/// compares with and rollback, kargs and presets act on.
fn default_deployment(
    guard: &SysrootGuard,
    os: &str,
    host: &Host,
) -> Result<ostree::Deployment, DeployError> {
    stage::next_default(guard, os).ok_or_else(|| DeployError::NoDeployments {
        os: os.to_string(),
        sysroot: host.sysroot.clone(),
    })
}

fn resolve(repo: &ostree::Repo, rev: &str) -> Result<String, DeployError> {
    match repo
        .resolve_rev(rev, true)
        .ctx(|| format!("resolving `{rev}`"))?
    {
        Some(c) => Ok(c.to_string()),
        None => {
            let hint = if rev.contains(':') {
                String::new()
            } else {
                "; to fetch it, pass --remote NAME (and --url URL for a new remote)".to_string()
            };
            Err(DeployError::UnknownRev {
                rev: rev.to_string(),
                hint,
            })
        }
    }
}

/// The merge deployment's arguments with each `KEY=VALUE` in `overrides` replacing its key.
fn merged_kargs(merge: Option<&ostree::Deployment>, overrides: &[String]) -> Vec<String> {
    let mut args: Vec<String> = merge
        .map(kargs_of)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| kargs::key(a) != "ostree")
        .collect();
    for o in overrides {
        args = kargs::replace(&args, o);
    }
    args
}

fn reject_ostree_karg<'a>(args: impl IntoIterator<Item = &'a String>) -> Result<(), DeployError> {
    for a in args {
        kargs::validate(a)?;
        if kargs::key(a) == "ostree" {
            return Err(DeployError::BadKarg {
                arg: a.clone(),
                why: "`ostree=` is managed by libostree".into(),
            });
        }
    }
    Ok(())
}

/// Writes rendered presets under `<deployment>/etc`; returns paths relative to the deployment.
fn write_presets(
    root: &Path,
    presets: &[sysctl::OwnedPreset],
) -> Result<Vec<PathBuf>, DeployError> {
    let mut out = Vec::new();
    for (rel, content) in sysctl::render_owned(presets) {
        let rel = Path::new("etc").join(rel);
        write_atomic(&root.join(&rel), content.as_bytes())?;
        out.push(rel);
    }
    Ok(out)
}

/// Deploys `rev` as the new default. See [`DeployOptions`].
pub fn deploy(host: &Host, opts: &DeployOptions) -> Result<DeployOutcome, DeployError> {
    reject_ostree_karg(&opts.kargs)?;
    let presets = sysctl::resolve(
        &opts.presets,
        opts.preset_dir.as_deref(),
        &sysctl::Validator::host(),
    )?;
    if let Some(url) = opts.remote.as_ref().and_then(|r| r.url.as_ref()) {
        pull::check_url(url)?;
    }
    let refspec = match &opts.remote {
        Some(r) if !is_checksum(&opts.rev) && !opts.rev.contains(':') => {
            format!("{}:{}", r.name, opts.rev)
        }
        _ => opts.rev.clone(),
    };
    let fresh = !host.sysroot.join("ostree/repo").is_dir();
    if opts.dry_run {
        return dry_run(host, opts, &refspec, fresh);
    }
    let mut guard = SysrootGuard::open(&host.sysroot, Open::LockCreate)?;
    let os = match (&host.os, fresh) {
        (Some(os), _) => os.clone(),
        (None, false) => os_name(&guard, None)?,
        (None, true) => return Err(DeployError::NeedOsName),
    };
    let repo = guard.repo();
    // Like `ostree admin deploy`, REMOTE:REF without --remote deploys what is already pulled.
    if let Some(r) = &opts.remote {
        let added = pull::ensure_remote(&repo, r)?;
        let rev = refspec
            .split_once(':')
            .map_or(refspec.as_str(), |(_, rf)| rf);
        if let Err(e) = pull::pull(&repo, &r.name, rev, false) {
            if added {
                let _ = repo.remote_delete(&r.name, gio::Cancellable::NONE);
            }
            return Err(e);
        }
    }
    let csum = resolve(&repo, &refspec)?;
    let initialized = !guard.path().join("ostree/deploy").join(&os).is_dir();
    if initialized {
        guard
            .init_osname(&os, gio::Cancellable::NONE)
            .ctx(|| format!("creating stateroot {os}"))?;
        guard.reload()?;
    }
    let merge = guard.merge_deployment(Some(&os));
    let origin = guard.origin_new_from_refspec(&refspec);
    if let Some(image) = &opts.container_image {
        origin.set_string("origin", ORIGIN_CONTAINER_IMAGE, image);
    }
    let new_kargs = (!opts.kargs.is_empty()).then(|| merged_kargs(merge.as_ref(), &opts.kargs));
    let (deployment, files) = write_new_deployment(
        &mut guard,
        &NewDeployment {
            os: &os,
            csum: &csum,
            origin: &origin,
            merge: merge.as_ref(),
            kargs: new_kargs.as_deref(),
            presets: &presets,
            place: Place::Default,
        },
    )?;
    Ok(DeployOutcome {
        osname: os,
        version: commit_version(&repo, &csum),
        checksum: Some(csum),
        origin: opts.container_image.clone().unwrap_or(refspec),
        merge: merge.as_ref().map(deployment_id),
        deployment: Some(deployment),
        kargs: new_kargs,
        files,
        initialized,
        dry_run: false,
    })
}

/// Where a new deployment goes in the boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The new default now.
    Default,
    /// libostree staging (booted host): finalized at shutdown, unless `locked` (then only
    /// after `cairn finalize`).
    Stage { locked: bool },
    /// Second in the boot order until `cairn finalize` (a sysroot that is not booted).
    AfterDefault,
}

/// What [`write_new_deployment`] makes a deployment of.
struct NewDeployment<'a> {
    os: &'a str,
    csum: &'a str,
    origin: &'a glib::KeyFile,
    /// Whose /etc is merged and whose kernel arguments are inherited.
    merge: Option<&'a ostree::Deployment>,
    /// The whole new kernel command line; `None` inherits the merge deployment's.
    kargs: Option<&'a [String]>,
    presets: &'a [sysctl::OwnedPreset],
    place: Place,
}

/// libostree's staging on a booted host: its running /etc may still change until shutdown,
/// which is when the finalize service merges it. The finalization lock is taken first, so no
/// shutdown can finalize an update meant to wait.
fn stage_new_deployment(
    guard: &mut SysrootGuard,
    new: &NewDeployment,
    topts: &ostree::SysrootDeployTreeOpts,
    locked: bool,
) -> Result<String, DeployError> {
    if locked {
        stage::lock_finalization()?;
    } else {
        stage::unlock_finalization()?;
    }
    let staged = guard
        .stage_tree_with_options(
            Some(new.os),
            new.csum,
            Some(new.origin),
            new.merge,
            topts,
            gio::Cancellable::NONE,
        )
        .ctx(|| format!("staging {} for {}", new.csum, new.os));
    let d = match staged {
        Ok(d) => d,
        Err(e) => {
            if locked {
                let _ = stage::unlock_finalization();
            }
            return Err(e);
        }
    };
    guard.reload()?;
    Ok(deployment_id(&d))
}

/// deploy_tree (or stage_tree), presets, then the boot loader swap that makes it the default
/// (or, for [`Place::AfterDefault`], the second entry).
fn write_new_deployment(
    guard: &mut SysrootGuard,
    new: &NewDeployment,
) -> Result<(String, Vec<PathBuf>), DeployError> {
    let argv: Option<Vec<&str>> = new.kargs.map(|k| k.iter().map(String::as_str).collect());
    if argv.as_ref().is_some_and(|a| a.is_empty()) {
        return Err(DeployError::EmptyKargs);
    }
    let topts = ostree::SysrootDeployTreeOpts {
        override_kernel_argv: argv.as_deref(),
        ..Default::default()
    };
    if let Place::Stage { locked } = new.place {
        return Ok((
            stage_new_deployment(guard, new, &topts, locked)?,
            Vec::new(),
        ));
    }
    let (os, csum) = (new.os, new.csum);
    let deployed = guard
        .deploy_tree_with_options(
            Some(os),
            csum,
            Some(new.origin),
            new.merge,
            Some(&topts),
            gio::Cancellable::NONE,
        )
        .ctx(|| format!("deploying {csum} for {os} in {}", guard.path().display()))?;
    let result = (|| {
        cairn_common::failpoint::hit("deploy-before-write")?;
        let files = write_presets(&guard.deployment_dir(&deployed), new.presets)?;
        match (new.place, new.merge) {
            (Place::AfterDefault, Some(default)) => {
                stage::write_kept_out(guard, default, &deployed)?;
            }
            _ => {
                guard
                    .simple_write_deployment(
                        Some(os),
                        &deployed,
                        new.merge,
                        ostree::SysrootSimpleWriteDeploymentFlags::NONE,
                        gio::Cancellable::NONE,
                    )
                    .ctx(|| {
                        format!(
                            "writing the boot configuration in {}",
                            guard.path().display()
                        )
                    })?;
                // A new default supersedes a deployment staged for `cairn finalize`.
                stage::forget(guard)?;
            }
        }
        Ok(files)
    })();
    match result {
        Ok(files) => {
            let id = deployment_id(&deployed);
            guard.reload()?;
            Ok((id, files))
        }
        Err(e) => {
            // The half-made deployment dir is not referenced by any boot entry; remove it now
            // rather than at the next cleanup.
            let _ = guard.cleanup(gio::Cancellable::NONE);
            Err(e)
        }
    }
}

fn dry_run(
    host: &Host,
    opts: &DeployOptions,
    refspec: &str,
    fresh: bool,
) -> Result<DeployOutcome, DeployError> {
    let (os, checksum, version, merge, kargs) = if fresh {
        if let Ok(mut it) = std::fs::read_dir(&host.sysroot) {
            if it.next().is_some() {
                return Err(DeployError::NotASysroot(host.sysroot.clone()));
            }
        }
        let os = host.os.clone().ok_or(DeployError::NeedOsName)?;
        (
            os,
            None,
            None,
            None,
            (!opts.kargs.is_empty()).then(|| merged_kargs(None, &opts.kargs)),
        )
    } else {
        let guard = SysrootGuard::open(&host.sysroot, Open::Read)?;
        let os = os_name(&guard, host.os.as_deref())?;
        let repo = guard.repo();
        let checksum = match resolve(&repo, refspec) {
            Ok(c) => Some(c),
            Err(_) if opts.remote.is_some() || refspec.contains(':') => None,
            Err(e) => return Err(e),
        };
        let merge = guard.merge_deployment(Some(&os));
        let kargs = (!opts.kargs.is_empty()).then(|| merged_kargs(merge.as_ref(), &opts.kargs));
        let version = checksum.as_deref().and_then(|c| commit_version(&repo, c));
        (
            os,
            checksum,
            version,
            merge.as_ref().map(deployment_id),
            kargs,
        )
    };
    let presets = sysctl::resolve(
        &opts.presets,
        opts.preset_dir.as_deref(),
        &sysctl::Validator::host(),
    )?;
    Ok(DeployOutcome {
        osname: os,
        checksum,
        version,
        origin: refspec.to_string(),
        merge,
        deployment: None,
        kargs,
        files: sysctl::render_owned(&presets)
            .into_iter()
            .map(|(p, _)| Path::new("etc").join(p))
            .collect(),
        initialized: fresh,
        dry_run: true,
    })
}

#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeOptions {
    /// Only find out whether an update exists (fetches commit metadata, not content).
    pub check: bool,
    /// Fetch the update but do not deploy it.
    pub download_only: bool,
    /// Write the update, but keep booting the current default until `finalize` (see
    /// [`finalize`]): an unplanned reboot does not apply it.
    pub stage: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum UpgradeOutcome {
    /// The default deployment already runs the newest commit of its ref (exit 77).
    NoUpdate { checksum: String },
    Available {
        from: String,
        to: String,
        version: Option<String>,
    },
    Downloaded {
        from: String,
        to: String,
        version: Option<String>,
    },
    Deployed {
        from: String,
        to: String,
        version: Option<String>,
        deployment: String,
        /// libostree staging: the boot entries are written at shutdown.
        staged: bool,
        /// The next boot still boots the current default, until `cairn finalize`.
        locked: bool,
    },
    /// The newest commit is already staged and waits for `cairn finalize` (exit 77).
    #[serde(rename_all = "camelCase")]
    AlreadyStaged {
        checksum: String,
        version: Option<String>,
        deployment: String,
    },
}

/// Pulls the ref the merge deployment tracks and deploys it as the new default when it changed
/// (or, with `stage`, stages it).
pub fn upgrade(host: &Host, opts: UpgradeOptions) -> Result<UpgradeOutcome, DeployError> {
    let mut guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let default = default_deployment(&guard, &os, host)?;
    // libostree's merge deployment is the booted one on a live host, else the default.
    let merge = guard
        .merge_deployment(Some(&os))
        .unwrap_or_else(|| default.clone());
    let origin = merge.origin().ok_or_else(|| DeployError::State {
        what: format!("reading the origin of {}", deployment_id(&merge)),
        why: "the deployment has no origin file".into(),
    })?;
    let refspec = origin_refspec(&merge).unwrap_or_default();
    if is_checksum(&refspec) || refspec.is_empty() {
        return Err(DeployError::NotTrackingRef(merge.csum().to_string()));
    }
    let repo = guard.repo();
    if let Some((remote, rf)) = refspec.split_once(':') {
        pull::pull(&repo, remote, rf, opts.check)?;
    }
    let new = resolve(&repo, &refspec)?;
    let from = default.csum().to_string();
    if new == from {
        return Ok(UpgradeOutcome::NoUpdate { checksum: new });
    }
    let version = commit_version(&repo, &new);
    if let Some(p) = stage::pending(&guard)?.filter(|p| p.deployment.csum() == new) {
        return same_as_pending(&mut guard, p, opts, from, version);
    }
    if opts.check || opts.download_only {
        return Ok(if opts.check {
            UpgradeOutcome::Available {
                from,
                to: new,
                version,
            }
        } else {
            UpgradeOutcome::Downloaded {
                from,
                to: new,
                version,
            }
        });
    }
    ostree::Deployment::origin_remove_transient_state(&origin);
    let place = match (guard.is_booted(), opts.stage) {
        (true, locked) => Place::Stage { locked },
        (false, true) => Place::AfterDefault,
        (false, false) => Place::Default,
    };
    let (deployment, _) = write_new_deployment(
        &mut guard,
        &NewDeployment {
            os: &os,
            csum: &new,
            origin: &origin,
            merge: Some(&merge),
            kargs: None,
            presets: &[],
            place,
        },
    )?;
    Ok(UpgradeOutcome::Deployed {
        from,
        to: new,
        version,
        deployment,
        staged: matches!(place, Place::Stage { .. }),
        locked: opts.stage,
    })
}

/// The newest commit is the staged one: with `stage` (or only checking) there is nothing new;
/// a plain upgrade finalizes it, as it would have deployed it.
fn same_as_pending(
    guard: &mut SysrootGuard,
    p: stage::Pending,
    opts: UpgradeOptions,
    from: String,
    version: Option<String>,
) -> Result<UpgradeOutcome, DeployError> {
    let deployment = deployment_id(&p.deployment);
    let checksum = p.deployment.csum().to_string();
    if opts.stage || opts.check || opts.download_only || !p.locked {
        return Ok(UpgradeOutcome::AlreadyStaged {
            checksum,
            version,
            deployment,
        });
    }
    stage::make_next(guard, &p)?;
    Ok(UpgradeOutcome::Deployed {
        from,
        to: checksum,
        version,
        deployment,
        staged: p.mechanism == stage::Mechanism::Libostree,
        locked: false,
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackOutcome {
    pub from: String,
    pub to: String,
}

/// Makes the previous deployment the default (see [`rollback`] for which one that is).
pub fn rollback(host: &Host) -> Result<RollbackOutcome, DeployError> {
    let mut guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let default = default_deployment(&guard, &os, host)?;
    let target =
        rollback::target(&guard, &os).ok_or_else(|| DeployError::NoRollbackTarget(os.clone()))?;
    rollback::make_default(&guard, &target)?;
    guard.reload()?;
    Ok(RollbackOutcome {
        from: deployment_id(&default),
        to: deployment_id(&target),
    })
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KargsOutcome {
    pub before: Vec<String>,
    pub after: Vec<String>,
    /// The new deployment (same commit); `None` when nothing changed.
    pub deployment: Option<String>,
}

/// Edits the default deployment's kernel arguments by deploying the same commit again with the
/// edited list (the old list stays as the rollback).
pub fn edit_kargs(host: &Host, edits: &KargEdits) -> Result<KargsOutcome, DeployError> {
    reject_ostree_karg(
        edits
            .delete
            .iter()
            .chain(&edits.replace)
            .chain(&edits.append),
    )?;
    let mut guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let default = default_deployment(&guard, &os, host)?;
    let before = merged_kargs(Some(&default), &[]);
    let after = edits.apply(&before)?;
    if after == before {
        return Ok(KargsOutcome {
            before,
            after,
            deployment: None,
        });
    }
    let origin = default
        .origin()
        .unwrap_or_else(|| guard.origin_new_from_refspec(&default.csum()));
    let csum = default.csum().to_string();
    let (id, _) = write_new_deployment(
        &mut guard,
        &NewDeployment {
            os: &os,
            csum: &csum,
            origin: &origin,
            merge: Some(&default),
            kargs: Some(&after),
            presets: &[],
            place: Place::Default,
        },
    )?;
    Ok(KargsOutcome {
        before,
        after,
        deployment: Some(id),
    })
}

/// Pins (never garbage-collected) or unpins deployment `index` (as `cairn status` numbers them).
pub fn set_pinned(host: &Host, index: usize, pinned: bool) -> Result<String, DeployError> {
    let guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let all = guard.deployments();
    let d = all.get(index).ok_or(DeployError::BadIndex {
        index,
        count: all.len(),
    })?;
    if stage::is_pending(&guard, d) {
        return Err(DeployError::PinStaged(index));
    }
    guard.deployment_set_pinned(d, pinned).ctx(|| {
        format!(
            "{} deployment {index}",
            if pinned { "pinning" } else { "unpinning" }
        )
    })?;
    Ok(deployment_id(d))
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyOutcome {
    /// Deployments whose /etc received the files (`<checksum>.<serial>`).
    pub deployments: Vec<String>,
    /// Files written, relative to each deployment root.
    pub files: Vec<PathBuf>,
    /// Whether `sysctl --system` ran (live root only).
    pub applied_now: bool,
}

/// Writes presets into the default deployment's /etc (and, on a live host whose booted
/// deployment is not the default, into the running /etc too), then on a live host runs
/// `sysctl --system` so they take effect without a reboot.
pub fn apply_presets(
    host: &Host,
    presets: &[sysctl::OwnedPreset],
) -> Result<ApplyOutcome, DeployError> {
    let guard = SysrootGuard::open(&host.sysroot, Open::Lock)?;
    let os = os_name(&guard, host.os.as_deref())?;
    let default = default_deployment(&guard, &os, host)?;
    let mut targets = vec![default.clone()];
    if let Some(b) = guard.booted_deployment().filter(|b| !b.equal(&default)) {
        targets.push(b);
    }
    let mut files = Vec::new();
    for d in &targets {
        files = write_presets(&guard.deployment_dir(d), presets)?;
    }
    let live = is_live(&host.sysroot) && guard.is_booted();
    if live {
        let st = std::process::Command::new("sysctl")
            .arg("--system")
            .status()
            .ctx(|| "running sysctl --system".into())?;
        if !st.success() {
            return Err(DeployError::State {
                what: "running sysctl --system".into(),
                why: format!("{st}; the files are written and apply at next boot"),
            });
        }
    }
    Ok(ApplyOutcome {
        deployments: targets.iter().map(deployment_id).collect(),
        files,
        applied_now: live,
    })
}
