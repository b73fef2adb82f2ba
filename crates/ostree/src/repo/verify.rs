//! `verify`: fsck-like object checks plus signature checks, all through libostree.

use std::path::PathBuf;

use serde::Serialize;

use super::{Ctx, Repo, RepoError, Signature, NO_CANCEL};

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Check that every ref's commit has a good GPG signature from this keyring (a `.gpg`
    /// file or a directory of them).
    pub keyring: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    pub api_version: &'static str,
    pub ok: bool,
    pub objects_checked: usize,
    pub refs: Vec<RefReport>,
    /// Every problem found, one line each (`object TYPE CHECKSUM: what`).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefReport {
    pub refname: String,
    pub checksum: String,
    /// `None` when no keyring was given.
    pub signature_ok: Option<bool>,
    pub signatures: Vec<Signature>,
}

impl Repo {
    /// Re-hashes every object, checks that each ref's commit reaches only present objects and,
    /// with a keyring, that each ref's commit is signed by it. Problems are collected, not
    /// fatal, so one run lists them all; `Err` only when the repo cannot be read at all.
    pub fn verify(&self, opts: &VerifyOptions) -> Result<VerifyReport, RepoError> {
        let mut errors = Vec::new();
        let objects = self
            .inner
            .list_objects(ostree::ffi::OSTREE_REPO_LIST_OBJECTS_ALL, NO_CANCEL)
            .ctx(|| format!("{}: listing objects", self.path.display()))?;
        let mut names: Vec<_> = objects.keys().collect();
        names.sort_by(|a, b| a.checksum().cmp(b.checksum()));
        let mut checked = 0;
        for name in names {
            let ty = name.object_type();
            if !matches!(
                ty,
                ostree::ObjectType::File
                    | ostree::ObjectType::DirTree
                    | ostree::ObjectType::DirMeta
                    | ostree::ObjectType::Commit
            ) {
                continue;
            }
            checked += 1;
            if let Err(e) = self.inner.fsck_object(ty, name.checksum(), NO_CANCEL) {
                errors.push(format!(
                    "object {} {}: {}",
                    ostree::object_type_to_string(ty),
                    name.checksum(),
                    e.message()
                ));
            }
        }
        let mut refs = Vec::new();
        for (refname, checksum) in self.refs()? {
            // Depth 0: the ref's own commit must be complete; older history may be pruned.
            if let Err(e) = self.inner.traverse_commit(&checksum, 0, NO_CANCEL) {
                errors.push(format!("ref {refname} ({checksum}): {}", e.message()));
            }
            let (signature_ok, signatures) = match &opts.keyring {
                None => (None, self.signatures(&checksum, None).unwrap_or_default()),
                Some(k) => {
                    let sigs = self.signatures(&checksum, Some(k))?;
                    let ok = sigs.iter().any(|s| s.valid);
                    if !ok {
                        errors.push(format!(
                            "ref {refname} ({checksum}): {}",
                            if sigs.is_empty() {
                                "not signed".to_string()
                            } else {
                                format!("no valid signature from keyring {}", k.display())
                            }
                        ));
                    }
                    (Some(ok), sigs)
                }
            };
            refs.push(RefReport {
                refname,
                checksum,
                signature_ok,
                signatures,
            });
        }
        Ok(VerifyReport {
            api_version: cairn_common::API_VERSION,
            ok: errors.is_empty(),
            objects_checked: checked,
            refs,
            errors,
        })
    }
}
