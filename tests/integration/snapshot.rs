//! Snapshots and lockfiles with real Debian packages: the shipped default composed twice from
//! one snapshot, offline (`unshare -n`), with separate caches, TMPDIRs and hostnames, to the same
//! commit; Debian lockfile mismatches as one clear error with nothing committed.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::compose::ostree;
use crate::common::{have_tool, project_root, run_cairn, stderr, stdout, tempdir};

fn debian_tools() -> bool {
    have_tool("mmdebstrap", "package mmdebstrap") && have_tool("unshare", "package util-linux")
}

fn json(o: &Output, what: &str) -> serde_json::Value {
    assert!(o.status.success(), "{what}: {}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{what}: {e}: {}", stdout(o)))
}

/// `cairn compose --snapshot` with no network and its own hostname, cache and TMPDIR.
fn offline_compose(tf: &Path, snap: &Path, work: &Path, host: &str) -> Output {
    let tmp = work.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    Command::new("unshare")
        .args([
            "-n",
            "-u",
            "sh",
            "-c",
            "hostname \"$1\" && shift && exec \"$@\"",
            "sh",
            host,
        ])
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args(["compose", &tf.display().to_string(), "--json", "--snapshot"])
        .arg(snap)
        .arg("--repo")
        .arg(work.join("repo"))
        .arg("--cachedir")
        .arg(work.join("cache"))
        .env("TMPDIR", &tmp)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

/// When two composes differ, `cairn repo diff` between them names the files: that is how users
/// debug it, so the test prints it.
fn explain_difference(a: &Path, b: &Path, ca: &str, cb: &str) -> String {
    ostree(
        &a.join("repo"),
        &["pull-local", &b.join("repo").display().to_string(), cb],
    );
    let d = run_cairn([
        "repo",
        "diff",
        ca,
        cb,
        "--repo",
        &a.join("repo").display().to_string(),
    ]);
    format!("{}{}", stdout(&d), stderr(&d))
}

#[test]
fn debian_default_from_one_snapshot_is_bit_for_bit_offline() {
    if !debian_tools() {
        return;
    }
    let t = tempdir();
    let tf = project_root().join("treefiles/debian-12.yaml");
    let snap = t.path().join("snap");
    let o = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["snapshot", &tf.display().to_string(), "--json", "--out"])
        .arg(&snap)
        .arg("--cachedir")
        .arg(t.path().join("snapshot-cache"))
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let s = json(&o, "cairn snapshot");
    assert_eq!(s["kind"], "SnapshotResult");
    let digest = s["digest"].as_str().unwrap().to_string();
    assert!(snap.join("dists/bookworm/Release").is_file());
    assert!(snap
        .join("dists/bookworm/main/binary-amd64/Packages")
        .is_file());
    assert!(snap.join("cairn.lock.json").is_file());
    assert!(walkdir::WalkDir::new(snap.join("pool"))
        .into_iter()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("linux-image-")));

    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let ja = json(
        &offline_compose(&tf, &snap, &a, "builder-a"),
        "compose a (unshare -n)",
    );
    let jb = json(
        &offline_compose(&tf, &snap, &b, "builder-b"),
        "compose b (unshare -n)",
    );
    let (ca, cb) = (
        ja["commit"].as_str().unwrap(),
        jb["commit"].as_str().unwrap(),
    );
    if ca != cb {
        panic!(
            "two composes from one snapshot differ: {ca} vs {cb}\ncairn repo diff:\n{}",
            explain_difference(&a, &b, ca, cb)
        );
    }
    assert_eq!(ja["snapshot"], digest.as_str());
    assert_eq!(ja["sourceDateEpoch"], s["timestamp"]);
    assert_snapshot_recorded(&a, &digest, ca);
}

/// The digest is in the commit metadata, `cairn repo show` and the SBOM; the image's apt
/// sources name the real mirror, not the build's snapshot.
fn assert_snapshot_recorded(work: &Path, digest: &str, commit: &str) {
    let repo = work.join("repo");
    let meta = ostree(
        &repo,
        &["show", "--print-metadata-key=cairn.snapshot", commit],
    );
    assert!(meta.contains(digest), "{meta}");
    let show = run_cairn([
        "repo",
        "show",
        commit,
        "--repo",
        &repo.display().to_string(),
    ]);
    assert!(
        stdout(&show).contains(&format!("Snapshot: {digest}")),
        "{}",
        stdout(&show)
    );
    let sbom_path = work.join("cairn_debian_12_x86_64_default.spdx.json");
    let sbom = std::fs::read_to_string(&sbom_path).unwrap();
    assert!(sbom.contains(&format!("packages from cairn snapshot {digest}")));
    let sources = ostree(&repo, &["cat", commit, "/usr/etc/apt/sources.list"]);
    assert_eq!(
        sources.trim(),
        "deb http://deb.debian.org/debian bookworm main"
    );
}

/// A minbase compose's lockfile, then three disagreements in one compose: a wrong digest, a
/// version the mirror no longer has, and (strict) a package no lockfile names. One error lists
/// each with what was expected and found; the repository is unchanged.
#[test]
fn debian_lockfile_mismatches_commit_nothing() {
    if !debian_tools() {
        return;
    }
    let t = tempdir();
    let tf = t.path().join("deb.yaml");
    std::fs::write(
        &tf,
        "ref: test/debian/lock\npackages: [netbase]\nremove-files: [usr/share/doc]\n\
         cairn:\n  backend: mmdebstrap\n  bootable: false\n  mmdebstrap: {suite: bookworm, variant: minbase}\n",
    )
    .unwrap();
    let repo = t.path().join("repo").display().to_string();
    let cache = t.path().join("cache").display().to_string();
    let lock = t.path().join("deb.lock.json");
    let tf_s = tf.display().to_string();
    let base = [
        "compose",
        &tf_s,
        "--repo",
        &repo,
        "--cachedir",
        &cache,
        "--json",
    ];
    let o = run_cairn(
        [
            &base[..],
            &["--write-lockfile", &lock.display().to_string()],
        ]
        .concat(),
    );
    json(&o, "compose --write-lockfile");
    let mut lf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let netbase = lf["packages"]["netbase"]["evra"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(netbase.ends_with(".all"), "{netbase}");
    let found_digest = lf["packages"]["bash"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = format!("sha256:{}", "0".repeat(64));
    lf["packages"]["bash"]["digest"] = bad.clone().into();
    lf["packages"]["netbase"]["evra"] = "0.1.all".into();
    lf["packages"].as_object_mut().unwrap().remove("hostname");
    let tampered = t.path().join("tampered.json");
    std::fs::write(&tampered, serde_json::to_string(&lf).unwrap()).unwrap();

    let before = ostree(Path::new(&repo), &["refs", "--list"])
        + &ostree(Path::new(&repo), &["rev-parse", "test/debian/lock"]);
    let o = run_cairn(
        [
            &base[..],
            &[
                "--force-nocache",
                "--lockfile",
                &tampered.display().to_string(),
                "--lockfile-strict",
            ],
        ]
        .concat(),
    );
    assert!(
        !o.status.success(),
        "a tampered lockfile composed: {}",
        stdout(&o)
    );
    let e = stderr(&o);
    for want in [
        "bash ".to_string(),
        format!("digest mismatch: the lockfile says {bad}, the package file is {found_digest}"),
        format!("netbase: the lockfile wants 0.1.all, the compose found {netbase}"),
        format!("the repositories have: {netbase}"),
        "hostname ".to_string(),
        "named in no lockfile (--lockfile-strict)".to_string(),
        "nothing was committed".to_string(),
    ] {
        assert!(e.contains(&want), "expected `{want}` in:\n{e}");
    }
    let after = ostree(Path::new(&repo), &["refs", "--list"])
        + &ostree(Path::new(&repo), &["rev-parse", "test/debian/lock"]);
    assert_eq!(before, after, "the failed compose changed the repository");
}
