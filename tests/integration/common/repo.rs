//! Repo fixtures: trees with every file kind OSTree stores, repos made by cairn or the
//! `ostree` CLI, and the one runner of the `ostree` CLI. Other domains reuse these.

use std::collections::BTreeMap;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{ok, run_cairn, stderr, stdout, tempdir};

/// Writes a small tree under `dir`: nested dirs, an empty dir, symlinks (relative, absolute,
/// dangling), a setuid binary, a hardlink, a 1 MiB file, no xattrs. Returns `dir`.
pub fn make_tree(dir: &Path) -> PathBuf {
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("usr/bin/hello", b"#!/bin/sh\necho hello\n");
    w("usr/lib/os-release", b"ID=cairn-test\nVERSION_ID=1\n");
    w("usr/share/doc/deep/er/still/README", b"nested\n");
    w("etc/hostname", b"test\n");
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    w("usr/lib/big.bin", &big);
    std::fs::set_permissions(
        dir.join("usr/bin/hello"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    w("usr/bin/su", b"\x7fELF pretend setuid binary");
    std::fs::set_permissions(
        dir.join("usr/bin/su"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("var/empty")).unwrap();
    symlink("../lib/os-release", dir.join("usr/bin/os-release-link")).unwrap();
    symlink("/usr/lib/os-release", dir.join("etc/os-release")).unwrap();
    symlink("/nonexistent/target", dir.join("etc/dangling")).unwrap();
    std::fs::hard_link(
        dir.join("usr/bin/hello"),
        dir.join("usr/bin/hello-hardlink"),
    )
    .unwrap();
    dir.to_path_buf()
}

/// Runs the real `ostree` CLI.
pub fn ostree<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new("ostree")
        .args(args)
        .output()
        .expect("spawn ostree")
}

/// Runs `ostree`, panicking with its output unless it succeeds; returns stdout.
pub fn ostree_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    ok(Command::new("ostree").args(args))
}

/// `ostree ls -R -C` as path -> the rest of the line (mode, uid, gid, size, checksums).
pub fn ls_checksums(repo: &Path, rev: &str) -> BTreeMap<String, String> {
    ostree_ok(["ls", &repo_arg(repo), "-R", "-C", rev])
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            // Symlinks end in "-> target"; the path is the field after the checksum(s).
            let path_idx = fields
                .iter()
                .position(|f| f.starts_with('/'))
                .expect("path");
            (fields[path_idx].to_string(), fields[..path_idx].join(" "))
        })
        .collect()
}

/// `ostree rev-parse REV` in `repo`.
pub fn rev_parse(repo: &Path, rev: &str) -> String {
    ostree_ok(["rev-parse", &repo_arg(repo), rev])
        .trim()
        .to_string()
}

/// A new archive repo at `repo` holding `tree` committed to `branch` by the real `ostree commit
/// --canonical-permissions` (plus `extra` flags); returns the commit checksum.
pub fn ostree_commit_archive(repo: &Path, branch: &str, tree: &Path, extra: &[&str]) -> String {
    let r = repo_arg(repo);
    ostree_ok([r.as_str(), "init", "--mode=archive"]);
    let (branch, tree) = (
        format!("--branch={branch}"),
        format!("--tree=dir={}", tree.display()),
    );
    let mut args = vec![
        r.as_str(),
        "commit",
        "--canonical-permissions",
        &branch,
        &tree,
    ];
    args.extend_from_slice(extra);
    ostree_ok(args).trim().to_owned()
}

pub fn repo_arg(repo: &Path) -> String {
    format!("--repo={}", repo.display())
}

/// A temp dir with `make_tree`'s tree at `tree/` and a repo of `mode` made by cairn at `repo/`:
/// (dir, tree, repo).
pub fn tree_and_repo(mode: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempdir();
    let tree = make_tree(&t.path().join("tree"));
    let repo = cairn_init(&t.path().join("repo"), mode);
    (t, tree, repo)
}

/// `cairn repo init PATH --mode MODE`, asserting success.
pub fn cairn_init(repo: &Path, mode: &str) -> PathBuf {
    let o = run_cairn(["repo", "init", repo.to_str().unwrap(), "--mode", mode]);
    assert!(o.status.success(), "repo init: {}", stderr(&o));
    repo.to_path_buf()
}

/// `cairn commit TREE --repo R --ref REF EXTRA...`, asserting success; returns the checksum.
pub fn cairn_commit(tree: &Path, repo: &Path, refname: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "commit".to_string(),
        tree.display().to_string(),
        "--repo".into(),
        repo.display().to_string(),
        "--ref".into(),
        refname.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = run_cairn(&args);
    assert!(o.status.success(), "cairn {args:?}: {}", stderr(&o));
    let out = stdout(&o);
    let csum = out.trim().to_string();
    assert_eq!(csum.len(), 64, "checksum on stdout, got {out:?}");
    csum
}

/// `ostree fsck`, asserting it is clean.
pub fn assert_fsck_clean(repo: &Path) {
    let out = ostree_ok(["fsck", &repo_arg(repo)]);
    assert!(!out.contains("corrupted"), "{out}");
}

/// Refs as the `ostree` CLI sees them (name -> checksum).
pub fn refs(repo: &Path) -> BTreeMap<String, String> {
    ostree_ok(["refs", &repo_arg(repo)])
        .lines()
        .filter(|l| !l.is_empty())
        .map(|r| (r.to_string(), rev_parse(repo, r)))
        .collect()
}

/// Object files under `objects/` (what a half-written commit must not add to).
pub fn object_count(repo: &Path) -> usize {
    walk_count(&repo.join("objects"))
}

fn walk_count(p: &Path) -> usize {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    if e.file_type().unwrap().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A throwaway GnuPG home with one passphrase-less signing key; returns (homedir, key id).
pub fn gpg_key(dir: &Path) -> (PathBuf, String) {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("spawn gpg");
        assert!(o.status.success(), "gpg {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    gpg(&[
        "--quick-gen-key",
        "cairn test <test@cairn.invalid>",
        "rsa2048",
        "sign",
        "never",
    ]);
    let listing = gpg(&["--with-colons", "--list-secret-keys"]);
    let fpr = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string();
    (home, fpr)
}

/// Exports the public key of `key` from `home` into `out` (a binary `.gpg` keyring).
pub fn gpg_export(home: &Path, key: &str, out: &Path) {
    let o = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--export", "--output"])
        .arg(out)
        .arg(key)
        .output()
        .expect("spawn gpg");
    assert!(o.status.success(), "gpg --export: {}", stderr(&o));
}
