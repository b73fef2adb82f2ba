//! Writing a render to a directory: atomically (built beside OUT, swapped in with one rename) and
//! cheaply when most documents did not change.
//!
//! A re-render compares each document with the file of the same name in the previous OUT and
//! hard-links the old file into the new tree when the bytes are equal. Unchanged hosts then cost
//! no new inode and no write, and removing the previous tree after the swap frees nothing but
//! directory entries. (Allocating tens of thousands of inodes right after freeing as many is
//! what makes a naive re-render slow: ext4 without a journal, for one, scans past every
//! recently freed inode on each allocation.) The guarantee is unchanged: readers see the old
//! tree or the new one, and a failed render leaves the old one as it was. Documents are not
//! edited in place by cairn, so old and new trees sharing an inode is invisible to them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use cairn_common::API_VERSION;
use rustix::fs::{AtFlags, Mode, OFlags};
use serde::Serialize;

use super::error::KickstartError;
use super::inventory::Inventory;
use super::render::{HostDocs, Templates};

/// What `render_to_dir` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct RenderReport {
    pub out: PathBuf,
    pub hosts: usize,
    pub files: usize,
    /// Of `files`, how many were unchanged and linked from the previous output.
    pub reused: usize,
    pub overridden_templates: Vec<String>,
}

/// The marker that says a directory is a cairn render output, safe to replace wholesale.
pub const MARKER: &str = ".cairn-render";

/// One per-MAC subdirectory: its name, which document of a host goes in it, and the file name
/// that document gets for one MAC.
struct Kind {
    dir: &'static str,
    doc: fn(&HostDocs) -> &str,
    file: fn(&super::Mac) -> String,
}

const SUBDIRS: [Kind; 4] = [
    Kind {
        dir: "ks",
        doc: |d| &d.kickstart,
        file: |m| m.to_string(),
    },
    Kind {
        dir: "pxelinux.cfg",
        doc: |d| &d.pxelinux,
        file: |m| format!("01-{}", m.dashed()),
    },
    Kind {
        dir: "grub",
        doc: |d| &d.grub,
        file: |m| format!("grub.cfg-01-{}", m.dashed()),
    },
    Kind {
        dir: "ipxe",
        doc: |d| &d.ipxe,
        file: |m| m.to_string(),
    },
];

/// Renders every host into `out`, atomically: everything is written to a temp dir beside `out`
/// and swapped in with one rename, so a failure leaves the previous output untouched and readers
/// never see a mix of old and new files.
///
/// Layout: `ks/<mac>`, `pxelinux.cfg/01-<mac-dashed>`, `grub/grub.cfg-01-<mac-dashed>`,
/// `ipxe/<mac>` (one of each per MAC), `boot.ipxe`, `manifest.json`.
pub fn render_to_dir(
    inv: &Inventory,
    templates: &Templates,
    out: &Path,
) -> Result<RenderReport, KickstartError> {
    let server = inv
        .server
        .as_deref()
        .ok_or_else(|| KickstartError::Template {
            name: "render".into(),
            msg:
                "no server URL: the boot configs must point at the kickstart server; set `server:` \
              in the inventory or pass --server-url"
                    .into(),
        })?;
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KickstartError::Write { path, source }
    };
    let previous = out.join(MARKER).exists();
    if out.exists() && !previous {
        let empty = std::fs::read_dir(out).map_err(werr(out))?.next().is_none();
        if !empty {
            return Err(KickstartError::OutNotOurs {
                path: out.to_path_buf(),
            });
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".cairn-render-")
        .tempdir_in(&parent)
        .map_err(werr(&parent))?;
    let root = tmp.path();
    let mut subs = Vec::with_capacity(SUBDIRS.len());
    for kind in &SUBDIRS {
        let new = root.join(kind.dir);
        std::fs::create_dir(&new).map_err(werr(&new))?;
        subs.push(Sub {
            kind,
            dir: open_dir(&new).map_err(werr(&new))?,
            // A previous output we may link unchanged files from; without one, all is new.
            old: previous
                .then(|| open_dir(&out.join(kind.dir)).ok())
                .flatten(),
        });
    }
    let target = Target { root, subs };
    let (files, reused) = render_hosts_parallel(inv, templates, &target)?;
    std::fs::write(root.join("boot.ipxe"), templates.render_boot_ipxe(server)?)
        .map_err(werr(&root.join("boot.ipxe")))?;
    let manifest: Vec<_> = inv
        .hosts
        .iter()
        .map(|h| {
            serde_json::json!({
                "hostname": h.fqdn,
                "macs": h.macs,
                "roles": h.roles,
                "kickstart": format!("ks/{}", h.mac),
            })
        })
        .collect();
    let manifest = serde_json::json!({"apiVersion": API_VERSION, "kind": "RenderManifest",
        "inventory": inv.path, "hosts": manifest});
    std::fs::write(
        root.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap_or_default(),
    )
    .map_err(werr(&root.join("manifest.json")))?;
    std::fs::write(root.join(MARKER), "rendered by cairn kickstart render\n")
        .map_err(werr(&root.join(MARKER)))?;
    // No fsync: the guarantee is that readers see the old output or the new one, never a mix,
    // which the rename gives. (A syncfs here cost seconds on a busy shared disk.)
    let perm: std::fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(root, perm).map_err(werr(root))?;
    drop(target);
    if out.exists() {
        rustix::fs::renameat_with(
            rustix::fs::CWD,
            root,
            rustix::fs::CWD,
            out,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| KickstartError::Write {
            path: out.to_path_buf(),
            source: e.into(),
        })?;
        // `tmp` now holds the previous output; dropping it removes it.
    } else {
        std::fs::rename(root, out).map_err(werr(out))?;
        let _ = tmp.keep();
    }
    Ok(RenderReport {
        out: out.to_path_buf(),
        hosts: inv.hosts.len(),
        files: files + 3,
        reused,
        overridden_templates: templates.overridden.clone(),
    })
}

/// Where the per-MAC documents go: the new tree's subdirectories and, index for index, the
/// previous output's.
struct Target<'a> {
    root: &'a Path,
    subs: Vec<Sub>,
}

/// A subdirectory being written, and the same one in the previous output.
struct Sub {
    kind: &'static Kind,
    dir: OwnedFd,
    old: Option<OwnedFd>,
}

fn open_dir(p: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Renders on every core, then writes on every core. Templating is CPU-bound and split by
/// host; writing is split by output directory instead, because creating files in one directory
/// takes that directory's lock: two threads creating in the same directory mostly wait on each
/// other, two threads creating in different directories do not. Returns (files, reused).
fn render_hosts_parallel(
    inv: &Inventory,
    templates: &Templates,
    target: &Target<'_>,
) -> Result<(usize, usize), KickstartError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let chunk = inv.hosts.len().div_ceil(threads).max(1);
    let docs: Vec<HostDocs> = std::thread::scope(|s| {
        let workers: Vec<_> = inv
            .hosts
            .chunks(chunk)
            .map(|hosts| {
                s.spawn(move || {
                    hosts
                        .iter()
                        .map(|h| templates.render_host(inv, h, None))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(inv.hosts.len());
        for w in workers {
            // A worker's panic is this thread's: carry it on, with its own message.
            all.extend(w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
        }
        Ok::<_, KickstartError>(all)
    })?;
    let writers = threads.min(target.subs.len());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..writers)
            .map(|w| {
                let docs = &docs;
                s.spawn(move || {
                    let (mut files, mut reused) = (0, 0);
                    for sub in target.subs.iter().skip(w).step_by(writers) {
                        let (f, r) = write_subdir(inv, docs, target.root, sub)?;
                        files += f;
                        reused += r;
                    }
                    Ok::<_, KickstartError>((files, reused))
                })
            })
            .collect();
        let (mut files, mut reused) = (0, 0);
        for w in workers {
            let (f, r) = w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            files += f;
            reused += r;
        }
        Ok((files, reused))
    })
}

/// Writes every host's document of one kind into its subdirectory.
fn write_subdir(
    inv: &Inventory,
    docs: &[HostDocs],
    root: &Path,
    sub: &Sub,
) -> Result<(usize, usize), KickstartError> {
    let (mut files, mut reused) = (0, 0);
    let mut scratch = Vec::new();
    let (dir, kind) = (&sub.dir, sub.kind);
    for (h, d) in inv.hosts.iter().zip(docs) {
        let body = (kind.doc)(d).as_bytes();
        let first = (kind.file)(&h.mac);
        for (i, mac) in h.macs.iter().enumerate() {
            let name = &(kind.file)(mac);
            let linked = if i == 0 {
                // The host's first MAC: reuse the previous output's file if it is unchanged.
                sub.old.as_ref().is_some_and(|old| {
                    same_content(old, name, body, &mut scratch) && link(old, name, dir, name)
                })
            } else {
                // Further MACs of the host get the same documents: one inode for all.
                link(dir, &first, dir, name)
            };
            if linked {
                reused += usize::from(i == 0);
            } else {
                create(dir, name, body).map_err(|source| KickstartError::Write {
                    path: root.join(kind.dir).join(name),
                    source,
                })?;
            }
            files += 1;
        }
    }
    Ok((files, reused))
}

/// Whether `dir/name` exists and holds exactly `want`.
fn same_content(dir: &OwnedFd, name: &str, want: &[u8], scratch: &mut Vec<u8>) -> bool {
    let Ok(fd) = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    ) else {
        return false;
    };
    let f = File::from(fd);
    match f.metadata() {
        Ok(m) if m.is_file() && m.len() == want.len() as u64 => {}
        _ => return false,
    }
    scratch.clear();
    // One byte more than expected tells a file that grew since the stat.
    f.take(want.len() as u64 + 1).read_to_end(scratch).is_ok() && scratch == want
}

/// A hard link; `false` when the file system refuses one (the caller writes a copy instead).
fn link(from_dir: &OwnedFd, from: &str, to_dir: &OwnedFd, to: &str) -> bool {
    rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty()).is_ok()
}

fn create(dir: &OwnedFd, name: &str, body: &[u8]) -> std::io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o666),
    )?;
    File::from(fd).write_all(body)
}
