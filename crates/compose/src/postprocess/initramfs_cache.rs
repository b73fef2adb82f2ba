//! The initramfs cache: dracut runs again only when something it read changed.
//!
//! An entry is found by a key over what shapes dracut's output besides the files it copies:
//! the kernel version, dracut's command line, `SOURCE_DATE_EPOCH`, dracut itself and its modules
//! (`/usr/lib/dracut`, every file) and its configuration (`/etc/dracut.conf`,
//! `/etc/dracut.conf.d`). The entry records every path in the image with the hash of the tree's
//! file at that path when it was built; it is reused only if each of those still hashes the
//! same (so a package update that changes a file in the initramfs rebuilds it, and one that
//! does not, reuses it). Nothing is trusted by time stamp: every recorded file is re-read.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{io, run_in_tree, PostprocessError};

/// Where entries live: `<cachedir>/initramfs/<key>.{img,json}`.
pub(super) struct Cache {
    dir: PathBuf,
    key: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    kver: String,
    /// Path in the image (relative, as dracut lists it) -> hash of the tree's file there
    /// (`-` when the tree has none: dracut generated it).
    files: BTreeMap<String, String>,
}

impl Cache {
    pub fn new(
        cachedir: &Path,
        rootfs: &Path,
        kver: &str,
        argv: &[&str],
        sde: Option<u64>,
    ) -> Result<Cache, PostprocessError> {
        let mut h = Sha256::new();
        let mut part = |tag: &str, bytes: &[u8]| {
            h.update(tag.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        part("kver", kver.as_bytes());
        part("argv", argv.join("\0").as_bytes());
        part(
            "sde",
            sde.map(|t| t.to_string()).unwrap_or_default().as_bytes(),
        );
        for dir in ["usr/lib/dracut", "etc/dracut.conf.d", "etc/dracut.conf"] {
            for (rel, hash) in tree_hashes(rootfs, dir)? {
                part("file", rel.as_bytes());
                part("hash", hash.as_bytes());
            }
        }
        Ok(Cache {
            dir: cachedir.join("initramfs"),
            key: hex::encode(h.finalize()),
        })
    }

    fn paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{}.img", self.key)),
            self.dir.join(format!("{}.json", self.key)),
        )
    }

    /// Copies a still-valid cached image to `out`; false when there is none.
    pub fn restore(&self, rootfs: &Path, out: &Path) -> Result<bool, PostprocessError> {
        let (img, json) = self.paths();
        let Ok(text) = std::fs::read(&json) else {
            return Ok(false);
        };
        let Ok(entry) = serde_json::from_slice::<Entry>(&text) else {
            return Ok(false);
        };
        for (rel, recorded) in &entry.files {
            if &file_hash(&rootfs.join(rel))? != recorded {
                return Ok(false);
            }
        }
        match std::fs::copy(&img, out) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(PostprocessError::Io {
                what: format!("copying cached initramfs {}", img.display()),
                error: e,
            }),
        }
    }

    /// Records the image dracut just built at `out` (`inside`: the same path seen from the
    /// tree) with the hashes of the tree's files it contains.
    pub fn store(
        &self,
        rootfs: &Path,
        kver: &str,
        out: &Path,
        inside: &str,
    ) -> Result<(), PostprocessError> {
        let listing = run_in_tree(rootfs, &["lsinitrd", inside], None, &mut |_| {})?;
        if !listing.success {
            return Err(PostprocessError::Chroot {
                tool: "lsinitrd".into(),
                output: listing.tail(20),
                status: listing.status,
            });
        }
        let mut files = BTreeMap::new();
        for rel in listing.lines.iter().filter_map(|l| cpio_path(l)) {
            files.insert(rel.to_string(), file_hash(&rootfs.join(rel))?);
        }
        if files.is_empty() {
            return Err(PostprocessError::Invalid(format!(
                "lsinitrd listed no files in {inside}; not caching it"
            )));
        }
        let entry = Entry {
            kver: kver.to_string(),
            files,
        };
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let (img, json) = self.paths();
        // Image first, then the entry that vouches for it, each renamed into place.
        let tmp = self.dir.join(format!(".{}.img.tmp", self.key));
        std::fs::copy(out, &tmp).map_err(io(format!("copying {}", out.display())))?;
        std::fs::rename(&tmp, &img).map_err(io(format!("writing {}", img.display())))?;
        let text = serde_json::to_vec(&entry).expect("serializable");
        cairn_common::fsutil::write_atomic(&json, &text)
            .map_err(io(format!("writing {}", json.display())))?;
        Ok(())
    }
}

/// The path of one `cpio -tv` line as lsinitrd prints it (mode, links, owner, group, size,
/// month, day, year/time, path[ -> target]); None for headers and directories.
fn cpio_path(line: &str) -> Option<&str> {
    let mode = line.split_whitespace().next()?;
    if mode.len() != 10 || !matches!(mode.as_bytes()[0], b'-' | b'l') {
        return None;
    }
    let mut rest = line;
    for _ in 0..8 {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace)?..];
    }
    let path = rest.trim_start();
    let path = path.split(" -> ").next()?;
    let path = path.trim_start_matches("./").trim_start_matches('/');
    (!path.is_empty()).then_some(path)
}

/// `l:TARGET` for a symlink, the SHA-256 of a regular file, `d` for a directory, `-` if absent.
fn file_hash(p: &Path) -> Result<String, PostprocessError> {
    let md = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("-".into()),
        // A path under a regular file (ENOTDIR) does not exist either.
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok("-".into()),
        Err(e) => {
            return Err(PostprocessError::Io {
                what: format!("reading {}", p.display()),
                error: e,
            })
        }
    };
    if md.file_type().is_symlink() {
        let t = std::fs::read_link(p).map_err(io(format!("reading {}", p.display())))?;
        return Ok(format!("l:{}", t.display()));
    }
    if md.is_dir() {
        return Ok("d".into());
    }
    let mut f = std::fs::File::open(p).map_err(io(format!("reading {}", p.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(io(format!("reading {}", p.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// (path relative to rootfs, hash) of everything under `rel` (a file or a directory), sorted.
fn tree_hashes(rootfs: &Path, rel: &str) -> Result<Vec<(String, String)>, PostprocessError> {
    let top = rootfs.join(rel);
    if std::fs::symlink_metadata(&top).is_err() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(&top).sort_by_file_name() {
        let e =
            e.map_err(|e| PostprocessError::Invalid(format!("walking {}: {e}", top.display())))?;
        let rel = e.path().strip_prefix(rootfs).unwrap_or(e.path());
        out.push((rel.display().to_string(), file_hash(e.path())?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_lines_give_paths() {
        assert_eq!(
            cpio_path("-rw-r--r--   1 root     root         1234 Jan  1  1970 usr/lib/os-release"),
            Some("usr/lib/os-release")
        );
        assert_eq!(
            cpio_path("lrwxrwxrwx   1 root     root            7 Jan  1  1970 bin -> usr/bin"),
            Some("bin")
        );
        assert_eq!(
            cpio_path("drwxr-xr-x  12 root     root            0 Jan  1  1970 usr"),
            None
        );
        assert_eq!(
            cpio_path("Image: /usr/lib/modules/6.1/initramfs.img: 20M"),
            None
        );
        assert_eq!(cpio_path("========================================"), None);
    }

    #[test]
    fn a_changed_file_invalidates_and_an_unrelated_one_does_not() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("usr/lib/dracut")).unwrap();
        std::fs::write(root.join("usr/lib/dracut/dracut-functions"), "v1").unwrap();
        std::fs::write(root.join("usr/lib/in-image"), "a").unwrap();
        let cache = Cache::new(d.path(), &root, "6.1", &["dracut"], Some(1)).unwrap();
        let entry = Entry {
            kver: "6.1".into(),
            files: [
                (
                    "usr/lib/in-image".to_string(),
                    file_hash(&root.join("usr/lib/in-image")).unwrap(),
                ),
                ("etc/generated".to_string(), "-".to_string()),
            ]
            .into(),
        };
        std::fs::create_dir_all(&cache.dir).unwrap();
        let (img, json) = cache.paths();
        std::fs::write(&img, "IMAGE").unwrap();
        std::fs::write(&json, serde_json::to_vec(&entry).unwrap()).unwrap();
        let out = d.path().join("out.img");
        std::fs::write(root.join("usr/lib/unrelated"), "x").unwrap();
        assert!(cache.restore(&root, &out).unwrap());
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "IMAGE");
        std::fs::write(root.join("usr/lib/in-image"), "b").unwrap();
        assert!(!cache.restore(&root, &out).unwrap());
        std::fs::write(root.join("usr/lib/in-image"), "a").unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/generated"), "now in the tree").unwrap();
        assert!(!cache.restore(&root, &out).unwrap());
        std::fs::remove_file(root.join("etc/generated")).unwrap();
        assert!(cache.restore(&root, &out).unwrap());
        // dracut itself changed: another key, no entry.
        std::fs::write(root.join("usr/lib/dracut/dracut-functions"), "v2").unwrap();
        let other = Cache::new(d.path(), &root, "6.1", &["dracut"], Some(1)).unwrap();
        assert_ne!(other.key, cache.key);
        assert!(!other.restore(&root, &out).unwrap());
    }
}
