//! Where the loader reads treefiles from: the file system, or a set of files held in memory
//! (fuzzing and tests feed whole include trees without touching the disk).

use std::collections::BTreeMap;
use std::io::{Error, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// The three things the include loader asks of a file.
pub trait Source {
    /// A stable identity, equal for two spellings of one file (cycle and duplicate detection).
    fn identify(&self, path: &Path) -> std::io::Result<(u64, u64)>;
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The name recorded in `Treefile::files`.
    fn canonical(&self, path: &Path) -> PathBuf;
}

/// The file system: identity is (device, inode), so hard links and symlinks are one file.
pub struct Disk;

impl Source for Disk {
    fn identify(&self, path: &Path) -> std::io::Result<(u64, u64)> {
        std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn canonical(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Files in memory, keyed by path; `a/../b` and `./b` name the same entry as `b`.
/// Only the include tree is in memory: checks of external files (`add-files`, `rootfs.path`)
/// still look at the disk and only ever warn.
#[derive(Debug, Clone, Default)]
pub struct MemFiles {
    files: BTreeMap<PathBuf, String>,
}

impl MemFiles {
    pub fn new() -> MemFiles {
        MemFiles::default()
    }

    pub fn insert(&mut self, path: impl AsRef<Path>, text: impl Into<String>) {
        self.files.insert(normal(path.as_ref()), text.into());
    }

    fn find(&self, path: &Path) -> std::io::Result<(usize, &String)> {
        let key = normal(path);
        self.files
            .iter()
            .enumerate()
            .find(|(_, (k, _))| **k == key)
            .map(|(i, (_, v))| (i, v))
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "not in the in-memory file set"))
    }
}

impl Source for MemFiles {
    fn identify(&self, path: &Path) -> std::io::Result<(u64, u64)> {
        self.find(path).map(|(i, _)| (0, i as u64))
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.find(path).map(|(_, v)| v.clone())
    }
    fn canonical(&self, path: &Path) -> PathBuf {
        normal(path)
    }
}

/// `path` with `.` dropped and `..` applied lexically (in memory there are no symlinks).
fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_file_share_an_identity() {
        let mut m = MemFiles::new();
        m.insert("/t/a.yaml", "x");
        m.insert("/t/b.yaml", "y");
        let a = m.identify(Path::new("/t/sub/../a.yaml")).unwrap();
        assert_eq!(a, m.identify(Path::new("/t/./a.yaml")).unwrap());
        assert_ne!(a, m.identify(Path::new("/t/b.yaml")).unwrap());
        assert_eq!(
            m.identify(Path::new("/t/c.yaml")).unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}
