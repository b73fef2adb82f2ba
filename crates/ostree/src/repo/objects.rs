//! Object-level access for formats that carry OSTree objects themselves (the ostree-native
//! container image): reading commit/dirtree/dirmeta/content objects as plain data, and writing
//! them back under their known checksums in one transaction.
//!
//! Metadata objects travel as their serialized GVariant bytes, unchanged, so the checksum a reader
//! recomputes is the one the writer had; libostree verifies every expected checksum on write.

use std::io::Read;

use ostree::gio::{self, prelude::*};
use ostree::glib::{self, VariantTy};

use super::{Ctx, Repo, RepoError, NO_CANCEL};

/// The metadata object kinds (everything but content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MetaKind {
    Commit,
    DirTree,
    DirMeta,
}

impl MetaKind {
    fn ostree(self) -> ostree::ObjectType {
        match self {
            MetaKind::Commit => ostree::ObjectType::Commit,
            MetaKind::DirTree => ostree::ObjectType::DirTree,
            MetaKind::DirMeta => ostree::ObjectType::DirMeta,
        }
    }

    fn variant_type(self) -> &'static VariantTy {
        let s = match self {
            MetaKind::Commit => "(a{sv}aya(say)sstayay)",
            MetaKind::DirTree => "(a(say)a(sayay))",
            MetaKind::DirMeta => "(uuua(ayay))",
        };
        VariantTy::new(s).expect("valid GVariant type")
    }

    /// The file name suffix in a repository's `objects/` directory.
    pub fn suffix(self) -> &'static str {
        match self {
            MetaKind::Commit => "commit",
            MetaKind::DirTree => "dirtree",
            MetaKind::DirMeta => "dirmeta",
        }
    }
}

/// A subdirectory entry of a dirtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubDir {
    pub name: String,
    pub tree: String,
    pub meta: String,
}

/// A parsed dirtree: files (name, content checksum) and subdirectories, in stored order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirTree {
    pub files: Vec<(String, String)>,
    pub dirs: Vec<SubDir>,
}

/// Ownership and mode (with the file type bits) of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// What a content object is, apart from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentKind {
    Regular { size: u64 },
    Symlink { target: String },
}

/// A content object's header: owner, mode (with file type bits), kind and its extended
/// attributes as the serialized `a(ayay)` GVariant OSTree checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentMeta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub kind: ContentKind,
    pub xattrs: Vec<u8>,
}

fn hex_of(v: &glib::Variant) -> String {
    hex::encode(v.data_as_bytes())
}

fn bad(what: String) -> RepoError {
    RepoError::BadInput(what)
}

impl Repo {
    /// The serialized bytes of a metadata object.
    pub fn read_meta_object(&self, kind: MetaKind, csum: &str) -> Result<Vec<u8>, RepoError> {
        let v = self
            .inner
            .load_variant(kind.ostree(), csum)
            .ctx(|| format!("loading {} object {csum}", kind.suffix()))?;
        Ok(v.data_as_bytes().to_vec())
    }

    /// The commit's detached metadata (`commitmeta`: signatures and such), serialized.
    pub fn read_detached_meta(&self, commit: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let v = self
            .inner
            .read_commit_detached_metadata(commit, NO_CANCEL)
            .ctx(|| format!("reading the detached metadata of {commit}"))?;
        Ok(v.map(|v| v.data_as_bytes().to_vec()))
    }

    /// The root (dirtree, dirmeta) checksums of a commit.
    pub fn commit_root(&self, commit: &str) -> Result<(String, String), RepoError> {
        let v = self
            .inner
            .load_variant(ostree::ObjectType::Commit, commit)
            .ctx(|| format!("loading commit {commit}"))?;
        Ok((hex_of(&v.child_value(6)), hex_of(&v.child_value(7))))
    }

    pub fn dirtree(&self, csum: &str) -> Result<DirTree, RepoError> {
        let v = self
            .inner
            .load_variant(ostree::ObjectType::DirTree, csum)
            .ctx(|| format!("loading dirtree {csum}"))?;
        let name = |e: &glib::Variant| e.child_value(0).str().unwrap_or_default().to_string();
        let files = v
            .child_value(0)
            .iter()
            .map(|e| (name(&e), hex_of(&e.child_value(1))))
            .collect();
        let dirs = v
            .child_value(1)
            .iter()
            .map(|e| SubDir {
                name: name(&e),
                tree: hex_of(&e.child_value(1)),
                meta: hex_of(&e.child_value(2)),
            })
            .collect();
        Ok(DirTree { files, dirs })
    }

    pub fn dirmeta(&self, csum: &str) -> Result<DirMeta, RepoError> {
        let v = self
            .inner
            .load_variant(ostree::ObjectType::DirMeta, csum)
            .ctx(|| format!("loading dirmeta {csum}"))?;
        // Stored big-endian, as all OSTree integers.
        let get = |i| u32::from_be(v.child_value(i).get::<u32>().unwrap_or_default());
        Ok(DirMeta {
            uid: get(0),
            gid: get(1),
            mode: get(2),
        })
    }

    /// A content object's header and, for a regular file, a reader of its bytes.
    pub fn open_content(
        &self,
        csum: &str,
    ) -> Result<(ContentMeta, Option<Box<dyn Read>>), RepoError> {
        let (stream, info, xattrs) = self
            .inner
            .load_file(csum, NO_CANCEL)
            .ctx(|| format!("loading content object {csum}"))?;
        let kind = if info.file_type() == ostree::gio::FileType::SymbolicLink {
            let target = info.symlink_target().unwrap_or_default();
            ContentKind::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        } else {
            ContentKind::Regular {
                size: u64::try_from(info.size()).unwrap_or_default(),
            }
        };
        let meta = ContentMeta {
            uid: info.attribute_uint32("unix::uid"),
            gid: info.attribute_uint32("unix::gid"),
            mode: info.attribute_uint32("unix::mode"),
            kind,
            xattrs: xattrs.data_as_bytes().to_vec(),
        };
        let reader = stream.map(|s| Box::new(s.into_read()) as Box<dyn Read>);
        Ok((meta, reader))
    }

    /// Whether the repository has the content object `csum`.
    pub fn has_content(&self, csum: &str) -> Result<bool, RepoError> {
        self.inner
            .has_object(ostree::ObjectType::File, csum, NO_CANCEL)
            .ctx(|| format!("looking up content object {csum}"))
    }

    /// Whether the repository has the metadata object `csum`.
    pub fn has_meta(&self, kind: MetaKind, csum: &str) -> Result<bool, RepoError> {
        self.inner
            .has_object(kind.ostree(), csum, NO_CANCEL)
            .ctx(|| format!("looking up {} object {csum}", kind.suffix()))
    }

    /// Checks that `detached` (a commit's detached metadata) carries a signature of `commit`
    /// (the commit object's bytes) that remote `remote`'s keys accept, as a pull from that remote
    /// would. Returns libostree's description of the valid signature.
    pub fn verify_commit_data(
        &self,
        remote: &str,
        commit: &[u8],
        detached: &[u8],
    ) -> Result<String, RepoError> {
        let res = self
            .inner
            .signature_verify_commit_data(
                remote,
                &glib::Bytes::from(commit),
                &glib::Bytes::from(detached),
                ostree::RepoVerifyFlags::empty(),
            )
            .ctx(|| format!("verifying the commit's signature with remote {remote}'s keys"))?;
        Ok(res.to_string())
    }

    /// Starts writing objects; nothing is visible (refs) until [`ObjectWriter::commit`].
    pub fn object_writer(&self) -> Result<ObjectWriter<'_>, RepoError> {
        self.inner
            .prepare_transaction(NO_CANCEL)
            .ctx(|| format!("{}: starting a transaction", self.path.display()))?;
        Ok(ObjectWriter {
            repo: self,
            done: false,
        })
    }
}

/// Writes objects under known checksums (each verified by libostree) in one repository
/// transaction; dropping it unfinished aborts the transaction.
pub struct ObjectWriter<'a> {
    repo: &'a Repo,
    done: bool,
}

fn xattrs_variant(bytes: &[u8]) -> Result<glib::Variant, RepoError> {
    let ty = VariantTy::new("a(ayay)").expect("valid type");
    let v = glib::Variant::from_bytes_with_type(&glib::Bytes::from(bytes), ty);
    if !v.is_normal_form() {
        return Err(bad(
            "extended attributes are not a normal-form a(ayay) GVariant".into(),
        ));
    }
    Ok(v)
}

impl ObjectWriter<'_> {
    /// Writes a metadata object from its serialized bytes; the checksum must match.
    pub fn write_meta(&self, kind: MetaKind, csum: &str, bytes: &[u8]) -> Result<(), RepoError> {
        let v = glib::Variant::from_bytes_with_type(&glib::Bytes::from(bytes), kind.variant_type());
        if !v.is_normal_form() {
            return Err(bad(format!(
                "{} object {csum} is not a normal-form GVariant",
                kind.suffix()
            )));
        }
        self.repo
            .inner
            .write_metadata(kind.ostree(), Some(csum), &v, NO_CANCEL)
            .ctx(|| format!("writing {} object {csum}", kind.suffix()))?;
        Ok(())
    }

    /// Writes a commit's detached metadata (`a{sv}`) from its serialized bytes.
    pub fn write_detached_meta(&self, commit: &str, bytes: &[u8]) -> Result<(), RepoError> {
        let ty = VariantTy::new("a{sv}").expect("valid type");
        let v = glib::Variant::from_bytes_with_type(&glib::Bytes::from(bytes), ty);
        self.repo
            .inner
            .write_commit_detached_metadata(commit, Some(&v), NO_CANCEL)
            .ctx(|| format!("writing the detached metadata of {commit}"))
    }

    /// Writes a content object; `data` must yield exactly the regular file's size in bytes.
    pub fn write_content(
        &self,
        csum: &str,
        meta: &ContentMeta,
        data: &mut dyn Read,
    ) -> Result<(), RepoError> {
        let xattrs = xattrs_variant(&meta.xattrs)?;
        if self.repo.mode() == super::Mode::Archive {
            return self.write_content_stream(csum, meta, &xattrs, data);
        }
        let what = || format!("writing content object {csum}");
        let repo = &self.repo.inner;
        match &meta.kind {
            ContentKind::Symlink { target } => {
                repo.write_symlink(
                    Some(csum),
                    meta.uid,
                    meta.gid,
                    Some(&xattrs),
                    target,
                    NO_CANCEL,
                )
                .ctx(what)?;
            }
            ContentKind::Regular { size } => {
                let w = repo
                    .write_regfile(
                        Some(csum),
                        meta.uid,
                        meta.gid,
                        meta.mode,
                        *size,
                        Some(&xattrs),
                    )
                    .ctx(what)?;
                let mut buf = vec![0u8; 128 * 1024];
                loop {
                    let n = data.read(&mut buf).map_err(|source| RepoError::Io {
                        what: what(),
                        source,
                    })?;
                    if n == 0 {
                        break;
                    }
                    w.write_all(&buf[..n], NO_CANCEL).ctx(what)?;
                }
                w.finish(NO_CANCEL).ctx(what)?;
            }
        }
        Ok(())
    }

    /// Archive repositories take content only as OSTree's content stream (header + data), which
    /// libostree builds from a GInputStream: the data is spooled to a temporary file first.
    fn write_content_stream(
        &self,
        csum: &str,
        meta: &ContentMeta,
        xattrs: &glib::Variant,
        data: &mut dyn Read,
    ) -> Result<(), RepoError> {
        let what = || format!("writing content object {csum}");
        let io_err = |source| RepoError::Io {
            what: what(),
            source,
        };
        let info = gio::FileInfo::new();
        info.set_attribute_uint32("unix::uid", meta.uid);
        info.set_attribute_uint32("unix::gid", meta.gid);
        info.set_attribute_uint32("unix::mode", meta.mode);
        let mut spool =
            tempfile::NamedTempFile::new_in(self.repo.path.join("tmp")).map_err(io_err)?;
        match &meta.kind {
            ContentKind::Symlink { target } => {
                info.set_file_type(gio::FileType::SymbolicLink);
                info.set_symlink_target(target);
            }
            ContentKind::Regular { size } => {
                info.set_file_type(gio::FileType::Regular);
                info.set_size(i64::try_from(*size).unwrap_or(i64::MAX));
                std::io::copy(data, spool.as_file_mut()).map_err(io_err)?;
            }
        }
        let input = gio::File::for_path(spool.path())
            .read(NO_CANCEL)
            .ctx(what)?;
        let (stream, len) =
            ostree::raw_file_to_content_stream(&input, &info, Some(xattrs), NO_CANCEL).ctx(what)?;
        self.repo
            .inner
            .write_content(Some(csum), &stream, len, NO_CANCEL)
            .ctx(what)?;
        Ok(())
    }

    /// Points `refname` at `commit` when the transaction commits.
    pub fn set_ref(&self, refname: &str, commit: &str) {
        self.repo
            .inner
            .transaction_set_ref(None, refname, Some(commit));
    }

    /// Commits the transaction (objects become durable, refs are written).
    pub fn commit(mut self) -> Result<(), RepoError> {
        self.done = true;
        self.repo
            .inner
            .commit_transaction(NO_CANCEL)
            .ctx(|| format!("{}: committing the transaction", self.repo.path.display()))?;
        Ok(())
    }
}

impl Drop for ObjectWriter<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.repo.inner.abort_transaction(NO_CANCEL);
        }
    }
}
