//! The OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/`) and the manifest
//! and config documents cairn reads and writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{io, ContainerError};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The index annotation naming a manifest's tag.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// Whether a layer media type is gzip-compressed; `None` for an unsupported compression.
pub fn layer_is_gzip(media_type: &str) -> Option<bool> {
    match media_type {
        MEDIA_LAYER_GZIP | DOCKER_LAYER_GZIP => Some(true),
        MEDIA_LAYER_TAR => Some(false),
        _ => None,
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// Opens `dir`, creating an empty layout when it does not hold one.
    pub fn ensure(dir: &Path) -> Result<Layout, ContainerError> {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).map_err(io(format!("creating {}", blobs.display())))?;
        let marker = dir.join("oci-layout");
        if !marker.exists() {
            write_file(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !dir.join("index.json").exists() {
            let empty = Index {
                schema_version: 2,
                media_type: Some(MEDIA_INDEX.into()),
                manifests: Vec::new(),
            };
            write_json(&dir.join("index.json"), &empty)?;
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    pub fn open(dir: &Path) -> Result<Layout, ContainerError> {
        if !dir.join("index.json").is_file() {
            return Err(ContainerError::BadImage {
                image: dir.display().to_string(),
                why: "not an OCI image layout (no index.json)".into(),
            });
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir.join("blobs/sha256").join(hex)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores `bytes` as a blob; returns its descriptor.
    pub fn write_blob(&self, media_type: &str, bytes: &[u8]) -> Result<Descriptor, ContainerError> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            write_file(&path, bytes)?;
        }
        Ok(Descriptor {
            media_type: media_type.into(),
            digest,
            size: bytes.len() as u64,
            annotations: BTreeMap::new(),
        })
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ContainerError> {
        let path = self.blob_path(digest);
        std::fs::read(&path).map_err(io(format!("reading blob {}", path.display())))
    }

    fn index(&self) -> Result<Index, ContainerError> {
        read_json(&self.dir.join("index.json"))
    }

    /// The manifest tagged `tag`, or the only manifest when `tag` is `None`.
    pub fn manifest(&self, tag: Option<&str>) -> Result<(Manifest, Descriptor), ContainerError> {
        let index = self.index()?;
        let bad = |why: String| ContainerError::BadImage {
            image: self.dir.display().to_string(),
            why,
        };
        let desc = match tag {
            Some(t) => index
                .manifests
                .iter()
                .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(t))
                .ok_or_else(|| bad(format!("no manifest tagged `{t}`")))?,
            None if index.manifests.len() == 1 => &index.manifests[0],
            None => {
                return Err(bad(format!(
                    "{} manifests; name one with oci:DIR:TAG",
                    index.manifests.len()
                )))
            }
        };
        if desc.media_type != MEDIA_MANIFEST {
            return Err(bad(format!(
                "manifest media type {} is not an OCI image manifest",
                desc.media_type
            )));
        }
        let bytes = self.read_blob(&desc.digest)?;
        let m = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("manifest {}: {e}", desc.digest)))?;
        Ok((m, desc.clone()))
    }

    /// Writes `manifest` and makes it the one tagged `tag` (or, untagged, the only one).
    pub fn put_manifest(
        &self,
        manifest: &Manifest,
        tag: Option<&str>,
    ) -> Result<Descriptor, ContainerError> {
        let bytes = serde_json::to_vec(manifest).expect("manifest serializes");
        let mut desc = self.write_blob(MEDIA_MANIFEST, &bytes)?;
        let mut index = self.index()?;
        match tag {
            Some(t) => {
                index
                    .manifests
                    .retain(|m| m.annotations.get(REF_NAME).map(String::as_str) != Some(t));
                desc.annotations.insert(REF_NAME.into(), t.into());
            }
            None => index.manifests.clear(),
        }
        index.manifests.push(desc.clone());
        write_json(&self.dir.join("index.json"), &index)?;
        desc.annotations.clear();
        Ok(desc)
    }

    /// Removes blobs no manifest in the index refers to (the host's pull cache keeps only the
    /// image it deployed last).
    pub fn prune(&self) -> Result<u64, ContainerError> {
        let mut keep = std::collections::HashSet::new();
        for m in self.index()?.manifests {
            keep.insert(m.digest.clone());
            if let Ok(bytes) = self.read_blob(&m.digest) {
                if let Ok(man) = serde_json::from_slice::<Manifest>(&bytes) {
                    keep.insert(man.config.digest);
                    keep.extend(man.layers.into_iter().map(|l| l.digest));
                }
            }
        }
        let dir = self.dir.join("blobs/sha256");
        let mut freed = 0;
        for e in std::fs::read_dir(&dir).map_err(io(format!("listing {}", dir.display())))? {
            let e = e.map_err(io(format!("listing {}", dir.display())))?;
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep.contains(&digest) {
                freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(e.path())
                    .map_err(io(format!("removing {}", e.path().display())))?;
            }
        }
        Ok(freed)
    }
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ContainerError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<(), ContainerError> {
    write_file(path, &serde_json::to_vec(v).expect("JSON serializes"))
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ContainerError> {
    let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| ContainerError::Json {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}
