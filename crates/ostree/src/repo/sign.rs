//! Signing and signature checks through libostree (GPG via gpgme; other signers if built in).

use std::path::Path;

use cairn_common::named::Named;
use ostree::gio;
use ostree::glib;
use ostree::prelude::*;

use super::{Ctx, Repo, RepoError, Signature, NO_CANCEL};

/// A signature scheme a user can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignType {
    Gpg,
    Ed25519,
}

/// Every scheme is nameable even when this libostree cannot sign with it, so asking for one gets
/// [`SignType::ensure_available`]'s explanation rather than an unknown-name error.
impl Named for SignType {
    const ALL: &'static [Self] = &[SignType::Gpg, SignType::Ed25519];

    fn name(self) -> &'static str {
        match self {
            SignType::Gpg => "gpg",
            SignType::Ed25519 => "ed25519",
        }
    }
}

impl SignType {
    /// Errors, plainly, when this libostree build cannot produce this kind of signature.
    pub fn ensure_available(self) -> Result<(), RepoError> {
        match self {
            SignType::Gpg => Ok(()),
            SignType::Ed25519 if ed25519_works() => Err(RepoError::Unsupported(
                "ed25519 signing is available in this libostree, but cairn signs with GPG only \
                 for now: use --gpg-sign KEYID"
                    .into(),
            )),
            SignType::Ed25519 => Err(RepoError::Unsupported(
                "ed25519 signatures are unavailable: this libostree was built without \
                 libsodium, so it has no ed25519 signer (Debian's build has only GPG). Sign with \
                 GPG instead: --gpg-sign KEYID [--gpg-homedir DIR]"
                    .into(),
            )),
        }
    }
}

/// True when libostree's ed25519 signer actually accepts a key (it exists as a stub without
/// libsodium, failing every operation).
fn ed25519_works() -> bool {
    let Ok(signer) = ostree::Sign::by_name("ed25519") else {
        return false;
    };
    let key = glib::Variant::array_from_fixed_array(&[0u8; 64]);
    signer.set_sk(&key).is_ok()
}

/// Signature types this libostree can produce.
pub fn sign_types() -> Vec<&'static str> {
    let mut out = vec!["gpg"];
    if ed25519_works() {
        out.push("ed25519");
    }
    out
}

pub(crate) fn check_gpg_available(key: &str) -> Result<(), RepoError> {
    if key.trim().is_empty() {
        return Err(RepoError::BadInput("--gpg-sign needs a key id".into()));
    }
    Ok(())
}

pub(crate) fn gpg_sign(
    repo: &Repo,
    checksum: &str,
    key: &str,
    homedir: Option<&Path>,
) -> Result<(), RepoError> {
    let homedir = homedir.map(|h| h.to_string_lossy().into_owned());
    repo.inner
        .sign_commit(checksum, key, homedir.as_deref(), NO_CANCEL)
        .ctx(|| {
            format!(
                "signing commit {checksum} with GPG key {key}{}",
                homedir
                    .as_deref()
                    .map(|h| format!(" (homedir {h})"))
                    .unwrap_or_default()
            )
        })
}

impl Repo {
    /// Regenerates the summary and signs it with a GPG key, so remotes with
    /// `gpg-verify-summary=true` accept it (regenerating drops the old summary signature).
    pub fn update_summary_signed(
        &self,
        key: &str,
        homedir: Option<&Path>,
    ) -> Result<(), RepoError> {
        check_gpg_available(key)?;
        self.update_summary()?;
        let homedir = homedir.map(|h| h.to_string_lossy().into_owned());
        self.inner
            .add_gpg_signature_summary(&[key], homedir.as_deref(), NO_CANCEL)
            .ctx(|| {
                format!(
                    "{}: signing the summary with GPG key {key}",
                    self.path.display()
                )
            })
    }

    /// Signs an existing commit with a GPG key (adds to any signatures it has).
    pub fn gpg_sign_commit(
        &self,
        rev: &str,
        key: &str,
        homedir: Option<&Path>,
    ) -> Result<(), RepoError> {
        let checksum = self.require(rev)?;
        gpg_sign(self, &checksum, key, homedir)
    }

    /// The GPG signatures on a commit, checked against `keyring` (a `.gpg` keyring file or a
    /// directory of them) or, when `None`, the system keyrings. Empty when unsigned.
    pub fn signatures(
        &self,
        checksum: &str,
        keyring: Option<&Path>,
    ) -> Result<Vec<Signature>, RepoError> {
        let detached = self
            .inner
            .read_commit_detached_metadata(checksum, NO_CANCEL)
            .ctx(|| format!("reading signatures of {checksum}"))?;
        let has_gpg = detached
            .map(|d| glib::VariantDict::new(Some(&d)).contains("ostree.gpgsigs"))
            .unwrap_or(false);
        if !has_gpg {
            return Ok(Vec::new());
        }
        let (dir, file) = match keyring {
            Some(k) if k.is_dir() => (Some(gio::File::for_path(k)), None),
            Some(k) => {
                if !k.exists() {
                    return Err(RepoError::BadInput(format!(
                        "{}: keyring does not exist",
                        k.display()
                    )));
                }
                (None, Some(gio::File::for_path(k)))
            }
            None => (None, None),
        };
        let result = self
            .inner
            .verify_commit_ext(checksum, dir.as_ref(), file.as_ref(), NO_CANCEL)
            .ctx(|| format!("checking signatures of {checksum}"))?;
        let mut out = Vec::new();
        for i in 0..result.count_all() {
            let v = result.all(i);
            let b = |n: usize| v.child_value(n).get::<bool>().unwrap_or(false);
            let s = |n: usize| v.child_value(n).str().unwrap_or_default().to_string();
            let user = s(10);
            out.push(Signature {
                kind: "gpg".into(),
                valid: b(0),
                expired: b(1),
                key_expired: b(2),
                key_revoked: b(3),
                key_missing: b(4),
                fingerprint: s(5),
                timestamp: v.child_value(6).get::<i64>().unwrap_or(0),
                user: if user.is_empty() {
                    None
                } else {
                    Some(format!("{user} <{}>", s(11)))
                },
            });
        }
        Ok(out)
    }
}
