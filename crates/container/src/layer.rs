//! Writing one image layer: a gzip-compressed tar stream of OSTree objects under
//! `sysroot/ostree/repo/objects/` in the `bare-split-xattrs` layout, plus hard links at the
//! checkout paths so a container runtime sees the file system too.
//!
//! Every header is fixed (mtime 0, no user names) and objects come in a fixed order, so the same
//! objects always give the same bytes, hence the same layer digest: what lets an upgrade skip
//! the layers whose packages did not change.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use cairn_ostree::repo::{ContentKind, Repo};
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::oci::Layout;
use crate::{io, ContainerError};

pub const OBJECTS: &str = "sysroot/ostree/repo/objects";
const S_IFMT: u32 = 0o170_000;
const REPO_CONFIG: &str = "[core]\nrepo_version=1\nmode=bare-split-xattrs\n";

/// Counts and hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        len: 0,
    }
}

/// A finished layer blob.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// Digest of the compressed blob.
    pub digest: String,
    /// Digest of the uncompressed tar (the config's diff id).
    pub diff_id: String,
    pub size: u64,
}

pub fn object_path(csum: &str, suffix: &str) -> String {
    format!("{OBJECTS}/{}/{}.{suffix}", &csum[..2], &csum[2..])
}

/// Checkout paths as the image shows them: `/usr/etc` is `/etc` in a container.
fn checkout_path(p: &str) -> String {
    match p.strip_prefix("usr/etc") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("etc{rest}"),
        _ => p.to_string(),
    }
}

type Tar = tar::Builder<Hashing<GzEncoder<Hashing<BufWriter<File>>>>>;

pub struct LayerWriter {
    tar: Tar,
    tmp: PathBuf,
    layout: Layout,
    wrote_xattrs: HashSet<String>,
    what: String,
}

fn header(kind: tar::EntryType, uid: u32, gid: u32, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_uid(uid.into());
    h.set_gid(gid.into());
    h.set_mode(mode & !S_IFMT);
    h.set_size(size);
    h.set_mtime(0);
    h
}

impl LayerWriter {
    pub fn new(layout: &Layout, what: &str) -> Result<LayerWriter, ContainerError> {
        let tmp = layout
            .dir
            .join(format!("blobs/sha256/.cairn-layer-{}", std::process::id()));
        let f = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        let gz = GzEncoder::new(hashing(BufWriter::new(f)), flate2::Compression::default());
        let mut tar = tar::Builder::new(hashing(gz));
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(LayerWriter {
            tar,
            tmp,
            layout: layout.clone(),
            wrote_xattrs: HashSet::new(),
            what: what.to_string(),
        })
    }

    fn err(&self) -> impl FnOnce(std::io::Error) -> ContainerError {
        io(format!("writing layer {}", self.what))
    }

    /// A directory entry.
    pub fn dir(&mut self, path: &str, uid: u32, gid: u32, mode: u32) -> Result<(), ContainerError> {
        let mut h = header(tar::EntryType::Directory, uid, gid, mode, 0);
        let e = self.err();
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .map_err(e)
    }

    fn data(&mut self, path: &str, bytes: &[u8]) -> Result<(), ContainerError> {
        let mut h = header(tar::EntryType::Regular, 0, 0, 0o644, bytes.len() as u64);
        let e = self.err();
        self.tar.append_data(&mut h, path, bytes).map_err(e)
    }

    fn hardlink(&mut self, path: &str, target: &str) -> Result<(), ContainerError> {
        let mut h = header(tar::EntryType::Link, 0, 0, 0o644, 0);
        let e = self.err();
        self.tar.append_link(&mut h, path, target).map_err(e)
    }

    /// `sysroot/ostree/repo` with its 256 object directories and config, at the top of every
    /// layer (each layer stands alone when a runtime unpacks it).
    pub fn repo_structure(&mut self) -> Result<(), ContainerError> {
        for d in ["sysroot", "sysroot/ostree", "sysroot/ostree/repo", OBJECTS] {
            self.dir(d, 0, 0, 0o755)?;
        }
        for i in 0..=0xffu32 {
            self.dir(&format!("{OBJECTS}/{i:02x}"), 0, 0, 0o755)?;
        }
        for d in [
            "extensions",
            "refs",
            "refs/heads",
            "refs/mirrors",
            "refs/remotes",
            "state",
            "tmp",
            "tmp/cache",
        ] {
            self.dir(&format!("sysroot/ostree/repo/{d}"), 0, 0, 0o755)?;
        }
        self.data("sysroot/ostree/repo/config", REPO_CONFIG.as_bytes())
    }

    /// A metadata object (commit, commitmeta, dirtree, dirmeta) from its serialized bytes.
    pub fn meta_object(
        &mut self,
        csum: &str,
        suffix: &str,
        bytes: &[u8],
    ) -> Result<(), ContainerError> {
        self.data(&object_path(csum, suffix), bytes)
    }

    /// A content object: its xattrs (`.file-xattrs`, once per layer, and a `.file-xattrs-link`
    /// hard link to them), the object, then hard links at `paths` (repository-relative checkout
    /// paths; empty regular files are written as such, as hard links to them break too easily).
    pub fn content(
        &mut self,
        repo: &Repo,
        csum: &str,
        paths: &[String],
    ) -> Result<(), ContainerError> {
        let (meta, reader) = repo.open_content(csum)?;
        let xsum = hex::encode(Sha256::digest(&meta.xattrs));
        let xpath = object_path(&xsum, "file-xattrs");
        if self.wrote_xattrs.insert(xsum) {
            self.data(&xpath, &meta.xattrs.clone())?;
        }
        self.hardlink(&object_path(csum, "file-xattrs-link"), &xpath)?;
        let opath = object_path(csum, "file");
        let e = self.err();
        // The object's header (its name field included) is reused for the checkout entries,
        // as ostree-ext does, so identical input gives identical bytes.
        let h = match (&meta.kind, reader) {
            (ContentKind::Regular { size }, Some(mut r)) => {
                let mut h = header(
                    tar::EntryType::Regular,
                    meta.uid,
                    meta.gid,
                    meta.mode,
                    *size,
                );
                self.tar.append_data(&mut h, &opath, &mut r).map_err(e)?;
                h
            }
            (ContentKind::Symlink { target }, _) => {
                let mut h = header(tar::EntryType::Symlink, meta.uid, meta.gid, meta.mode, 0);
                if target.len() <= 100 {
                    // Literal: the tar crate would normalize `a//b`, changing the checksum.
                    h.set_link_name_literal(target).map_err(e)?;
                    let e = self.err();
                    self.tar
                        .append_data(&mut h, &opath, std::io::empty())
                        .map_err(e)?;
                } else {
                    self.tar.append_link(&mut h, &opath, target).map_err(e)?;
                }
                h
            }
            (ContentKind::Regular { .. }, None) => {
                return Err(ContainerError::BadImage {
                    image: repo.path().display().to_string(),
                    why: format!("content object {csum} has no data"),
                })
            }
        };
        let empty = h.entry_type() == tar::EntryType::Regular && h.size().unwrap_or(0) == 0;
        for p in paths {
            let dest = checkout_path(p);
            let mut h = h.clone();
            h.set_size(0);
            if !empty {
                h.set_entry_type(tar::EntryType::Link);
                let e = self.err();
                h.set_link_name(&opath).map_err(e)?;
            }
            let e = self.err();
            self.tar
                .append_data(&mut h, &dest, std::io::empty())
                .map_err(e)?;
        }
        Ok(())
    }

    /// Finishes the stream and moves it to its digest's name in the layout.
    pub fn finish(self) -> Result<LayerBlob, ContainerError> {
        let what = format!("finishing layer {}", self.what);
        let tarh = self.tar.into_inner().map_err(io(what.clone()))?;
        let diff_id = format!("sha256:{}", hex::encode(tarh.hash.finalize()));
        let mut gzh = tarh.inner.finish().map_err(io(what.clone()))?;
        gzh.flush().map_err(io(what.clone()))?;
        let digest = format!("sha256:{}", hex::encode(gzh.hash.finalize()));
        let size = gzh.len;
        let dest = self.layout.blob_path(&digest);
        std::fs::rename(&self.tmp, &dest).map_err(io(what))?;
        Ok(LayerBlob {
            digest,
            diff_id,
            size,
        })
    }
}
