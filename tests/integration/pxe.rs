//! The PXE installer: `cairn image build --format pxe` from a commit with a kernel and modules,
//! its initramfs unpacked with GNU cpio and run with chroot (self-contained: the binaries start
//! with only what the archive holds), and `cairn serve` handing kernel, initrd and the kickstart
//! URL with its one-time token to iPXE. The QEMU proof is in `boot` (CAIRN_BOOT_TEST=1).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::metal::{curl, Server, HASH, KEY};
use crate::common::repo::ostree_commit_archive;
use crate::common::{ok, stderr, tempdir};

mod boot;

const KVER: &str = "6.1.0-cairn-pxe";
const KERNEL: &[u8] = b"the commit's own kernel\n";

/// (module path below usr/lib/modules/KVER, its modules.dep line's dependencies).
const MODULES: &[(&str, &[&str])] = &[
    ("kernel/drivers/virtio/virtio.ko", &[]),
    (
        "kernel/drivers/virtio/virtio_ring.ko",
        &["kernel/drivers/virtio/virtio.ko"],
    ),
    (
        "kernel/drivers/virtio/virtio_pci.ko",
        &[
            "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
            "kernel/drivers/virtio/virtio_ring.ko",
            "kernel/drivers/virtio/virtio.ko",
        ],
    ),
    ("kernel/drivers/virtio/virtio_pci_modern_dev.ko", &[]),
    (
        "kernel/drivers/block/virtio_blk.ko",
        &[
            "kernel/drivers/virtio/virtio_ring.ko",
            "kernel/drivers/virtio/virtio.ko",
        ],
    ),
    (
        "kernel/drivers/net/virtio_net.ko",
        &[
            "kernel/drivers/net/net_failover.ko",
            "kernel/net/core/failover.ko",
            "kernel/drivers/virtio/virtio_ring.ko",
            "kernel/drivers/virtio/virtio.ko",
        ],
    ),
    (
        "kernel/drivers/net/net_failover.ko",
        &["kernel/net/core/failover.ko"],
    ),
    ("kernel/net/core/failover.ko", &[]),
    ("kernel/fs/xfs/xfs.ko", &["kernel/lib/libcrc32c.ko"]),
    ("kernel/lib/libcrc32c.ko", &[]),
    // Not wanted by the installer: must stay out.
    ("kernel/sound/core/snd.ko", &[]),
];

/// An archive repo with one commit holding a kernel, a few modules with a `modules.dep` and a
/// `modules.builtin`, as depmod writes them.
fn make_kernel_commit(dir: &Path) -> (PathBuf, String) {
    let tree = dir.join("tree");
    let kdir = tree.join("usr/lib/modules").join(KVER);
    std::fs::create_dir_all(&kdir).unwrap();
    std::fs::write(kdir.join("vmlinuz"), KERNEL).unwrap();
    let mut dep = String::new();
    for (m, deps) in MODULES {
        let p = kdir.join(m);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("module {m}\n")).unwrap();
        dep.push_str(&format!("{m}: {}\n", deps.join(" ")));
    }
    std::fs::write(kdir.join("modules.dep"), dep).unwrap();
    std::fs::write(
        kdir.join("modules.builtin"),
        "kernel/drivers/scsi/sd_mod.ko\nkernel/fs/ext4/ext4.ko\n",
    )
    .unwrap();
    let repo = dir.join("repo");
    ostree_commit_archive(&repo, "cairn/pxe/x86_64", &tree, &[]);
    (repo, "cairn/pxe/x86_64".to_owned())
}

/// `cairn image build --format pxe --json`; returns the report.
pub(crate) fn build_pxe(cairn: &Path, repo: &Path, rev: &str, out: &Path) -> serde_json::Value {
    let o = Command::new(cairn)
        .args([
            "image", "build", "--format", "pxe", "--json", "--quiet", "--repo",
        ])
        .arg(repo)
        .args(["--ref", rev, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "image build --format pxe: {}",
        stderr(&o)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // cli::every_json_command_prints_one_envelope cannot afford a build: checked here.
    assert_eq!(report["apiVersion"], "cairn/v1");
    assert_eq!(report["kind"], "PxeBuildResult");
    report
}

/// What building and checking the initramfs needs beyond the image tests' tools.
pub(crate) fn have_pxe_tools() -> bool {
    [
        (
            "cpio",
            "GNU cpio unpacks the initramfs (scripts/setup.sh installs cpio)",
        ),
        (
            "busybox",
            "the installer's shell and DHCP client (scripts/setup.sh installs busybox)",
        ),
        (
            "mkfs.xfs",
            "an install tool (scripts/setup.sh installs xfsprogs)",
        ),
        ("lvm", "an install tool (scripts/setup.sh installs lvm2)"),
        ("objcopy", "strips cairn's debug info (binutils)"),
    ]
    .iter()
    .all(|(t, why)| crate::common::have_tool(t, why))
}

/// GNU cpio (not cairn's writer) unpacks the gzip'd initramfs into `root`.
fn unpack(initrd: &Path, root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let cmd = format!(
        "gzip -dc '{}' | cpio -idm --quiet --no-absolute-filenames",
        initrd.display()
    );
    ok(Command::new("sh").arg("-c").arg(cmd).current_dir(root));
}

fn chroot(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chroot")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn pxe_initramfs_is_self_contained_and_loads_the_modules_in_dependency_order() {
    if !have_pxe_tools() {
        return;
    }
    let dir = tempdir();
    let (repo, rev) = make_kernel_commit(dir.path());
    let out = dir.path().join("pxe");
    let report = build_pxe(Path::new(env!("CARGO_BIN_EXE_cairn")), &repo, &rev, &out);
    assert_eq!(report["kernelVersion"], KVER);
    assert_eq!(std::fs::read(out.join("vmlinuz")).unwrap(), KERNEL);

    let root = dir.path().join("root");
    unpack(&out.join("initrd.img"), &root);
    for f in ["init", "usr/bin/cairn", "usr/share/udhcpc/default.script"] {
        assert!(root.join(f).is_file(), "{f} missing");
    }
    // Self-contained: these run with nothing but the archive's files (loader, libraries).
    let o = chroot(&root, &["/usr/bin/cairn", "--version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("cairn "));
    for cmd in [
        &["/sbin/sgdisk", "--version"][..],
        &["/sbin/mkfs.xfs", "-V"],
        &["/sbin/mke2fs", "-V"],
        &["/sbin/lvm", "version"],
        &["/usr/bin/partx", "--version"],
        &["/usr/bin/curl", "--version"],
        &["/bin/mount", "--version"],
        &["/sbin/losetup", "--version"],
        &["/bin/extlinux", "--version"],
    ] {
        let o = chroot(&root, cmd);
        // lvm reports the kernel's missing device-mapper but has printed its own version first.
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert!(
            o.status.success() || text.contains("LVM version"),
            "{cmd:?}: {text}"
        );
        assert!(
            !text.contains("error while loading shared libraries"),
            "{cmd:?}: {text}"
        );
    }
    // Every tool cairn install runs is on the installer's PATH, and busybox provides the rest
    // of /init's commands; no symlink in the archive dangles.
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    // Exactly what cairn install runs, plus /init's curl.
    let mut expected: Vec<&str> = cairn_install::TOOLS.to_vec();
    expected.push("curl");
    assert_eq!(tools, expected);
    for f in cairn_install::FILES {
        assert!(root.join(f.trim_start_matches('/')).exists(), "{f} missing");
    }
    // The UEFI loader is built inside the installer: grub-mkstandalone finds its modules there.
    let o = chroot(
        &root,
        &[
            "/usr/bin/grub-mkstandalone",
            "-O",
            "x86_64-efi",
            "--locales=",
            "--themes=",
            "--fonts=",
            "--modules=part_gpt ext2",
            "-o",
            "/grub.efi",
        ],
    );
    assert!(o.status.success(), "grub-mkstandalone: {}", stderr(&o));
    assert!(std::fs::metadata(root.join("grub.efi")).unwrap().len() > 100_000);
    // ... and goes onto a FAT filesystem with mtools, in /init's bare environment (no locale):
    // the PXE boot test once failed here on a missing code-page converter.
    let o = chroot(
        &root,
        &["/usr/bin/env", "-i", "MTOOLS_SKIP_CHECK=1", "/bin/sh", "-c",
          "mkfs.vfat -C /esp.img 4096 >/dev/null && mkdir -p /esp/EFI/BOOT && cp /grub.efi /esp/EFI/BOOT/BOOTX64.EFI \
           && mcopy -s -o -i /esp.img /esp/EFI ::/ && mcopy -n -i /esp.img ::/EFI/BOOT/BOOTX64.EFI /back.efi && cmp /grub.efi /back.efi"],
    );
    assert!(
        o.status.success(),
        "mtools in the installer: {}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    let script = format!(
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin; for c in {} sh udhcpc curl insmod ip ifconfig route setsid cttyhack tee reboot poweroff; do command -v $c >/dev/null || echo \"missing $c\"; done; \
         for f in $(find / -xdev -type l); do [ -e \"$f\" ] || echo \"dangling $f\"; done; sh -n /init || echo 'init: syntax'",
        tools.join(" ")
    );
    let o = chroot(&root, &["/bin/sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "", "{}", stderr(&o));

    modules_follow_modules_dep(&root, &report);
}

/// The wanted modules and their whole dependency closure are in the archive and `/init` loads
/// them dependencies first; built-in and absent ones are told apart; unwanted ones stay out.
fn modules_follow_modules_dep(root: &Path, report: &serde_json::Value) {
    let kdir = root.join("usr/lib/modules").join(KVER);
    let order = std::fs::read_to_string(root.join("etc/cairn-installer/modules")).unwrap();
    let order: Vec<&str> = order.lines().collect();
    let listed: Vec<&str> = report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(order, listed);
    let wanted: Vec<&str> = MODULES
        .iter()
        .map(|(m, _)| *m)
        .filter(|m| !m.contains("snd"))
        .collect();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    let mut expected = wanted.clone();
    expected.sort_unstable();
    assert_eq!(
        sorted, expected,
        "the wanted modules and their dependencies"
    );
    for (m, deps) in MODULES {
        if m.contains("snd") {
            assert!(!kdir.join(m).exists(), "unwanted module packed");
            continue;
        }
        assert_eq!(
            std::fs::read_to_string(kdir.join(m)).unwrap(),
            format!("module {m}\n")
        );
        let at = order.iter().position(|x| x == m).unwrap();
        for d in *deps {
            let dat = order.iter().position(|x| x == d).unwrap();
            assert!(dat < at, "{d} must load before {m}: {order:?}");
        }
    }
    let builtin = report["modulesBuiltin"].to_string();
    assert!(
        builtin.contains("sd_mod") && builtin.contains("ext4"),
        "{builtin}"
    );
    let absent = report["modulesAbsent"].to_string();
    assert!(
        absent.contains("nvme") && !absent.contains("virtio_net"),
        "{absent}"
    );
}

/// A one-host inventory for the served tests: `vda`, the PXE files where `--format pxe --out
/// FILES/images/pxeboot` put them, a serial console.
pub(crate) fn pxe_inventory(mac: &str, extra_host: &str, repo_url: Option<&str>) -> String {
    let url = repo_url.map_or(String::new(), |u| format!(", url: \"{u}\""));
    format!(
        "api-version: cairn/v1\n\
         defaults:\n  root-password: \"{HASH}\"\n  ssh-keys: [\"{KEY}\"]\n  timezone: UTC\n  \
         disk: {{ device: vda, fstype: ext4, boot-size: 512MiB, root-size: 3GiB, var-size: grow }}\n  \
         ostree: {{ osname: cairn, remote: cairn, ref: cairn/pxe/x86_64, gpg: false{url} }}\n  \
         pxe: {{ kernel: images/pxeboot/vmlinuz, initrd: images/pxeboot/initrd.img, append: \"console=ttyS0,115200n8\" }}\n\
         hosts:\n  - hostname: pxe-1\n    mac: \"{mac}\"\n{extra_host}"
    )
}

/// `GET /ipxe?mac=` and pick out the kernel URL, the initrd URL and the `inst.ks=` URL.
pub(crate) fn ipxe_urls(server: &Server, mac: &str) -> (String, String, String, String) {
    let (code, script) = server.get(&format!("/ipxe?mac={mac}"));
    assert_eq!(code, 200, "{script}");
    let kernel_line = script
        .lines()
        .find(|l| l.starts_with("kernel "))
        .unwrap_or_else(|| panic!("{script}"));
    let kernel = kernel_line.split_whitespace().nth(1).unwrap().to_owned();
    let ks = kernel_line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("inst.ks="))
        .unwrap_or_else(|| panic!("no inst.ks=: {kernel_line}"))
        .to_owned();
    let initrd = script
        .lines()
        .find_map(|l| l.strip_prefix("initrd --name initrd.img "))
        .unwrap_or_else(|| panic!("{script}"))
        .to_owned();
    (kernel, initrd, ks, script)
}

#[test]
fn serve_hands_the_pxe_artifacts_and_a_tokened_kickstart_url_to_ipxe() {
    if !have_pxe_tools() {
        return;
    }
    let dir = tempdir();
    let d = dir.path();
    let (repo, rev) = make_kernel_commit(d);
    let files = d.join("files");
    build_pxe(
        Path::new(env!("CARGO_BIN_EXE_cairn")),
        &repo,
        &rev,
        &files.join("images/pxeboot"),
    );
    let mac = "52:54:00:12:34:56";
    let inv = d.join("inventory.yaml");
    std::fs::write(&inv, pxe_inventory(mac, "", None)).unwrap();
    let events = d.join("events.jsonl");
    let server = Server::start(
        d,
        &[
            "--inventory",
            inv.to_str().unwrap(),
            "--files",
            files.to_str().unwrap(),
            "--tokens",
            "--log",
            events.to_str().unwrap(),
        ],
    );
    let url = &server.url;
    let (code, boot) = server.get("/boot.ipxe");
    assert_eq!(code, 200);
    assert!(boot.starts_with("#!ipxe"), "{boot}");
    assert!(
        boot.contains(&format!("chain {url}/ipxe?mac=${{net0/mac}}")),
        "{boot}"
    );
    let (kernel, initrd, ks, script) = ipxe_urls(&server, mac);
    assert_eq!(kernel, format!("{url}/files/images/pxeboot/vmlinuz"));
    assert_eq!(initrd, format!("{url}/files/images/pxeboot/initrd.img"));
    assert!(script.contains("console=ttyS0,115200n8"), "{script}");
    let token = ks
        .strip_prefix(&format!("{url}/ks/{mac}?token="))
        .unwrap_or_else(|| panic!("{ks}"));
    assert_eq!(token.len(), 32, "{ks}");
    // The URLs iPXE fetches give the bytes `image build` wrote.
    for (u, f) in [(&kernel, "vmlinuz"), (&initrd, "initrd.img")] {
        let got = d.join(format!("got-{f}"));
        let (code, _) = curl(&["-o", got.to_str().unwrap(), u]);
        assert_eq!(code, 200, "{u}");
        assert_eq!(
            std::fs::read(&got).unwrap(),
            std::fs::read(files.join("images/pxeboot").join(f)).unwrap(),
            "{u}"
        );
    }
    // The token works once: the installer's fetch spends it.
    let (code, body) = curl(&[&ks]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("ignoredisk --only-use=vda"), "{body}");
    let (code, _) = curl(&[&ks]);
    assert_eq!(code, 401, "a spent token");
}

#[test]
fn pxe_refuses_a_commit_without_a_kernel_and_disks_still_need_a_size() {
    let dir = tempdir();
    let repo = crate::common::metal::make_repo(dir.path(), "cairn/nokernel");
    let out = dir.path().join("pxe");
    let o = crate::common::run_cairn([
        "image",
        "build",
        "--format",
        "pxe",
        "--repo",
        repo.to_str().unwrap(),
        "--ref",
        "cairn/nokernel",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no kernel"), "{}", stderr(&o));
    assert!(!out.join("initrd.img").exists());
    let o = crate::common::run_cairn([
        "image",
        "build",
        "--format",
        "qcow2",
        "--repo",
        repo.to_str().unwrap(),
        "--ref",
        "cairn/nokernel",
        "--out",
        dir.path().join("x.qcow2").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--size is required for --format qcow2"),
        "{}",
        stderr(&o)
    );
}
