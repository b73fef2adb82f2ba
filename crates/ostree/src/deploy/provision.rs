//! The first deployment of a new machine's sysroot, built offline in a directory: what an image
//! builder or an installer writes before the machine ever boots. Unlike [`super::deploy`] there is
//! no merge deployment to inherit from: the kernel arguments are given whole, and the commit comes
//! from a local repository while the origin names the remote the machine will upgrade from.

use std::path::{Path, PathBuf};

use ostree::{gio, glib};

use super::error::{Context, DeployError};
use super::pull::{self, Remote};
use super::{kargs, Open, SysrootGuard};
use crate::is_checksum;

#[derive(Clone, Copy)]
pub struct ProvisionOptions<'a> {
    /// The repository holding `rev` (pulled from it over `file://`).
    pub repo: &'a Path,
    /// A ref or commit checksum in `repo`.
    pub rev: &'a str,
    pub osname: &'a str,
    /// The complete kernel command line (`root=` included); never empty.
    pub kargs: &'a [String],
    /// Remote (name, URL) the machine upgrades from; its origin becomes `NAME:REV`.
    pub remote: Option<(&'a str, &'a str)>,
    /// Runs on the initialized, still empty sysroot (its root is the argument) before anything
    /// is deployed: where an image builder selects ostree's boot loader backend, which libostree
    /// detects from files under `boot/` when it writes the first boot configuration.
    pub before_deploy: Option<BeforeDeploy<'a>>,
}

/// See [`ProvisionOptions::before_deploy`].
pub type BeforeDeploy<'a> = &'a dyn Fn(&Path) -> std::io::Result<()>;

/// What [`provision`] deployed.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub commit: String,
    /// Deployment directory relative to the sysroot, e.g. `ostree/deploy/os/deploy/CSUM.0`.
    pub deployment: PathBuf,
    pub origin_refspec: String,
    pub kargs: Vec<String>,
}

/// Initializes a sysroot at `root` (an empty or missing directory), runs `opts.before_deploy`,
/// pulls `rev` from `opts.repo` into it and deploys it as the only deployment.
pub fn provision(root: &Path, opts: &ProvisionOptions) -> Result<Provisioned, DeployError> {
    if opts.kargs.is_empty() {
        return Err(DeployError::EmptyKargs);
    }
    for k in opts.kargs {
        kargs::validate(k)?;
    }
    let guard = prepare(root, opts.osname, opts.before_deploy)?;
    let sysroot = &guard.sysroot;
    let cancellable = gio::Cancellable::NONE;
    let repo = sysroot.repo();

    let src = std::fs::canonicalize(opts.repo).ctx(|| format!("{}", opts.repo.display()))?;
    let src_repo = ostree::Repo::new_for_path(&src);
    src_repo
        .open(cancellable)
        .ctx(|| format!("opening repository {}", src.display()))?;
    let commit = src_repo
        .resolve_rev(opts.rev, true)
        .ctx(|| format!("resolving `{}`", opts.rev))?
        .ok_or_else(|| DeployError::NotInRepo {
            rev: opts.rev.to_owned(),
            repo: src.clone(),
        })?
        .to_string();
    let pull_opts = glib::VariantDict::new(None);
    pull_opts.insert_value("refs", &glib::Variant::from(vec![commit.clone()]));
    repo.pull_with_options(
        &format!("file://{}", src.display()),
        &pull_opts.end(),
        None,
        cancellable,
    )
    .ctx(|| format!("pulling {commit} from {}", src.display()))?;

    // The origin names what `cairn upgrade` (and `ostree admin upgrade`) follow later.
    let remote_name = match opts.remote {
        Some((name, url)) => {
            let r = Remote {
                name: name.to_owned(),
                url: Some(url.to_owned()),
                gpg_verify: false,
            };
            pull::ensure_remote(&repo, &r)?;
            Some(name)
        }
        None => None,
    };
    let first = First {
        rev: opts.rev,
        osname: opts.osname,
        kargs: opts.kargs,
    };
    deploy_first(sysroot, &first, &commit, remote_name)
}

/// Opens (creating) the sysroot at `root`, runs the hook and creates the stateroot.
pub(super) fn prepare(
    root: &Path,
    osname: &str,
    before_deploy: Option<BeforeDeploy>,
) -> Result<SysrootGuard, DeployError> {
    let guard = SysrootGuard::open(root, Open::LockCreate)?;
    if let Some(prepare) = before_deploy {
        prepare(guard.path()).ctx(|| {
            format!(
                "preparing {} for its first deployment",
                guard.path().display()
            )
        })?;
    }
    let sysroot = &guard.sysroot;
    let cancellable = gio::Cancellable::NONE;
    sysroot
        .init_osname(osname, cancellable)
        .ctx(|| format!("creating stateroot {osname}"))?;
    sysroot
        .load(cancellable)
        .ctx(|| "loading the sysroot".into())?;
    // A new machine's disk is written once and synced as a whole; per-object fsync only slows it.
    sysroot.repo().set_disable_fsync(true);
    Ok(guard)
}

/// What the first deployment is: the same for a local and a remote source.
pub(super) struct First<'a> {
    pub rev: &'a str,
    pub osname: &'a str,
    pub kargs: &'a [String],
}

/// Writes the ref and the origin, deploys `commit` and writes the boot configuration.
pub(super) fn deploy_first(
    sysroot: &ostree::Sysroot,
    opts: &First,
    commit: &str,
    remote_name: Option<&str>,
) -> Result<Provisioned, DeployError> {
    let cancellable = gio::Cancellable::NONE;
    let repo = sysroot.repo();
    if !is_checksum(opts.rev) {
        repo.set_ref_immediate(remote_name, opts.rev, Some(commit), cancellable)
            .ctx(|| format!("writing ref {}", opts.rev))?;
    }
    let origin_refspec = match remote_name {
        Some(name) => format!("{name}:{}", opts.rev),
        None => opts.rev.to_owned(),
    };
    let origin = sysroot.origin_new_from_refspec(&origin_refspec);
    let argv: Vec<&str> = opts.kargs.iter().map(String::as_str).collect();
    let dep = sysroot
        .deploy_tree(
            Some(opts.osname),
            commit,
            Some(&origin),
            None,
            &argv,
            cancellable,
        )
        .ctx(|| format!("deploying {commit}"))?;
    sysroot
        .simple_write_deployment(
            Some(opts.osname),
            &dep,
            None,
            ostree::SysrootSimpleWriteDeploymentFlags::NONE,
            cancellable,
        )
        .ctx(|| "writing the boot configuration".into())?;
    Ok(Provisioned {
        commit: commit.to_owned(),
        deployment: PathBuf::from(sysroot.deployment_dirpath(&dep).as_str()),
        origin_refspec,
        kargs: opts.kargs.to_vec(),
    })
}
