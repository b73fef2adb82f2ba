//! Remotes and pulls into the sysroot repository.

use ostree::{gio, glib};

use super::error::{Context, DeployError};

/// A remote to pull from, added first when `url` is given and it is missing.
#[derive(Debug, Clone)]
pub struct Remote {
    pub name: String,
    /// `None`: the remote must already be configured in the sysroot repository.
    pub url: Option<String>,
    /// Require GPG signatures (keys must already be imported for the remote).
    pub gpg_verify: bool,
}

pub fn check_url(url: &str) -> Result<(), DeployError> {
    if ["file://", "http://", "https://"]
        .iter()
        .any(|s| url.starts_with(s))
    {
        Ok(())
    } else {
        Err(DeployError::BadUrl(url.to_string()))
    }
}

/// Adds `r` unless it exists; an existing remote with another URL is an error, not a silent
/// redirect of the host's updates. Returns whether it was added.
pub(crate) fn ensure_remote(repo: &ostree::Repo, r: &Remote) -> Result<bool, DeployError> {
    let Some(url) = &r.url else {
        if !repo.remote_list().iter().any(|n| n.as_str() == r.name) {
            return Err(DeployError::UnknownRemote(r.name.clone()));
        }
        return Ok(false);
    };
    check_url(url)?;
    if repo.remote_list().iter().any(|n| n.as_str() == r.name) {
        let existing = repo
            .remote_get_url(&r.name)
            .ctx(|| format!("reading remote {}", r.name))?;
        if existing.as_str() != url {
            return Err(DeployError::RemoteMismatch {
                name: r.name.clone(),
                existing: existing.to_string(),
                wanted: url.clone(),
            });
        }
        return Ok(false);
    }
    let opts = glib::VariantDict::new(None);
    opts.insert("gpg-verify", r.gpg_verify);
    repo.remote_add(
        &r.name,
        Some(url),
        Some(&opts.end()),
        gio::Cancellable::NONE,
    )
    .ctx(|| format!("adding remote {} ({url})", r.name))?;
    Ok(true)
}

/// Pulls `rev` (a ref or a commit) from `remote`; `commit_only` fetches metadata, not content.
pub(crate) fn pull(
    repo: &ostree::Repo,
    remote: &str,
    rev: &str,
    commit_only: bool,
) -> Result<(), DeployError> {
    if !repo.remote_list().iter().any(|n| n.as_str() == remote) {
        return Err(DeployError::UnknownRemote(remote.to_string()));
    }
    let flags = if commit_only {
        ostree::RepoPullFlags::COMMIT_ONLY
    } else {
        ostree::RepoPullFlags::NONE
    };
    let url = repo
        .remote_get_url(remote)
        .map(|u| u.to_string())
        .unwrap_or_default();
    repo.pull(remote, &[rev], flags, None, gio::Cancellable::NONE)
        .ctx(|| format!("pulling `{rev}` from remote {remote} ({url})"))
}
