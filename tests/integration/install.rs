//! `cairn install` end to end without a VM: a kickstart rendered from an inventory (by file and
//! by `cairn serve` URL with its one-time token) installed onto a sparse loop-backed disk image,
//! then checked with sgdisk, LVM, blkid, read-only mounts and `ostree admin status`; and the
//! failure paths (bad URL, small disk, unsupported command, a failure mid-install) with their
//! `failed` callbacks and an unbootable disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::metal::*;
use crate::common::repo::{ostree_commit_archive, ostree_ok, repo_arg};
use crate::common::*;

const REF: &str = "cairn/test/x86_64";
const KVER: &str = "6.1.0-cairn-test";
const MAC: &str = "52:54:00:bb:00:01";
const VLAN_MAC: &str = "52:54:00:bb:00:02";
const GPG_MAC: &str = "52:54:00:bb:00:03";

/// A commit shaped like a composed host: kernel + initramfs, /usr/etc with passwd and shadow,
/// /root -> var/roothome (what cairn compose makes). Archive repo, summary updated.
fn make_commit(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    let kdir = tree.join("usr/lib/modules").join(KVER);
    std::fs::create_dir_all(&kdir).unwrap();
    std::fs::create_dir_all(tree.join("usr/etc")).unwrap();
    std::fs::write(kdir.join("vmlinuz"), b"not really a kernel\n").unwrap();
    std::fs::write(kdir.join("initramfs.img"), b"not really an initramfs\n").unwrap();
    std::fs::write(tree.join("usr/lib/os-release"), "NAME=Cairn\nID=cairn\n").unwrap();
    std::fs::write(tree.join("usr/etc/hostname"), "localhost\n").unwrap();
    std::fs::write(
        tree.join("usr/etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(tree.join("usr/etc/shadow"), "root:*:19000:0:99999:7:::\n").unwrap();
    std::os::unix::fs::symlink("var/roothome", tree.join("root")).unwrap();
    let repo = dir.join("repo");
    let flags = ["--owner-uid=0", "--owner-gid=0", "--subject=v1"];
    ostree_commit_archive(&repo, REF, &tree, &flags);
    ostree_ok([repo_arg(&repo).as_str(), "summary", "-u"]);
    repo
}

/// Hosts: static addressing on the default xfs LVM layout, and one on a VLAN with ext4.
fn inventory_text() -> String {
    format!(
        "api-version: cairn/v1\n\
defaults:\n  domain: lab.example.com\n  timezone: Europe/Paris\n  root-password: \"{HASH}\"\n  ssh-keys: [\"{KEY}\"]\n\
\x20 kernel-args: [console=tty0, \"console=ttyS0,115200n8\", quiet]\n  sysctl-presets: [hardening, kubernetes-node]\n\
\x20 disk: {{ device: vda, fstype: xfs, vg: cairn, boot-size: 300MiB, root-size: 600MiB, var-size: grow }}\n\
\x20 ostree: {{ osname: cairn, remote: cairn, ref: {REF}, gpg: false }}\n\
hosts:\n\
\x20 - hostname: web1\n    mac: \"{MAC}\"\n    network: {{ ip: 10.0.0.21/24, gateway: 10.0.0.1, dns: [10.0.0.53] }}\n\
\x20 - hostname: edge1\n    mac: \"{VLAN_MAC}\"\n    disk: {{ fstype: ext4, root-size: 200MiB, boot-size: 200MiB }}\n\
\x20   network: {{ ip: 198.51.100.12, netmask: 255.255.255.0, gateway: 198.51.100.1, vlan: 120, mtu: 9000 }}\n\
\x20 - hostname: sec1\n    mac: \"{GPG_MAC}\"\n    disk: {{ fstype: ext4, root-size: 200MiB, boot-size: 200MiB }}\n    ostree: {{ gpg: true }}\n"
    )
}

struct Lab {
    dir: tempfile::TempDir,
    repo: PathBuf,
    serve: Server,
    events: PathBuf,
}

impl Lab {
    fn new() -> Option<Lab> {
        if !rustix::process::geteuid().is_root() {
            skip("cairn install needs root (loop devices, mounts)");
            return None;
        }
        let dir = tempdir();
        let repo = make_commit(dir.path());
        let inv = write(dir.path(), "inv.yaml", &inventory_text());
        let events = dir.path().join("events.jsonl");
        let serve = Server::start(
            dir.path(),
            &[
                "-i",
                inv.to_str().unwrap(),
                "--repo",
                repo.to_str().unwrap(),
                "--tokens",
                "--log",
                events.to_str().unwrap(),
            ],
        );
        Some(Lab {
            dir,
            repo,
            serve,
            events,
        })
    }

    /// `cairn kickstart render` for the server's URL; returns the host's kickstart file.
    fn render(&self, mac: &str) -> PathBuf {
        let out = self.dir.path().join("rendered");
        let inv = self.dir.path().join("inv.yaml");
        cairn_ok([
            "kickstart",
            "render",
            "-i",
            inv.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--server-url",
            &self.serve.url,
        ]);
        out.join("ks").join(mac)
    }

    fn disk(&self, name: &str, mib: u64) -> PathBuf {
        let p = self.dir.path().join(name);
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(mib << 20).unwrap();
        p
    }

    fn token(&self, mac: &str) -> String {
        let (_, body) = self.serve.get(&format!("/pxelinux/{mac}"));
        body.split("?token=")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .unwrap()
            .to_owned()
    }

    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        make_removable(self.dir.path());
    }
}

/// Loop devices and mounts of a test, released on drop.
#[derive(Default)]
struct Attached {
    loops: Vec<String>,
    mounts: Vec<PathBuf>,
}

impl Attached {
    fn lo(&mut self, disk: &Path, offset: u64, size: u64) -> String {
        let dev = ok(Command::new("losetup")
            .args(["-f", "--show", "-r"])
            .arg(format!("--offset={offset}"))
            .arg(format!("--sizelimit={size}"))
            .arg(disk))
        .trim()
        .to_owned();
        self.loops.push(dev.clone());
        dev
    }

    fn mount(&mut self, dev: &str, at: &Path) {
        std::fs::create_dir_all(at).unwrap();
        ok(Command::new("mount").args(["-o", "ro"]).arg(dev).arg(at));
        self.mounts.push(at.to_path_buf());
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let st = Command::new("umount").arg(m).output();
            if !st.is_ok_and(|o| o.status.success()) {
                // Busy for a moment after the last reader exits: detach it now, freed when idle.
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
        for l in self.loops.iter().rev() {
            let _ = Command::new("losetup").arg("-d").arg(l).status();
        }
    }
}

/// (start sector, end sector, type code) per partition, from `sgdisk -p`.
fn gpt(disk: &Path) -> Vec<(u64, u64, String)> {
    let out = ok(Command::new("sgdisk").arg("-p").arg(disk));
    out.lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[5].to_owned(),
            )
        })
        .collect()
}

/// The LV's byte range on its PV, read back with LVM itself (metadata only, no device-mapper).
fn lv_range(pv: &str, lv: &str) -> (u64, u64) {
    let cfg = format!("devices {{ filter = [ \"a|^{pv}$|\", \"r|.*|\" ] use_devicesfile = 0 }} global {{ activation = 0 }}");
    let lvm = |args: &[&str]| {
        ok(Command::new("lvm")
            .arg(args[0])
            .arg("--config")
            .arg(&cfg)
            .args(&args[1..])
            .env("LVM_SUPPRESS_FD_WARNINGS", "1"))
    };
    let pe_start: u64 = lvm(&[
        "pvs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "pe_start",
        pv,
    ])
    .trim()
    .parse()
    .unwrap();
    let ext: u64 = lvm(&[
        "vgs",
        "--noheadings",
        "--units",
        "b",
        "--nosuffix",
        "-o",
        "vg_extent_size",
    ])
    .trim()
    .parse()
    .unwrap();
    let ranges = lvm(&["lvs", "--noheadings", "-o", "lv_name,seg_pe_ranges"]);
    let line = ranges
        .lines()
        .find(|l| l.split_whitespace().next() == Some(lv))
        .unwrap_or_else(|| panic!("no LV {lv}: {ranges}"));
    let (a, b) = line
        .rsplit_once(':')
        .unwrap()
        .1
        .trim()
        .split_once('-')
        .unwrap();
    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
    (pe_start + a * ext, (b - a + 1) * ext)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn blkid(dev: &str, tag: &str) -> String {
    ok(Command::new("blkid").args(["-o", "value", "-s", tag, dev]))
        .trim()
        .to_owned()
}

/// The host's configuration inside the deployment (and root's keys on the /var volume).
fn check_host_config(dep: &Path, var: &Path, uuid: &dyn Fn(&str) -> String) {
    let fstab = read(&dep.join("etc/fstab"));
    for (m, fs) in [
        ("/", "xfs"),
        ("/boot", "ext4"),
        ("/var", "xfs"),
        ("/boot/efi", "vfat"),
    ] {
        assert!(
            fstab.contains(&format!("UUID={} {m} {fs} ", uuid(m))),
            "{m}: {fstab}"
        );
    }
    assert_eq!(read(&dep.join("etc/hostname")), "web1.lab.example.com\n");
    let net: String = std::fs::read_dir(dep.join("etc/systemd/network"))
        .unwrap()
        .flatten()
        .map(|e| read(&e.path()))
        .collect();
    assert!(net.contains(&format!("MACAddress={MAC}")), "{net}");
    assert!(
        net.contains("Address=10.0.0.21/24\nGateway=10.0.0.1\nDNS=10.0.0.53\n"),
        "{net}"
    );
    assert!(read(&dep.join("etc/sysctl.d/60-cairn-hardening.conf"))
        .contains("kernel.kptr_restrict = 2"));
    assert!(dep
        .join("etc/sysctl.d/60-cairn-kubernetes-node.conf")
        .exists());
    assert!(
        read(&dep.join("etc/modules-load.d/cairn-kubernetes-node.conf")).contains("br_netfilter")
    );
    assert!(read(&dep.join("etc/shadow")).starts_with(&format!("root:{HASH}:")));
    assert_eq!(
        std::fs::read_link(dep.join("etc/localtime")).unwrap(),
        Path::new("../usr/share/zoneinfo/Europe/Paris")
    );
    assert_eq!(
        read(&var.join("roothome/.ssh/authorized_keys")),
        format!("{KEY}\n")
    );
}

/// UEFI beside BIOS: GRUB at the fallback path, and its configuration finds /boot by UUID and
/// follows ostree's syslinux menu (mtools reads the FAT filesystem without a mount).
fn check_esp(esp: &str, boot_uuid: &str) {
    let listing = ok(Command::new("mdir").env("MTOOLS_SKIP_CHECK", "1").args([
        "-i",
        esp,
        "-b",
        "::/EFI/BOOT",
    ]));
    assert!(listing.contains("BOOTX64.EFI"), "{listing}");
    let cfg = ok(Command::new("mtype").env("MTOOLS_SKIP_CHECK", "1").args([
        "-i",
        esp,
        "::/EFI/BOOT/grub.cfg",
    ]));
    assert!(cfg.contains(boot_uuid), "{cfg}");
    assert!(cfg.contains("loader/syslinux.cfg"), "{cfg}");
}

/// GPT: BIOS boot, ESP, /boot, LVM PV; MiB-aligned; /boot legacy-bootable; gptmbr.bin.
fn check_gpt(disk: &Path) -> Vec<(u64, u64, String)> {
    let parts = gpt(disk);
    let codes: Vec<&str> = parts.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(codes, ["EF02", "EF00", "8300", "8E00"]);
    assert!(
        parts
            .iter()
            .all(|p| p.0 % 2048 == 0 && (p.1 + 1) % 2048 == 0),
        "{parts:?}"
    );
    assert!(ok(Command::new("sgdisk").args(["-i", "3"]).arg(disk))
        .contains("Attribute flags: 0000000000000004"));
    let mbr = std::fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").unwrap();
    assert_eq!(
        &std::fs::read(disk).unwrap()[..440],
        &mbr[..440],
        "boot code"
    );

    parts
}

#[test]
fn installs_a_rendered_kickstart_file_onto_a_disk_image() {
    let Some(lab) = Lab::new() else { return };
    let ks = lab.render(MAC);
    let disk = lab.disk("disk.img", 3072);
    let o = cairn_ok([
        "install",
        "--json",
        "--kickstart",
        ks.to_str().unwrap(),
        disk.to_str().unwrap(),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&doc["apiVersion"], &doc["kind"]),
        (&"cairn/v1".into(), &"InstallResult".into())
    );
    assert_eq!(doc["built"]["status"], 200, "{doc}");
    let uuid = |m: &str| doc["uuids"][m].as_str().unwrap().to_owned();

    let parts = check_gpt(&disk);
    let range = |i: usize| (parts[i].0 * 512, (parts[i].1 + 1 - parts[i].0) * 512);
    let mut at = Attached::default();
    let esp = at.lo(&disk, range(1).0, range(1).1);
    assert_eq!(blkid(&esp, "TYPE"), "vfat");
    assert_eq!(blkid(&esp, "UUID"), uuid("/boot/efi"));
    check_esp(&esp, &uuid("/boot"));
    let boot = at.lo(&disk, range(2).0, range(2).1);
    assert_eq!(
        (blkid(&boot, "TYPE"), blkid(&boot, "UUID")),
        ("ext4".to_owned(), uuid("/boot")),
        "/boot is ext4 whatever --fstype says: syslinux"
    );
    let pv = at.lo(&disk, range(3).0, range(3).1);
    assert_eq!(blkid(&pv, "TYPE"), "LVM2_member");
    let (root_off, root_len) = lv_range(&pv, "root");
    let (var_off, var_len) = lv_range(&pv, "var");
    assert_eq!(root_len, 600 << 20);
    let root_dev = at.lo(&disk, range(3).0 + root_off, root_len);
    let var_dev = at.lo(&disk, range(3).0 + var_off, var_len);
    assert_eq!(
        (blkid(&root_dev, "TYPE"), blkid(&root_dev, "UUID")),
        ("xfs".to_owned(), uuid("/"))
    );
    assert_eq!(blkid(&var_dev, "UUID"), uuid("/var"));

    let mnt = lab.dir.path().join("mnt");
    at.mount(&root_dev, &mnt);
    at.mount(&boot, &mnt.join("boot"));
    let var = lab.dir.path().join("mnt-var");
    at.mount(&var_dev, &var);

    // The deployment, as ostree itself sees it.
    let status = ok(Command::new("ostree")
        .arg("admin")
        .arg("status")
        .arg(format!("--sysroot={}", mnt.display())));
    let commit = doc["commit"].as_str().unwrap();
    assert!(status.contains(&format!("cairn {commit}.0")), "{status}");
    assert!(
        status.contains(&format!("origin refspec: cairn:{REF}")),
        "{status}"
    );
    // BLS entry and syslinux config carry root=, the LVM hint and the kickstart's --append.
    let entries: Vec<_> = std::fs::read_dir(mnt.join("boot/loader/entries"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1);
    let bls = read(&entries[0].path());
    let opts = bls.lines().find(|l| l.starts_with("options ")).unwrap();
    for k in [
        format!("root=UUID={}", uuid("/")),
        "rd.lvm.lv=cairn/root".into(),
        "console=ttyS0,115200n8".into(),
        "quiet".into(),
    ] {
        assert!(opts.split_whitespace().any(|a| a == k), "{k} not in {opts}");
    }
    let syslinux = read(&mnt.join("boot/syslinux/syslinux.cfg"));
    assert!(
        syslinux.contains(&format!("root=UUID={}", uuid("/"))),
        "{syslinux}"
    );
    assert!(mnt.join("boot/syslinux/ldlinux.sys").exists());
    assert!(
        syslinux.contains("\nTIMEOUT 10\n"),
        "bootloader --timeout=1: {syslinux}"
    );

    check_host_config(&mnt.join(doc["deployment"].as_str().unwrap()), &var, &uuid);
    // The remote upgrades follow, as the kickstart's %post set it.
    let config = read(&mnt.join("ostree/repo/config"));
    assert!(
        config.contains(&format!("[remote \"cairn\"]\nurl={}/repo/", lab.serve.url)),
        "{config}"
    );
    assert!(config.contains("gpg-verify=false"), "{config}");
    drop(at);

    let ev = lab.events();
    assert!(
        ev.iter().any(|e| e["event"] == "built" && e["mac"] == MAC),
        "{ev:?}"
    );
}

#[test]
fn installs_by_url_with_a_one_time_token_onto_a_block_device() {
    let Some(lab) = Lab::new() else { return };
    let disk = lab.disk("disk.img", 2048);
    // TARGET a block device this time: the whole image as a loop device (without udev its
    // partition nodes never appear, so the installer must fall back to ranges of it).
    let mut whole = Attached::default();
    let dev = ok(Command::new("losetup").args(["-f", "--show"]).arg(&disk))
        .trim()
        .to_owned();
    whole.loops.push(dev.clone());
    let url = format!(
        "{}/ks/{VLAN_MAC}?token={}",
        lab.serve.url,
        lab.token(VLAN_MAC)
    );
    let doc = cairn_json(["install", "--json", "--kickstart", &url, &dev]);
    drop(whole);
    assert!(
        !doc["kickstart"].as_str().unwrap().contains("token="),
        "the token is not echoed: {doc}"
    );
    assert_eq!(doc["built"]["status"], 200);
    let ev = lab.events();
    assert!(
        ev.iter()
            .any(|e| e["event"] == "built" && e["mac"] == VLAN_MAC),
        "{ev:?}"
    );
    let (code, body) = curl(&[&url]);
    assert_eq!((code, body.trim()), (401, "build token already used"));

    // ext4 this time: read the deployment with debugfs, no mount.
    let parts = gpt(&disk);
    let mut at = Attached::default();
    let pv = at.lo(&disk, parts[3].0 * 512, (parts[3].1 + 1 - parts[3].0) * 512);
    let (off, _) = lv_range(&pv, "root");
    let root = parts[3].0 * 512 + off;
    let dep = doc["deployment"].as_str().unwrap();
    let cat = |p: &str| crate::common::image::debugfs(&disk, root, &format!("cat /{dep}/{p}"));
    let net =
        crate::common::image::debugfs(&disk, root, &format!("ls -l /{dep}/etc/systemd/network"));
    assert!(net.contains("vlan120.netdev"), "{net}");
    let vlan: String = [
        "10-cairn-0-525400bb0002-vlan120.netdev",
        "19-cairn-0-525400bb0002.network",
    ]
    .iter()
    .map(|f| cat(&format!("etc/systemd/network/{f}")))
    .collect();
    assert!(
        vlan.contains("Kind=vlan\nMTUBytes=9000\n\n[VLAN]\nId=120"),
        "{vlan}"
    );
    assert!(
        vlan.contains("[Match]\nName=vlan120\n\n[Network]\nAddress=198.51.100.12/24"),
        "{vlan}"
    );
    assert_eq!(cat("etc/hostname"), "edge1.lab.example.com\n");
}

#[test]
fn gpg_verified_ostreesetup_needs_the_key_and_keeps_it_for_upgrades() {
    let Some(lab) = Lab::new() else { return };
    let (home, key) = crate::common::repo::gpg_key(lab.dir.path());
    ostree_ok([
        repo_arg(&lab.repo).as_str(),
        "gpg-sign",
        &format!("--gpg-homedir={}", home.display()),
        REF,
        &key,
    ]);
    let pubkey = lab.dir.path().join("cairn.gpg");
    crate::common::repo::gpg_export(&home, &key, &pubkey);
    let ks = lab.render(GPG_MAC);
    assert!(
        !read(&ks).contains("--nogpg"),
        "the host verifies signatures"
    );

    // Without the key libostree refuses the pull; the disk is zapped and serve hears of it.
    let disk = lab.disk("disk.img", 2048);
    let o = cairn()
        .args(["install", "--kickstart", ks.to_str().unwrap()])
        .arg(&disk)
        .output()
        .unwrap();
    assert_failed(
        &lab,
        &o,
        &disk,
        &[
            "pulling `cairn/test/x86_64` from remote cairn",
            "public key not found",
        ],
    );

    let doc = cairn_json([
        "install",
        "--json",
        "--kickstart",
        ks.to_str().unwrap(),
        "--gpg-key",
        pubkey.to_str().unwrap(),
        disk.to_str().unwrap(),
    ]);
    assert_eq!(doc["built"]["status"], 200);
    // The remote %post re-added verifies signatures and still has the key for upgrades.
    let parts = gpt(&disk);
    let mut at = Attached::default();
    let pv = at.lo(&disk, parts[3].0 * 512, (parts[3].1 + 1 - parts[3].0) * 512);
    let root = parts[3].0 * 512 + lv_range(&pv, "root").0;
    let config = crate::common::image::debugfs(&disk, root, "cat /ostree/repo/config");
    assert!(
        config.contains("[remote \"cairn\"]") && config.contains("gpg-verify=true"),
        "{config}"
    );
    let repo_dir = crate::common::image::debugfs(&disk, root, "ls /ostree/repo");
    assert!(repo_dir.contains("cairn.trustedkeys.gpg"), "{repo_dir}");
}

/// A failed install exits non-zero, reports to serve with its log, and leaves no GPT and no boot code.
fn assert_failed(lab: &Lab, o: &std::process::Output, disk: &Path, says: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "{err}");
    for s in says {
        assert!(err.contains(s), "stderr lacks {s:?}: {err}");
    }
    let ev = lab.events();
    let last = ev.last().unwrap_or_else(|| panic!("no event: {err}"));
    assert_eq!(last["event"], "failed", "{ev:?}");
    let log = last["log"].as_str().unwrap_or_default();
    assert!(
        log.contains(says[0]),
        "the failed report carries the log tail: {log}"
    );
    let bytes = std::fs::read(disk).unwrap();
    assert!(
        bytes[..1 << 20].iter().all(|&b| b == 0),
        "boot code or GPT left on the disk"
    );
    let p = Command::new("sgdisk").arg("-p").arg(disk).output().unwrap();
    let text = stdout(&p);
    // sgdisk makes up an empty table in memory when the disk holds none.
    assert!(
        text.contains("Creating new GPT entries in memory"),
        "a GPT is left: {text}"
    );
    assert!(gpt(disk).is_empty(), "partitions left: {text}");
}

#[test]
fn failures_report_to_serve_and_leave_no_bootable_disk() {
    let Some(lab) = Lab::new() else { return };
    let ks = lab.render(MAC);
    let run = |ks: &str, disk: &Path, env: Option<(&str, &str)>| {
        let mut c = cairn();
        c.args(["install", "--kickstart", ks]).arg(disk);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        c.output().unwrap()
    };

    // An unsupported command: refused by name and line before the disk is touched.
    let mut text = read(&ks);
    let n = text.lines().position(|l| l.starts_with("zerombr")).unwrap() + 1;
    text = text.replacen("zerombr\n", "zerombr\nfirewall --enabled\n", 1);
    let bad = write(lab.dir.path(), "bad.cfg", &text);
    let disk = lab.disk("a.img", 3072);
    let o = run(bad.to_str().unwrap(), &disk, None);
    assert_failed(
        &lab,
        &o,
        &disk,
        &[
            "`firewall` is not supported",
            &format!("bad.cfg:{}:", n + 1),
        ],
    );

    // A disk too small: the size needed is named.
    let small = lab.disk("small.img", 1024);
    let o = run(ks.to_str().unwrap(), &small, None);
    // 1 MiB lead-in + BIOS boot 1 + ESP 256 + /boot 300 + PV (1 + / 600 + /var xfs minimum 300) + 1.
    assert_failed(&lab, &o, &small, &["too small", "needs at least 1460 MiB"]);

    // The kickstart URL refused (a wrong token): serve's failed URL is derived from it.
    let o = run(
        &format!("{}/ks/{MAC}?token=0000", lab.serve.url),
        &disk,
        None,
    );
    assert_failed(&lab, &o, &disk, &["HTTP 401", "wrong build token"]);
    // Nothing listening: a clear error, nobody to report to.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = run(&format!("http://127.0.0.1:{port}/ks/{MAC}"), &disk, None);
    assert!(
        !o.status.success() && stderr(&o).contains("connecting to 127.0.0.1"),
        "{}",
        stderr(&o)
    );

    // A failure after partitioning, filesystems and deployment: the disk is zapped.
    let o = run(
        ks.to_str().unwrap(),
        &disk,
        Some(("CAIRN_FAILPOINT", "install-before-bootloader=error")),
    );
    assert_failed(
        &lab,
        &o,
        &disk,
        &["failpoint install-before-bootloader triggered"],
    );
    assert!(
        !stderr(&o).contains("losetup: "),
        "loops released: {}",
        stderr(&o)
    );
}

/// Opt-in (`CAIRN_BOOT_TEST=1`, QEMU TCG): the installed disk's BIOS path works end to end up to
/// the kernel: SeaBIOS runs gptmbr.bin, which chains to extlinux on the legacy-bootable /boot
/// (installed through a loop device, hidden sectors patched), whose menu is ostree's
/// syslinux.cfg; syslinux then loads the deployment's kernel and initramfs (the fixture's are
/// not real, so the boot stops there). The full PXE → install → reboot path is the lead's test.
#[test]
fn installed_disk_boots_into_syslinux_and_loads_the_kernel() {
    if std::env::var("CAIRN_BOOT_TEST").as_deref() != Ok("1") {
        eprintln!("\n*** SKIP: the QEMU check of an installed disk needs CAIRN_BOOT_TEST=1\n");
        record_skip("install boot check: opt-in, needs CAIRN_BOOT_TEST=1");
        return;
    }
    let Some(lab) = Lab::new() else { return };
    let disk = lab.disk("disk.img", 2048);
    let ks = lab.render(VLAN_MAC);
    cairn_ok([
        "install",
        "--kickstart",
        ks.to_str().unwrap(),
        disk.to_str().unwrap(),
    ]);
    let serial = lab.dir.path().join("serial.log");
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-m", "256", "-display", "none", "-no-reboot"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", disk.display()))
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .spawn()
        .expect("qemu-system-x86_64 (scripts/setup.sh installs it)");
    // The kickstart's `quiet` silences syslinux's "Loading ..." lines; a kernel it found and
    // loaded but cannot run (the fixture's is text) ends in this line, a missing one in "Could
    // not find kernel image".
    let want = "Booting kernel failed: Invalid argument";
    let mut seen = String::new();
    for _ in 0..240 {
        seen = String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
        if seen.contains(want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let _ = qemu.kill();
    let _ = qemu.wait();
    assert!(seen.contains("SYSLINUX"), "extlinux never started: {seen}");
    assert!(
        seen.contains("cairn (ostree:0)"),
        "not ostree's menu: {seen}"
    );
    assert!(!seen.contains("Could not find kernel"), "{seen}");
    assert!(
        seen.contains(want),
        "syslinux never loaded the deployment's kernel: {seen}"
    );
}
