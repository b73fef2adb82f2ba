//! `cairn commit`'s hash-first writer: edited trees against the `ostree` CLI, objects written
//! only when new, and files rewritten while a commit reads them.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::common::repo::*;
use crate::common::*;

const MODES: [&str; 2] = ["archive", "bare-user"];

/// `cairn commit ... --json`: (checksum, objectsWritten).
fn commit_json(tree: &Path, repo: &Path, extra: &[&str]) -> (String, u64) {
    let mut args = vec![
        "commit",
        tree.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--ref",
        "os/x",
        "--json",
    ];
    args.extend_from_slice(extra);
    let v = cairn_json(args);
    (
        v["checksum"].as_str().unwrap().to_string(),
        v["objectsWritten"].as_u64().unwrap(),
    )
}

/// `ostree commit` of `tree` into `repo` on os/x; returns the checksum.
fn ostree_commit(tree: &Path, repo: &Path, canonical: bool) -> String {
    let mut args = vec![
        "commit".to_string(),
        repo_arg(repo),
        "-b".into(),
        "os/x".into(),
    ];
    if canonical {
        args.push("--canonical-permissions".into());
    }
    args.push(tree.display().to_string());
    ostree_ok(args);
    rev_parse(repo, "os/x")
}

fn content_checksum(repo: &Path) -> String {
    ostree_ok(["show", &repo_arg(repo), "os/x"])
        .lines()
        .find(|l| l.starts_with("ContentChecksum"))
        .unwrap()
        .to_string()
}

/// One file changed, one added, one removed, one chmod, one xattr.
fn edit(tree: &Path) {
    std::fs::write(tree.join("etc/hostname"), "edited\n").unwrap();
    std::fs::write(tree.join("usr/lib/added"), "a new file\n").unwrap();
    std::fs::remove_file(tree.join("usr/share/doc/deep/er/still/README")).unwrap();
    let set_mode = |rel: &str, mode: u32| {
        std::fs::set_permissions(
            tree.join(rel),
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .unwrap()
    };
    set_mode("usr/lib/os-release", 0o755);
    let o = Command::new("setfattr")
        .args(["-n", "user.cairn-test", "-v", "edited"])
        .arg(tree.join("usr/lib/big.bin"))
        .output()
        .unwrap();
    assert!(o.status.success(), "setfattr: {}", stderr(&o));
}

/// Both tools commit a tree, then the same edited tree into the same repos: every path's
/// checksum and the content checksum agree, and cairn writes exactly the new objects.
#[test]
fn edited_tree_matches_ostree_cli() {
    if !have_tool("setfattr", "setting an xattr needs it (package attr)") {
        return;
    }
    for mode in MODES {
        for canonical in [true, false] {
            let t = tempdir();
            let tree = make_tree(&t.path().join("tree"));
            let ours = cairn_init(&t.path().join("cairn"), mode);
            let theirs = t.path().join("ostree");
            ostree_ok(["init", &repo_arg(&theirs), &format!("--mode={mode}")]);
            let perms: &[&str] = if canonical {
                &[]
            } else {
                &["--keep-permissions"]
            };
            let what = format!("{mode}, canonical={canonical}");

            let (_, first) = commit_json(&tree, &ours, perms);
            assert!(first >= 8, "first commit wrote {first} objects ({what})");
            ostree_commit(&tree, &theirs, canonical);
            let (_, again) = commit_json(&tree, &ours, perms);
            assert_eq!(again, 0, "unchanged recommit wrote objects ({what})");

            edit(&tree);
            let (_, written) = commit_json(&tree, &ours, perms);
            ostree_commit(&tree, &theirs, canonical);
            assert_eq!(
                ls_checksums(&ours, "os/x"),
                ls_checksums(&theirs, "os/x"),
                "{what}"
            );
            assert_eq!(content_checksum(&ours), content_checksum(&theirs), "{what}");
            // Changed, added, chmod; the xattr counts only where xattrs are committed.
            let expected = if canonical { 3 } else { 4 };
            assert_eq!(written, expected, "objects written for the edit ({what})");
            assert_fsck_clean(&ours);
        }
    }
}

/// Rewrites `files` in place, each time with a new byte pattern, until `stop`.
fn rewrite_loop(files: &[PathBuf], stop: &AtomicBool, rewrites: &AtomicU64) {
    let mut round = 0u8;
    while !stop.load(Ordering::Relaxed) {
        for f in files {
            round = round.wrapping_add(1);
            let data = vec![round; 1 << 20];
            let mut h = std::fs::OpenOptions::new().write(true).open(f).unwrap();
            h.seek(std::io::SeekFrom::Start(0)).unwrap();
            // Two halves: a reader can catch the file between them.
            h.write_all(&data[..1 << 19]).unwrap();
            h.write_all(&data[1 << 19..]).unwrap();
            rewrites.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A writer rewrites files while `cairn commit` reads them: the commit succeeds, and every
/// object's content matches its name (`ostree fsck` re-hashes every object).
#[test]
fn files_rewritten_during_the_commit_never_give_a_mismatched_object() {
    for mode in MODES {
        let t = tempdir();
        let tree = make_tree(&t.path().join("tree"));
        let hot: Vec<PathBuf> = (0..48)
            .map(|i| {
                let p = tree.join(format!("usr/lib/hot/{i:02}.bin"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, vec![0u8; 1 << 20]).unwrap();
                p
            })
            .collect();
        let repo = cairn_init(&t.path().join("repo"), mode);
        let stop = AtomicBool::new(false);
        let rewrites = AtomicU64::new(0);
        let (during, out) = std::thread::scope(|s| {
            s.spawn(|| rewrite_loop(&hot, &stop, &rewrites));
            while rewrites.load(Ordering::Relaxed) < 4 {
                std::thread::yield_now();
            }
            let before = rewrites.load(Ordering::Relaxed);
            let out = run_cairn([
                "commit",
                tree.to_str().unwrap(),
                "--repo",
                repo.to_str().unwrap(),
                "--ref",
                "os/x",
            ]);
            let during = rewrites.load(Ordering::Relaxed) - before;
            stop.store(true, Ordering::Relaxed);
            (during, out)
        });
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert!(
            during >= 2,
            "the writer was not running during the commit ({mode})"
        );
        assert_fsck_clean(&repo);
        let ls = ls_checksums(&repo, "os/x");
        assert!(ls.contains_key("/usr/lib/hot/47.bin"), "{mode}");
    }
}
