//! Live PXE installer artifacts for a commit: its own kernel (`vmlinuz`) and an initramfs
//! (`initrd.img`) holding this cairn binary, the tools `cairn install` runs with every library
//! they load, busybox for a shell and DHCP, the commit's kernel modules for disks, NICs and
//! filesystems, and an `/init` that installs the machine from the kickstart on the kernel
//! command line (`inst.ks=URL`).

mod cpio;
mod modules;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::ImageError;
use cpio::{Archive, Entry};

/// What `/init` itself runs beyond busybox: curl fetches the kickstart (busybox 1.35's wget
/// segfaults on a refused connection when given a timeout) and serves `%post --nochroot`
/// callbacks in kickstarts written for anaconda.
const INIT_TOOLS: &[&str] = &["curl"];

/// Files the tools read when present (mke2fs's defaults, so filesystems match the build host's).
const INIT_FILES: &[&str] = &["/etc/mke2fs.conf"];

/// The Debian package of each tool the installer may carry, for the "not found" error.
const PACKAGES: &[(&str, &str)] = &[
    ("sgdisk", "gdisk"),
    ("sfdisk", "fdisk"),
    ("partx", "util-linux"),
    ("wipefs", "util-linux"),
    ("losetup", "mount"),
    ("mount", "mount"),
    ("umount", "mount"),
    ("mkfs.ext4", "e2fsprogs"),
    ("mkfs.xfs", "xfsprogs"),
    ("mkfs.vfat", "dosfstools"),
    ("lvm", "lvm2"),
    ("extlinux", "extlinux"),
    ("curl", "curl"),
    ("busybox", "busybox"),
];

/// Kernel modules the installer loads when the kernel has them as modules: NICs and disk
/// controllers QEMU and common servers have, the filesystems and device-mapper the installer
/// makes, and what vfat needs to mount an ESP. Their dependencies come from `modules.dep`.
pub const INSTALLER_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "virtio_blk",
    "virtio_scsi",
    "e1000",
    "e1000e",
    "igb",
    "ixgbe",
    "ahci",
    "sd_mod",
    "nvme",
    "crc32c_generic",
    "libcrc32c",
    "ext4",
    "xfs",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "efivarfs",
    "dm_mod",
    "loop",
    "af_packet",
];

#[derive(Debug, Clone)]
pub struct PxeOptions {
    pub repo: PathBuf,
    /// Ref or commit checksum in `repo`.
    pub rev: String,
    /// Directory receiving `vmlinuz` and `initrd.img`.
    pub out: PathBuf,
    /// The cairn binary to put in the initramfs (normally the running one).
    pub cairn: PathBuf,
    /// The external programs `cairn install` runs (`cairn_install::TOOLS`; the CLI passes it,
    /// since cairn-install builds on this crate); each is copied with its libraries.
    pub tools: Vec<String>,
    /// Data files `cairn install` copies from its environment (`cairn_install::FILES`);
    /// directories are copied whole.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PxeReport {
    pub out: PathBuf,
    pub commit: String,
    pub kernel_version: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// gzip-compressed size of the initramfs.
    pub initrd_size: u64,
    pub initrd_uncompressed_size: u64,
    pub files: usize,
    pub tools: Vec<String>,
    /// Module files loaded by `/init`, in load order (paths below `usr/lib/modules/KVER`).
    pub modules: Vec<String>,
    pub modules_builtin: Vec<String>,
    /// Wanted modules this kernel has neither as a module nor built in (drivers it lacks).
    pub modules_absent: Vec<String>,
}

fn tool_err(cmd: &str, msg: impl Into<String>) -> ImageError {
    ImageError::Tool {
        cmd: cmd.to_owned(),
        msg: msg.into(),
    }
}

/// Builds `vmlinuz` and `initrd.img` in `opts.out`; `progress` receives one line per step.
pub fn build_pxe(opts: &PxeOptions, progress: &dyn Fn(&str)) -> Result<PxeReport, ImageError> {
    let repo = cairn_ostree::repo::Repo::open(&opts.repo)?;
    let commit = repo.require(&opts.rev)?;
    let kver = kernel_version(&repo, &commit)?;
    let kdir = format!("usr/lib/modules/{kver}");
    std::fs::create_dir_all(&opts.out).map_err(|e| ImageError::io(&opts.out, e))?;

    progress(&format!("kernel {kver} from {}", &commit[..12]));
    let kernel_data = repo
        .read_file(&commit, &format!("{kdir}/vmlinuz"))?
        .ok_or_else(|| ImageError::NoKernel(commit.clone()))?;

    let mut archive = Archive::default();
    progress("collecting cairn, the install tools and their libraries");
    let tools = add_programs(&mut archive, opts)?;
    progress("collecting kernel modules");
    let plan = add_modules(&mut archive, &repo, &commit, &kdir)?;
    add_init(&mut archive, &plan.load);

    progress("writing the initramfs");
    let initrd = opts.out.join("initrd.img");
    let uncompressed = write_gzip_cpio(&archive, &initrd)?;
    // The kernel last: a failed initramfs leaves the previous pair as it was.
    let kernel = opts.out.join("vmlinuz");
    write_atomic(&kernel, |f| f.write_all(&kernel_data))?;
    let initrd_size = std::fs::metadata(&initrd)
        .map_err(|e| ImageError::io(&initrd, e))?
        .len();
    Ok(PxeReport {
        out: opts.out.clone(),
        commit,
        kernel_version: kver,
        kernel,
        initrd,
        initrd_size,
        initrd_uncompressed_size: uncompressed,
        files: archive.entries.len(),
        tools,
        modules: plan.load,
        modules_builtin: plan.builtin,
        modules_absent: plan.absent,
    })
}

/// The one kernel version directory of the commit that has a `vmlinuz` (as ostree requires).
fn kernel_version(repo: &cairn_ostree::repo::Repo, commit: &str) -> Result<String, ImageError> {
    let names = repo
        .list_dir(commit, "usr/lib/modules")?
        .unwrap_or_default();
    let mut with_kernel = Vec::new();
    for n in names {
        let listing = repo.list_dir(commit, &format!("usr/lib/modules/{n}"))?;
        if listing.is_some_and(|l| l.iter().any(|f| f == "vmlinuz")) {
            with_kernel.push(n);
        }
    }
    match with_kernel.len() {
        1 => Ok(with_kernel.remove(0)),
        0 => Err(ImageError::NoKernel(commit.to_owned())),
        _ => Err(tool_err(
            &format!("commit {commit}"),
            format!(
                "several kernels ({}); ostree boots exactly one, so the installer cannot choose",
                with_kernel.join(", ")
            ),
        )),
    }
}

/// Where a command lives on the build host (what `cairn install` would find on its PATH).
fn which(cmd: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

fn find_tool(cmd: &str) -> Result<PathBuf, ImageError> {
    which(cmd).ok_or_else(|| {
        let pkg = PACKAGES
            .iter()
            .find(|(t, _)| *t == cmd)
            .map_or("the package providing it", |(_, p)| p);
        tool_err(
            cmd,
            format!("not found on this host; the PXE installer carries it (apt-get install {pkg})"),
        )
    })
}

/// cairn (debug info stripped: the installer has no use for it and it is most of a debug build),
/// the install tools and files, busybox with an applet link for every command not otherwise
/// present, and every library all of them load.
fn add_programs(archive: &mut Archive, opts: &PxeOptions) -> Result<Vec<String>, ImageError> {
    // The merged-/usr links first, so paths through /bin, /lib and /lib64 land where they point.
    for d in ["/bin", "/sbin", "/lib", "/lib64"] {
        if Path::new(d).exists() {
            archive.add_host_path(Path::new(d))?;
        }
    }
    let mut elves = Vec::new();
    let mut tools = Vec::new();
    let wanted = opts
        .tools
        .iter()
        .map(String::as_str)
        .chain(INIT_TOOLS.iter().copied());
    for cmd in wanted {
        if tools.iter().any(|t| t == cmd) {
            continue;
        }
        let p = find_tool(cmd)?;
        archive.add_host_path(&p)?;
        elves.push(p);
        tools.push(cmd.to_owned());
    }
    let files = opts.files.iter().map(PathBuf::as_path);
    for p in files.chain(INIT_FILES.iter().map(Path::new)) {
        if p.is_dir() {
            archive.add_host_tree(p)?;
        } else if p.exists() {
            archive.add_host_path(p)?;
        } else if !INIT_FILES.contains(&p.to_str().unwrap_or("")) {
            return Err(tool_err(
                &p.display().to_string(),
                "not on this host; cairn install copies it from the installer (scripts/setup.sh installs it)",
            ));
        }
    }
    let busybox = find_tool("busybox")?;
    archive.add_host_path(&busybox)?;
    elves.push(busybox.clone());
    add_applets(archive, &busybox)?;

    let stripped = strip_debug(&opts.cairn)?;
    elves.push(opts.cairn.clone());
    for lib in libraries(&elves)? {
        archive.add_host_path(&lib)?;
    }
    archive.insert(
        Path::new("/usr/bin/cairn"),
        Entry::Bytes {
            mode: 0o755,
            data: stripped,
        },
    );
    Ok(tools)
}

/// A symlink to busybox for each of its applets the archive does not already have as a real
/// program (util-linux's mount and losetup win over busybox's).
fn add_applets(archive: &mut Archive, busybox: &Path) -> Result<(), ImageError> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .map_err(|e| tool_err("busybox --list-full", e.to_string()))?;
    if !out.status.success() {
        return Err(tool_err("busybox --list-full", "failed"));
    }
    let bb = std::fs::canonicalize(busybox).map_err(|e| ImageError::io(busybox, e))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.rsplit('/').next().unwrap_or(line);
        let dir = if line.contains("sbin/") {
            "/usr/sbin"
        } else {
            "/usr/bin"
        };
        let link = Path::new(dir).join(name);
        let taken = ["/usr/sbin", "/usr/bin"]
            .iter()
            .any(|d| archive.contains(&Path::new(d).join(name)));
        if !taken && link != bb {
            archive.insert(&link, Entry::Symlink { target: bb.clone() });
        }
    }
    Ok(())
}

/// `objcopy --strip-debug` of the binary into memory.
fn strip_debug(bin: &Path) -> Result<Vec<u8>, ImageError> {
    let tmp = tempfile::NamedTempFile::new().map_err(|e| ImageError::io(Path::new("/tmp"), e))?;
    let out = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(bin)
        .arg(tmp.path())
        .output()
        .map_err(|e| tool_err("objcopy", format!("{e} (apt-get install binutils)")))?;
    if !out.status.success() {
        return Err(tool_err(
            &format!("objcopy --strip-debug {}", bin.display()),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    std::fs::read(tmp.path()).map_err(|e| ImageError::io(tmp.path(), e))
}

/// Every shared library (and the dynamic loader) the programs load, as the host's loader resolves
/// them: ldd runs that loader in trace mode, so RUNPATH, ld.so.cache and hwcaps subdirectories are
/// honoured exactly as they will be inside the initramfs, where the same paths exist.
fn libraries(programs: &[PathBuf]) -> Result<Vec<PathBuf>, ImageError> {
    let mut libs = std::collections::BTreeSet::new();
    for p in programs {
        let out = Command::new("ldd")
            .arg(p)
            .output()
            .map_err(|e| tool_err("ldd", e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            // A static binary: nothing to add.
            if text.contains("not a dynamic executable") || out.stderr.is_empty() {
                continue;
            }
            return Err(tool_err(
                &format!("ldd {}", p.display()),
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        for line in text.lines() {
            if line.contains("=> not found") {
                return Err(tool_err(
                    &format!("ldd {}", p.display()),
                    format!("a library is missing on this host: {}", line.trim()),
                ));
            }
            // `name => /path (addr)` or `/path/ld.so (addr)`; the vDSO has no path.
            let path = line
                .split("=>")
                .nth(1)
                .unwrap_or(line)
                .split_whitespace()
                .next()
                .unwrap_or("");
            if path.starts_with('/') {
                libs.insert(PathBuf::from(path));
            }
        }
    }
    Ok(libs.into_iter().collect())
}

/// The commit's `modules.dep` decides; the modules' files come from the commit.
fn add_modules(
    archive: &mut Archive,
    repo: &cairn_ostree::repo::Repo,
    commit: &str,
    kdir: &str,
) -> Result<modules::Plan, ImageError> {
    let read_text = |name: &str| -> Result<String, ImageError> {
        Ok(repo
            .read_file(commit, &format!("{kdir}/{name}"))?
            .map(|d| String::from_utf8_lossy(&d).into_owned())
            .unwrap_or_default())
    };
    let dep = modules::parse_dep(&read_text("modules.dep")?);
    let plan = modules::plan(INSTALLER_MODULES, &dep, &read_text("modules.builtin")?);
    for m in &plan.load {
        let data = repo
            .read_file(commit, &format!("{kdir}/{m}"))?
            .ok_or_else(|| {
                tool_err(
                    "modules.dep",
                    format!("commit {commit}: {kdir}/{m} is listed in modules.dep but absent"),
                )
            })?;
        archive.insert(
            &Path::new("/").join(kdir).join(m),
            Entry::Bytes { mode: 0o644, data },
        );
    }
    for f in ["modules.dep", "modules.builtin", "modules.order"] {
        if let Some(data) = repo.read_file(commit, &format!("{kdir}/{f}"))? {
            archive.insert(
                &Path::new("/").join(kdir).join(f),
                Entry::Bytes { mode: 0o644, data },
            );
        }
    }
    Ok(plan)
}

/// `/init`, the DHCP client's event script, the module load order and the empty mount points.
fn add_init(archive: &mut Archive, load: &[String]) {
    let text = |s: &str| s.as_bytes().to_vec();
    archive.insert(
        Path::new("/init"),
        Entry::Bytes {
            mode: 0o755,
            data: text(include_str!("pxe/init.sh")),
        },
    );
    archive.insert(
        Path::new("/usr/share/udhcpc/default.script"),
        Entry::Bytes {
            mode: 0o755,
            data: text(include_str!("pxe/udhcpc.sh")),
        },
    );
    let mut order = load.join("\n");
    order.push('\n');
    archive.insert(
        Path::new("/etc/cairn-installer/modules"),
        Entry::Bytes {
            mode: 0o644,
            data: order.into_bytes(),
        },
    );
    archive.insert(
        Path::new("/dev/console"),
        Entry::CharDev {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    );
    for d in ["/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/mnt"] {
        let mode = if d.ends_with("tmp") { 0o1777 } else { 0o755 };
        if !archive.contains(Path::new(d)) {
            archive.insert(Path::new(d), Entry::Dir { mode });
        }
    }
}

/// The cpio through the system's `gzip` (the compression every kernel unpacks), written next to
/// `dest` and renamed into place; returns the uncompressed size.
fn write_gzip_cpio(archive: &Archive, dest: &Path) -> Result<u64, ImageError> {
    let mut size = 0;
    write_atomic(dest, |f| {
        let mut gz = Command::new("gzip")
            .args(["-6", "-c", "-n"])
            .stdin(Stdio::piped())
            .stdout(f.try_clone()?)
            .spawn()?;
        let mut stdin = gz.stdin.take().expect("piped stdin");
        let written = archive.write(&mut stdin);
        drop(stdin);
        let status = gz.wait()?;
        size = written.map_err(std::io::Error::other)?;
        if !status.success() {
            return Err(std::io::Error::other(format!("gzip exited with {status}")));
        }
        Ok(())
    })?;
    Ok(size)
}

/// Writes `dest` through a temporary file in its directory, renamed over it once complete.
fn write_atomic(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), ImageError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ImageError::io(dir, e))?;
    fill(tmp.as_file_mut()).map_err(|e| ImageError::io(dest, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| ImageError::io(dest, e))?;
    tmp.persist(dest)
        .map_err(|e| ImageError::io(dest, e.error))?;
    let perm = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    std::fs::set_permissions(dest, perm).map_err(|e| ImageError::io(dest, e))
}
