//! The walk of a tree about to be committed: every directory and file with the owner and mode
//! OSTree will store, before any content is read.

use std::path::{Path, PathBuf};

use super::RepoError;

/// Owner and mode as stored in the object (after canonicalisation, when asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// A regular file or a symlink.
#[derive(Debug)]
pub(super) struct FileEntry {
    pub path: PathBuf,
    /// Path in the tree, leading `/`, for messages.
    pub rel: String,
    pub meta: Meta,
    pub size: u64,
    pub symlink: Option<String>,
}

#[derive(Debug)]
pub(super) struct DirEntry {
    pub path: PathBuf,
    pub meta: Meta,
    /// (name, index into [`Scan::files`]), sorted by name.
    pub files: Vec<(String, usize)>,
    /// (name, index into [`Scan::dirs`]), sorted by name.
    pub dirs: Vec<(String, usize)>,
}

#[derive(Debug, Default)]
pub(super) struct Scan {
    /// `dirs[0]` is the root.
    pub dirs: Vec<DirEntry>,
    pub files: Vec<FileEntry>,
    /// Sum of regular file sizes.
    pub bytes: u64,
}

/// Walks `rootfs`. `canonical`: uid/gid 0 and modes masked as `ostree commit
/// --canonical-permissions` does (regular files and directories `& 0755`, symlinks untouched).
pub(super) fn scan(rootfs: &Path, canonical: bool) -> Result<Scan, RepoError> {
    let mut s = Scan::default();
    let root_meta = lstat(rootfs, "/")?;
    s.dirs.push(DirEntry {
        path: rootfs.to_path_buf(),
        meta: meta_of(&root_meta, canonical),
        files: Vec::new(),
        dirs: Vec::new(),
    });
    walk(&mut s, 0, "", canonical, rootfs)?;
    Ok(s)
}

fn walk(
    s: &mut Scan,
    dir: usize,
    rel: &str,
    canonical: bool,
    rootfs: &Path,
) -> Result<(), RepoError> {
    use std::os::unix::fs::FileTypeExt;
    let path = s.dirs[dir].path.clone();
    let shown = if rel.is_empty() { "/" } else { rel };
    let rd = std::fs::read_dir(&path).map_err(|source| RepoError::Io {
        what: format!("{}: cannot read directory {shown}", rootfs.display()),
        source,
    })?;
    let mut entries = Vec::new();
    for e in rd {
        let e = e.map_err(|source| RepoError::Io {
            what: format!("{}: cannot read directory {shown}", rootfs.display()),
            source,
        })?;
        let name = e.file_name().into_string().map_err(|n| {
            RepoError::BadInput(format!(
                "{rel}/{}: file name is not UTF-8, which OSTree cannot store; rename it",
                n.to_string_lossy()
            ))
        })?;
        entries.push((name, e.path()));
    }
    // Byte order, as libostree sorts dirtree entries; keeps the work order stable too.
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, child) in entries {
        let child_rel = format!("{rel}/{name}");
        let md = lstat(&child, &child_rel)?;
        let ft = md.file_type();
        if ft.is_dir() {
            let idx = s.dirs.len();
            s.dirs.push(DirEntry {
                path: child,
                meta: meta_of(&md, canonical),
                files: Vec::new(),
                dirs: Vec::new(),
            });
            s.dirs[dir].dirs.push((name, idx));
            walk(s, idx, &child_rel, canonical, rootfs)?;
        } else if ft.is_file() || ft.is_symlink() {
            let symlink = if ft.is_symlink() {
                Some(read_link(&child, &child_rel)?)
            } else {
                s.bytes += md.len();
                None
            };
            let idx = s.files.len();
            s.files.push(FileEntry {
                path: child,
                rel: child_rel,
                meta: meta_of(&md, canonical),
                size: if ft.is_file() { md.len() } else { 0 },
                symlink,
            });
            s.dirs[dir].files.push((name, idx));
        } else if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket() {
            return Err(RepoError::SpecialFiles {
                rootfs: rootfs.to_path_buf(),
                paths: super::commit::find_special_files(rootfs),
            });
        }
    }
    Ok(())
}

fn lstat(path: &Path, rel: &str) -> Result<std::fs::Metadata, RepoError> {
    std::fs::symlink_metadata(path).map_err(|source| RepoError::Io {
        what: format!("{rel}: cannot stat {}", path.display()),
        source,
    })
}

fn read_link(path: &Path, rel: &str) -> Result<String, RepoError> {
    let target = std::fs::read_link(path).map_err(|source| RepoError::Io {
        what: format!("{rel}: cannot read symlink {}", path.display()),
        source,
    })?;
    target.into_os_string().into_string().map_err(|t| {
        RepoError::BadInput(format!(
            "{rel}: symlink target `{}` is not UTF-8, which OSTree cannot store",
            t.to_string_lossy()
        ))
    })
}

fn meta_of(md: &std::fs::Metadata, canonical: bool) -> Meta {
    use std::os::unix::fs::MetadataExt;
    const S_IFMT: u32 = 0o170_000;
    let mode = md.mode();
    if !canonical {
        return Meta {
            uid: md.uid(),
            gid: md.gid(),
            mode,
        };
    }
    // Squashes setuid/setgid/sticky, as libostree's commit modifier does; symlinks keep 0777.
    let mode = if md.file_type().is_symlink() {
        mode
    } else {
        mode & (S_IFMT | 0o755)
    };
    Meta {
        uid: 0,
        gid: 0,
        mode,
    }
}
