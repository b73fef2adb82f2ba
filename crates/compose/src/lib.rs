//! Compose: treefile -> root filesystem (a package backend) -> postprocess -> OSTree commit.
//! `cairn compose`
//!
//! The pipeline lives in [`run`]; each stage is usable alone: [`backend`] installs packages into
//! a directory, [`postprocess`] makes a directory OSTree-ready, [`manifest`] reads its package
//! set, [`version`] and [`inputs`] decide the commit's version and whether anything changed.
//! [`lockfile`] and [`snapshot`] pin what a compose installs and keep it (`cairn snapshot`,
//! `--lockfile`, `--snapshot`); they live here rather than in a crate of their own because both
//! are made from, and applied to, a compose's package phase.

pub mod backend;
pub mod inputs;
pub mod lockfile;
mod locking;
pub mod manifest;
pub mod plan;
pub mod postprocess;
pub mod resolve;
mod run;
pub mod snapshot;
mod take;
pub mod version;

pub use run::{
    compose, default_cachedir, ComposeOptions, ComposeReport, Event, Phase, Status, Timings,
    META_BACKEND, META_INPUT_HASH, META_PACKAGES, META_SNAPSHOT, META_TREEFILE,
};
pub use take::{snapshot, SnapshotOptions, SnapshotReport};

/// Every compose error's message is complete on its own: wrapped errors and I/O causes are part of
/// the text and not also returned by `source()`, because the CLI prints the whole source chain
/// and each cause would appear twice.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Load(#[from] cairn_treefile::TreefileError),
    #[error("treefile: {0}")]
    Treefile(String),
    #[error(transparent)]
    Backend(#[from] backend::BackendError),
    #[error("postprocess: {0}")]
    Postprocess(postprocess::PostprocessError),
    #[error("package manifest: {0}")]
    Manifest(manifest::ManifestError),
    #[error(transparent)]
    Input(#[from] inputs::InputError),
    #[error(transparent)]
    Version(#[from] version::VersionError),
    #[error(transparent)]
    Repo(#[from] cairn_ostree::repo::RepoError),
    #[error(transparent)]
    Lockfile(#[from] lockfile::LockfileError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

impl From<postprocess::PostprocessError> for ComposeError {
    fn from(e: postprocess::PostprocessError) -> Self {
        ComposeError::Postprocess(e)
    }
}

impl From<manifest::ManifestError> for ComposeError {
    fn from(e: manifest::ManifestError) -> Self {
        ComposeError::Manifest(e)
    }
}
