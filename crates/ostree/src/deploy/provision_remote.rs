//! The first deployment of a new machine pulled over the network from the remote it will upgrade
//! from: what an installer writes (`cairn install`), where the commit is in no local repository.
//! The pull goes straight into the target's sysroot repository, so nothing is stored twice.

use std::path::{Path, PathBuf};

use ostree::gio::prelude::FileExt;
use ostree::{gio, glib};

use super::error::{Context, DeployError};
use super::provision::{deploy_first, prepare, First};
use super::pull::{self, Remote};
use super::{kargs, BeforeDeploy, Provisioned};

/// A remote configuration change made after the deployment (a kickstart `%post`'s
/// `ostree remote delete` / `ostree remote add`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteChange {
    /// Remove `name` if it exists.
    Delete { name: String },
    /// Add `name` (refused if it exists: delete it first).
    Add {
        name: String,
        url: String,
        gpg_verify: bool,
        /// The branches `ostree remote add NAME URL BRANCH...` records.
        branches: Vec<String>,
    },
}

#[derive(Clone, Copy)]
pub struct RemoteProvisionOptions<'a> {
    /// The ref to pull from the remote and deploy.
    pub rev: &'a str,
    pub osname: &'a str,
    /// The complete kernel command line (`root=` included); never empty.
    pub kargs: &'a [String],
    /// The remote's name; the origin becomes `NAME:REV`.
    pub remote: &'a str,
    /// Where the commit is pulled from (http://, https:// or file://).
    pub url: &'a str,
    /// Require GPG signatures on the pulled commit.
    pub gpg_verify: bool,
    /// OpenPGP keyrings that become the remote's keyring (and that of a verifying remote
    /// re-added by `after`) before pulling.
    pub gpg_keys: &'a [PathBuf],
    /// See [`super::ProvisionOptions::before_deploy`].
    pub before_deploy: Option<BeforeDeploy<'a>>,
    /// Applied in order once the deployment is written.
    pub after: &'a [RemoteChange],
}

/// Initializes a sysroot at `root`, adds the remote, pulls `rev` from it and deploys it as the
/// only deployment; then applies `opts.after` to the sysroot repository's remotes.
pub fn provision_from_remote(
    root: &Path,
    opts: &RemoteProvisionOptions,
) -> Result<Provisioned, DeployError> {
    if opts.kargs.is_empty() {
        return Err(DeployError::EmptyKargs);
    }
    for k in opts.kargs {
        kargs::validate(k)?;
    }
    pull::check_url(opts.url)?;
    let guard = prepare(root, opts.osname, opts.before_deploy)?;
    let sysroot = &guard.sysroot;
    let repo = sysroot.repo();
    pull::ensure_remote(
        &repo,
        &Remote {
            name: opts.remote.to_owned(),
            url: Some(opts.url.to_owned()),
            gpg_verify: opts.gpg_verify,
        },
    )?;
    import_keys(&repo, opts.remote, opts.gpg_keys)?;
    pull::pull(&repo, opts.remote, opts.rev, false)?;
    let refspec = format!("{}:{}", opts.remote, opts.rev);
    let commit = repo
        .resolve_rev(&refspec, false)
        .ctx(|| format!("resolving `{refspec}` after the pull"))?
        .map(|c| c.to_string())
        .ok_or_else(|| DeployError::UnknownRev {
            rev: refspec.clone(),
            hint: String::new(),
        })?;
    let first = First {
        rev: opts.rev,
        osname: opts.osname,
        kargs: opts.kargs,
    };
    let done = deploy_first(sysroot, &first, &commit, Some(opts.remote))?;
    for change in opts.after {
        apply(&repo, change, opts.gpg_keys)?;
    }
    Ok(done)
}

/// Installs `keys` as the remote's keyring, `<remote>.trustedkeys.gpg` in the repository: the
/// file libostree's own `remote_gpg_import` writes and its verifier reads. Written directly
/// because the binding cannot pass "all keys" (a NULL key-id list) to that call, and the keys'
/// ids are not known here. OpenPGP keyrings concatenate, so several files make one keyring.
fn import_keys(repo: &ostree::Repo, remote: &str, keys: &[PathBuf]) -> Result<(), DeployError> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut ring = Vec::new();
    for key in keys {
        ring.extend(std::fs::read(key).ctx(|| format!("reading GPG keyring {}", key.display()))?);
    }
    let dir = repo.path().path().ok_or_else(|| DeployError::State {
        what: "the sysroot repository".into(),
        why: "has no local path".into(),
    })?;
    let dest = dir.join(format!("{remote}.trustedkeys.gpg"));
    std::fs::write(&dest, ring).ctx(|| format!("writing {}", dest.display()))
}

fn apply(repo: &ostree::Repo, change: &RemoteChange, keys: &[PathBuf]) -> Result<(), DeployError> {
    let none = gio::Cancellable::NONE;
    match change {
        RemoteChange::Delete { name } => repo
            .remote_change(
                None::<&gio::File>,
                ostree::RepoRemoteChange::DeleteIfExists,
                name,
                None,
                None,
                none,
            )
            .ctx(|| format!("deleting remote {name}")),
        RemoteChange::Add {
            name,
            url,
            gpg_verify,
            branches,
        } => {
            pull::check_url(url)?;
            let opts = glib::VariantDict::new(None);
            opts.insert("gpg-verify", *gpg_verify);
            if !branches.is_empty() {
                opts.insert_value("branches", &glib::Variant::from(branches.clone()));
            }
            repo.remote_change(
                None::<&gio::File>,
                ostree::RepoRemoteChange::Add,
                name,
                Some(url),
                Some(&opts.end()),
                none,
            )
            .ctx(|| format!("adding remote {name} ({url})"))?;
            if *gpg_verify {
                import_keys(repo, name, keys)?;
            }
            Ok(())
        }
    }
}
