//! Postprocess: turn an installed root filesystem into a tree OSTree can commit and boot.
//!
//! Order matters and follows rpm-ostree's: package-level edits first (while the package
//! database is where the package manager left it), then configuration from the treefile, then
//! the user's scripts (which see the final configuration), then the kernel/initramfs (so
//! dracut sees dracut.conf.d files added by add-files or scripts), and last the OSTree layout
//! (`/etc` -> `/usr/etc`, `/var` -> tmpfiles.d, top-level symlinks, no device nodes).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::backend::{run_tool, Note, PackageDb, Progress};

mod config;
mod initramfs_cache;
mod kernel;
mod layout;
pub mod reproducible;

pub use config::{os_release_mutate, unit_install_targets};
pub use layout::TOPLEVEL_LINKS;

/// Everything postprocess needs, independent of the treefile spelling.
#[derive(Debug, Clone, Default)]
pub struct PostprocessSpec {
    /// `Some(true)`: must boot (a kernel is required); `Some(false)`: never touch the kernel;
    /// `None`: bootable when a kernel is present.
    pub bootable: Option<bool>,
    pub db: Option<PackageDb>,
    /// (absolute source on the host, destination in the tree).
    pub add_files: Vec<(PathBuf, String)>,
    pub remove_files: Vec<String>,
    /// (package, regexes over its file paths).
    pub remove_from_packages: Vec<(String, Vec<String>)>,
    pub units: Vec<String>,
    pub default_target: Option<String>,
    pub etc_group_members: Vec<String>,
    /// `mutate-os-release`: the string in os-release to replace with `version`.
    pub mutate_os_release: Option<String>,
    pub version: Option<String>,
    pub sysctl_presets: Vec<String>,
    pub sysctl: Vec<(String, String)>,
    /// Inline `postprocess` scripts (shebang optional; default `/bin/sh -e`).
    pub postprocess: Vec<String>,
    pub postprocess_scripts: Vec<PathBuf>,
    /// `SOURCE_DATE_EPOCH` of the compose: clamps mtimes and /etc/shadow days and is passed to
    /// everything run in the tree (dracut `--reproducible` reads it).
    pub source_date_epoch: Option<u64>,
    /// Where built initramfs images are kept for reuse; None always runs dracut.
    pub initramfs_cache: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Kernel version moved into /usr/lib/modules, when bootable.
    pub kernel: Option<String>,
    pub initramfs_regenerated: bool,
    /// The initramfs came from the cache (dracut did not run).
    pub initramfs_cached: bool,
    pub removed_from_packages: usize,
    pub device_nodes_dropped: usize,
    pub tmpfiles_entries: usize,
    pub enabled_units: Vec<String>,
    /// SSH host keys taken out of the image (generated per machine on first boot instead).
    pub ssh_host_keys_removed: usize,
    /// (script name, captured output) of each postprocess script.
    pub scripts: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PostprocessError {
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("postprocess script {script} failed ({status}); its output:\n{output}")]
    Script {
        script: String,
        status: String,
        output: String,
    },
    #[error("{tool} failed inside the tree ({status}):\n{output}")]
    Chroot {
        tool: String,
        status: String,
        output: String,
    },
    #[error("the tree is declared bootable (cairn.bootable: true) but has no kernel: no /boot/vmlinuz-* and no /usr/lib/modules/*/vmlinuz; add a kernel package (Debian: linux-image-amd64, Fedora: kernel)")]
    NoKernel,
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PostprocessError {
    let what = what.into();
    move |error| PostprocessError::Io { what, error }
}

/// Runs every postprocess step on `rootfs` in place.
pub fn run(
    rootfs: &Path,
    spec: &PostprocessSpec,
    progress: Progress,
) -> Result<Report, PostprocessError> {
    let mut report = Report::default();
    if !spec.remove_from_packages.is_empty() {
        progress(Note::Step("remove-from-packages"));
        report.removed_from_packages = config::remove_from_packages(rootfs, spec)?;
    }
    progress(Note::Step("remove-files, add-files"));
    config::remove_files(rootfs, &spec.remove_files)?;
    config::add_files(rootfs, &spec.add_files)?;
    progress(Note::Step("units, default target, groups, sysctl"));
    report.enabled_units = config::enable_units(rootfs, &spec.units)?;
    if let Some(t) = &spec.default_target {
        config::set_default_target(rootfs, t)?;
    }
    config::check_group_members(rootfs, &spec.etc_group_members)?;
    config::write_sysctl(rootfs, &spec.sysctl_presets, &spec.sysctl)?;
    report.scripts = run_scripts(rootfs, spec, progress)?;
    progress(Note::Step(
        "reproducibility: build debris, bytecode, shadow days, mtimes",
    ));
    reproducible::scrub(rootfs, spec.source_date_epoch)?;
    let k = kernel::process(
        rootfs,
        spec.bootable,
        spec.source_date_epoch,
        spec.initramfs_cache.as_deref(),
        progress,
    )?;
    report.kernel = k.kver;
    report.initramfs_regenerated = k.initramfs;
    report.initramfs_cached = k.cached;
    // After dracut: the initramfs then holds the distribution's os-release, not this
    // compose's version, so it stays reusable from one version to the next.
    if let (Some(from), Some(version)) = (&spec.mutate_os_release, &spec.version) {
        progress(Note::Step("mutate-os-release"));
        config::mutate_os_release(rootfs, from, version)?;
    }
    progress(Note::Step(
        "OSTree layout (/usr/etc, /var as tmpfiles.d, top-level links)",
    ));
    report.device_nodes_dropped = layout::drop_special_files(rootfs)?;
    layout::empty_machine_id(rootfs)?;
    report.ssh_host_keys_removed = layout::drop_ssh_host_keys(rootfs)?.len();
    layout::etc_to_usr_etc(rootfs)?;
    layout::toplevel_links(rootfs)?;
    report.tmpfiles_entries = layout::var_to_tmpfiles(rootfs)?;
    layout::runtime_dirs(rootfs)?;
    Ok(report)
}

fn run_scripts(
    rootfs: &Path,
    spec: &PostprocessSpec,
    progress: Progress,
) -> Result<Vec<(String, String)>, PostprocessError> {
    let mut scripts: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, s) in spec.postprocess.iter().enumerate() {
        let body = if s.starts_with("#!") {
            s.clone()
        } else {
            format!("#!/bin/sh\nset -e\n{s}")
        };
        scripts.push((format!("postprocess[{i}]"), body.into_bytes()));
    }
    for p in &spec.postprocess_scripts {
        let body =
            std::fs::read(p).map_err(io(format!("reading postprocess-script {}", p.display())))?;
        scripts.push((p.display().to_string(), body));
    }
    let mut outputs = Vec::new();
    for (i, (name, body)) in scripts.iter().enumerate() {
        progress(Note::Step(&format!("running {name}")));
        let inside = format!("/tmp/cairn-postprocess-{i}");
        let host = rootfs.join(inside.trim_start_matches('/'));
        std::fs::create_dir_all(rootfs.join("tmp")).map_err(io("creating tmp in the tree"))?;
        std::fs::write(&host, body).map_err(io(format!("writing {}", host.display())))?;
        set_mode(&host, 0o755)?;
        let res = run_in_tree(rootfs, &[&inside], spec.source_date_epoch, progress);
        let _ = std::fs::remove_file(&host);
        let out = res?;
        if !out.success {
            return Err(PostprocessError::Script {
                script: name.clone(),
                output: out.tail(60),
                status: out.status,
            });
        }
        outputs.push((name.clone(), out.text()));
    }
    Ok(outputs)
}

pub(crate) fn set_mode(p: &Path, mode: u32) -> Result<(), PostprocessError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod {}", p.display())))
}

/// Runs `argv` chrooted into `rootfs`, in private mount and PID namespaces with /proc, /sys
/// and /dev mounted: the mounts vanish with the namespace, so nothing leaks onto the host even
/// when cairn is killed, and stray daemons a script starts die with it.
pub(crate) fn run_in_tree(
    rootfs: &Path,
    argv: &[&str],
    source_date_epoch: Option<u64>,
    progress: Progress,
) -> Result<super::backend::ToolOutput, PostprocessError> {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation=private",
        "--pid",
        "--fork",
        "--kill-child",
        "--",
        "sh",
        "-c",
    ]);
    // Positional parameters carry the paths, so nothing is interpolated into shell text.
    cmd.arg(concat!(
        "set -e; r=$1; shift; ",
        "mkdir -p \"$r/proc\" \"$r/sys\" \"$r/dev\"; ",
        "mount -t proc proc \"$r/proc\"; ",
        "mount --rbind /sys \"$r/sys\"; ",
        "mount --rbind /dev \"$r/dev\"; ",
        "exec chroot \"$r\" \"$@\""
    ));
    cmd.arg("cairn-chroot").arg(rootfs).args(argv);
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .env("HOME", "/root")
        .env("container", "cairn-compose")
        // Python hashes strings with a random seed otherwise: sets and dicts it writes out
        // (bytecode, caches) would differ between runs.
        .env("PYTHONHASHSEED", "0");
    if let Some(t) = source_date_epoch {
        cmd.env("SOURCE_DATE_EPOCH", t.to_string());
    }
    run_tool(cmd, progress).map_err(|e| PostprocessError::Invalid(e.to_string()))
}
