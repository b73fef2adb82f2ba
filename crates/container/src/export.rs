//! `cairn container export`: a commit as an ostree-native container image (format v1).
//!
//! The first layer (the "ostree layer") holds the commit, its detached metadata, every dirtree and
//! dirmeta, the directory entries of the checkout, and the content no package owns; the
//! following layers hold content chunked by package. The config label `ostree.final-diffid`
//! names the last layer that belongs to the commit (later layers would be derived ones).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use cairn_ostree::repo::{DirMeta, MetaKind, Repo};
use serde::Serialize;

use crate::chunking::{self, Chunking, ObjInfo};
use crate::imgref::ImageRef;
use crate::layer::{LayerBlob, LayerWriter};
use crate::oci::{self, Descriptor, Layout, Manifest};
use crate::{
    io, owners, skopeo, ContainerError, ANNOTATION_COMPONENTS, LABEL_COMMIT, LABEL_FINAL_DIFFID,
};

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Layers in all, the ostree layer included.
    pub max_layers: usize,
    /// The previous build's image: packages keep their layer companions (stable digests).
    pub previous: Option<ImageRef>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            max_layers: chunking::DEFAULT_MAX_LAYERS,
            previous: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerReport {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    /// `ostree` for the first layer, `packages` for chunks.
    pub kind: &'static str,
    pub packages: Vec<String>,
    pub objects: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    pub commit: String,
    pub image: String,
    pub manifest_digest: String,
    pub labels: BTreeMap<String, String>,
    pub layers: Vec<LayerReport>,
    /// Whether a file->package map was found (rpm or dpkg database in the commit).
    pub chunked_by_package: bool,
}

enum Step {
    Meta(MetaKind, String),
    Dir(String, DirMeta),
}

#[derive(Default)]
struct Walk {
    steps: Vec<Step>,
    objects: BTreeMap<String, ObjInfo>,
    seen: HashSet<String>,
    var_tmp: bool,
}

/// Paths under the commit's own `/sysroot` stay out of the checkout view: the image's
/// `sysroot/ostree/repo` lives there.
fn in_sysroot(path: &str) -> bool {
    path == "sysroot" || path.starts_with("sysroot/")
}

fn walk(repo: &Repo, tree: &str, path: &str, w: &mut Walk) -> Result<(), ContainerError> {
    let t = repo.dirtree(tree)?;
    if w.seen.insert(format!("{tree}.dirtree")) {
        w.steps
            .push(Step::Meta(MetaKind::DirTree, tree.to_string()));
    }
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}/{name}")
        }
    };
    for (name, csum) in &t.files {
        let p = join(name);
        let entry = w.objects.entry(csum.clone()).or_default();
        if entry.paths.is_empty() && entry.size == 0 {
            let (meta, _) = repo.open_content(csum)?;
            if let cairn_ostree::repo::ContentKind::Regular { size } = meta.kind {
                entry.size = size;
            }
        }
        if !in_sysroot(&p) {
            entry.paths.push(p);
        }
    }
    w.var_tmp |= path == "var/tmp";
    for d in &t.dirs {
        if w.seen.insert(format!("{}.dirmeta", d.meta)) {
            w.steps.push(Step::Meta(MetaKind::DirMeta, d.meta.clone()));
        }
        let p = join(&d.name);
        if !in_sysroot(&p) {
            w.steps.push(Step::Dir(p.clone(), repo.dirmeta(&d.meta)?));
        }
        walk(repo, &d.tree, &p, w)?;
    }
    Ok(())
}

/// Directory paths in the ostree layer keep format v0's `./` prefix, as ostree-ext writes them
/// (`./etc/` for `/usr/etc` itself, trailing slash included): same input, same bytes.
fn tar_dir_path(p: &str) -> String {
    match p.strip_prefix("usr/etc") {
        Some("") => "./etc/".to_string(),
        Some(rest) if rest.starts_with('/') => format!("./etc{rest}"),
        _ => format!("./{p}"),
    }
}

/// The ostree layer: commit, metadata objects, checkout directories, unowned content.
fn ostree_layer(
    repo: &Repo,
    layout: &Layout,
    commit: &str,
    w: &Walk,
    remainder: &[String],
) -> Result<LayerBlob, ContainerError> {
    let mut lw = LayerWriter::new(layout, "ostree")?;
    let (_, root_meta) = repo.commit_root(commit)?;
    let rm = repo.dirmeta(&root_meta)?;
    lw.dir("./", rm.uid, rm.gid, rm.mode)?;
    lw.repo_structure()?;
    lw.meta_object(
        commit,
        "commit",
        &repo.read_meta_object(MetaKind::Commit, commit)?,
    )?;
    if let Some(detached) = repo.read_detached_meta(commit)? {
        lw.meta_object(commit, "commitmeta", &detached)?;
    }
    let bytes = repo.read_meta_object(MetaKind::DirMeta, &root_meta)?;
    lw.meta_object(&root_meta, "dirmeta", &bytes)?;
    for s in &w.steps {
        match s {
            Step::Meta(MetaKind::DirMeta, c) if *c == root_meta => {}
            Step::Meta(kind, c) => {
                let bytes = repo.read_meta_object(*kind, c)?;
                lw.meta_object(c, kind.suffix(), &bytes)?;
            }
            Step::Dir(p, m) => lw.dir(&tar_dir_path(p), m.uid, m.gid, m.mode)?,
        }
    }
    if !w.var_tmp {
        lw.dir("var/tmp", 0, 0, 0o1777)?;
    }
    for c in remainder {
        lw.content(repo, c, &w.objects[c].paths)?;
    }
    lw.finish()
}

fn chunk_layer(
    repo: &Repo,
    layout: &Layout,
    objects: &[String],
    w: &Walk,
    name: &str,
) -> Result<LayerBlob, ContainerError> {
    let mut lw = LayerWriter::new(layout, name)?;
    lw.repo_structure()?;
    for c in objects {
        let mut paths = w.objects[c].paths.clone();
        paths.sort();
        lw.content(repo, c, &paths)?;
    }
    lw.finish()
}

/// The kernel version of a tree that has `usr/lib/modules/VERSION/vmlinuz` (what libostree
/// deploys from), if any.
fn kernel_of(repo: &Repo, root: &str) -> Result<Option<String>, ContainerError> {
    let mut tree = root.to_string();
    for part in ["usr", "lib", "modules"] {
        match repo
            .dirtree(&tree)?
            .dirs
            .into_iter()
            .find(|d| d.name == part)
        {
            Some(d) => tree = d.tree,
            None => return Ok(None),
        }
    }
    for d in repo.dirtree(&tree)?.dirs {
        if repo
            .dirtree(&d.tree)?
            .files
            .iter()
            .any(|(n, _)| n == "vmlinuz")
        {
            return Ok(Some(d.name));
        }
    }
    Ok(None)
}

/// The labels ostree-ext writes, from the commit's metadata. A commit without the
/// `ostree.bootable`/`ostree.linux` keys (cairn compose does not write them) that carries a
/// kernel where libostree looks for one is labelled bootable all the same.
fn labels_of(repo: &Repo, commit: &str) -> Result<BTreeMap<String, String>, ContainerError> {
    let info = repo.commit_info(commit)?;
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_COMMIT.to_string(), commit.to_string());
    if let Some(v) = &info.version {
        labels.insert("org.opencontainers.image.version".into(), v.clone());
    }
    let bootable = info
        .metadata
        .get("ostree.bootable")
        .and_then(|v| v.as_bool());
    let mut linux = info
        .metadata
        .get("ostree.linux")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if bootable.is_none() && linux.is_none() {
        linux = kernel_of(repo, &repo.commit_root(commit)?.0)?;
    }
    if let Some(b) = bootable.or(linux.as_ref().map(|_| true)) {
        labels.insert("ostree.bootable".into(), b.to_string());
        labels.insert("containers.bootc".into(), "1".into());
    }
    if let Some(l) = linux {
        labels.insert("ostree.linux".into(), l);
    }
    Ok(labels)
}

/// Package groups of the previous image's chunk layers, in layer order.
fn previous_groups(prev: &ImageRef) -> Result<Vec<Vec<String>>, ContainerError> {
    let manifest = crate::import::read_manifest(prev)?;
    Ok(manifest
        .layers
        .iter()
        .skip(1)
        .filter_map(|l| l.annotations.get(ANNOTATION_COMPONENTS))
        .map(|s| s.split(',').map(str::to_string).collect())
        .collect())
}

fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

struct Built {
    manifest: Manifest,
    layers: Vec<LayerReport>,
    labels: BTreeMap<String, String>,
    chunked: bool,
}

fn build(
    repo: &Repo,
    layout: &Layout,
    commit: &str,
    opts: &ExportOptions,
) -> Result<Built, ContainerError> {
    let (root_tree, _) = repo.commit_root(commit)?;
    let mut w = Walk::default();
    walk(repo, &root_tree, "", &mut w)?;
    let owners = owners::read(repo, commit)?;
    let previous = opts.previous.as_ref().map(previous_groups).transpose()?;
    let Chunking { chunks, remainder } =
        chunking::chunk(&w.objects, &owners, opts.max_layers, previous.as_deref());
    let ostree = ostree_layer(repo, layout, commit, &w, &remainder)?;
    let mut reports = vec![LayerReport {
        digest: ostree.digest.clone(),
        diff_id: ostree.diff_id.clone(),
        size: ostree.size,
        kind: "ostree",
        packages: Vec::new(),
        objects: remainder.len(),
    }];
    for c in &chunks {
        let blob = chunk_layer(repo, layout, &c.objects, &w, &c.packages.join(","))?;
        reports.push(LayerReport {
            digest: blob.digest,
            diff_id: blob.diff_id,
            size: blob.size,
            kind: "packages",
            packages: c.packages.clone(),
            objects: c.objects.len(),
        });
    }
    let mut labels = labels_of(repo, commit)?;
    let last = reports.last().expect("the ostree layer");
    labels.insert(LABEL_FINAL_DIFFID.into(), last.diff_id.clone());
    let info = repo.commit_info(commit)?;
    let created = chrono::DateTime::from_timestamp(info.timestamp as i64, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let subject = if info.subject.is_empty() {
        format!("ostree export of commit {commit}")
    } else {
        info.subject.clone()
    };
    let config = serde_json::json!({
        "created": created,
        "architecture": oci_arch(),
        "os": "linux",
        "config": { "Labels": labels },
        "rootfs": {
            "type": "layers",
            "diff_ids": reports.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": reports.iter().enumerate().map(|(i, l)| serde_json::json!({
            "created": created,
            "created_by": if i == 0 { subject.clone() } else { l.packages.join(",") },
        })).collect::<Vec<_>>(),
    });
    let config_desc = layout.write_blob(
        oci::MEDIA_CONFIG,
        &serde_json::to_vec(&config).expect("config serializes"),
    )?;
    let layers = reports
        .iter()
        .map(|l| Descriptor {
            media_type: oci::MEDIA_LAYER_GZIP.into(),
            digest: l.digest.clone(),
            size: l.size,
            annotations: if l.kind == "packages" {
                BTreeMap::from([(ANNOTATION_COMPONENTS.to_string(), l.packages.join(","))])
            } else {
                BTreeMap::new()
            },
        })
        .collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MEDIA_MANIFEST.into()),
        config: config_desc,
        layers,
        annotations: labels.clone(),
    };
    Ok(Built {
        manifest,
        layers: reports,
        labels,
        chunked: !owners.is_empty(),
    })
}

/// Writes an uncompressed tar of the layout at `dir` to `file` (an `oci-archive:`).
fn archive(dir: &Path, file: &Path) -> Result<(), ContainerError> {
    let tmp = file.with_extension("cairn-tmp");
    let f = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    let mut t = tar::Builder::new(std::io::BufWriter::new(f));
    t.mode(tar::HeaderMode::Deterministic);
    t.append_dir_all(".", dir)
        .and_then(|_| t.into_inner().map(|_| ()))
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, file).map_err(io(format!("writing {}", file.display())))
}

/// Exports commit `rev` of `repo` to `dest`.
pub fn export(
    repo: &Repo,
    rev: &str,
    dest: &ImageRef,
    opts: &ExportOptions,
) -> Result<ExportReport, ContainerError> {
    let commit = repo.require(rev)?;
    let tmp = crate::scratch("cairn-export-")?;
    let (layout, tag) = match dest {
        ImageRef::OciDir { path, tag } => (Layout::ensure(path)?, tag.as_deref()),
        _ => (Layout::ensure(tmp.path())?, Some("cairn")),
    };
    let built = build(repo, &layout, &commit, opts)?;
    let desc = layout.put_manifest(&built.manifest, tag)?;
    match dest {
        ImageRef::OciDir { .. } => {}
        ImageRef::OciArchive { path, tag } => {
            // The archive's index names the tag the user asked for.
            let inner = Layout::ensure(&tmp.path().join("archive"))?;
            copy_image(&layout, &inner, &built.manifest)?;
            inner.put_manifest(&built.manifest, tag.as_deref())?;
            archive(&inner.dir, path)?;
        }
        ImageRef::Registry(r) => {
            let src = format!("oci:{}:cairn", layout.dir.display());
            skopeo::copy(&src, &format!("docker://{r}"), true)?;
        }
    }
    Ok(ExportReport {
        commit,
        image: dest.to_string(),
        manifest_digest: desc.digest,
        labels: built.labels,
        layers: built.layers,
        chunked_by_package: built.chunked,
    })
}

/// Hard-links (or copies) the blobs of `manifest` from one layout into another.
fn copy_image(from: &Layout, to: &Layout, manifest: &Manifest) -> Result<(), ContainerError> {
    let digests =
        std::iter::once(&manifest.config.digest).chain(manifest.layers.iter().map(|l| &l.digest));
    for d in digests {
        let (src, dst) = (from.blob_path(d), to.blob_path(d));
        if dst.exists() {
            continue;
        }
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(io(format!("copying {}", src.display())))?;
        }
    }
    Ok(())
}
