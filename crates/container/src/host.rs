//! Pulling images onto a host's sysroot for `cairn deploy IMAGE` and `cairn upgrade`.
//!
//! Registry images go through a blob cache, `<sysroot>/ostree/cairn/container-cache` (an OCI
//! layout holding the last image pulled): `skopeo copy` into it skips every blob already there,
//! so an upgrade downloads only the layers whose digests changed, i.e. the packages that
//! changed plus the ostree layer. The commit lands in the sysroot repository under a local ref
//! (`cairn/container/...`) that the deployment's origin tracks, next to the image reference
//! itself (`container-image-reference`, as rpm-ostree and bootc write it).

use std::path::{Path, PathBuf};

use cairn_ostree::repo::Repo;
use serde::Serialize;

use crate::imgref::{ImageRef, OstreeImageRef, SigVerify};
use crate::import::{self, ImportOptions};
use crate::oci::Layout;
use crate::{skopeo, ContainerError, LABEL_COMMIT};

const CACHE_TAG: &str = "deployed";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullReport {
    pub image: String,
    pub commit: String,
    /// The local ref in the sysroot repository that points at the commit.
    pub refname: String,
    pub manifest_digest: String,
    pub layers: usize,
    /// Layers downloaded from the registry (0 for local images).
    pub layers_fetched: usize,
    /// Their compressed size, as the registry serves them.
    pub bytes_fetched: u64,
    pub objects_written: usize,
}

/// The sysroot repository ref an image's commit is kept under.
pub fn local_ref(image: &OstreeImageRef) -> String {
    let raw = image.image.to_string();
    let safe: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("cairn/container/{safe}")
}

fn cache_dir(sysroot: &Path) -> PathBuf {
    cairn_ostree::deploy::state_dir(sysroot).join("container-cache")
}

/// Pulls `image` into the sysroot repository (initializing an empty sysroot first).
pub fn pull(sysroot: &Path, image: &OstreeImageRef) -> Result<PullReport, ContainerError> {
    let repo_path = cairn_ostree::deploy::prepare_sysroot(sysroot)?;
    let repo = Repo::open(&repo_path)?;
    let refname = local_ref(image);
    let opts = ImportOptions {
        refname: Some(refname.clone()),
        sigverify: image.sigverify.clone(),
    };
    let insecure = image.sigverify == SigVerify::Unverified;
    let (report, layers_fetched, bytes_fetched) = match &image.image {
        ImageRef::Registry(_) => {
            let name = image.image.to_string();
            let cache = Layout::ensure(&cache_dir(sysroot))?;
            let manifest = import::read_manifest(&image.image)?;
            let missing: Vec<_> = manifest
                .layers
                .iter()
                .filter(|l| !cache.has_blob(&l.digest))
                .collect();
            let bytes = missing.iter().map(|l| l.size).sum();
            let dst = format!("oci:{}:{CACHE_TAG}", cache.dir.display());
            skopeo::copy(&name, &dst, insecure)?;
            let r = import::import_layout(&repo, &cache, Some(CACHE_TAG), &name, &opts)?;
            cache.prune()?;
            (r, missing.len(), bytes)
        }
        local => {
            let tmp = crate::scratch("cairn-pull-")?;
            let (layout, tag) = import::local_layout(local, tmp.path(), insecure)?;
            let r =
                import::import_layout(&repo, &layout, tag.as_deref(), &local.to_string(), &opts)?;
            (r, 0, 0)
        }
    };
    Ok(PullReport {
        image: image.to_string(),
        commit: report.commit,
        refname,
        manifest_digest: report.manifest_digest,
        layers: report.layers,
        layers_fetched,
        bytes_fetched,
        objects_written: report.objects_written,
    })
}

/// What an image carries, from its configuration labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCommit {
    pub commit: String,
    /// `org.opencontainers.image.version`.
    pub version: Option<String>,
}

/// The commit the image currently carries (its `ostree.commit` label), without fetching layers.
pub fn remote_commit(image: &OstreeImageRef) -> Result<ImageCommit, ContainerError> {
    let name = image.image.to_string();
    let cfg = match &image.image {
        ImageRef::Registry(_) => skopeo::raw_config(&name)?,
        local => {
            let tmp = crate::scratch("cairn-pull-")?;
            let (layout, tag) = import::local_layout(local, tmp.path(), true)?;
            let (m, _) = layout.manifest(tag.as_deref())?;
            layout.read_blob(&m.config.digest)?
        }
    };
    let mut cfg = import::parse_config(&cfg, &name)?;
    let commit = cfg
        .labels
        .remove(LABEL_COMMIT)
        .ok_or_else(|| ContainerError::BadImage {
            image: name,
            why: format!("no {LABEL_COMMIT} label"),
        })?;
    Ok(ImageCommit {
        commit,
        version: cfg.labels.remove("org.opencontainers.image.version"),
    })
}
