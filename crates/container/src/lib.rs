//! OSTree commits as OCI container images, in the ostree-native container format (version 1)
//! that ostree-rs-ext defines and rpm-ostree, bootc and Fedora CoreOS use: the commit's objects
//! in a `sysroot/ostree/repo` layer (first) plus content layers chunked by package.
//!
//! `export` writes an image from a commit, `import` turns one back into the same commit, and
//! `host` pulls images for deployments (keeping a blob cache so upgrades fetch only changed
//! layers). Images move between places with `skopeo`, as ostree-ext's image proxy does.

mod chunking;
mod export;
pub mod host;
mod imgref;
mod import;
mod layer;
mod oci;
mod owners;
mod skopeo;

use std::path::PathBuf;

pub use chunking::DEFAULT_MAX_LAYERS;
pub use export::{export, ExportOptions, ExportReport, LayerReport};
pub use imgref::{is_ostree_image_ref, ImageRef, OstreeImageRef, SigVerify};
pub use import::{import, inspect, ImageInfo, ImportOptions, ImportReport, LayerInfo};

use cairn_ostree::repo::RepoError;

/// Label: the commit checksum the image carries.
pub const LABEL_COMMIT: &str = "ostree.commit";
/// Label: the uncompressed digest (diff id) of the last layer that belongs to the commit.
pub const LABEL_FINAL_DIFFID: &str = "ostree.final-diffid";
/// Layer annotation: the packages whose files the layer holds, comma-separated.
pub const ANNOTATION_COMPONENTS: &str = "ostree.components";

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{input}`: {why}")]
    BadRef { input: String, why: String },
    #[error("{image}: {why}")]
    BadImage { image: String, why: String },
    #[error("{what} failed: {detail}")]
    Tool { what: String, detail: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{path}: {why}")]
    Json { path: PathBuf, why: String },
    #[error(transparent)]
    Deploy(#[from] cairn_ostree::deploy::DeployError),
}

/// A scratch directory for whole images: under `$TMPDIR`, else `/var/tmp` (images are large and
/// /tmp is often a small tmpfs).
pub(crate) fn scratch(prefix: &str) -> Result<tempfile::TempDir, ContainerError> {
    let base = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .map_err(io(format!(
            "creating a scratch directory in {}",
            base.display()
        )))
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ContainerError {
    let what = what.into();
    move |source| ContainerError::Io { what, source }
}
