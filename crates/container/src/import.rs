//! `cairn container import`: an ostree-native container image back into the commit it carries,
//! with the same checksum (every object is written under its checksum and libostree verifies
//! each one). Content layers come first, the ostree layer last, and the commit object is
//! written only once everything it references is there, so an interrupted import never leaves
//! a commit that looks complete.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use cairn_ostree::repo::{ContentKind, ContentMeta, MetaKind, ObjectWriter, Repo};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::imgref::{ImageRef, SigVerify};
use crate::layer::OBJECTS;
use crate::oci::{self, Layout, Manifest};
use crate::{io, skopeo, ContainerError, LABEL_COMMIT, LABEL_FINAL_DIFFID};

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Ref to point at the commit.
    pub refname: Option<String>,
    pub sigverify: SigVerify,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub commit: String,
    pub image: String,
    pub manifest_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refname: Option<String>,
    pub layers: usize,
    /// Content objects written (the others were already in the repository).
    pub objects_written: usize,
    pub objects_present: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

fn bad_image(image: &str, why: impl Into<String>) -> ContainerError {
    ContainerError::BadImage {
        image: image.to_string(),
        why: why.into(),
    }
}

/// A local layout holding `image` (fetched or unpacked into `tmp` when it is not one) and the
/// tag to read.
pub(crate) fn local_layout(
    image: &ImageRef,
    tmp: &Path,
    insecure_policy: bool,
) -> Result<(Layout, Option<String>), ContainerError> {
    match image {
        ImageRef::OciDir { path, tag } => Ok((Layout::open(path)?, tag.clone())),
        ImageRef::OciArchive { path, tag } => {
            let f = std::fs::File::open(path).map_err(io(format!("opening {}", path.display())))?;
            tar::Archive::new(BufReader::new(f))
                .unpack(tmp)
                .map_err(io(format!("unpacking {}", path.display())))?;
            Ok((Layout::open(tmp)?, tag.clone()))
        }
        ImageRef::Registry(_) => {
            let dst = format!("oci:{}:cairn", tmp.display());
            skopeo::copy(&image.to_string(), &dst, insecure_policy)?;
            Ok((Layout::open(tmp)?, Some("cairn".into())))
        }
    }
}

/// The manifest of `image` without fetching its layers.
pub(crate) fn read_manifest(image: &ImageRef) -> Result<Manifest, ContainerError> {
    let bytes = match image {
        ImageRef::OciDir { path, tag } => {
            return Ok(Layout::open(path)?.manifest(tag.as_deref())?.0)
        }
        _ => skopeo::raw_manifest(&image.to_string())?,
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| bad_image(&image.to_string(), format!("manifest: {e}")))
}

/// The labels and diff ids of an image configuration.
pub(crate) struct ImageConfig {
    pub labels: HashMap<String, String>,
    pub diff_ids: Vec<String>,
}

pub(crate) fn parse_config(bytes: &[u8], image: &str) -> Result<ImageConfig, ContainerError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad_image(image, format!("config: {e}")))?;
    let labels = v["config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let diff_ids = v["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(ImageConfig { labels, diff_ids })
}

/// How many leading layers belong to the commit (the ostree layer and its chunks).
pub(crate) fn commit_layers(
    manifest: &Manifest,
    cfg: &ImageConfig,
    image: &str,
) -> Result<usize, ContainerError> {
    let final_diffid = cfg.labels.get(LABEL_FINAL_DIFFID).ok_or_else(|| {
        bad_image(
            image,
            format!("no {LABEL_FINAL_DIFFID} label: not an ostree-native container image"),
        )
    })?;
    let n = cfg
        .diff_ids
        .iter()
        .position(|d| d == final_diffid)
        .map(|i| i + 1)
        .ok_or_else(|| {
            bad_image(
                image,
                format!("{LABEL_FINAL_DIFFID} {final_diffid} names no layer"),
            )
        })?;
    if n < manifest.layers.len() {
        return Err(ContainerError::Unsupported(format!(
            "{image}: {} layer(s) after the ostree commit (an image derived from it); cairn \
             imports ostree-native images only",
            manifest.layers.len() - n
        )));
    }
    Ok(n)
}

/// Per-layer reader state: xattrs seen so far and the one announced for the next object.
struct LayerReader<'r, 'w> {
    repo: &'r Repo,
    w: &'r ObjectWriter<'w>,
    xattrs: HashMap<String, Vec<u8>>,
    next: Option<(String, String)>,
    commit: Option<(String, Vec<u8>)>,
    commitmeta: Option<Vec<u8>>,
    written: usize,
    present: usize,
    allow_meta: bool,
}

fn read_all(entry: &mut impl Read, what: &str) -> Result<Vec<u8>, ContainerError> {
    let mut buf = Vec::new();
    entry
        .read_to_end(&mut buf)
        .map_err(io(format!("reading {what}")))?;
    Ok(buf)
}

/// `XX/REST.suffix` -> (checksum, suffix).
fn parse_object_path(rel: &str) -> Option<(String, &str)> {
    let (dir, file) = rel.split_once('/')?;
    let (rest, suffix) = file.split_once('.')?;
    let csum = format!("{dir}{rest}");
    (csum.len() == 64 && csum.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some((csum, suffix))
}

impl LayerReader<'_, '_> {
    fn entry<R: Read>(&mut self, mut e: tar::Entry<R>, layer: &str) -> Result<(), ContainerError> {
        let path = e.path().map_err(io(format!("reading layer {layer}")))?;
        let path = path.to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix(OBJECTS).and_then(|p| p.strip_prefix('/')) else {
            return Ok(());
        };
        if e.header().entry_type() == tar::EntryType::Directory {
            return Ok(());
        }
        let (csum, suffix) = parse_object_path(rel)
            .ok_or_else(|| bad_image(layer, format!("unexpected object path {path}")))?;
        let kind = e.header().entry_type();
        match suffix {
            "file-xattrs" => {
                let bytes = read_all(&mut e, &path)?;
                if hex::encode(Sha256::digest(&bytes)) != csum {
                    return Err(bad_image(layer, format!("{path}: checksum mismatch")));
                }
                self.xattrs.insert(csum, bytes);
            }
            "file-xattrs-link" => {
                let xsum = if kind == tar::EntryType::Link {
                    let target = e.link_name_bytes().unwrap_or_default();
                    let target = String::from_utf8_lossy(&target).into_owned();
                    target
                        .strip_prefix(OBJECTS)
                        .and_then(|t| parse_object_path(&t[1..]))
                        .map(|(x, _)| x)
                        .ok_or_else(|| bad_image(layer, format!("{path}: bad link {target}")))?
                } else {
                    let bytes = read_all(&mut e, &path)?;
                    let x = hex::encode(Sha256::digest(&bytes));
                    self.xattrs.insert(x.clone(), bytes);
                    x
                };
                self.next = Some((csum, xsum));
            }
            "file" => self.content(e, &csum, layer)?,
            "commit" | "commitmeta" | "dirtree" | "dirmeta" if !self.allow_meta => {
                return Err(bad_image(
                    layer,
                    format!("metadata object {path} in a content layer"),
                ));
            }
            "commit" => self.commit = Some((csum, read_all(&mut e, &path)?)),
            "commitmeta" => self.commitmeta = Some(read_all(&mut e, &path)?),
            "dirtree" => self
                .w
                .write_meta(MetaKind::DirTree, &csum, &read_all(&mut e, &path)?)?,
            "dirmeta" => self
                .w
                .write_meta(MetaKind::DirMeta, &csum, &read_all(&mut e, &path)?)?,
            other => {
                return Err(bad_image(
                    layer,
                    format!("{path}: unsupported object type `{other}` (only format v1 images)"),
                ))
            }
        }
        Ok(())
    }

    fn content<R: Read>(
        &mut self,
        mut e: tar::Entry<R>,
        csum: &str,
        layer: &str,
    ) -> Result<(), ContainerError> {
        let (want, xsum) = self.next.take().ok_or_else(|| {
            bad_image(layer, format!("content object {csum} without xattrs link"))
        })?;
        if want != csum {
            return Err(bad_image(
                layer,
                format!("xattrs link for {want} precedes object {csum}"),
            ));
        }
        if self.repo.has_content(csum)? {
            self.present += 1;
            return Ok(());
        }
        let xattrs = self
            .xattrs
            .get(&xsum)
            .ok_or_else(|| bad_image(layer, format!("xattrs {xsum} of {csum} not in the layer")))?
            .clone();
        let h = e.header();
        let num =
            |r: std::io::Result<u64>| r.map(|v| v as u32).map_err(io(format!("reading {csum}")));
        let (uid, gid, mode) = (
            num(h.uid())?,
            num(h.gid())?,
            h.mode().map_err(io(format!("reading {csum}")))?,
        );
        let kind = match h.entry_type() {
            tar::EntryType::Regular => ContentKind::Regular {
                size: h.size().map_err(io(format!("reading {csum}")))?,
            },
            tar::EntryType::Symlink => ContentKind::Symlink {
                target: String::from_utf8_lossy(&e.link_name_bytes().unwrap_or_default())
                    .into_owned(),
            },
            other => {
                return Err(bad_image(
                    layer,
                    format!("object {csum} is a tar {other:?}"),
                ))
            }
        };
        let type_bits = if matches!(kind, ContentKind::Symlink { .. }) {
            0o120_000
        } else {
            0o100_000
        };
        let meta = ContentMeta {
            uid,
            gid,
            mode: type_bits | (mode & 0o7777),
            kind,
            xattrs,
        };
        self.w.write_content(csum, &meta, &mut e)?;
        self.written += 1;
        Ok(())
    }
}

fn read_layer(
    layout: &Layout,
    desc: &oci::Descriptor,
    reader: &mut LayerReader,
) -> Result<(), ContainerError> {
    let gzip = oci::layer_is_gzip(&desc.media_type).ok_or_else(|| {
        ContainerError::Unsupported(format!(
            "layer {}: media type {} (cairn reads gzip and uncompressed layers)",
            desc.digest, desc.media_type
        ))
    })?;
    let path = layout.blob_path(&desc.digest);
    let f = std::fs::File::open(&path).map_err(io(format!("opening layer {}", path.display())))?;
    let r: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(BufReader::new(f)))
    } else {
        Box::new(BufReader::new(f))
    };
    let mut archive = tar::Archive::new(r);
    let entries = archive
        .entries()
        .map_err(io(format!("reading layer {}", desc.digest)))?;
    for e in entries {
        let e = e.map_err(io(format!("reading layer {}", desc.digest)))?;
        reader.entry(e, &desc.digest)?;
    }
    Ok(())
}

/// Every content object the commit's trees name must be there before the commit is written.
fn check_complete(repo: &Repo, tree: &str, path: &str) -> Result<(), ContainerError> {
    let t = repo.dirtree(tree)?;
    for (name, csum) in &t.files {
        if !repo.has_content(csum)? {
            return Err(bad_image(
                "image",
                format!("content object {csum} ({path}/{name}) is in no layer"),
            ));
        }
    }
    for d in &t.dirs {
        check_complete(repo, &d.tree, &format!("{path}/{}", d.name))?;
    }
    Ok(())
}

/// Imports the commit of the image in `layout` (tag `tag`) into `repo`.
pub(crate) fn import_layout(
    repo: &Repo,
    layout: &Layout,
    tag: Option<&str>,
    name: &str,
    opts: &ImportOptions,
) -> Result<ImportReport, ContainerError> {
    let (manifest, desc) = layout.manifest(tag)?;
    let cfg = parse_config(&layout.read_blob(&manifest.config.digest)?, name)?;
    let n = commit_layers(&manifest, &cfg, name)?;
    let w = repo.object_writer()?;
    let mut rd = LayerReader {
        repo,
        w: &w,
        xattrs: HashMap::new(),
        next: None,
        commit: None,
        commitmeta: None,
        written: 0,
        present: 0,
        allow_meta: false,
    };
    for l in &manifest.layers[1..n] {
        read_layer(layout, l, &mut rd)?;
        rd.xattrs.clear();
    }
    rd.allow_meta = true;
    read_layer(layout, &manifest.layers[0], &mut rd)?;
    let (commit, bytes) = rd
        .commit
        .take()
        .ok_or_else(|| bad_image(name, "no commit object in the ostree layer"))?;
    if let Some(label) = cfg.labels.get(LABEL_COMMIT).filter(|l| **l != commit) {
        return Err(bad_image(
            name,
            format!("carries commit {commit} but its {LABEL_COMMIT} label says {label}"),
        ));
    }
    let signature = match &opts.sigverify {
        SigVerify::Unverified => None,
        SigVerify::Remote(remote) => {
            let detached = rd.commitmeta.as_deref().ok_or_else(|| {
                bad_image(
                    name,
                    format!("the commit is not signed (remote {remote} requires a signature)"),
                )
            })?;
            Some(repo.verify_commit_data(remote, &bytes, detached)?)
        }
    };
    w.write_meta(MetaKind::Commit, &commit, &bytes)?;
    let (root, _) = repo.commit_root(&commit)?;
    check_complete(repo, &root, "")?;
    if let Some(meta) = &rd.commitmeta {
        w.write_detached_meta(&commit, meta)?;
    }
    if let Some(r) = &opts.refname {
        w.set_ref(r, &commit);
    }
    let (written, present) = (rd.written, rd.present);
    drop(rd);
    w.commit()?;
    Ok(ImportReport {
        commit,
        image: name.to_string(),
        manifest_digest: desc.digest,
        refname: opts.refname.clone(),
        layers: manifest.layers.len(),
        objects_written: written,
        objects_present: present,
        signature,
    })
}

/// Imports `image` into `repo`.
pub fn import(
    repo: &Repo,
    image: &ImageRef,
    opts: &ImportOptions,
) -> Result<ImportReport, ContainerError> {
    let tmp = crate::scratch("cairn-import-")?;
    let insecure = opts.sigverify == SigVerify::Unverified;
    let (layout, tag) = local_layout(image, tmp.path(), insecure)?;
    let report = import_layout(repo, &layout, tag.as_deref(), &image.to_string(), opts)?;
    if opts.refname.is_some() {
        // A ref changed: `ostree pull` from this repository needs a fresh summary.
        repo.update_summary()?;
    }
    Ok(report)
}

/// One layer of an image as `cairn container inspect` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    pub digest: String,
    pub size: u64,
    /// From the `ostree.components` annotation (empty for the ostree layer).
    pub packages: Vec<String>,
}

/// An image's labels and layers, read without fetching any layer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    pub image: String,
    pub commit: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub layers: Vec<LayerInfo>,
}

/// Labels and layers of `image` (manifest and config only).
pub fn inspect(image: &ImageRef) -> Result<ImageInfo, ContainerError> {
    let name = image.to_string();
    let manifest = read_manifest(image)?;
    let cfg = match image {
        ImageRef::OciDir { path, .. } => Layout::open(path)?.read_blob(&manifest.config.digest)?,
        _ => skopeo::raw_config(&name)?,
    };
    let cfg = parse_config(&cfg, &name)?;
    let layers = manifest
        .layers
        .iter()
        .map(|l| LayerInfo {
            digest: l.digest.clone(),
            size: l.size,
            packages: l
                .annotations
                .get(crate::ANNOTATION_COMPONENTS)
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        })
        .collect();
    Ok(ImageInfo {
        image: name,
        commit: cfg.labels.get(LABEL_COMMIT).cloned(),
        labels: cfg.labels.into_iter().collect(),
        layers,
    })
}
