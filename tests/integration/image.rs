//! `cairn image build`: real libostree deploys, real sgdisk/mkfs/extlinux/qemu-img; the image is
//! inspected with qemu-img, sgdisk and debugfs (no mount).

use std::path::Path;
use std::process::Command;

use crate::common::image::{debugfs, make_commit, qemu_img_info, vhd_info, KVER};
use crate::common::repo::{ostree_ok, repo_arg, rev_parse};
use crate::common::{cairn_json, ok, run_cairn, stderr, stdout, tempdir};

const MIB: u64 = 1 << 20;

fn build(
    dir: &Path,
    commit: &crate::common::image::Commit,
    format: &str,
    size: &str,
    extra: &[&str],
) -> serde_json::Value {
    let out = dir.join(format!("disk.{format}"));
    let mut args = vec![
        "image".to_owned(),
        "build".into(),
        "--repo".into(),
        commit.repo.display().to_string(),
        "--ref".into(),
        commit.refname.clone(),
        "--format".into(),
        format.into(),
        "--size".into(),
        size.into(),
        "--out".into(),
        out.display().to_string(),
        "--json".into(),
        "--quiet".into(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let report = cairn_json(&args);
    // cli::every_json_command_prints_one_envelope cannot afford a build: the envelope is checked here.
    assert_eq!(report["apiVersion"], "cairn/v1");
    assert_eq!(report["kind"], "ImageBuildResult");
    report
}

/// The GPT as sgdisk prints it: (number, start sector, end sector, code, name).
fn gpt(raw: &Path) -> Vec<(u32, u64, u64, String, String)> {
    let text = ok(Command::new("sgdisk").arg("-p").arg(raw));
    text.lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[5].to_owned(),
                f[6].to_owned(),
            )
        })
        .collect()
}

#[test]
fn qcow2_image_holds_a_deployed_sysroot_a_bios_bootloader_and_an_esp() {
    let dir = tempdir();
    let commit = make_commit(dir.path());
    let report = build(
        dir.path(),
        &commit,
        "qcow2",
        "1G",
        &["--karg", "console=ttyS0,115200n8", "--os", "cairn"],
    );
    let img = dir.path().join("disk.qcow2");
    let info = qemu_img_info(&img);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 1024 * MIB);
    assert_eq!(report["commit"], commit.checksum.as_str());

    let raw = dir.path().join("disk.raw");
    ok(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&img)
        .arg(&raw));
    let parts = gpt(&raw);
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!((parts[0].3.as_str(), parts[0].4.as_str()), ("EF02", "bios"));
    assert_eq!((parts[1].3.as_str(), parts[1].4.as_str()), ("EF00", "esp"));
    assert_eq!((parts[2].3.as_str(), parts[2].4.as_str()), ("8300", "boot"));
    assert_eq!((parts[3].3.as_str(), parts[3].4.as_str()), ("8300", "root"));
    for p in &parts {
        assert_eq!(p.1 % 2048, 0, "partition {} starts MiB-aligned", p.0);
        assert_eq!((p.2 + 1) % 2048, 0, "partition {} ends MiB-aligned", p.0);
    }
    assert_eq!(parts[1].2 + 1 - parts[1].1, 64 * 2048, "a 64 MiB ESP");
    let attrs = ok(Command::new("sgdisk").args(["-A", "3:show"]).arg(&raw));
    assert!(attrs.contains("legacy BIOS bootable"), "{attrs}");
    let esp_off = parts[1].1 * 512;
    let boot_off = parts[2].1 * 512;
    let root_off = parts[3].1 * 512;

    root_fs_holds_the_deployment(&raw, root_off, boot_off, &commit, &report);
    let root_uuid = report["rootUuid"].as_str().unwrap();
    boot_fs_holds_the_entry_and_extlinux(&raw, boot_off, root_uuid);
    let boot_uuid = report["bootUuid"].as_str().unwrap();
    let esp = Esp::extract(&raw, esp_off, dir.path());
    esp.holds_standalone_grub_for(boot_uuid);
    assert_eq!(report["espUuid"], esp.volume_id());
    assert_eq!(report["secureBoot"], false);

    // MBR boot code is syslinux's gptmbr.bin; the boot sector knows where its partition starts.
    let mbr = std::fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").unwrap();
    let disk = std::fs::read(&raw).unwrap();
    assert_eq!(&disk[..440], &mbr[..440]);
    let hidden = u32::from_le_bytes(
        disk[boot_off as usize + 0x1c..boot_off as usize + 0x20]
            .try_into()
            .unwrap(),
    );
    assert_eq!(u64::from(hidden), parts[2].1);
    // No staging leftovers next to the output.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn-image-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The root filesystem: an OSTree sysroot with the commit deployed under the stateroot.
fn root_fs_holds_the_deployment(
    raw: &Path,
    root_off: u64,
    boot_off: u64,
    commit: &crate::common::image::Commit,
    report: &serde_json::Value,
) {
    let deploys = debugfs(raw, root_off, "ls -l /ostree/deploy/cairn/deploy");
    assert!(
        deploys.contains(&format!("{}.0", commit.checksum)),
        "{deploys}"
    );
    assert!(
        deploys.contains(&format!("{}.0.origin", commit.checksum)),
        "{deploys}"
    );
    // The deployment root keeps ostree's immutable bit (EXT4_IMMUTABLE_FL, 0x10).
    let dstat = debugfs(
        raw,
        root_off,
        &format!("stat /ostree/deploy/cairn/deploy/{}.0", commit.checksum),
    );
    let flags = dstat
        .lines()
        .find_map(|l| l.split("Flags: 0x").nth(1))
        .and_then(|v| u32::from_str_radix(v.split_whitespace().next()?, 16).ok())
        .unwrap_or_else(|| panic!("{dstat}"));
    assert_eq!(flags & 0x10, 0x10, "{dstat}");
    let origin = debugfs(
        raw,
        root_off,
        &format!(
            "cat /ostree/deploy/cairn/deploy/{}.0.origin",
            commit.checksum
        ),
    );
    assert!(
        origin.contains(&format!("refspec={}", commit.refname)),
        "{origin}"
    );
    let fstab = debugfs(
        raw,
        root_off,
        &format!(
            "cat /ostree/deploy/cairn/deploy/{}.0/etc/fstab",
            commit.checksum
        ),
    );
    let root_uuid = report["rootUuid"].as_str().unwrap();
    let boot_uuid = report["bootUuid"].as_str().unwrap();
    assert!(
        fstab.contains(&format!("UUID={boot_uuid} /boot ext4")),
        "{fstab}"
    );
    // The sysroot repo has the commit, so the machine can deploy it again (and diff against it).
    let refs = debugfs(raw, root_off, "ls -l /ostree/repo/refs/heads/cairn/test");
    assert!(refs.contains("x86_64"), "{refs}");
    // The UUIDs cairn chose are the filesystems' (root=UUID= must find the root).
    let stats = debugfs(raw, root_off, "stats");
    assert!(
        stats.contains(&format!("Filesystem UUID:          {root_uuid}")),
        "{stats}"
    );
    let stats = debugfs(raw, boot_off, "stats");
    assert!(
        stats.contains(&format!("Filesystem UUID:          {boot_uuid}")),
        "{stats}"
    );
    assert!(
        debugfs(raw, root_off, "ls -l /boot").contains(" ."),
        "empty /boot mount point"
    );
}

/// The boot filesystem: BLS entry with the kargs, kernel + initramfs, syslinux config and
/// extlinux itself.
fn boot_fs_holds_the_entry_and_extlinux(raw: &Path, boot_off: u64, root_uuid: &str) {
    let entry = debugfs(raw, boot_off, "cat /loader/entries/ostree-1-cairn.conf");
    let options = entry
        .lines()
        .find_map(|l| l.strip_prefix("options "))
        .unwrap_or_else(|| panic!("no options line: {entry}"));
    assert!(
        options.starts_with(&format!("root=UUID={root_uuid} rw console=ttyS0,115200n8")),
        "{options}"
    );
    assert!(
        options.contains(" ostree=/ostree/boot.1/cairn/"),
        "{options}"
    );
    let linux = entry
        .lines()
        .find_map(|l| l.strip_prefix("linux "))
        .unwrap();
    assert!(linux.ends_with(&format!("/vmlinuz-{KVER}")), "{linux}");
    let bootcsum_dir = Path::new(linux)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let kernels = debugfs(raw, boot_off, &format!("ls -l {bootcsum_dir}"));
    assert!(
        kernels.contains(&format!("initramfs-{KVER}.img")),
        "{kernels}"
    );
    // extlinux reads /syslinux/syslinux.cfg, a link into ostree's current loader directory.
    let link = debugfs(raw, boot_off, "stat /syslinux/syslinux.cfg");
    assert!(
        link.contains("Fast link dest: \"../loader/syslinux.cfg\""),
        "{link}"
    );
    let cfg = debugfs(raw, boot_off, "cat /loader/syslinux.cfg");
    assert!(cfg.contains("UI menu.c32"), "{cfg}");
    assert!(cfg.contains(&format!("\tAPPEND {options}")), "{cfg}");
    let sl = debugfs(raw, boot_off, "ls -l /syslinux");
    for f in [
        "ldlinux.sys",
        "ldlinux.c32",
        "menu.c32",
        "libutil.c32",
        "libcom32.c32",
    ] {
        assert!(sl.contains(f), "{f} missing: {sl}");
    }
}

#[test]
fn vhd_is_fixed_and_mib_aligned_and_remote_becomes_the_origin() {
    let dir = tempdir();
    let commit = make_commit(dir.path());
    // One byte over 700 MiB: the image must round up to 701 MiB, not to a CHS geometry.
    let report = build(
        dir.path(),
        &commit,
        "vhd",
        &(700 * MIB + 1).to_string(),
        &[
            "--remote",
            "cairn=http://10.0.2.2:8080/repo",
            "--secure-boot",
        ],
    );
    let img = dir.path().join("disk.vhd");
    let info = vhd_info(&img);
    assert_eq!(info["format"], "vpc");
    assert_eq!(info["virtual-size"], 701 * MIB);
    assert_eq!(report["virtualSize"], 701 * MIB);
    // A fixed VHD is the raw disk plus a 512-byte footer.
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 701 * MIB + 512);
    assert_eq!(report["origin"], format!("cairn:{}", commit.refname));

    let raw = dir.path().join("disk.raw");
    ok(Command::new("qemu-img")
        .args(["convert", "-f", "vpc", "-O", "raw"])
        .arg(&img)
        .arg(&raw));
    let parts = gpt(&raw);
    let root_off = parts[3].1 * 512;
    let esp = Esp::extract(&raw, parts[1].1 * 512, dir.path());
    esp.holds_shim_and_signed_grub_for(report["bootUuid"].as_str().unwrap());
    assert_eq!(report["secureBoot"], true);
    let config = debugfs(&raw, root_off, "cat /ostree/repo/config");
    assert!(config.contains("[remote \"cairn\"]"), "{config}");
    assert!(config.contains("url=http://10.0.2.2:8080/repo"), "{config}");
    let r = debugfs(
        &raw,
        root_off,
        "ls -l /ostree/repo/refs/remotes/cairn/cairn/test",
    );
    assert!(r.contains("x86_64"), "{r}");
}

/// The ESP, copied out of the raw disk (`dd`), read with mtools (no mount) and checked by
/// `fsck.vfat -n`.
struct Esp(std::path::PathBuf);

impl Esp {
    fn extract(raw: &Path, offset: u64, dir: &Path) -> Esp {
        let img = dir.join("esp.vfat");
        ok(Command::new("dd")
            .arg(format!("if={}", raw.display()))
            .arg(format!("of={}", img.display()))
            .args(["bs=1M", "count=64", "status=none"])
            .arg(format!("skip={}", offset / MIB)));
        let fsck = ok(Command::new("fsck.vfat").arg("-n").arg(&img));
        assert!(!fsck.contains("differ"), "{fsck}");
        Esp(img)
    }

    fn mtools(&self, tool: &str, args: &[&str]) -> Vec<u8> {
        let o = Command::new(tool)
            .arg("-i")
            .arg(&self.0)
            .args(args)
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .unwrap();
        assert!(o.status.success(), "{tool} {args:?}: {}", stderr(&o));
        o.stdout
    }

    fn file(&self, path: &str) -> Vec<u8> {
        self.mtools("mtype", &[&format!("::/{path}")])
    }

    fn volume_id(&self) -> String {
        let info = String::from_utf8(self.mtools("minfo", &[])).unwrap();
        let id = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("serial number:"))
            .unwrap_or_else(|| panic!("{info}"))
            .trim()
            .to_owned();
        format!("{}-{}", &id[..4], &id[4..]).to_uppercase()
    }

    /// An x86_64 UEFI application: PE ("MZ" ... "PE\0\0", machine 0x8664, subsystem 10).
    fn assert_efi_app(&self, path: &str) -> Vec<u8> {
        let b = self.file(path);
        assert_eq!(&b[..2], b"MZ", "{path}");
        let pe = u32::from_le_bytes(b[0x3c..0x40].try_into().unwrap()) as usize;
        assert_eq!(&b[pe..pe + 4], b"PE\0\0", "{path}");
        assert_eq!(u16::from_le_bytes([b[pe + 4], b[pe + 5]]), 0x8664, "{path}");
        // The optional header starts 24 bytes in; Subsystem is at offset 68 of it.
        let subsystem = u16::from_le_bytes([b[pe + 24 + 68], b[pe + 24 + 69]]);
        assert_eq!(subsystem, 10, "{path}: EFI application");
        b
    }

    /// The config finds the boot filesystem by UUID and follows ostree's syslinux menu there.
    fn assert_config(&self, path: &str, boot_uuid: &str) {
        let cfg = String::from_utf8(self.file(path)).unwrap();
        assert!(
            cfg.contains(&format!(
                "search --no-floppy --fs-uuid --set=root {boot_uuid}\n"
            )),
            "{cfg}"
        );
        assert!(cfg.contains("source /loader/syslinux.cfg\n"), "{cfg}");
    }

    fn holds_standalone_grub_for(&self, boot_uuid: &str) {
        let listing = String::from_utf8(self.mtools("mdir", &["-/", "-b", "::/"])).unwrap();
        let mut files: Vec<&str> = listing.lines().map(str::trim).collect();
        files.sort_unstable();
        assert_eq!(
            files,
            [
                "::/EFI/",
                "::/EFI/BOOT/",
                "::/EFI/BOOT/BOOTX64.EFI",
                "::/EFI/BOOT/grub.cfg"
            ],
            "{listing}"
        );
        let grub = self.assert_efi_app("EFI/BOOT/BOOTX64.EFI");
        // grub-mkstandalone's memdisk holds the one line that hands over to grub.cfg beside it.
        let needle = b"source $cmdpath/grub.cfg";
        assert!(grub.windows(needle.len()).any(|w| w == needle));
        self.assert_config("EFI/BOOT/grub.cfg", boot_uuid);
    }

    fn holds_shim_and_signed_grub_for(&self, boot_uuid: &str) {
        for (path, package_file) in [
            ("EFI/BOOT/BOOTX64.EFI", "/usr/lib/shim/shimx64.efi.signed"),
            (
                "EFI/BOOT/grubx64.efi",
                "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
            ),
            ("EFI/BOOT/mmx64.efi", "/usr/lib/shim/mmx64.efi.signed"),
        ] {
            let b = self.assert_efi_app(path);
            assert!(
                b == std::fs::read(package_file).unwrap(),
                "{path} is {package_file}"
            );
        }
        self.assert_config("EFI/debian/grub.cfg", boot_uuid);
    }
}

#[test]
fn bad_inputs_fail_with_what_to_do() {
    let dir = tempdir();
    let commit = make_commit(dir.path());
    let base = |extra: &[&str]| {
        let mut a: Vec<String> = ["image", "build", "--repo"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(commit.repo.display().to_string());
        a.extend([
            "--out".to_owned(),
            dir.path().join("x.qcow2").display().to_string(),
        ]);
        a.extend(extra.iter().map(|s| s.to_string()));
        run_cairn(&a)
    };
    let o = base(&[
        "--ref",
        &commit.refname,
        "--size",
        "1G",
        "--karg",
        "root=/dev/sda3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("root= is chosen by cairn"),
        "{}",
        stderr(&o)
    );
    let o = base(&["--ref", "no/such/ref", "--size", "1G"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no/such/ref"), "{}", stderr(&o));
    let o = base(&["--ref", &commit.refname, "--size", "100M"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("too small"), "{}", stderr(&o));
    let o = base(&["--ref", &commit.refname, "--size", "8Q"]);
    assert_eq!(o.status.code(), Some(2), "clap rejects the size");
    assert!(!dir.path().join("x.qcow2").exists());
}

/// The one flag for the slow proof (TCG, no KVM): `CAIRN_BOOT_TEST=1`.
fn boot_test_enabled(what: &str) -> bool {
    if std::env::var("CAIRN_BOOT_TEST").as_deref() == Ok("1") {
        return true;
    }
    eprintln!(
        "\n*** SKIP: {what} needs CAIRN_BOOT_TEST=1 (composes Debian 12 and boots it under TCG \
         seven times under SeaBIOS and OVMF; 20-45 minutes on 2 cores; see README) ***\n"
    );
    crate::common::record_skip(&format!("{what}: opt-in, needs CAIRN_BOOT_TEST=1"));
    false
}

fn run_with<I, S>(bin: &Path, args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(bin).args(args).output().expect("spawn cairn")
}

/// `cairn serve` on an ephemeral port, killed on drop.
struct Serve {
    child: std::process::Child,
    port: u16,
}

impl Serve {
    fn start(cairn: &Path, repo: &Path) -> Serve {
        use std::io::BufRead;
        let inventory = crate::common::project_root().join("kickstart/inventory.yaml");
        let mut child = Command::new(cairn)
            .args(["serve", "--listen", "127.0.0.1:0", "--inventory"])
            .arg(&inventory)
            .arg("--repo")
            .arg(repo)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn cairn serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cairn serve printed {line:?}"));
        Serve { child, port }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The firmware QEMU boots with: SeaBIOS (its default), OVMF, or OVMF with Secure Boot enforced
/// and Microsoft's keys enrolled (Debian's `ovmf`: the `secboot` code needs SMM, hence q35).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firmware {
    Bios,
    Uefi,
    SecureBoot,
}

impl Firmware {
    /// QEMU's arguments; UEFI variables live in a writable copy of the template next to `img`.
    fn qemu_args(self, img: &Path) -> Vec<String> {
        let (code, vars) = match self {
            Firmware::Bios => return Vec::new(),
            Firmware::Uefi => ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"),
            Firmware::SecureBoot => ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd"),
        };
        let ovmf = Path::new("/usr/share/OVMF");
        assert!(
            ovmf.join(code).exists(),
            "{code} is required with CAIRN_BOOT_TEST=1 (Debian package ovmf; scripts/setup.sh)"
        );
        let vars_copy = img.with_extension("vars.fd");
        std::fs::copy(ovmf.join(vars), &vars_copy).unwrap();
        let mut args = Vec::new();
        if self == Firmware::SecureBoot {
            args.extend(
                [
                    "-machine",
                    "q35,smm=on",
                    "-global",
                    "driver=cfi.pflash01,property=secure,value=on",
                ]
                .map(String::from),
            );
        }
        args.extend([
            "-drive".to_owned(),
            format!(
                "if=pflash,format=raw,unit=0,readonly=on,file={}",
                ovmf.join(code).display()
            ),
            "-drive".to_owned(),
            format!("if=pflash,format=raw,unit=1,file={}", vars_copy.display()),
        ]);
        args
    }
}

/// Boots `img` under TCG with `firmware` until the guest powers off (or `limit` passes), calling
/// `tick` about once a second meanwhile; returns the serial log.
fn boot_until_poweroff(
    (img, firmware): (&Path, Firmware),
    log: &Path,
    limit: std::time::Duration,
    tick: &mut dyn FnMut(),
) -> String {
    let mut child = Command::new("qemu-system-x86_64")
        .args(firmware.qemu_args(img))
        .args([
            "-accel",
            "tcg",
            "-m",
            "2048",
            "-smp",
            "2",
            "-nographic",
            "-monitor",
            "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", img.display()))
        .args([
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn qemu-system-x86_64");
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the VM did not power off within {limit:?}; serial tail:\n{}",
                serial_tail(log)
            );
        }
        tick();
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    String::from_utf8_lossy(&std::fs::read(log).unwrap()).into_owned()
}

fn serial_tail(log: &Path) -> String {
    let text = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let tail: Vec<char> = text.chars().rev().take(6000).collect();
    tail.into_iter().rev().collect()
}

/// The FleetLock side of the boot test, on the host: one etcd member and `cairn fleetlock serve`
/// on loopback (QEMU user networking shows the host's loopback to the guest as 10.0.2.2).
struct Fleet {
    etcd: crate::common::etcd::Cluster,
    server: crate::fleet::LockServer,
}

/// The group the VM's agent is configured with (cairn-boot-test.sh).
const BOOT_TEST_KEY: &str = "com.coreos.airlock/groups/boot-test/v1/semaphore";

impl Fleet {
    fn start() -> Fleet {
        let etcd = crate::common::etcd::Cluster::start(1);
        let server = crate::fleet::LockServer::start(&etcd, &["--slots", "1"]);
        Fleet { etcd, server }
    }

    /// The lock server's URL as the guest reaches it.
    fn guest_url(&self) -> String {
        self.server.url.replace("127.0.0.1", "10.0.2.2")
    }

    /// The group's holders as etcd has them (none before the group exists).
    fn holders(&self) -> Vec<String> {
        self.etcd.get(BOOT_TEST_KEY).map_or_else(Vec::new, |v| {
            let v: serde_json::Value = serde_json::from_str(&v).expect("semaphore JSON");
            serde_json::from_value(v["holders"].clone()).expect("holders")
        })
    }
}

/// What the host saw during the boots: each change of (kernels started so far, etcd holders),
/// with when it was seen.
#[derive(Default)]
struct Watch {
    seen: Vec<(std::time::Duration, usize, Vec<String>)>,
    start: Option<std::time::Instant>,
}

impl Watch {
    fn tick(&mut self, fleet: &Fleet, log: &Path) {
        let start = *self.start.get_or_insert_with(std::time::Instant::now);
        let serial = String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
        let boots = serial.matches("Command line:").count();
        let holders = fleet.holders();
        if self
            .seen
            .last()
            .is_none_or(|(_, b, h)| *b != boots || *h != holders)
        {
            self.seen.push((start.elapsed(), boots, holders));
        }
    }

    /// When (since the VM started) the host first saw `what`.
    fn first(&self, what: impl Fn(usize, &[String]) -> bool) -> Option<std::time::Duration> {
        self.seen
            .iter()
            .find(|(_, b, h)| what(*b, h))
            .map(|(t, _, _)| *t)
    }
}

/// The proof, end to end: the shipped Debian treefile (plus the cairn binary, the agent's unit and
/// a boot-test unit) composed, built into a native image, booted under TCG: it reaches multi-user
/// with the ostree deployment booted; inside, `cairn agent` (fleetlock strategy) stages v2 from the
/// host's `cairn serve`, takes a slot from the host's `cairn fleetlock serve` on etcd (QEMU user
/// networking, host = 10.0.2.2), finalizes and reboots itself -> v2, health check, slot released;
/// `cairn rollback` -> reboot -> v1. Then UEFI: the same pristine image under OVMF (GRUB from the
/// ESP), `cairn upgrade` -> v2 -> `cairn rollback` -> v1; a `--secure-boot` image under OVMF with
/// Secure Boot enforced. Then a real `packer build` of the qemu-disk template turns the image into
/// qcow2 and vhd.
#[test]
fn boot_upgrade_rollback_and_packer_build_under_tcg() {
    if !boot_test_enabled("the TCG boot test") {
        return;
    }
    for (tool, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("packer", "packer"),
        ("mmdebstrap", "mmdebstrap"),
    ] {
        assert!(
            crate::common::have_tool(tool, pkg),
            "{tool} is required with CAIRN_BOOT_TEST=1"
        );
    }
    assert!(
        crate::common::etcd::available(),
        "etcd and etcdctl are required with CAIRN_BOOT_TEST=1"
    );
    let t_all = std::time::Instant::now();
    let dir = tempdir();
    let d = dir.path();

    // 1. Compose: the shipped default + what the test needs inside the VM. A private copy of the
    // binary runs everything here: this test outlives many rebuilds of the shared target dir.
    let cairn = d.join("cairn");
    std::fs::copy(env!("CARGO_BIN_EXE_cairn"), &cairn).unwrap();
    let fleet = Fleet::start();
    let repo = d.join("repo");
    let refname = compose_boot_test_tree(&cairn, d, &repo);
    let v1 = rev_parse(&repo, &refname);

    // 2. The update server, then the image that upgrades from it.
    let serve = Serve::start(&cairn, &repo);
    let img = d.join("debian.qcow2");
    build_boot_test_image(
        &cairn,
        (&repo, &refname),
        (serve.port, &fleet.guest_url()),
        &img,
        &[],
    );
    let base = d.join("base.qcow2");
    std::fs::copy(&img, &base).unwrap();
    let v2 = commit_v2(d, &repo, &refname);
    assert_ne!(v1, v2);

    // 3. Boot, agent upgrade with its own reboot, rollback, reboot, poweroff: driven by the units
    // inside, watched from here through etcd.
    let log = d.join("serial.log");
    let mut watch = Watch::default();
    let serial = boot_until_poweroff(
        (&img, Firmware::Bios),
        &log,
        std::time::Duration::from_secs(40 * 60),
        &mut || watch.tick(&fleet, &log),
    );
    assert_booted_v1_v2_v1(&serial, &v1, &v2);
    assert_agent_upgraded(&serial, &watch, &fleet, &v2);

    // 4. The same pristine image under OVMF: GRUB from the ESP, `cairn upgrade`, `cairn rollback`.
    uefi_upgrade_and_rollback(d, &base, &v1, &v2);
    // 5. A `--secure-boot` image (now of v2) under OVMF with Secure Boot enforced.
    secure_boot_boots(&cairn, (&repo, &refname), serve.port, d, &v2);
    drop(serve);

    // 6. Packer template 2 from the pristine image, under TCG.
    packer_build_from(&cairn, d, &base);
    eprintln!("boot test: total {:.0}s", t_all.elapsed().as_secs_f64());
}

/// The agent's events as the VM copied them to the serial console.
fn agent_events(serial: &str) -> Vec<serde_json::Value> {
    serial
        .lines()
        .filter_map(|l| l.split("CAIRN-BOOT-TEST-EVENT: ").nth(1))
        .map(|j| serde_json::from_str(j.trim()).unwrap_or_else(|e| panic!("{e}: {j}")))
        .collect()
}

/// The upgrade went through the agent: staged with libostree (locked), a slot taken, finalized,
/// the agent's own reboot into v2, health passed, slot released; and etcd agrees: the node's id
/// was the only holder from before the reboot until the v2 boot released it, none since.
fn assert_agent_upgraded(serial: &str, watch: &Watch, fleet: &Fleet, v2: &str) {
    let events = agent_events(serial);
    let all = || {
        events
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let named = |n: &str| {
        events
            .iter()
            .find(|e| e["event"] == n)
            .unwrap_or_else(|| panic!("no {n} event:\n{}", all()))
    };
    let order = [
        "staged",
        "slot-taken",
        "hook",
        "finalized",
        "rebooting",
        "booted",
        "health-checked",
        "slot-released",
    ];
    let mut rest = events.iter().map(|e| e["event"].as_str().unwrap_or(""));
    for n in order {
        assert!(
            rest.any(|e| e == n),
            "{n} missing or out of order:\n{}",
            all()
        );
    }
    let node = events[0]["node"].as_str().unwrap().to_owned();
    assert!(
        events.iter().all(|e| e["node"] == node.as_str()),
        "{}",
        all()
    );
    assert_eq!(named("staged")["checksum"], v2, "{}", all());
    assert_eq!(named("hook")["ok"], true, "{}", all());
    assert_eq!(named("rebooting")["to"], v2, "{}", all());
    assert_eq!(named("booted")["expected"], v2, "{}", all());
    let booted = named("booted")["deployment"].as_str().unwrap().to_owned();
    assert!(booted.starts_with(v2), "{}", all());
    assert_eq!(named("health-checked")["passed"], true, "{}", all());

    // What the pre-reboot hook saw: libostree's staging, the finalization lock still held.
    let status = serial
        .lines()
        .find_map(|l| l.split("CAIRN-BOOT-TEST: pre-reboot-status ").nth(1))
        .unwrap_or_else(|| panic!("the pre-reboot hook left no status"));
    let status: serde_json::Value = serde_json::from_str(status.trim()).unwrap();
    assert_eq!(status["staged"]["mechanism"], "libostree", "{status}");
    assert_eq!(status["staged"]["locked"], true, "{status}");
    assert_eq!(status["staged"]["checksum"], v2, "{status}");
    // libostree lists its staged deployment first; locked, it is not what boots next.
    let deps = status["deployments"].as_array().unwrap();
    let staged = deps.iter().find(|d| d["staged"] == true).unwrap();
    let running = deps.iter().find(|d| d["booted"] == true).unwrap();
    assert_eq!(staged["default"], false, "{status}");
    assert_eq!(running["default"], true, "{status}");
    assert_eq!(running["rollback"], false, "{status}");

    let seen = || format!("{:?}", watch.seen);
    let held = |b: usize| watch.first(|boots, h| boots == b && h == [node.as_str()]);
    let taken = held(1).unwrap_or_else(|| panic!("no slot held in the v1 boot: {}", seen()));
    let rebooting = held(2).unwrap_or_else(|| panic!("slot not held into v2: {}", seen()));
    let released = watch
        .seen
        .iter()
        .find(|(t, b, h)| *b == 2 && h.is_empty() && *t > rebooting)
        .map(|(t, _, _)| *t)
        .unwrap_or_else(|| panic!("not released in the v2 boot: {}", seen()));
    assert!(
        watch
            .seen
            .iter()
            .all(|(_, _, h)| h.is_empty() || h == std::slice::from_ref(&node)),
        "only the node ever holds a slot: {}",
        seen()
    );
    assert!(watch.seen.last().unwrap().2.is_empty(), "{}", seen());
    assert!(fleet.holders().is_empty(), "steady state: no holders");
    let v1_again = watch.first(|boots, _| boots == 3).unwrap_or(released);
    let s = |d: std::time::Duration| d.as_secs_f64();
    eprintln!(
        "boot test: v1 boot -> slot taken {:.0}s; slot taken -> v2 kernel {:.0}s; v2 kernel -> \
         slot released {:.0}s; released -> v1 kernel (rollback) {:.0}s; whole VM run {:.0}s",
        s(taken),
        s(rebooting - taken),
        s(released - rebooting),
        s(v1_again - released),
        s(watch.seen.last().unwrap().0),
    );
}

/// Composes the shipped Debian default plus the cairn binary and the boot-test driver into
/// `repo`; returns the composed ref.
fn compose_boot_test_tree(cairn: &Path, d: &Path, repo: &Path) -> String {
    let root = crate::common::project_root();
    let boot = root.join("tests/integration/boot");
    let treefile = d.join("boot-test.yaml");
    std::fs::write(
        &treefile,
        format!(
            "# The shipped default, plus the cairn binary, the agent's unit and the boot-test driver.\n\
             include: {}\n\
             add-files:\n  - [cairn, /usr/bin/cairn]\n  - [{}, /usr/libexec/cairn-boot-test]\n  - [{}, /usr/lib/systemd/system/cairn-boot-test.service]\n  - [{}, /usr/lib/systemd/system/cairn-agent.service]\n\
             units: [cairn-boot-test.service, cairn-agent.service]\n",
            root.join("treefiles/debian-12.yaml").display(),
            boot.join("cairn-boot-test.sh").display(),
            boot.join("cairn-boot-test.service").display(),
            root.join("dist/systemd/cairn-agent.service").display(),
        ),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let o = run_with(
        cairn,
        [
            "compose".as_ref(),
            treefile.as_os_str(),
            "--repo".as_ref(),
            repo.as_os_str(),
            "--quiet".as_ref(),
        ],
    );
    assert!(o.status.success(), "compose: {}{}", stdout(&o), stderr(&o));
    eprintln!("boot test: compose {:.0}s", t.elapsed().as_secs_f64());
    let refs = ostree_ok([repo_arg(repo).as_str(), "refs"]);
    refs.lines()
        .find(|l| l.starts_with("cairn/debian/12/"))
        .expect("composed ref")
        .to_owned()
}

/// The image that boots `refname` and upgrades from `cairn serve` on the host's `port`, its agent
/// asking the lock server at `lock` (`cairn.fleetlock=`, read by cairn-boot-test.sh); `extra`
/// flags go to `cairn image build` as well.
fn build_boot_test_image(
    cairn: &Path,
    (repo, refname): (&Path, &str),
    (port, lock): (u16, &str),
    img: &Path,
    extra: &[&str],
) {
    let t = std::time::Instant::now();
    let o = run_with(
        cairn,
        [
            "image",
            "build",
            "--repo",
            repo.to_str().unwrap(),
            "--ref",
            refname,
            "--format",
            "qcow2",
            "--size",
            "4G",
            "--out",
            img.to_str().unwrap(),
            "--os",
            "debian",
            "--quiet",
            "--karg",
            "console=ttyS0,115200n8",
            "--karg",
            "cairn.boottest=1",
            "--karg",
            &format!("cairn.fleetlock={lock}"),
            "--remote",
            &format!("cairn=http://10.0.2.2:{port}/repo/"),
        ]
        .into_iter()
        .chain(extra.iter().copied()),
    );
    assert!(o.status.success(), "image build: {}", stderr(&o));
    eprintln!("boot test: image build {:.0}s", t.elapsed().as_secs_f64());
}

/// v2: the same tree plus a marker file, committed on top of v1; returns its checksum.
fn commit_v2(d: &Path, repo: &Path, refname: &str) -> String {
    let overlay = d.join("v2/usr/share/cairn");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(overlay.join("boot-test-v2"), "v2\n").unwrap();
    let r = repo_arg(repo);
    ostree_ok([
        r.as_str(),
        "commit",
        "--branch",
        refname,
        "--subject=boot test v2",
        "--add-metadata-string=version=boot-test-v2",
        &format!("--tree=ref={refname}"),
        &format!("--tree=dir={}", d.join("v2").display()),
    ]);
    ostree_ok([r.as_str(), "summary", "-u"]);
    rev_parse(repo, refname)
}

/// The serial log of the three boots: v1, then v2 after the agent's upgrade, then v1 after
/// `cairn rollback`, each with the ostree deployment booted and multi-user reached.
fn assert_booted_v1_v2_v1(serial: &str, v1: &str, v2: &str) {
    let reports: Vec<(String, String, String)> = serial
        .lines()
        .filter_map(|l| l.split("CAIRN-BOOT-TEST: step=").nth(1))
        .map(|rest| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let get = |k: &str| {
                f.iter()
                    .find_map(|x| x.strip_prefix(k))
                    .unwrap_or("")
                    .to_owned()
            };
            (f[0].to_owned(), get("ostree-booted="), get("commit="))
        })
        .collect();
    let expected = vec![
        ("0".to_owned(), "yes".to_owned(), v1.to_owned()),
        ("1".to_owned(), "yes".to_owned(), v2.to_owned()),
        ("2".to_owned(), "yes".to_owned(), v1.to_owned()),
    ];
    assert_eq!(
        reports,
        expected,
        "serial log:\n{}",
        serial
            .lines()
            .filter(|l| l.contains("CAIRN-BOOT-TEST"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        serial.contains("CAIRN-BOOT-TEST: agent released rc=0"),
        "the agent did not release its slot in the v2 boot"
    );
    assert!(
        serial.contains("CAIRN-BOOT-TEST: rollback rc=0"),
        "rollback failed"
    );
    assert!(
        serial.contains("CAIRN-BOOT-TEST: done agent=inactive"),
        "the agent must not run after the rollback"
    );
    let cmdlines: Vec<&str> = serial
        .lines()
        .filter(|l| l.contains("Command line:"))
        .collect();
    assert_eq!(cmdlines.len(), 3, "three boots");
    assert!(
        cmdlines.iter().all(|l| l.contains(" ostree=/ostree/boot.")),
        "{cmdlines:?}"
    );
    assert!(
        serial.contains("Reached target") && serial.contains("Multi-User System"),
        "multi-user not reached"
    );
}

/// The boot-test lines of the serial log: (step, ostree-booted, commit, firmware, secureboot).
fn boot_reports(serial: &str) -> Vec<[String; 5]> {
    serial
        .lines()
        .filter_map(|l| l.split("CAIRN-BOOT-TEST: step=").nth(1))
        .map(|rest| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let get = |k: &str| {
                f.iter()
                    .find_map(|x| x.strip_prefix(k))
                    .unwrap_or("")
                    .to_owned()
            };
            [
                f[0].to_owned(),
                get("ostree-booted="),
                get("commit="),
                get("firmware="),
                get("secureboot="),
            ]
        })
        .collect()
}

/// What GRUB printed as it started each entry (`Booting `TITLE'`), OVMF's console mirrored on
/// the serial port.
fn grub_boots(serial: &str) -> Vec<String> {
    serial
        .split("Booting `")
        .skip(1)
        .map(|rest| rest.split('\'').next().unwrap_or("").to_owned())
        .collect()
}

/// A copy of the pristine image `base` under OVMF: three boots through GRUB from the ESP, each of
/// ostree's default deployment (v1; v2 after `cairn upgrade`; v1 after `cairn rollback`).
fn uefi_upgrade_and_rollback(d: &Path, base: &Path, v1: &str, v2: &str) {
    let t = std::time::Instant::now();
    let img = d.join("uefi.qcow2");
    std::fs::copy(base, &img).unwrap();
    let serial = boot_until_poweroff(
        (&img, Firmware::Uefi),
        &d.join("serial-uefi.log"),
        std::time::Duration::from_secs(40 * 60),
        &mut || {},
    );
    let lines = || {
        serial
            .lines()
            .filter(|l| l.contains("CAIRN-BOOT-TEST") || l.contains("Booting `"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let row = |step: &str, commit: &str| [step, "yes", commit, "uefi", "0"].map(String::from);
    assert_eq!(
        boot_reports(&serial),
        vec![row("0", v1), row("1", v2), row("2", v1)],
        "serial log:\n{}",
        lines()
    );
    assert!(
        serial.contains("CAIRN-BOOT-TEST: upgrade rc=0"),
        "{}",
        lines()
    );
    assert!(
        serial.contains("CAIRN-BOOT-TEST: rollback rc=0"),
        "{}",
        lines()
    );
    assert!(
        serial.contains("CAIRN-BOOT-TEST: done agent=inactive"),
        "{}",
        lines()
    );
    // GRUB started ostree's default entry every time: the first LABEL of loader/syslinux.cfg.
    let grub = grub_boots(&serial);
    assert_eq!(grub.len(), 3, "{grub:?}");
    assert!(grub.iter().all(|t| t.ends_with("(ostree:0)")), "{grub:?}");
    let cmdlines = serial.lines().filter(|l| l.contains("Command line:"));
    assert!(
        cmdlines.clone().count() == 3
            && cmdlines
                .clone()
                .all(|l| l.contains(" ostree=/ostree/boot.")),
        "{:?}",
        cmdlines.collect::<Vec<_>>()
    );
    eprintln!(
        "boot test: UEFI (OVMF) boot, upgrade, reboot, rollback, reboot, poweroff {:.0}s",
        t.elapsed().as_secs_f64()
    );
}

/// `cairn image build --secure-boot` (shim, Debian's signed GRUB) of the ref's commit `v2`,
/// booted once under OVMF with Secure Boot enforced: the kernel reports it, the guest sees the
/// SecureBoot variable set and reaches the boot-test unit with the deployment booted.
fn secure_boot_boots(cairn: &Path, (repo, refname): (&Path, &str), port: u16, d: &Path, v2: &str) {
    let img = d.join("secure-boot.qcow2");
    build_boot_test_image(
        cairn,
        (repo, refname),
        (port, "none"),
        &img,
        &["--secure-boot", "--karg", "cairn.boottest.once"],
    );
    let t = std::time::Instant::now();
    let serial = boot_until_poweroff(
        (&img, Firmware::SecureBoot),
        &d.join("serial-sb.log"),
        std::time::Duration::from_secs(30 * 60),
        &mut || {},
    );
    let row = ["0", "yes", v2, "uefi", "1"].map(String::from);
    assert_eq!(
        boot_reports(&serial),
        vec![row],
        "{}",
        serial_tail(&d.join("serial-sb.log"))
    );
    assert!(
        serial.contains("Secure boot enabled"),
        "the kernel saw no Secure Boot"
    );
    assert_eq!(grub_boots(&serial).len(), 1);
    eprintln!(
        "boot test: Secure Boot (OVMF secboot, shim + signed GRUB) boot to poweroff {:.0}s",
        t.elapsed().as_secs_f64()
    );
}

/// `cairn packer render --profile qemu-disk` from the pristine image `base`, then a real
/// `packer build` under TCG: qcow2 and vhd of the same size, manifest and checksums.
fn packer_build_from(cairn: &Path, d: &Path, base: &Path) {
    let t = std::time::Instant::now();
    let tpl = d.join("packer");
    let out = d.join("packer-out");
    let o = run_with(
        cairn,
        [
            "packer",
            "render",
            "--profile",
            "qemu-disk",
            "--out",
            tpl.to_str().unwrap(),
            "--quiet",
            "--var",
            &format!("base_image={}", base.display()),
            "--var",
            "accelerator=tcg",
            "--var",
            &format!("output_directory={}", out.display()),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let scratch = d.join("packer-run");
    std::fs::create_dir_all(&scratch).unwrap();
    let pb = Command::new("packer")
        .args(["build", "-color=false"])
        .arg(&tpl)
        .current_dir(&scratch)
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .unwrap();
    assert!(
        pb.status.success(),
        "packer build: {}{}",
        stdout(&pb),
        stderr(&pb)
    );
    let q = qemu_img_info(&out.join("cairn-disk.qcow2"));
    assert_eq!(q["format"], "qcow2");
    assert_eq!(
        q["virtual-size"],
        4096 * MIB,
        "Packer must not resize the image"
    );
    let v = vhd_info(&out.join("cairn-disk.vhd"));
    assert_eq!(v["format"], "vpc");
    assert_eq!(v["virtual-size"], 4096 * MIB);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("packer-manifest.json")).unwrap())
            .unwrap();
    assert!(manifest["builds"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "cairn-disk.qcow2"));
    assert!(std::fs::read_to_string(out.join("cairn-disk.sha256"))
        .unwrap()
        .contains("cairn-disk.qcow2"));
    let console =
        String::from_utf8_lossy(&std::fs::read(out.join("console.log")).unwrap()).into_owned();
    assert!(
        console.contains("systemd.unit=poweroff.target"),
        "the boot command reached the menu"
    );
    eprintln!(
        "boot test: packer build (qemu-disk, TCG) {:.0}s",
        t.elapsed().as_secs_f64()
    );
}
