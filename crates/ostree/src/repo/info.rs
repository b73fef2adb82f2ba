//! Reading commits: `show` and `log`.

use std::path::Path;

use serde::Serialize;

use super::{variant, Ctx, Repo, RepoError};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    pub checksum: String,
    pub version: Option<String>,
    /// Seconds since the epoch.
    pub timestamp: u64,
    pub parent: Option<String>,
    pub subject: String,
    pub body: String,
    /// The root tree's content checksum (same files + metadata => same value, whatever the
    /// commit's parent or timestamp).
    pub content_checksum: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub signatures: Vec<Signature>,
}

/// One GPG signature on a commit, as libostree's verifier reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Signature {
    pub kind: String,
    pub fingerprint: String,
    /// Signing time, seconds since the epoch.
    pub timestamp: i64,
    /// Good signature by a key in the keyring used for the check.
    pub valid: bool,
    /// The public key is not in that keyring, so validity is unknown.
    pub key_missing: bool,
    pub expired: bool,
    pub key_expired: bool,
    pub key_revoked: bool,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub checksum: String,
    pub version: Option<String>,
    pub timestamp: u64,
    pub subject: String,
}

impl Repo {
    /// Everything `repo show` prints. Signatures are checked against the system keyrings
    /// (`/usr/share/ostree/trusted.gpg.d`); use [`Repo::signatures`] to check another keyring.
    pub fn commit_info(&self, rev: &str) -> Result<CommitInfo, RepoError> {
        self.commit_info_with_keyring(rev, None)
    }

    /// [`Repo::commit_info`] checking signatures against `keyring` (a `.gpg` file or a directory
    /// of them).
    pub fn commit_info_with_keyring(
        &self,
        rev: &str,
        keyring: Option<&Path>,
    ) -> Result<CommitInfo, RepoError> {
        let checksum = self.require(rev)?;
        let (commit, _) = self
            .inner
            .load_commit(&checksum)
            .ctx(|| format!("loading commit {checksum}"))?;
        let meta = commit.child_value(0);
        Ok(CommitInfo {
            version: variant::lookup_str(&meta, "version"),
            timestamp: ostree::commit_get_timestamp(&commit),
            parent: ostree::commit_get_parent(&commit).map(|s| s.to_string()),
            subject: commit.child_value(3).str().unwrap_or_default().to_string(),
            body: commit.child_value(4).str().unwrap_or_default().to_string(),
            content_checksum: ostree::commit_get_content_checksum(&commit).map(|s| s.to_string()),
            metadata: variant::dict_to_json(&meta),
            signatures: self.signatures(&checksum, keyring)?,
            checksum,
        })
    }

    /// History of `rev`, newest first, following parents until a root or a parent that is not
    /// in the repo (pruned or never pulled).
    pub fn log(&self, rev: &str) -> Result<(Vec<LogEntry>, bool), RepoError> {
        let mut next = Some(self.require(rev)?);
        let mut out = Vec::new();
        let mut truncated = false;
        while let Some(checksum) = next.take() {
            let Some(commit) = self
                .inner
                .load_variant_if_exists(ostree::ObjectType::Commit, &checksum)
                .ctx(|| format!("loading commit {checksum}"))?
            else {
                truncated = true;
                break;
            };
            let meta = commit.child_value(0);
            next = ostree::commit_get_parent(&commit).map(|s| s.to_string());
            out.push(LogEntry {
                version: variant::lookup_str(&meta, "version"),
                timestamp: ostree::commit_get_timestamp(&commit),
                subject: commit.child_value(3).str().unwrap_or_default().to_string(),
                checksum,
            });
        }
        Ok((out, truncated))
    }
}
