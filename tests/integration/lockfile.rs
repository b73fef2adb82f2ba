//! Lockfiles with the dnf backend on RPMs built here: written, used for the same commit,
//! checked against rpm-ostree's lockfile schema, every mismatch a clear error with nothing
//! committed; `cairn lockfile diff`; an RPM snapshot composed from offline.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::compose::{rpm_repo, standard_rpms};
use crate::common::{have_tool, run_cairn, stderr, stdout, tempdir};

const REF: &str = "test/lock/x86_64";

fn rpm_tools() -> bool {
    have_tool("rpmbuild", "package rpm")
        && have_tool("createrepo_c", "package createrepo-c")
        && have_tool("dnf", "package dnf")
}

/// A dnf treefile beside the test repository's .repo file.
fn treefile(dir: &Path) -> PathBuf {
    let tf = dir.join("host.yaml");
    std::fs::write(
        &tf,
        format!(
            "ref: {REF}\nrepos: [cairn-test]\nreleasever: \"1\"\ndocumentation: false\nrecommends: false\n\
             packages: [cairn-hello, cairn-sh]\ncairn:\n  backend: dnf\n  bootable: false\n"
        ),
    )
    .unwrap();
    tf
}

/// `cairn compose` with a fixed SOURCE_DATE_EPOCH (so two composes can be compared).
fn compose(tf: &Path, repo: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = crate::common::cairn();
    c.args(["compose", &tf.display().to_string(), "--json"])
        .arg("--repo")
        .arg(repo)
        .arg("--cachedir")
        .arg(cache)
        .args(extra)
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c.output().unwrap()
}

/// `cairn snapshot TREEFILE --out SNAP` with a fixed SOURCE_DATE_EPOCH; panics on failure.
fn snapshot(tf: &Path, snap: &Path, cache: &Path, flag: &str) -> std::process::Output {
    let o = crate::common::cairn()
        .args(["snapshot", &tf.display().to_string(), flag, "--out"])
        .arg(snap)
        .arg("--cachedir")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(o.status.success(), "snapshot: {}", stderr(&o));
    o
}

fn commit_of(out: &std::process::Output) -> String {
    assert!(out.status.success(), "compose: {}", stderr(out));
    let j: serde_json::Value = serde_json::from_str(&stdout(out)).unwrap();
    j["commit"].as_str().unwrap().to_string()
}

/// The repository's refs and object count: what a failed compose must leave as it was.
fn repo_state(repo: &Path) -> (String, usize) {
    let refs = crate::common::compose::ostree(repo, &["refs"]);
    (
        refs,
        walkdir::WalkDir::new(repo.join("objects"))
            .into_iter()
            .count(),
    )
}

/// rpm-ostree's lockfile (rust/src/lockfile.rs: `LockfileConfig`, `LockedPackage::Evra`) as a
/// JSON schema, checked with python3-jsonschema.
const RPM_OSTREE_LOCKFILE_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["packages"],
  "properties": {
    "metadata": {
      "type": "object",
      "properties": {
        "generated": {"type": "string", "format": "date-time",
                      "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"},
        "rpmmd_repos": {"type": "object"}
      }
    },
    "packages": {
      "type": "object",
      "additionalProperties": {
        "oneOf": [
          {"type": "object", "required": ["evra"], "additionalProperties": false,
           "properties": {"evra": {"type": "string", "pattern": "^([0-9]+:)?[^-:]+-[^-]+\\.[A-Za-z0-9_]+$"},
                          "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                          "metadata": {"type": "object"}}},
          {"type": "object", "required": ["evr"], "additionalProperties": false,
           "properties": {"evr": {"type": "string"},
                          "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                          "metadata": {"type": "object"}}}
        ]
      }
    }
  }
}"#;

fn check_schema(lockfile: &Path, dir: &Path) {
    let schema = dir.join("rpm-ostree-lockfile.schema.json");
    std::fs::write(&schema, RPM_OSTREE_LOCKFILE_SCHEMA).unwrap();
    // Debian's python3 with python3-jsonschema (scripts/setup.sh): not a pyenv shim.
    let o = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')",
        ])
        .arg(lockfile)
        .arg(&schema)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "lockfile fails rpm-ostree's schema: {}{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn dnf_write_lockfile_then_lockfile_gives_the_same_commit() {
    if !rpm_tools() {
        return;
    }
    let t = tempdir();
    let src = rpm_repo(&t.path().join("src"), &standard_rpms("1.0"));
    let tf = treefile(&src);
    let lock = t.path().join("host.lock.json");
    let lock_s = lock.display().to_string();
    let first = compose(
        &tf,
        &t.path().join("repo1"),
        &t.path().join("cache1"),
        &["--write-lockfile", &lock_s],
    );
    let c1 = commit_of(&first);
    let j: serde_json::Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(j["lockfile"], lock_s.as_str());
    let lf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    assert_eq!(lf["packages"]["cairn-hello"]["evra"], "1.0-1.noarch");
    let rpm = src.join("repo/cairn-hello-1.0-1.noarch.rpm");
    let want = format!(
        "sha256:{}",
        cairn_compose::snapshot::sha256_file(&rpm).unwrap()
    );
    assert_eq!(lf["packages"]["cairn-hello"]["digest"], want.as_str());
    assert_eq!(lf["packages"].as_object().unwrap().len(), 3, "{lf:#}");
    check_schema(&lock, t.path());

    // Another repo and cache, the lockfile strictly applied: the same commit.
    let second = compose(
        &tf,
        &t.path().join("repo2"),
        &t.path().join("cache2"),
        &["--lockfile", &lock_s, "--lockfile-strict"],
    );
    assert_eq!(commit_of(&second), c1);
}

/// Three ways a lockfile can disagree with the repositories; each is one clear error and the
/// repository keeps its refs and objects.
#[test]
fn lockfile_mismatches_are_errors_and_commit_nothing() {
    if !rpm_tools() {
        return;
    }
    let t = tempdir();
    let src = rpm_repo(&t.path().join("src"), &standard_rpms("1.0"));
    let tf = treefile(&src);
    let (repo, cache) = (t.path().join("repo"), t.path().join("cache"));
    let lock = t.path().join("good.lock.json");
    let lock_s = lock.display().to_string();
    commit_of(&compose(&tf, &repo, &cache, &["--write-lockfile", &lock_s]));
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let before = repo_state(&repo);
    let variant = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = good.clone();
        edit(&mut v);
        let p = t.path().join(name);
        std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        p.display().to_string()
    };
    let failing = |args: &[&str], expect: &[&str]| {
        let o = compose(&tf, &repo, &cache, &[&["--force-nocache"], args].concat());
        assert!(
            !o.status.success(),
            "compose {args:?} succeeded: {}",
            stdout(&o)
        );
        let e = stderr(&o);
        for x in expect {
            assert!(e.contains(x), "compose {args:?}: expected `{x}` in:\n{e}");
        }
        assert!(e.contains("nothing was committed"), "{e}");
        assert_eq!(
            repo_state(&repo),
            before,
            "compose {args:?} changed the repository"
        );
    };

    let bad = format!("sha256:{}", "0".repeat(64));
    let wrong_digest = variant("digest.json", &|v| {
        v["packages"]["cairn-base"]["digest"] = bad.clone().into()
    });
    let found = good["packages"]["cairn-base"]["digest"].as_str().unwrap();
    failing(
        &["--lockfile", &wrong_digest],
        &["cairn-base 2.0-1.noarch: digest mismatch", &bad, found],
    );

    let unlisted = variant("unlisted.json", &|v| {
        v["packages"].as_object_mut().unwrap().remove("cairn-base");
    });
    failing(
        &["--lockfile", &unlisted, "--lockfile-strict"],
        &["cairn-base 2.0-1.noarch: needed by the resolution but named in no lockfile"],
    );

    // The mirror moves on: 1.0 is gone, 2.0 is all it has.
    std::fs::remove_dir_all(src.join("repo")).unwrap();
    std::fs::remove_dir_all(src.join("rpmbuild")).unwrap();
    rpm_repo(&src, &standard_rpms("2.0"));
    failing(
        &["--lockfile", &lock_s],
        &[
            "cairn-hello: the lockfile wants 1.0-1.noarch",
            "the repositories have: 2.0-1.noarch",
        ],
    );
}

#[test]
fn lockfile_diff_names_added_removed_and_changed() {
    let t = tempdir();
    let write = |name: &str, body: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let a = write(
        "a.json",
        &format!(
            r#"{{"metadata":{{"generated":"2024-01-01T00:00:00Z"}},"packages":{{"bash":{{"evra":"5.2-1.x86_64","digest":"{}"}},"gone":{{"evra":"1-1.noarch","digest":"{}"}},"same":{{"evra":"1-1.noarch","digest":"{}"}}}}}}"#,
            d('a'),
            d('b'),
            d('c')
        ),
    );
    let b = write(
        "b.json",
        &format!(
            r#"{{"packages":{{"bash":{{"evra":"5.3-1.x86_64","digest":"{}"}},"new":{{"evra":"2-1.noarch","digest":"{}"}},"same":{{"evra":"1-1.noarch","digest":"{}"}}}}}}"#,
            d('d'),
            d('e'),
            d('c')
        ),
    );
    let o = run_cairn(["lockfile", "diff", &a, &b]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "+ new 2-1.noarch\n- gone 1-1.noarch\n~ bash 5.2-1.x86_64 -> 5.3-1.x86_64\n"
    );
    let o = run_cairn(["lockfile", "diff", &a, &b, "--json"]);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["kind"], "LockfileDiff");
    assert_eq!(j["changed"][0]["to"], "5.3-1.x86_64");
    let o = run_cairn(["lockfile", "diff", &a, &a]);
    assert_eq!(stdout(&o), "no changes\n");
    let o = run_cairn([
        "lockfile",
        "diff",
        &a,
        &t.path().join("nope.json").display().to_string(),
    ]);
    assert!(!o.status.success() && stderr(&o).contains("nope.json"));
}

/// An RPM snapshot (createrepo_c) is all a compose needs: the source repository is deleted and
/// the compose runs without a network, to the same commit as from the live repository.
#[test]
fn dnf_snapshot_composes_offline_to_the_same_commit() {
    if !rpm_tools() || !have_tool("unshare", "package util-linux") {
        return;
    }
    let t = tempdir();
    let src = rpm_repo(&t.path().join("src"), &standard_rpms("1.0"));
    let tf = treefile(&src);
    let live = commit_of(&compose(
        &tf,
        &t.path().join("repo1"),
        &t.path().join("c1"),
        &[],
    ));
    let snap = t.path().join("snap");
    let o = snapshot(&tf, &snap, &t.path().join("c0"), "--json");
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (j["apiVersion"].as_str(), j["kind"].as_str()),
        (Some("cairn/v1"), Some("SnapshotResult"))
    );
    assert_eq!(j["packages"], 3);
    assert!(snap.join("repodata/repomd.xml").is_file());
    assert!(snap.join("Packages/cairn-hello-1.0-1.noarch.rpm").is_file());
    std::fs::remove_dir_all(src.join("repo")).unwrap();

    let out = Command::new("unshare")
        .arg("-n")
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args(["compose", &tf.display().to_string(), "--json", "--snapshot"])
        .arg(&snap)
        .arg("--repo")
        .arg(t.path().join("repo2"))
        .arg("--cachedir")
        .arg(t.path().join("c2"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|_| panic!("compose --snapshot: {}", stderr(&out)));
    assert_eq!(j["snapshot"], snap_digest(&snap));
    // The snapshot's digest is recorded in the commit; the tree is the live compose's.
    let meta = crate::common::compose::ostree(
        &t.path().join("repo2"),
        &["show", "--print-metadata-key=cairn.snapshot", REF],
    );
    assert!(meta.contains(j["snapshot"].as_str().unwrap()), "{meta}");
    let tree =
        |repo: &str| crate::common::compose::ostree(&t.path().join(repo), &["ls", "-R", "-C", REF]);
    assert_eq!(tree("repo1"), tree("repo2"));
    assert_ne!(
        j["commit"],
        live.as_str(),
        "the snapshot digest is part of the metadata"
    );
}

fn snap_digest(snap: &Path) -> String {
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(snap.join("cairn-snapshot.json")).unwrap())
            .unwrap();
    info["digest"].as_str().unwrap().to_string()
}

/// `cairn serve --snapshot` hands a snapshot to builders over HTTP: a compose from its URL needs
/// nothing else (the source repository is gone) and gives the commit a compose from the
/// directory gives.
#[test]
fn dnf_snapshot_served_by_cairn_serve_composes_over_http() {
    if !rpm_tools() {
        return;
    }
    let t = tempdir();
    let src = rpm_repo(&t.path().join("src"), &standard_rpms("1.0"));
    let tf = treefile(&src);
    let snap = t.path().join("snap");
    snapshot(&tf, &snap, &t.path().join("c0"), "--quiet");
    std::fs::remove_dir_all(src.join("repo")).unwrap();

    let inventory = crate::common::project_root().join("kickstart/inventory.yaml");
    let server = crate::common::metal::Server::start(
        t.path(),
        &[
            "--inventory",
            &inventory.display().to_string(),
            "--snapshot",
            &snap.display().to_string(),
        ],
    );
    let (status, _) = server.get("/snapshot/cairn-snapshot.json");
    assert_eq!(status, 200);
    let (status, _) = server.get("/snapshot/../cairn-snapshot.json");
    assert_ne!(status, 200, "a path out of the snapshot must be refused");

    let snap_arg = |name: &str, s: &str| {
        let dir = t.path().join(name);
        compose(
            &tf,
            &dir.join("repo"),
            &dir.join("cache"),
            &["--snapshot", s],
        )
    };
    let url = format!("{}/snapshot/", server.url);
    let over_http = commit_of(&snap_arg("http", &url));
    let from_dir = commit_of(&snap_arg("dir", &snap.display().to_string()));
    assert_eq!(over_http, from_dir);
}
