//! Hostile conditions on the write paths: a full disk under `commit`, `compose` and `deploy`;
//! two writers at once on one repository or one sysroot; SIGKILL at random moments of a compose.
//! Each ends with the real `ostree` CLI checking that nothing is corrupt and the previous state is
//! intact.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use crate::common::repo::{assert_fsck_clean, cairn_commit, cairn_init, refs, rev_parse};
use crate::common::sysroot::{Fixture, REF};
use crate::common::{cairn, have_tool, ok, run_cairn, stderr, tempdir};

/// A small ext4 file system on a loop device, mounted at `dir` and unmounted when dropped: the
/// full disk of these tests (ext4 rather than tmpfs: libostree wants xattrs and hard links).
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    /// `size_mb` MiB mounted at `dir` (created); `None` after `common::skip` without the tools.
    fn mount(dir: &Path, size_mb: u32) -> Option<SmallFs> {
        if !have_tool("mkfs.ext4", "package e2fsprogs") || !have_tool("mount", "package mount") {
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let img = dir.with_extension("img");
        ok(Command::new("truncate")
            .args(["-s", &format!("{size_mb}M")])
            .arg(&img));
        ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(dir));
        // An empty file system: `deploy` creates a sysroot only in an empty directory.
        std::fs::remove_dir(dir.join("lost+found")).unwrap();
        Some(SmallFs {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills the file system up to `leave_kb` KiB free with one file.
    fn fill(&self, leave_kb: u64) {
        let st = rustix::fs::statvfs(&self.dir).unwrap();
        let free = st.f_bavail * st.f_frsize;
        let n = free.saturating_sub(leave_kb * 1024);
        std::fs::write(self.dir.join("ballast"), vec![0u8; n as usize]).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        crate::common::make_removable(&self.dir);
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Incompressible bytes (archive repos compress), different per `seed`.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A failure with a message, not a crash: exit code 1 and `needles` all in stderr.
fn fails_clearly(o: &Output, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "want a clean failure: {err}");
    for n in needles {
        assert!(err.contains(n), "want {n:?} in: {err}");
    }
    err
}

fn no_space(err: &str) -> bool {
    err.contains("No space left on device") || err.contains("min-free-space")
}

fn commit_args(tree: &Path, repo: &Path) -> Vec<String> {
    let (t, r) = (tree.display().to_string(), repo.display().to_string());
    ["commit", &t, "--repo", &r, "--ref", "os/x"]
        .map(String::from)
        .to_vec()
}

#[test]
fn commit_on_a_full_disk_names_the_repo_and_keeps_the_ref() {
    let t = tempdir();
    let Some(fs) = SmallFs::mount(&t.path().join("disk"), 16) else {
        return;
    };
    let repo = cairn_init(&fs.dir.join("repo"), "archive");
    let tree = t.path().join("tree");
    std::fs::create_dir_all(tree.join("usr/share")).unwrap();
    std::fs::write(tree.join("usr/share/small"), "small\n").unwrap();
    let c1 = cairn_commit(&tree, &repo, "os/x", &[]);
    std::fs::write(tree.join("usr/share/big"), noise(6 << 20, 1)).unwrap();
    // libostree's own guard (min-free-space-percent), then the kernel's ENOSPC with the guard off.
    fs.fill(2048);
    for guard in ["3", "0"] {
        ok(Command::new("ostree")
            .arg(format!("--repo={}", repo.display()))
            .args(["config", "set", "core.min-free-space-percent", guard]));
        let o = run_cairn(commit_args(&tree, &repo));
        let err = fails_clearly(&o, &[&repo.display().to_string()]);
        assert!(no_space(&err), "guard {guard}: {err}");
        assert_eq!(refs(&repo)["os/x"], c1);
        assert_fsck_clean(&repo);
    }
    // Space freed, the same repository takes the commit.
    std::fs::remove_file(fs.dir.join("ballast")).unwrap();
    let c2 = cairn_commit(&tree, &repo, "os/x", &[]);
    assert_ne!(c2, c1);
    assert_fsck_clean(&repo);
}

/// A rootfs-backend treefile whose tree holds `big` bytes of noise, committed to `os/x`.
fn rootfs_treefile(dir: &Path, name: &str, big: usize, seed: u32) -> PathBuf {
    let root = dir.join(format!("{name}-root"));
    std::fs::create_dir_all(root.join("usr/share")).unwrap();
    std::fs::write(root.join("usr/share/data"), noise(big, seed)).unwrap();
    std::fs::write(root.join("usr/share/name"), format!("{name}\n")).unwrap();
    let tf = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &tf,
        format!(
            "ref: os/x\ncairn:\n  backend: rootfs\n  bootable: false\n  rootfs: {{path: {}}}\n",
            root.display()
        ),
    )
    .unwrap();
    tf
}

fn compose_args(tf: &Path, repo: &Path, cache: &Path) -> Vec<String> {
    let (t, r, c) = (tf.display(), repo.display(), cache.display());
    [
        "compose".into(),
        t.to_string(),
        "--repo".into(),
        r.to_string(),
    ]
    .into_iter()
    .chain(["--cachedir".into(), c.to_string(), "--force-nocache".into()])
    .collect()
}

/// Build trees a compose left in its cache dir.
fn build_dirs(cache: &Path) -> usize {
    std::fs::read_dir(cache).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("build-"))
            .count()
    })
}

#[test]
fn compose_on_a_full_disk_names_the_repo_and_keeps_the_ref() {
    let t = tempdir();
    let Some(fs) = SmallFs::mount(&t.path().join("disk"), 16) else {
        return;
    };
    let repo = cairn_init(&fs.dir.join("repo"), "archive");
    let cache = t.path().join("cache");
    let small = rootfs_treefile(t.path(), "small", 1024, 1);
    let o = run_cairn(compose_args(&small, &repo, &cache));
    assert!(o.status.success(), "{}", stderr(&o));
    let c1 = refs(&repo)["os/x"].clone();
    fs.fill(2048);
    let big = rootfs_treefile(t.path(), "big", 6 << 20, 2);
    let o = run_cairn(compose_args(&big, &repo, &cache));
    let err = fails_clearly(&o, &[&repo.display().to_string()]);
    assert!(no_space(&err), "{err}");
    assert_eq!(refs(&repo)["os/x"], c1);
    assert_fsck_clean(&repo);
    assert_eq!(
        build_dirs(&cache),
        0,
        "the failed compose left its build tree"
    );
}

#[test]
fn deploy_on_a_full_disk_fails_clearly_and_keeps_the_deployment() {
    let f = Fixture::new();
    let v1 = f.commit("1");
    // The sysroot on its own small file system (mounted over the fixture's empty sysroot dir).
    let Some(fs) = SmallFs::mount(&f.sysroot, 24) else {
        return;
    };
    f.deploy(&[]);
    assert_eq!(f.checksums(), std::slice::from_ref(&v1));
    // Version 2 carries 8 MB the sysroot has no room for.
    let tree = f.dir.path().join("tree-2");
    std::fs::create_dir_all(tree.join("usr/share")).unwrap();
    std::fs::write(tree.join("usr/share/big"), noise(8 << 20, 3)).unwrap();
    f.commit("2");
    fs.fill(4096);
    let url = f.url();
    let o = f.cairn(&["deploy", REF, "--remote", "origin", "--url", &url]);
    let err = fails_clearly(&o, &[]);
    assert!(no_space(&err), "{err}");
    assert!(
        err.contains(&f.sysroot.display().to_string()),
        "the sysroot is not named: {err}"
    );
    // Nothing changed: the one deployment is still the default, as cairn and ostree see it.
    assert_eq!(f.checksums(), std::slice::from_ref(&v1));
    assert_eq!(f.ostree_status().len(), 1);
    assert_fsck_clean(&f.sysroot.join("ostree/repo"));
    drop(fs);
}

/// Runs every `args` list as a cairn process at the same moment; returns their outputs.
fn at_once(runs: &[Vec<String>], env: &[(&str, &str)]) -> Vec<Output> {
    let children: Vec<_> = runs
        .iter()
        .map(|args| {
            let mut c = cairn();
            c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
            for (k, v) in env {
                c.env(k, v);
            }
            c.spawn().unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// Of two writers at once, each succeeded or failed with a message (no crash); at least one
/// succeeded and the ref is one of the successful commits, whole.
fn one_wins(repo: &Path, outs: &[Output], before: &str) {
    for o in outs {
        if !o.status.success() {
            fails_clearly(o, &[]);
        }
    }
    assert!(
        outs.iter().any(|o| o.status.success()),
        "neither writer succeeded: {}",
        outs.iter().map(stderr).collect::<Vec<_>>().join("\n")
    );
    assert_fsck_clean(repo);
    let now = refs(repo)["os/x"].clone();
    assert_ne!(now, before);
    let log = ok(Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["log", "os/x"]));
    assert!(
        log.contains(before),
        "history lost the previous commit:\n{log}"
    );
}

#[test]
fn two_commits_to_one_repo_at_once() {
    let t = tempdir();
    let repo = cairn_init(&t.path().join("repo"), "archive");
    let mut trees = Vec::new();
    for i in 0..2u32 {
        let tree = t.path().join(format!("tree{i}"));
        for d in 0..20 {
            let dir = tree.join(format!("usr/share/{d}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("f"), noise(64 << 10, i * 100 + d)).unwrap();
        }
        trees.push(tree);
    }
    let c0 = cairn_commit(&trees[0].join("usr/share/0"), &repo, "os/x", &[]);
    let runs: Vec<_> = trees.iter().map(|tr| commit_args(tr, &repo)).collect();
    let outs = at_once(&runs, &[]);
    one_wins(&repo, &outs, &c0);
}

#[test]
fn two_composes_to_one_repo_at_once() {
    let t = tempdir();
    let repo = cairn_init(&t.path().join("repo"), "archive");
    let cache = t.path().join("cache");
    let first = rootfs_treefile(t.path(), "first", 1024, 1);
    let o = run_cairn(compose_args(&first, &repo, &cache));
    assert!(o.status.success(), "{}", stderr(&o));
    let c0 = refs(&repo)["os/x"].clone();
    let runs: Vec<_> = (0..2)
        .map(|i| {
            let tf = rootfs_treefile(t.path(), &format!("c{i}"), 2 << 20, 10 + i);
            compose_args(&tf, &repo, &cache)
        })
        .collect();
    let outs = at_once(&runs, &[]);
    one_wins(&repo, &outs, &c0);
    assert_eq!(build_dirs(&cache), 0);
}

#[test]
fn two_deploys_on_one_sysroot_at_once() {
    let f = Fixture::new();
    let v1 = f.commit("1");
    f.deploy(&[]);
    let v2 = f.commit("2");
    let url = f.url();
    let sysroot = f.sysroot.display().to_string();
    let args: Vec<String> = [
        "deploy",
        REF,
        "--remote",
        "origin",
        "--url",
        &url,
        "--sysroot",
        &sysroot,
        "--os",
        crate::common::sysroot::OS,
    ]
    .map(String::from)
    .to_vec();
    let outs = at_once(&[args.clone(), args], &[]);
    for o in &outs {
        if !o.status.success() {
            fails_clearly(o, &[]);
        }
    }
    let won = outs.iter().filter(|o| o.status.success()).count();
    assert!(won >= 1);
    // Serialised by the sysroot lock, the result is that of the deploys one after the other:
    // each makes a new default and keeps the previous default as rollback, so two give
    // [v2, v2] and one gives [v2, v1]; libostree agrees, and the sysroot's repository is whole.
    let sums = f.checksums();
    let want = if won == 2 { [&v2, &v2] } else { [&v2, &v1] };
    assert_eq!(sums.iter().collect::<Vec<_>>(), want, "{sums:?}");
    let seen: Vec<String> = f.ostree_status().into_iter().map(|d| d.1).collect();
    assert_eq!(seen, sums);
    assert_fsck_clean(&f.sysroot.join("ostree/repo"));
}

/// Twenty composes SIGKILLed at moments spread from the start to just past the commit (package
/// install, postprocess, commit): after each, the repository fscks clean and the ref is where it was
/// (or, if the compose finished first, on a whole new commit); the next compose then succeeds
/// without manual cleanup and leaves no build tree behind.
#[test]
fn compose_killed_at_random_points_recovers() {
    const RUNS: u32 = 20;
    let Some((t, tf)) = dnf_fixture() else {
        return;
    };
    let (repo, cache) = (t.path().join("repo"), t.path().join("cache"));
    let args = compose_args(&tf, &repo, &cache);
    let o = run_cairn(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    // The second (warm) compose is what the killed ones repeat: time it up to the moment its
    // ref moves, so the kills land before the commit (and a few just after).
    let ref_file = repo.join("refs/heads/os/x");
    let before = std::fs::read_to_string(&ref_file).unwrap();
    let start = Instant::now();
    let mut child = cairn()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while std::fs::read_to_string(&ref_file).unwrap() == before {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the timed compose failed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let whole = start.elapsed().mul_f64(1.1);
    assert!(child.wait().unwrap().success());
    let mut current = refs(&repo)["os/x"].clone();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut finished = 0;
    for i in 0..RUNS {
        // Stratified: run i dies somewhere in the i-th twentieth of the way to the commit.
        let jitter = f64::from((seed ^ i.wrapping_mul(2654435761)) % 1000) / 1000.0;
        let delay = whole.mul_f64((f64::from(i) + jitter) / f64::from(RUNS));
        let mut child = cairn()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        child.kill().ok();
        child.wait().unwrap();
        assert_fsck_clean(&repo);
        let now = refs(&repo)["os/x"].clone();
        if now != current {
            // The kill came after the transaction committed (the compose finished, or was
            // tidying up): the ref moved only to a whole commit on top of the previous one.
            assert_eq!(
                rev_parse(&repo, &format!("{now}^")),
                current,
                "run {i}: killed at {delay:?}"
            );
            finished += 1;
            current = now;
        }
    }
    eprintln!("{RUNS} kills over {whole:?} up to the commit; {finished} committed before the kill");
    let o = run_cairn(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(refs(&repo)["os/x"], current);
    assert_fsck_clean(&repo);
    assert_eq!(build_dirs(&cache), 0);
}

/// The dnf compose of the compose tests (local RPMs with a %post, a postprocess script): every
/// phase a kill should land in. `None` after `common::skip` without the RPM tools.
fn dnf_fixture() -> Option<(tempfile::TempDir, PathBuf)> {
    use crate::common::compose::{rpm_repo, standard_rpms};
    if !have_tool("rpmbuild", "package rpm")
        || !have_tool("createrepo_c", "package createrepo-c")
        || !have_tool("dnf", "package dnf")
    {
        return None;
    }
    let t = tempdir();
    let src = rpm_repo(&t.path().join("src"), &standard_rpms("1.0"));
    let tf = src.join("host.yaml");
    std::fs::write(
        &tf,
        "ref: os/x\nrepos: [cairn-test]\nreleasever: \"1\"\ndocumentation: false\n\
         recommends: false\npackages: [cairn-hello, cairn-sh]\n\
         postprocess:\n  - echo composed > /usr/share/cairn-composed\n\
         cairn:\n  backend: dnf\n  bootable: false\n",
    )
    .unwrap();
    Some((t, tf))
}

#[test]
fn full_disk_helpers_are_honest() {
    // `noise` is what makes the full-disk tests fail for space, not for compression: it must
    // not compress (gzip, as archive repos do, gains nothing).
    let t = tempdir();
    let f = t.path().join("n");
    std::fs::write(&f, noise(1 << 20, 7)).unwrap();
    ok(Command::new("gzip").arg("-k").arg(&f));
    let gz = std::fs::metadata(t.path().join("n.gz")).unwrap().len();
    assert!(gz > (1 << 20) * 99 / 100, "noise compressed to {gz} bytes");
}
