//! `cairn image build`: real libostree deploys, real sgdisk/mkfs/extlinux/qemu-img; the image is
//! inspected with qemu-img, sgdisk and debugfs (no mount).

use std::path::Path;
use std::process::Command;

use crate::common::image::{debugfs, make_commit, ok, qemu_img_info, vhd_info, KVER};
use crate::common::{run_cairn, stderr, stdout, tempdir};

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
    let o = run_cairn(&args);
    assert!(o.status.success(), "image build failed: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("JSON report")
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
fn qcow2_image_holds_a_deployed_sysroot_and_a_bios_bootloader() {
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
    assert_eq!(parts.len(), 3, "{parts:?}");
    assert_eq!((parts[0].3.as_str(), parts[0].4.as_str()), ("EF02", "bios"));
    assert_eq!((parts[1].3.as_str(), parts[1].4.as_str()), ("8300", "boot"));
    assert_eq!((parts[2].3.as_str(), parts[2].4.as_str()), ("8300", "root"));
    assert_eq!(parts[1].1 % 2048, 0, "boot partition is MiB-aligned");
    let attrs = ok(Command::new("sgdisk").args(["-A", "2:show"]).arg(&raw));
    assert!(attrs.contains("legacy BIOS bootable"), "{attrs}");
    let boot_off = parts[1].1 * 512;
    let root_off = parts[2].1 * 512;

    // The root filesystem: an OSTree sysroot with the commit deployed under the stateroot.
    let deploys = debugfs(&raw, root_off, "ls -l /ostree/deploy/cairn/deploy");
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
        &raw,
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
        &raw,
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
        &raw,
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
    let refs = debugfs(&raw, root_off, "ls -l /ostree/repo/refs/heads/cairn/test");
    assert!(refs.contains("x86_64"), "{refs}");
    // The UUIDs cairn chose are the filesystems' (root=UUID= must find the root).
    let stats = debugfs(&raw, root_off, "stats");
    assert!(
        stats.contains(&format!("Filesystem UUID:          {root_uuid}")),
        "{stats}"
    );
    let stats = debugfs(&raw, boot_off, "stats");
    assert!(
        stats.contains(&format!("Filesystem UUID:          {boot_uuid}")),
        "{stats}"
    );
    assert!(
        debugfs(&raw, root_off, "ls -l /boot").contains(" ."),
        "empty /boot mount point"
    );

    // The boot filesystem: BLS entry with the kargs, kernel + initramfs, syslinux config and
    // extlinux itself.
    let entry = debugfs(&raw, boot_off, "cat /loader/entries/ostree-1-cairn.conf");
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
    let kernels = debugfs(&raw, boot_off, &format!("ls -l {bootcsum_dir}"));
    assert!(
        kernels.contains(&format!("initramfs-{KVER}.img")),
        "{kernels}"
    );
    // extlinux reads /syslinux/syslinux.cfg, a link into ostree's current loader directory.
    let link = debugfs(&raw, boot_off, "stat /syslinux/syslinux.cfg");
    assert!(
        link.contains("Fast link dest: \"../loader/syslinux.cfg\""),
        "{link}"
    );
    let cfg = debugfs(&raw, boot_off, "cat /loader/syslinux.cfg");
    assert!(cfg.contains("UI menu.c32"), "{cfg}");
    assert!(cfg.contains(&format!("\tAPPEND {options}")), "{cfg}");
    let sl = debugfs(&raw, boot_off, "ls -l /syslinux");
    for f in [
        "ldlinux.sys",
        "ldlinux.c32",
        "menu.c32",
        "libutil.c32",
        "libcom32.c32",
    ] {
        assert!(sl.contains(f), "{f} missing: {sl}");
    }

    // MBR boot code is syslinux's gptmbr.bin; the boot sector knows where its partition starts.
    let mbr = std::fs::read("/usr/lib/syslinux/mbr/gptmbr.bin").unwrap();
    let disk = std::fs::read(&raw).unwrap();
    assert_eq!(&disk[..440], &mbr[..440]);
    let hidden = u32::from_le_bytes(
        disk[boot_off as usize + 0x1c..boot_off as usize + 0x20]
            .try_into()
            .unwrap(),
    );
    assert_eq!(u64::from(hidden), parts[1].1);
    // No staging leftovers next to the output.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".cairn-image-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
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
        &["--remote", "cairn=http://10.0.2.2:8080/repo"],
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
    let root_off = gpt(&raw)[2].1 * 512;
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
