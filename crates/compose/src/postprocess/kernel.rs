//! Kernel and initramfs where OSTree looks for them: `usr/lib/modules/$kver/{vmlinuz,initramfs.img}`.
//!
//! OSTree finds the kernel of a commit in `/usr/lib/modules/$kver/vmlinuz` and copies it to
//! /boot at deploy time, so the commit's own /boot ends up empty. The initramfs must mount the
//! deployment (ostree-prepare-root), which only dracut's `98ostree` module (Debian package
//! ostree-boot) provides; Debian's initramfs-tools images cannot boot an OSTree deployment, so
//! the initramfs is always regenerated with dracut run inside the tree.

use std::path::{Path, PathBuf};

use super::initramfs_cache::Cache;
use super::{io, run_in_tree, PostprocessError};
use crate::backend::{Note, Progress};

/// Kernel versions present: from `boot/vmlinuz-$kver` (Debian) or `usr/lib/modules/$kver/vmlinuz`.
pub fn find_kernels(rootfs: &Path) -> Result<Vec<String>, PostprocessError> {
    let mut found = Vec::new();
    if let Ok(rd) = std::fs::read_dir(rootfs.join("boot")) {
        for e in rd.flatten() {
            if let Some(k) = e.file_name().to_string_lossy().strip_prefix("vmlinuz-") {
                found.push(k.to_string());
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(rootfs.join("usr/lib/modules")) {
        for e in rd.flatten() {
            if e.path().join("vmlinuz").is_file() {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn dracut_in_tree(rootfs: &Path) -> Option<&'static str> {
    [
        "usr/bin/dracut",
        "usr/sbin/dracut",
        "sbin/dracut",
        "bin/dracut",
    ]
    .into_iter()
    .find(|p| rootfs.join(p).symlink_metadata().is_ok())
    .map(|p| {
        if p.starts_with("usr/sbin") || p.starts_with("sbin") {
            "/usr/sbin/dracut"
        } else {
            "/usr/bin/dracut"
        }
    })
}

/// What the kernel step did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KernelOutcome {
    pub kver: Option<String>,
    /// An initramfs is in place (built now or taken from the cache).
    pub initramfs: bool,
    /// It came from the initramfs cache: dracut did not run.
    pub cached: bool,
}

/// Moves the kernel into place and regenerates its initramfs, or reuses the cached one from
/// `cachedir` when nothing dracut read has changed.
pub fn process(
    rootfs: &Path,
    bootable: Option<bool>,
    source_date_epoch: Option<u64>,
    cachedir: Option<&Path>,
    progress: Progress,
) -> Result<KernelOutcome, PostprocessError> {
    if bootable == Some(false) {
        return Ok(KernelOutcome::default());
    }
    let kernels = find_kernels(rootfs)?;
    let kver = match (kernels.as_slice(), bootable) {
        ([], Some(true)) => return Err(PostprocessError::NoKernel),
        ([], _) => return Ok(KernelOutcome::default()),
        ([one], _) => one.clone(),
        (many, _) => {
            return Err(PostprocessError::Invalid(format!(
                "the tree has {} kernels ({}); an OSTree commit boots exactly one",
                many.len(),
                many.join(", ")
            )))
        }
    };
    progress(Note::Step(&format!("kernel {kver}")));
    let moddir = rootfs.join("usr/lib/modules").join(&kver);
    std::fs::create_dir_all(&moddir).map_err(io(format!("creating {}", moddir.display())))?;
    let boot_kernel = rootfs.join("boot").join(format!("vmlinuz-{kver}"));
    let vmlinuz = moddir.join("vmlinuz");
    if boot_kernel.is_file() {
        move_file(&boot_kernel, &vmlinuz)?;
    }
    let Some(dracut) = dracut_in_tree(rootfs) else {
        return Err(PostprocessError::Invalid(format!(
            "the tree has kernel {kver} but no dracut: an OSTree deployment needs an initramfs built by dracut with \
             the ostree module; add `dracut` and `ostree-boot` (Debian) or `dracut` and `ostree` (Fedora) to packages, \
             or set cairn.bootable: false for a non-bootable tree"
        )));
    };
    let has_ostree_module = rootfs.join("usr/lib/dracut/modules.d/98ostree").is_dir();
    if !has_ostree_module {
        return Err(PostprocessError::Invalid(format!(
            "kernel {kver}: the tree has dracut but not its 98ostree module (/usr/lib/dracut/modules.d/98ostree); \
             add `ostree-boot` (Debian) or `ostree` (Fedora) to packages"
        )));
    }
    let out_inside = format!("/usr/lib/modules/{kver}/initramfs.img");
    let argv = [
        dracut,
        "--no-hostonly",
        "--reproducible",
        "--force",
        "--add",
        "ostree",
        "--kver",
        kver.as_str(),
        out_inside.as_str(),
    ];
    let out = moddir.join("initramfs.img");
    let cache = match cachedir {
        Some(dir) => Some(Cache::new(dir, rootfs, &kver, &argv, source_date_epoch)?),
        None => None,
    };
    let cached = match &cache {
        Some(c) => c.restore(rootfs, &out)?,
        None => false,
    };
    if cached {
        progress(Note::Step(&format!(
            "initramfs for {kver} from the cache (dracut, its configuration and every file in the image unchanged)"
        )));
    } else {
        progress(Note::Step(&format!(
            "dracut --add ostree for {kver} (in the tree)"
        )));
        run_dracut(rootfs, &argv, source_date_epoch, progress)?;
        if let Some(c) = &cache {
            progress(Note::Step("recording the initramfs in the cache"));
            c.store(rootfs, &kver, &out, &out_inside)?;
        }
    }
    super::set_mode(&out, 0o644)?;
    clear_boot(rootfs)?;
    Ok(KernelOutcome {
        kver: Some(kver),
        initramfs: true,
        cached,
    })
}

fn run_dracut(
    rootfs: &Path,
    argv: &[&str],
    source_date_epoch: Option<u64>,
    progress: Progress,
) -> Result<(), PostprocessError> {
    let out = run_in_tree(rootfs, argv, source_date_epoch, progress)?;
    if !out.success {
        return Err(PostprocessError::Chroot {
            tool: "dracut".into(),
            output: out.tail(40),
            status: out.status,
        });
    }
    Ok(())
}

fn move_file(from: &Path, to: &PathBuf) -> Result<(), PostprocessError> {
    if std::fs::rename(from, to).is_err() {
        std::fs::copy(from, to).map_err(io(format!("copying {}", from.display())))?;
        std::fs::remove_file(from).map_err(io(format!("removing {}", from.display())))?;
    }
    Ok(())
}

/// /boot in the commit is empty: OSTree writes the deployment's kernel there at deploy time.
/// Debian's top-level `/vmlinuz`, `/initrd.img` (and `.old`) links into /boot go too: they would
/// dangle.
fn clear_boot(rootfs: &Path) -> Result<(), PostprocessError> {
    for name in ["vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"] {
        let p = rootfs.join(name);
        if p.symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            std::fs::remove_file(&p).map_err(io(format!("removing /{name}")))?;
        }
    }
    let boot = rootfs.join("boot");
    if let Ok(rd) = std::fs::read_dir(&boot) {
        for e in rd.flatten() {
            let p = e.path();
            let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(io(format!("clearing {}", p.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootable_without_kernel_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("boot")).unwrap();
        let e = process(d.path(), Some(true), None, None, &mut |_| {}).unwrap_err();
        assert!(matches!(e, PostprocessError::NoKernel), "{e}");
        assert_eq!(
            process(d.path(), None, None, None, &mut |_| {}).unwrap(),
            KernelOutcome::default()
        );
    }

    #[test]
    fn kernel_without_dracut_names_the_fix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("boot")).unwrap();
        std::fs::write(d.path().join("boot/vmlinuz-6.1.0-9-amd64"), b"kernel").unwrap();
        assert_eq!(find_kernels(d.path()).unwrap(), ["6.1.0-9-amd64"]);
        let e = process(d.path(), None, None, None, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("ostree-boot") && e.contains("dracut"), "{e}");
        // The kernel already sits where OSTree looks for it.
        assert!(d
            .path()
            .join("usr/lib/modules/6.1.0-9-amd64/vmlinuz")
            .is_file());
    }
}
