//! Fixtures for image and packer tests: a tiny "bootable" OSTree commit made with the real
//! `ostree` CLI, and helpers to look inside disk images without mounting them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ok;
use super::repo::ostree_commit_archive;

pub const KVER: &str = "6.1.0-cairn-test";

pub struct Commit {
    pub repo: PathBuf,
    pub refname: String,
    pub checksum: String,
}

/// `ostree commit` of a tree with a kernel and initramfs where ostree looks for them
/// (`usr/lib/modules/$kver/`), an os-release and a `usr/etc`.
pub fn make_commit(dir: &Path) -> Commit {
    let tree = dir.join("tree");
    let kdir = tree.join("usr/lib/modules").join(KVER);
    std::fs::create_dir_all(&kdir).unwrap();
    std::fs::create_dir_all(tree.join("usr/etc")).unwrap();
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    std::fs::write(kdir.join("vmlinuz"), b"not really a kernel\n").unwrap();
    std::fs::write(kdir.join("initramfs.img"), b"not really an initramfs\n").unwrap();
    std::fs::write(
        tree.join("usr/lib/os-release"),
        "NAME=Cairn\nID=cairn\nPRETTY_NAME=\"Cairn Test\"\n",
    )
    .unwrap();
    std::fs::write(tree.join("usr/etc/hostname"), "cairn-test\n").unwrap();
    let repo = dir.join("repo");
    let refname = "cairn/test/x86_64".to_owned();
    let checksum = ostree_commit_archive(
        &repo,
        &refname,
        &tree,
        &[
            "--owner-uid=0",
            "--owner-gid=0",
            "--subject=v1",
            "--timestamp=2024-01-01T00:00:00Z",
        ],
    );
    Commit {
        repo,
        refname,
        checksum,
    }
}

/// `qemu-img info --output=json` (format probed).
pub fn qemu_img_info(path: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)))
    .unwrap()
}

/// A fixed VHD is the raw disk plus a 512-byte footer, so qemu-img probes it as raw: read it as
/// `vpc` explicitly, and check the footer's `conectix` cookie and disk type 2 (fixed).
pub fn vhd_info(path: &Path) -> serde_json::Value {
    let data = std::fs::read(path).unwrap();
    let footer = &data[data.len() - 512..];
    assert_eq!(&footer[..8], b"conectix", "no VHD footer");
    assert_eq!(
        u32::from_be_bytes(footer[60..64].try_into().unwrap()),
        2,
        "not a fixed VHD"
    );
    serde_json::from_str(&ok(Command::new("qemu-img")
        .args(["info", "--output=json", "-f", "vpc"])
        .arg(path)))
    .unwrap()
}

/// `debugfs -R REQUEST` on the ext4 filesystem at byte `offset` of a raw disk (e2fsprogs'
/// `?offset=` io option: no loop device, no mount).
pub fn debugfs(raw: &Path, offset: u64, request: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(request)
        .arg(format!("{}?offset={offset}", raw.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "debugfs {request}: {:?}", out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}
