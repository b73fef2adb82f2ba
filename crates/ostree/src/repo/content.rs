//! Content objects of a commit: each file hashed by cairn (SHA-256 over the OSTree file header
//! and the bytes), and only the objects the repo lacks handed to libostree, from a pool of
//! worker threads inside the caller's transaction.
//!
//! Correctness does not depend on any cache: every file is read and hashed on every commit. A
//! file is read once into memory and the same buffer is hashed and written, so the object's
//! content always matches its name even when the file changes during the commit. That is why
//! the write uses `write_content_trusted`: libostree's own re-hash (glib's SHA-256, several
//! times slower than ours) would only check what this buffer already guarantees.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::Duration;

use ostree::glib::{prelude::*, Variant, VariantTy};
use ostree::{gio, glib};
use sha2::{Digest, Sha256};

use super::scan::{FileEntry, Meta};
use super::{Ctx, RepoError, NO_CANCEL};

/// Files and bytes done so far in [`super::Repo::commit_tree_with_progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitProgress {
    pub files_done: u64,
    pub files_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Content objects the repo lacked so far (the rest were already stored).
    pub objects_written: u64,
}

/// What the pool produced: one checksum per scanned file, in scan order.
pub(super) struct Written {
    pub checksums: Vec<String>,
    pub objects_written: u64,
}

/// Whether each file's xattrs go into its checksum (off with canonical permissions, as in
/// libostree).
#[derive(Debug, Clone, Copy)]
pub(super) struct Xattrs(pub bool);

struct Shared<'a> {
    files: &'a [FileEntry],
    xattrs: Xattrs,
    next: AtomicUsize,
    failed: AtomicBool,
    error: Mutex<Option<RepoError>>,
    slots: Vec<OnceLock<String>>,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    written: AtomicU64,
}

/// Hashes every file and writes the missing objects. Must run inside a transaction:
/// libostree documents that several threads may write objects into one `OstreeRepo` "as long
/// as their lifetime is bounded by the transaction" (`ostree_repo_prepare_transaction`).
pub(super) fn write_files(
    repo: &ostree::Repo,
    files: &[FileEntry],
    bytes_total: u64,
    xattrs: Xattrs,
    progress: &mut dyn FnMut(&CommitProgress),
) -> Result<Written, RepoError> {
    let shared = Shared {
        files,
        xattrs,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        slots: (0..files.len()).map(|_| OnceLock::new()).collect(),
        files_done: AtomicU64::new(0),
        bytes_done: AtomicU64::new(0),
        written: AtomicU64::new(0),
    };
    let snapshot = |s: &Shared| CommitProgress {
        files_done: s.files_done.load(Ordering::Relaxed),
        files_total: files.len() as u64,
        bytes_done: s.bytes_done.load(Ordering::Relaxed),
        bytes_total,
        objects_written: s.written.load(Ordering::Relaxed),
    };
    let workers = worker_count(files.len());
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<()>();
        for _ in 0..workers {
            // Each thread owns a reference to the same OstreeRepo (the Rust type is Send,
            // not Sync).
            let repo = repo.clone();
            let tx = tx.clone();
            let shared = &shared;
            scope.spawn(move || {
                work(&repo, shared);
                let _ = tx.send(());
            });
        }
        drop(tx);
        // The caller's thread reports progress until every worker has finished.
        let mut finished = 0;
        while finished < workers {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => finished += 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            progress(&snapshot(&shared));
        }
    });
    if let Some(e) = shared.error.lock().ok().and_then(|mut g| g.take()) {
        return Err(e);
    }
    let objects_written = shared.written.load(Ordering::Relaxed);
    let checksums = shared
        .slots
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_default())
        .collect();
    Ok(Written {
        checksums,
        objects_written,
    })
}

/// Two threads a core: while one waits for a file to come off the disk, the other compresses.
fn worker_count(files: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores * 2).clamp(2, 32).min(files.max(1))
}

fn work(repo: &ostree::Repo, s: &Shared) {
    loop {
        if s.failed.load(Ordering::Relaxed) {
            return;
        }
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        let Some(f) = s.files.get(i) else { return };
        match file_object(repo, f, s.xattrs) {
            Ok((checksum, wrote)) => {
                let _ = s.slots[i].set(checksum);
                if wrote {
                    s.written.fetch_add(1, Ordering::Relaxed);
                }
                s.files_done.fetch_add(1, Ordering::Relaxed);
                s.bytes_done.fetch_add(f.size, Ordering::Relaxed);
            }
            Err(e) => {
                s.failed.store(true, Ordering::Relaxed);
                if let Ok(mut slot) = s.error.lock() {
                    slot.get_or_insert(e);
                }
                return;
            }
        }
    }
}

/// (checksum, whether the object was new).
fn file_object(
    repo: &ostree::Repo,
    f: &FileEntry,
    xattrs: Xattrs,
) -> Result<(String, bool), RepoError> {
    let xattrs = if xattrs.0 {
        read_xattrs(f)?
    } else {
        empty_xattrs()
    };
    let mut buf = file_header(&f.meta, f.symlink.as_deref(), &xattrs);
    if f.symlink.is_none() {
        read_into(f, &mut buf)?;
    }
    let checksum = hex::encode(Sha256::digest(&buf));
    let have = repo
        .has_object(ostree::ObjectType::File, &checksum, NO_CANCEL)
        .ctx(|| format!("{}: looking up object {checksum}", f.rel))?;
    if have {
        return Ok((checksum, false));
    }
    let len = buf.len() as u64;
    let stream = gio::MemoryInputStream::from_bytes(&glib::Bytes::from_owned(buf));
    repo.write_content_trusted(&checksum, &stream, len, NO_CANCEL)
        .ctx(|| format!("{}: writing its content object", f.rel))?;
    Ok((checksum, true))
}

/// Appends the file's bytes. O_NOFOLLOW: a file swapped for a symlink after the walk is an
/// error, never the content of whatever the link points at.
fn read_into(f: &FileEntry, buf: &mut Vec<u8>) -> Result<(), RepoError> {
    let io = |source| RepoError::Io {
        what: format!("{}: cannot read {}", f.rel, f.path.display()),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&f.path)
        .map_err(io)?;
    buf.reserve_exact(usize::try_from(f.size).unwrap_or(0));
    file.read_to_end(buf).map_err(io)?;
    Ok(())
}

fn read_xattrs(f: &FileEntry) -> Result<Variant, RepoError> {
    let path = f
        .path
        .to_str()
        .ok_or_else(|| RepoError::BadInput(format!("{}: path is not UTF-8", f.path.display())))?;
    // libostree's own reader: the same sorted order `ostree commit` hashes.
    ostree::fs_get_all_xattrs_at(ostree::AT_FDCWD, path, NO_CANCEL)
        .ctx(|| format!("{}: reading extended attributes", f.rel))
}

pub(super) fn empty_xattrs() -> Variant {
    Variant::array_from_iter_with_type(
        VariantTy::new("(ayay)").expect("valid type"),
        std::iter::empty::<Variant>(),
    )
}

/// The content-object header libostree hashes and streams ahead of the bytes: the GVariant
/// `(uuuusa(ayay))` (uid, gid, mode big-endian, rdev 0, symlink target, xattrs), prefixed by its
/// size as a big-endian u32 and 4 zero bytes of alignment padding.
pub(super) fn file_header(meta: &Meta, symlink: Option<&str>, xattrs: &Variant) -> Vec<u8> {
    let v = Variant::tuple_from_iter([
        meta.uid.to_be().to_variant(),
        meta.gid.to_be().to_variant(),
        meta.mode.to_be().to_variant(),
        0u32.to_variant(),
        symlink.unwrap_or("").to_variant(),
        xattrs.clone(),
    ]);
    let data = v.data();
    let size = u32::try_from(data.len()).expect("a file header is far below 4 GiB");
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(data);
    out
}

/// The dirmeta object: `(uuu@a(ayay))`, numbers big-endian.
pub(super) fn dirmeta(meta: &Meta, xattrs: &Variant) -> Variant {
    Variant::tuple_from_iter([
        meta.uid.to_be().to_variant(),
        meta.gid.to_be().to_variant(),
        meta.mode.to_be().to_variant(),
        xattrs.clone(),
    ])
}

/// Directory xattrs the same way file xattrs are read.
pub(super) fn dir_xattrs(path: &std::path::Path, rel: &str) -> Result<Variant, RepoError> {
    let p = path
        .to_str()
        .ok_or_else(|| RepoError::BadInput(format!("{}: path is not UTF-8", path.display())))?;
    ostree::fs_get_all_xattrs_at(ostree::AT_FDCWD, p, NO_CANCEL)
        .ctx(|| format!("{rel}: reading extended attributes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regular file with no xattrs, checked against libostree's own checksum of the same
    /// content stream.
    #[test]
    fn header_matches_libostree() {
        let meta = Meta {
            uid: 0,
            gid: 0,
            mode: 0o100_644,
        };
        let mut buf = file_header(&meta, None, &empty_xattrs());
        buf.extend_from_slice(b"hello\n");
        let ours = hex::encode(Sha256::digest(&buf));
        let info = gio::FileInfo::new();
        info.set_file_type(gio::FileType::Regular);
        info.set_size(6);
        info.set_attribute_uint32("unix::uid", 0);
        info.set_attribute_uint32("unix::gid", 0);
        info.set_attribute_uint32("unix::mode", 0o100_644);
        let input = gio::MemoryInputStream::from_bytes(&glib::Bytes::from_static(b"hello\n"));
        let theirs = ostree::checksum_file_from_input(
            &info,
            None,
            Some(&input),
            ostree::ObjectType::File,
            NO_CANCEL,
        )
        .unwrap()
        .to_string();
        assert_eq!(ours, theirs);
    }
}
