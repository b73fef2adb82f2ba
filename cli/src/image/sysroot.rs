//! The staging sysroot: an OSTree sysroot in a plain directory, deployed through libostree.
//!
//! The physical root of the image is exactly what `ostree admin init-fs` + `deploy` produce; the
//! `boot/` part of it becomes the boot filesystem. The bootloader configuration is ostree's own
//! syslinux backend output (enabled by the `boot/syslinux/syslinux.cfg` symlink), so the same
//! mechanism keeps it current when the machine later upgrades or rolls back.

use std::path::{Path, PathBuf};

use ostree::gio;
use ostree::glib;

use super::ImageError;

/// The syslinux header ostree keeps above its regenerated LABEL entries.
///
/// `UI menu.c32` gives a menu whose first entry (ostree's default deployment) boots after the
/// timeout and whose entries can be edited with Tab (the Packer qemu-disk profile uses that: 5 s
/// leaves room for Packer's VNC typing to arrive under TCG, where 3 s did not).
/// `SERIAL 0 115200` mirrors it on ttyS0 for headless VMs.
pub const SYSLINUX_HEADER: &str = "\
# cairn: ostree regenerates the LABEL entries below on every deployment change and keeps these lines.
SERIAL 0 115200
UI menu.c32
PROMPT 0
TIMEOUT 50
MENU TITLE cairn
";

pub struct Deployed {
    pub commit: String,
    /// Deployment directory relative to the sysroot, e.g. `ostree/deploy/os/deploy/CSUM.0`.
    pub deployment: PathBuf,
    pub origin_refspec: String,
    pub kargs: Vec<String>,
}

pub struct DeployOptions<'a> {
    pub repo: &'a Path,
    pub rev: &'a str,
    pub osname: &'a str,
    pub kargs: &'a [String],
    /// Remote (name, URL) written into the sysroot repo so the machine can upgrade from it.
    pub remote: Option<(&'a str, &'a str)>,
    /// Lines appended to the deployment's /etc/fstab.
    pub fstab: &'a str,
}

fn glib_err(what: &str) -> impl FnOnce(glib::Error) -> ImageError + '_ {
    move |e| ImageError::Ostree(format!("{what}: {e}"))
}

/// Initializes a sysroot at `root`, pulls `rev` from `opts.repo` into it and deploys it.
pub fn deploy(root: &Path, opts: &DeployOptions) -> Result<Deployed, ImageError> {
    let cancellable = gio::Cancellable::NONE;

    // The syslinux backend is chosen by this symlink; ostree reads the current config through it
    // and writes loader.N/syslinux.cfg, so a first (empty) config must exist in loader.0.
    let boot = root.join("boot");
    std::fs::create_dir_all(boot.join("loader.0")).map_err(|e| ImageError::io(&boot, e))?;
    std::fs::create_dir_all(boot.join("syslinux")).map_err(|e| ImageError::io(&boot, e))?;
    std::fs::write(boot.join("loader.0/syslinux.cfg"), SYSLINUX_HEADER)
        .map_err(|e| ImageError::io(&boot, e))?;
    symlink("loader.0", &boot.join("loader"))?;
    symlink(
        "../loader/syslinux.cfg",
        &boot.join("syslinux/syslinux.cfg"),
    )?;

    let sysroot = ostree::Sysroot::new(Some(&gio::File::for_path(root)));
    sysroot
        .ensure_initialized(cancellable)
        .map_err(glib_err("initializing the sysroot"))?;
    sysroot
        .init_osname(opts.osname, cancellable)
        .map_err(glib_err("creating the stateroot"))?;
    sysroot
        .load(cancellable)
        .map_err(glib_err("loading the sysroot"))?;
    let repo = sysroot.repo();
    // The image is written once and synced when the disk is assembled; per-object fsync would
    // only slow the build.
    repo.set_disable_fsync(true);

    let src = std::fs::canonicalize(opts.repo).map_err(|e| ImageError::io(opts.repo, e))?;
    let src_repo = ostree::Repo::new_for_path(&src);
    src_repo
        .open(cancellable)
        .map_err(glib_err("opening the source repo"))?;
    let commit = src_repo
        .resolve_rev(opts.rev, false)
        .map_err(glib_err("resolving the ref"))?
        .ok_or_else(|| ImageError::Ostree(format!("{}: no such ref or commit", opts.rev)))?
        .to_string();

    let pull_opts = glib::VariantDict::new(None);
    pull_opts.insert_value("refs", &glib::Variant::from(vec![commit.clone()]));
    repo.pull_with_options(
        &format!("file://{}", src.display()),
        &pull_opts.end(),
        None,
        cancellable,
    )
    .map_err(glib_err("pulling the commit into the sysroot repo"))?;

    // The origin names what `ostree admin upgrade` (and cairn upgrade) follow later.
    let is_checksum = opts.rev.len() == 64 && opts.rev.chars().all(|c| c.is_ascii_hexdigit());
    let origin_refspec = match opts.remote {
        Some((name, url)) => {
            let ro = glib::VariantDict::new(None);
            ro.insert_value("gpg-verify", &false.into());
            repo.remote_add(name, Some(url), Some(&ro.end()), cancellable)
                .map_err(glib_err("adding the remote"))?;
            if !is_checksum {
                repo.set_ref_immediate(Some(name), opts.rev, Some(&commit), cancellable)
                    .map_err(glib_err("writing the remote ref"))?;
            }
            format!("{name}:{}", opts.rev)
        }
        None => {
            if !is_checksum {
                repo.set_ref_immediate(None, opts.rev, Some(&commit), cancellable)
                    .map_err(glib_err("writing the ref"))?;
            }
            opts.rev.to_owned()
        }
    };
    let origin = sysroot.origin_new_from_refspec(&origin_refspec);

    let kargs: Vec<&str> = opts.kargs.iter().map(String::as_str).collect();
    let dep = sysroot
        .deploy_tree(
            Some(opts.osname),
            &commit,
            Some(&origin),
            None,
            &kargs,
            cancellable,
        )
        .map_err(glib_err("deploying"))?;
    sysroot
        .simple_write_deployment(
            Some(opts.osname),
            &dep,
            None,
            ostree::SysrootSimpleWriteDeploymentFlags::NONE,
            cancellable,
        )
        .map_err(glib_err("writing the deployment"))?;
    let deployment = PathBuf::from(sysroot.deployment_dirpath(&dep).as_str());

    let fstab = root.join(&deployment).join("etc/fstab");
    let mut text = std::fs::read_to_string(&fstab).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(opts.fstab);
    std::fs::write(&fstab, text).map_err(|e| ImageError::io(&fstab, e))?;

    Ok(Deployed {
        commit,
        deployment,
        origin_refspec,
        kargs: opts.kargs.to_vec(),
    })
}

fn symlink(target: &str, link: &Path) -> Result<(), ImageError> {
    std::os::unix::fs::symlink(target, link).map_err(|e| ImageError::io(link, e))
}

/// Clears the immutable bit ostree puts on deployment roots, so the staging tree can be removed.
pub fn make_removable(root: &Path) {
    let deploy = root.join("ostree/deploy");
    let Ok(stateroots) = std::fs::read_dir(&deploy) else {
        return;
    };
    for os in stateroots.flatten() {
        let Ok(deps) = std::fs::read_dir(os.path().join("deploy")) else {
            continue;
        };
        for d in deps.flatten() {
            if let Ok(f) = std::fs::File::open(d.path()) {
                if let Ok(flags) = rustix::fs::ioctl_getflags(&f) {
                    let _ = rustix::fs::ioctl_setflags(&f, flags - rustix::fs::IFlags::IMMUTABLE);
                }
            }
        }
    }
}

/// A BLS entry (`boot/loader/entries/*.conf`) as key -> value.
pub fn read_bls_entries(boot: &Path) -> Result<Vec<Vec<(String, String)>>, ImageError> {
    let dir = boot.join("loader/entries");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| ImageError::io(&dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| ImageError::io(&f, e))?;
        out.push(
            text.lines()
                .filter_map(|l| {
                    let l = l.trim();
                    let (k, v) = l.split_once(char::is_whitespace)?;
                    Some((k.to_owned(), v.trim().to_owned()))
                })
                .collect(),
        );
    }
    Ok(out)
}
