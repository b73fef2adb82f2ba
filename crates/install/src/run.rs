//! The install, step by step, with its log: read and check everything, then write the disk with
//! the boot loader last; report to the kickstart's built URL, or on any failure zap the disk's
//! boot structures and report to its failed URL with the log's tail.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use cairn_common::notice::{self, Notice};
use cairn_ostree::deploy;

use crate::disk::{self, Session};
use crate::parse::{Fs, Kickstart};
use crate::plan::{Location, Plan, Role};
use crate::{http, lvm, target, Callback, InstallError, InstallOptions, InstallResult};

/// The install's log: every step and notice, the tail of which a failed callback carries.
struct Log(Mutex<Vec<String>>);

impl Log {
    fn step(&self, text: String) {
        notice::emit(Notice::Progress {
            command: "install",
            text: text.clone(),
        });
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }

    fn tail(&self, error: &str) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = lines.len().saturating_sub(40);
        let mut s: String = lines[start..].iter().map(|l| format!("{l}\n")).collect();
        s.push_str(&format!("error: {error}\n"));
        s
    }
}

/// The error and its causes on one line, as the CLI prints it.
fn chain(e: &InstallError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

fn post(log: &Log, url: &str, body: &str) -> Callback {
    log.step(format!("POST {url}"));
    match http::request("POST", url, body) {
        Ok((status, _)) => Callback {
            url: url.to_owned(),
            status: Some(status),
            error: None,
        },
        Err(e) => {
            log.step(format!("callback {url} failed: {e}"));
            Callback {
                url: url.to_owned(),
                status: None,
                error: Some(e),
            }
        }
    }
}

/// Installs `opts.kickstart` onto `opts.target`; calls the kickstart's built URL on success and
/// its failed URL (with the log's tail) on any failure.
pub fn install(opts: &InstallOptions) -> Result<InstallResult, InstallError> {
    let log = Log(Mutex::new(Vec::new()));
    let is_url = opts.kickstart.starts_with("http://") || opts.kickstart.starts_with("https://");
    let mut failed_url = if is_url {
        http::failed_url_for(&opts.kickstart)
    } else {
        None
    };
    let outcome = (|| {
        let ks = read_kickstart(&log, opts, is_url, &mut failed_url)?;
        if ks.failed_url.is_some() {
            failed_url.clone_from(&ks.failed_url);
        }
        execute(&log, opts, &ks)
    })();
    match outcome {
        Ok(mut result) => {
            result.built = result
                .built
                .take()
                .map(|c| post(&log, &c.url, "built by cairn install\n"));
            Ok(result)
        }
        Err(e) => {
            if let Some(url) = failed_url {
                let c = post(&log, &url, &log.tail(&chain(&e)));
                if let Some(s) = c.status {
                    log.step(format!("reported the failure to {url} (HTTP {s})"));
                }
            }
            Err(e)
        }
    }
}

fn read_kickstart(
    log: &Log,
    opts: &InstallOptions,
    is_url: bool,
    failed_url: &mut Option<String>,
) -> Result<Kickstart, InstallError> {
    let (source, text) = if is_url {
        let shown = http::redact(&opts.kickstart);
        log.step(format!("fetching the kickstart from {shown}"));
        let (status, body) =
            http::request("GET", &opts.kickstart, "").map_err(|msg| InstallError::Fetch {
                url: shown.clone(),
                msg,
            })?;
        if status != 200 {
            return Err(InstallError::Fetch {
                url: shown,
                msg: format!("HTTP {status}: {}", body.trim()),
            });
        }
        (shown, body)
    } else {
        let p = Path::new(&opts.kickstart);
        (
            opts.kickstart.clone(),
            std::fs::read_to_string(p).map_err(|e| InstallError::io(p, e))?,
        )
    };
    // A kickstart the installer refuses still says where to report that.
    if let Some(u) = crate::post::scan_failed_url(&text) {
        *failed_url = Some(u);
    }
    let ks = crate::parse::parse(&source, &text)?;
    log.step(format!(
        "kickstart {source}: {} network line(s), {} %post file(s)",
        ks.networks.len(),
        ks.post.files.len()
    ));
    Ok(ks)
}

/// Every tool and file the install needs, before anything is written.
fn check_tools() -> Result<(), InstallError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for t in crate::TOOLS {
        if !std::env::split_paths(&path).any(|d| d.join(t).is_file()) {
            return Err(InstallError::Tool { cmd: (*t).to_owned(), msg: "not found on PATH (scripts/setup.sh installs it; cairn_install::TOOLS lists them all)".into() });
        }
    }
    for f in crate::FILES {
        if !Path::new(f).exists() {
            return Err(InstallError::Tool {
                cmd: (*f).to_owned(),
                msg: "missing (Debian packages extlinux and syslinux-common)".into(),
            });
        }
    }
    Ok(())
}

fn execute(
    log: &Log,
    opts: &InstallOptions,
    ks: &Kickstart,
) -> Result<InstallResult, InstallError> {
    let ost = ks.ostree.clone().expect("parse requires ostreesetup");
    if let Some(k) = ks.kargs.iter().find(|k| k.starts_with("root=")) {
        return Err(InstallError::Kickstart { source_name: ks.source.clone(), line: 0, msg: format!("`bootloader --append` sets {k}: root= is chosen by cairn install (the root filesystem's UUID); drop it") });
    }
    for k in &ks.kargs {
        deploy::kargs::validate(k)?;
    }
    if !rustix::process::geteuid().is_root() {
        return Err(InstallError::NotRoot);
    }
    let (size, block) = disk::size_of(&opts.target)?;
    let plan = crate::plan::plan(ks, size)?;
    check_tools()?;
    log.step(format!(
        "installing {}:{} onto {} ({} MiB)",
        ost.remote,
        ost.rref,
        opts.target.display(),
        size >> 20
    ));

    // From here on the disk changes: its boot structures go first, so an interrupted install
    // leaves nothing a firmware would boot.
    disk::zap(&opts.target, size)?;
    let work = tempfile::Builder::new()
        .prefix("cairn-install-")
        .tempdir()
        .map_err(|e| InstallError::io(&std::env::temp_dir(), e))?;
    let mut session = Session::new(&opts.target, block);
    let job = Job {
        log,
        opts,
        ks,
        plan: &plan,
        work: work.path(),
    };
    let result = write_disk(&job, &mut session);
    let released = session.release();
    if released.is_err() {
        // Something is still mounted there: never let the temp dir's cleanup recurse into it.
        let _ = work.keep();
    }
    let result = result.and_then(|r| released.map(|()| r));
    match result {
        Ok(mut r) => {
            log.step("writing the boot code (gptmbr.bin) and marking /boot legacy-bootable".into());
            finish_boot(opts, &plan).inspect_err(|_| {
                let _ = disk::zap(&opts.target, size);
            })?;
            r.built = ks.built_url.clone().map(|url| Callback {
                url,
                status: None,
                error: None,
            });
            log.step(format!(
                "installed {} ({})",
                r.commit,
                r.deployment.display()
            ));
            Ok(r)
        }
        Err(e) => {
            log.step("install failed: wiping the partition table and boot code".into());
            let _ = disk::zap(&opts.target, size);
            Err(e)
        }
    }
}

/// The boot partition's number (it carries the legacy-bootable attribute).
fn boot_partition(plan: &Plan) -> u32 {
    match plan.volume("/boot").map(|v| &v.at) {
        Some(Location::Partition { number }) => *number,
        _ => unreachable!("plan requires /boot on a partition"),
    }
}

fn finish_boot(opts: &InstallOptions, plan: &Plan) -> Result<(), InstallError> {
    let boot = boot_partition(plan);
    disk::run(
        Command::new("sgdisk")
            .arg(format!("--attributes={boot}:set:2"))
            .arg(&opts.target),
    )?;
    cairn_image::bootloader::finish_disk(&opts.target, plan.partition(boot).offset)?;
    Ok(())
}

/// Block devices for each filesystem, by mount point (and the ESP as `/boot/efi`).
fn devices(
    log: &Log,
    plan: &Plan,
    s: &mut Session,
) -> Result<BTreeMap<String, String>, InstallError> {
    let mut devs = BTreeMap::new();
    let esp = plan
        .partitions
        .iter()
        .find(|p| p.role == Role::Esp)
        .expect("planned");
    devs.insert("/boot/efi".to_owned(), s.partition_device(esp)?);
    let mut lv_at = BTreeMap::new();
    if let Some(vg) = &plan.vg {
        let pvp = plan.partition(vg.pv_partition).clone();
        let pv = s.partition_device(&pvp)?;
        log.step(format!(
            "LVM: volume group {} with {} logical volume(s) on {pv}",
            vg.name,
            plan.lvs.len()
        ));
        for e in lvm::create(&pv, vg, &plan.lvs)? {
            lv_at.insert(e.name.clone(), (pvp.offset + e.offset, e.size));
        }
    }
    for v in &plan.volumes {
        let dev = match &v.at {
            Location::Partition { number } => {
                s.partition_device(&plan.partition(*number).clone())?
            }
            Location::Lv { name, .. } => {
                let (off, len) = lv_at[name];
                s.loop_at(off, len)?
            }
        };
        devs.insert(v.mount.clone(), dev);
    }
    Ok(devs)
}

fn make_filesystems(
    log: &Log,
    plan: &Plan,
    devs: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, InstallError> {
    let mut uuids = BTreeMap::new();
    log.step("making filesystems".into());
    uuids.insert("/boot/efi".to_owned(), disk::mkfs_esp(&devs["/boot/efi"])?);
    for v in &plan.volumes {
        let uuid = disk::new_uuid()?;
        let label = if v.mount == "/" {
            "root"
        } else {
            v.mount.trim_start_matches('/')
        };
        disk::mkfs(&devs[&v.mount], v.fs, &uuid, label)?;
        uuids.insert(v.mount.clone(), uuid);
    }

    Ok(uuids)
}

/// The commit, pulled from the kickstart's ostreesetup URL into the mounted root and deployed
/// with its kernel arguments; /boot is mounted on the way (see the hook).
fn deploy_commit(
    job: &Job,
    s: &mut Session,
    boot_dev: &str,
    root_uuid: &str,
    root: &Path,
) -> Result<deploy::Provisioned, InstallError> {
    let Job {
        log,
        opts,
        ks,
        plan,
        ..
    } = *job;
    let ost = ks.ostree.clone().expect("parse requires ostreesetup");
    let mut kargs = vec![format!("root=UUID={}", root_uuid), "rw".to_owned()];
    if let Some(Location::Lv { vg, name }) = plan.volume("/").map(|v| &v.at) {
        // dracut activates only the root LV early; the rest come up through lvm2's udev rules.
        kargs.push(format!("rd.lvm.lv={vg}/{name}"));
    }
    kargs.extend(ks.kargs.iter().cloned());
    log.step(format!(
        "pulling {} from {} and deploying it",
        ost.rref, ost.url
    ));
    // libostree lays out a new sysroot only in an empty directory, so /boot is mounted from the
    // hook that runs between that and the first deployment.
    let boot_mounted = std::cell::Cell::new(false);
    let mount_boot = |sysroot: &Path| -> std::io::Result<()> {
        let at = sysroot.join("boot");
        std::fs::create_dir_all(&at)?;
        disk::run(Command::new("mount").arg(boot_dev).arg(&at))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        boot_mounted.set(true);
        std::fs::create_dir_all(at.join("efi"))?;
        cairn_image::bootloader::select_syslinux_backend(sysroot)?;
        match ks.boot_timeout {
            Some(t) => set_menu_timeout(&at, t),
            None => Ok(()),
        }
    };
    let deployed = deploy::provision_from_remote(
        root,
        &deploy::RemoteProvisionOptions {
            rev: &ost.rref,
            osname: &ost.osname,
            kargs: &kargs,
            remote: &ost.remote,
            url: &ost.url,
            gpg_verify: ost.gpg,
            gpg_keys: &opts.gpg_keys,
            before_deploy: Some(&mount_boot),
            after: &ks.post.remotes,
        },
    );
    if boot_mounted.get() {
        s.adopt_mount(&root.join("boot"));
    }
    Ok(deployed?)
}

/// `bootloader --timeout` in the syslinux header ostree keeps above its entries (tenths of a
/// second; 0 would mean "wait forever" to syslinux, so it becomes the shortest wait).
fn set_menu_timeout(boot: &Path, seconds: u32) -> std::io::Result<()> {
    let cfg = boot.join("loader/syslinux.cfg");
    let text = std::fs::read_to_string(&cfg)?;
    let tenths = (seconds * 10).max(1);
    let out: String = text
        .lines()
        .map(|l| {
            if l.starts_with("TIMEOUT ") {
                format!("TIMEOUT {tenths}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&cfg, out)
}

fn fstab(plan: &Plan, uuids: &BTreeMap<String, String>) -> String {
    let mut fstab = String::from("# cairn install: the filesystems of this disk, by UUID.\n");
    for v in &plan.volumes {
        fstab.push_str(&fstab_line(&uuids[&v.mount], &v.mount, v.fs));
    }
    fstab.push_str(&format!(
        "UUID={} /boot/efi vfat umask=0077,shortname=winnt 0 2\n",
        uuids["/boot/efi"]
    ));
    fstab
}

fn fstab_line(uuid: &str, mount: &str, fs: Fs) -> String {
    let pass = match (fs, mount) {
        (Fs::Xfs, _) => 0,
        (Fs::Ext4, "/") => 1,
        (Fs::Ext4, _) => 2,
    };
    format!(
        "UUID={uuid} {mount} {} defaults {} {pass}\n",
        fs.name(),
        u8::from(mount == "/")
    )
}

/// Where the install happens: the mount points live in `work`, which outlives every mount.
struct Job<'a> {
    log: &'a Log,
    opts: &'a InstallOptions,
    ks: &'a Kickstart,
    plan: &'a Plan,
    work: &'a Path,
}

fn write_disk(job: &Job, s: &mut Session) -> Result<InstallResult, InstallError> {
    let Job {
        log,
        opts,
        ks,
        plan,
        work,
    } = *job;
    let ost = ks.ostree.clone().expect("parse requires ostreesetup");
    log.step(format!(
        "partitioning: {}",
        plan.partitions
            .iter()
            .map(|p| format!("{} {} MiB", p.name, p.size >> 20))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    disk::partition(&opts.target, plan)?;
    let devs = devices(log, plan, s)?;

    let uuids = make_filesystems(log, plan, &devs)?;

    let root = work.join("root");
    s.mount(&devs["/"], &root)?;
    // libostree makes a sysroot only in an empty directory; fsck recreates lost+found if needed.
    let lf = root.join("lost+found");
    if lf.is_dir() {
        std::fs::remove_dir(&lf).map_err(|e| InstallError::io(&lf, e))?;
    }

    let deployed = deploy_commit(job, s, &devs["/boot"], &uuids["/"], &root)?;

    let stateroot_var = root.join("ostree/deploy").join(&ost.osname).join("var");
    let var_dir = if let Some(dev) = devs.get("/var") {
        let var = work.join("var");
        s.mount(dev, &var)?;
        // The stateroot's /var as libostree made it moves onto the volume that will be mounted there.
        disk::run(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", stateroot_var.display()))
                .arg(&var),
        )?;
        var
    } else {
        stateroot_var
    };

    let fstab = fstab(plan, &uuids);
    log.step(
        "writing the host's configuration (fstab, network, hostname, sysctl, users, time zone)"
            .into(),
    );
    let dirs = target::Dirs {
        deployment: root.join(&deployed.deployment),
        var: var_dir,
    };
    let files = target::configure(&dirs, ks, &fstab)?;

    cairn_common::failpoint::hit("install-before-bootloader")?;
    log.step("installing extlinux into /boot".into());
    cairn_image::bootloader::stage_modules(&root.join("boot"))?;
    disk::run(
        Command::new("extlinux")
            .arg("--install")
            .arg(root.join("boot/syslinux")),
    )?;
    // UEFI beside BIOS: the ESP's GRUB reads the same ostree-maintained loader/syslinux.cfg that
    // extlinux reads, so upgrades and rollbacks change both menus with no cairn code involved.
    log.step("installing the UEFI boot loader into the ESP".into());
    // mtools writes the FAT filesystem without mounting it: the installer's kernel need not have
    // vfat (this build machine's does not).
    let esp = work.join("esp");
    cairn_image::uefi::populate_esp(&esp, &uuids["/boot"])?;
    disk::run(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-s", "-o", "-i", &devs["/boot/efi"]])
            .arg(esp.join("EFI"))
            .arg("::/"),
    )?;

    Ok(InstallResult {
        target: opts.target.clone(),
        kickstart: ks.source.clone(),
        commit: deployed.commit,
        osname: ost.osname.clone(),
        deployment: deployed.deployment,
        origin: deployed.origin_refspec,
        kargs: deployed.kargs,
        plan: plan.clone(),
        uuids,
        files,
        final_action: ks.final_action,
        built: None,
    })
}
