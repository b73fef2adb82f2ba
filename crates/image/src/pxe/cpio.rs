//! The initramfs as an in-memory listing written out as a newc cpio archive, the format the
//! kernel unpacks.
//!
//! Hand-written rather than `find | cpio -o -H newc` over a staging tree: the archive is assembled
//! from host files, the commit's modules and generated text without copying any of them to disk
//! first, every entry is owned by root whoever builds it, entries come out sorted (parents before
//! children, reproducible), and the format is 110-byte headers plus padding.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use crate::ImageError;

/// Where an entry's content comes from.
#[derive(Debug, Clone)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    /// A host file copied at write time.
    HostFile {
        mode: u32,
        src: PathBuf,
    },
    Bytes {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
    },
    /// A character device node (`/dev/console`, which the kernel opens for `/init`'s stdio
    /// before anything can mount devtmpfs).
    CharDev {
        mode: u32,
        major: u32,
        minor: u32,
    },
}

/// Archive paths (relative, no leading `/`) to entries; sorted order puts parents first.
#[derive(Debug, Default)]
pub struct Archive {
    pub entries: BTreeMap<PathBuf, Entry>,
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// `..` and `.` removed by text alone: the host path's symlinks are walked separately.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn rel(p: &Path) -> PathBuf {
    p.strip_prefix("/").unwrap_or(p).to_path_buf()
}

impl Archive {
    pub fn contains(&self, path: &Path) -> bool {
        self.entries.contains_key(&rel(path))
    }

    /// Adds `path` with every directory above it (mode 0755 unless already present).
    pub fn insert(&mut self, path: &Path, entry: Entry) {
        let r = rel(path);
        for a in r.ancestors().skip(1) {
            if !a.as_os_str().is_empty() && !self.entries.contains_key(a) {
                self.entries
                    .insert(a.to_path_buf(), Entry::Dir { mode: 0o755 });
            }
        }
        self.entries.insert(r, entry);
    }

    /// Copies host path `p` into the archive at the same path, reproducing every symlink met on
    /// the way (`/lib64` -> `usr/lib64`, `ld-linux-x86-64.so.2` -> ...), so a binary's
    /// interpreter and libraries resolve inside the initramfs exactly as they do on the host.
    pub fn add_host_path(&mut self, p: &Path) -> Result<(), ImageError> {
        self.add_host_path_depth(&normalize(p), 0)
    }

    fn add_host_path_depth(&mut self, p: &Path, depth: u32) -> Result<(), ImageError> {
        if depth > 40 {
            return Err(ImageError::Tool {
                cmd: format!("initramfs: {}", p.display()),
                msg: "too many levels of symbolic links".into(),
            });
        }
        let mut cur = PathBuf::from("/");
        let comps: Vec<_> = p.components().skip(1).collect();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let md = std::fs::symlink_metadata(&cur).map_err(|e| ImageError::io(&cur, e))?;
            let ft = md.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(&cur).map_err(|e| ImageError::io(&cur, e))?;
                let resolved = normalize(&cur.parent().unwrap_or(Path::new("/")).join(&target));
                self.insert(&cur, Entry::Symlink { target });
                let rest: PathBuf = comps[i + 1..].iter().collect();
                return self.add_host_path_depth(&resolved.join(rest), depth + 1);
            }
            if self.contains(&cur) {
                continue;
            }
            let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o7777;
            let entry = if ft.is_dir() {
                Entry::Dir { mode }
            } else {
                Entry::HostFile {
                    mode,
                    src: cur.clone(),
                }
            };
            self.insert(&cur, entry);
        }
        Ok(())
    }

    /// Adds host directory `dir` and everything below it.
    pub fn add_host_tree(&mut self, dir: &Path) -> Result<(), ImageError> {
        self.add_host_path(dir)?;
        let rd = std::fs::read_dir(dir).map_err(|e| ImageError::io(dir, e))?;
        let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            let md = std::fs::symlink_metadata(&p).map_err(|e| ImageError::io(&p, e))?;
            if md.is_dir() {
                self.add_host_tree(&p)?;
            } else {
                self.add_host_path(&p)?;
            }
        }
        Ok(())
    }

    /// Writes the newc archive; returns the uncompressed size.
    pub fn write(&self, w: &mut dyn Write) -> Result<u64, ImageError> {
        let mut out = Counter { inner: w, n: 0 };
        let io = |e| ImageError::io(Path::new("initramfs"), e);
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let name = path.to_string_lossy();
            let ino = ino as u32 + 1;
            match entry {
                Entry::Dir { mode } => {
                    header(&mut out, Head::new(ino, S_IFDIR | mode, 0, &name).links(2))
                        .map_err(io)?;
                }
                Entry::Bytes { mode, data } => {
                    let h = Head::new(ino, S_IFREG | mode, data.len() as u64, &name);
                    header(&mut out, h).map_err(io)?;
                    out.write_all(data).map_err(io)?;
                    pad(&mut out).map_err(io)?;
                }
                Entry::Symlink { target } => {
                    let t = target.as_os_str().as_encoded_bytes();
                    let h = Head::new(ino, S_IFLNK | 0o777, t.len() as u64, &name);
                    header(&mut out, h).map_err(io)?;
                    out.write_all(t).map_err(io)?;
                    pad(&mut out).map_err(io)?;
                }
                Entry::HostFile { mode, src } => copy_host_file(&mut out, ino, *mode, src, &name)?,
                Entry::CharDev { mode, major, minor } => {
                    let mut h = Head::new(ino, S_IFCHR | mode, 0, &name);
                    h.rdev = (*major, *minor);
                    header(&mut out, h).map_err(io)?;
                }
            }
        }
        header(&mut out, Head::new(0, 0, 0, "TRAILER!!!")).map_err(io)?;
        Ok(out.n)
    }
}

fn copy_host_file(
    out: &mut Counter<'_>,
    ino: u32,
    mode: u32,
    src: &Path,
    name: &str,
) -> Result<(), ImageError> {
    let mut f = std::fs::File::open(src).map_err(|e| ImageError::io(src, e))?;
    let len = f.metadata().map_err(|e| ImageError::io(src, e))?.len();
    let io = |e| ImageError::io(src, e);
    header(out, Head::new(ino, S_IFREG | mode, len, name)).map_err(io)?;
    // Exactly `len` bytes: a file that changes size while being read would corrupt the archive.
    let copied = std::io::copy(&mut std::io::Read::take(&mut f, len), out).map_err(io)?;
    if copied != len {
        return Err(ImageError::Tool {
            cmd: format!("initramfs: {}", src.display()),
            msg: format!("file shrank while being archived ({copied} of {len} bytes)"),
        });
    }
    pad(out).map_err(io)
}

/// Counts what goes through, for the 4-byte alignment newc wants after headers and data.
struct Counter<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn pad(out: &mut Counter<'_>) -> std::io::Result<()> {
    let fill = (4 - (out.n % 4) as usize) % 4;
    out.write_all(&[0u8; 3][..fill])
}

/// One entry's header fields.
struct Head<'a> {
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u64,
    rdev: (u32, u32),
    name: &'a str,
}

impl<'a> Head<'a> {
    fn new(ino: u32, mode: u32, size: u64, name: &'a str) -> Head<'a> {
        Head {
            ino,
            mode,
            nlink: 1,
            size,
            rdev: (0, 0),
            name,
        }
    }

    fn links(mut self, n: u32) -> Head<'a> {
        self.nlink = n;
        self
    }
}

/// A newc header ("070701", 13 eight-digit hex fields) and the NUL-terminated name, padded.
fn header(out: &mut Counter<'_>, h: Head<'_>) -> std::io::Result<()> {
    let size = u32::try_from(h.size).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{}: newc cannot hold files of 4 GiB or more", h.name),
        )
    })?;
    let namesize = h.name.len() as u32 + 1;
    // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
    // namesize, check. Owner root, mtime 0: the archive depends only on its contents.
    let fields = [
        h.ino, h.mode, 0, 0, h.nlink, 0, size, 0, 0, h.rdev.0, h.rdev.1, namesize, 0,
    ];
    let mut text = String::with_capacity(110);
    text.push_str("070701");
    for f in fields {
        text.push_str(&format!("{f:08X}"));
    }
    out.write_all(text.as_bytes())?;
    out.write_all(h.name.as_bytes())?;
    out.write_all(&[0])?;
    pad(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_layout_is_aligned_and_ends_with_the_trailer() {
        let mut a = Archive::default();
        a.insert(
            Path::new("/etc/x"),
            Entry::Bytes {
                mode: 0o644,
                data: b"hello".to_vec(),
            },
        );
        a.insert(
            Path::new("/bin"),
            Entry::Symlink {
                target: "usr/bin".into(),
            },
        );
        let mut buf = Vec::new();
        let n = a.write(&mut buf).unwrap();
        assert_eq!(n as usize, buf.len());
        assert_eq!(buf.len() % 4, 0);
        let text = String::from_utf8_lossy(&buf);
        // Sorted: bin, etc, etc/x.
        let names: Vec<_> = text.match_indices("070701").map(|(i, _)| i).collect();
        assert_eq!(names.len(), 4);
        assert!(names.iter().all(|i| i % 4 == 0));
        assert!(text.contains("etc/x\0"));
        assert!(text.ends_with("TRAILER!!!\0\0\0\0"));
        assert_eq!(
            normalize(Path::new("/lib/../usr/./lib")),
            Path::new("/usr/lib")
        );
    }
}
