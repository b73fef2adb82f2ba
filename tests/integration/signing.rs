//! Signed composes: the treefile's `gpg-key` signs the commit and the summary, so a client
//! remote with gpg-verify and gpg-verify-summary pulls it and refuses an unsigned commit;
//! `cairn repo sign` signs one afterwards. And treefile keys a backend ignores are warnings.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{cairn, have_tool, run_cairn, stderr, stdout, tempdir};

/// A GnuPG home with one passphrase-less signing key; returns (home, fingerprint).
pub(crate) fn gpg_key(dir: &Path) -> (PathBuf, String) {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--passphrase", ""])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "gpg {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    gpg(&[
        "--quick-gen-key",
        "cairn test <test@cairn.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    let fpr = gpg(&["--list-keys", "--with-colons"])
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_string())
        })
        .unwrap();
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let pubkey = gpg(&["--armor", "--export", &fpr]);
    std::fs::write(keys.join("cairn-test.asc"), &pubkey).unwrap();
    // libostree reads binary keyrings (`*.gpg`) from a keyring directory.
    let o = Command::new("gpg")
        .arg("--homedir")
        .arg(&home)
        .args(["--batch", "--export", &fpr])
        .output()
        .unwrap();
    std::fs::write(keys.join("cairn-test.gpg"), o.stdout).unwrap();
    (home, fpr)
}

fn ostree(args: &[&str]) -> std::process::Output {
    Command::new("ostree").args(args).output().unwrap()
}

/// A one-file root filesystem composed by the rootfs backend (no package work).
fn rootfs_treefile(dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("root/usr/bin")).unwrap();
    std::fs::write(dir.join("root/usr/bin/hello"), "hello\n").unwrap();
    let tf = dir.join("signed.yaml");
    std::fs::write(
        &tf,
        format!(
            "ref: test/signed\n{extra}cairn:\n  backend: rootfs\n  bootable: false\n  rootfs: {{path: root}}\n"
        ),
    )
    .unwrap();
    tf
}

#[test]
fn signed_compose_pulls_with_gpg_verify_and_unsigned_is_refused() {
    if !have_tool("gpg", "package gnupg") {
        return;
    }
    let t = tempdir();
    let (home, key) = gpg_key(t.path());
    let tf = rootfs_treefile(t.path(), &format!("gpg-key: {key}\n"));
    let repo = t.path().join("repo");
    let o = cairn()
        .args(["compose", &tf.display().to_string(), "--json", "--repo"])
        .arg(&repo)
        .env("GNUPGHOME", &home)
        .output()
        .unwrap();
    assert!(o.status.success(), "compose: {}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["signedWith"], key.as_str());
    assert!(repo.join("summary.sig").is_file(), "the summary is signed");

    // `ostree show` verifies the commit's signature with the public key alone.
    let keys = t.path().join("keys");
    let repo_arg = format!("--repo={}", repo.display());
    let show = ostree(&[
        &repo_arg,
        "show",
        "test/signed",
        &format!("--gpg-homedir={}", keys.display()),
    ]);
    assert!(
        stdout(&show).contains("Good signature from \"cairn test <test@cairn.invalid>\""),
        "{}{}",
        stdout(&show),
        stderr(&show)
    );

    // A client that verifies commits and the summary pulls it.
    let client = t.path().join("client");
    let client_arg = format!("--repo={}", client.display());
    assert!(ostree(&["init", &client_arg, "--mode=archive"])
        .status
        .success());
    let add = ostree(&[
        &client_arg,
        "remote",
        "add",
        "--set=gpg-verify=true",
        "--set=gpg-verify-summary=true",
        &format!("--gpg-import={}", keys.join("cairn-test.asc").display()),
        "origin",
        &format!("file://{}", repo.display()),
    ]);
    assert!(add.status.success(), "{}", stderr(&add));
    let pull = ostree(&[&client_arg, "pull", "origin", "test/signed"]);
    assert!(pull.status.success(), "signed pull: {}", stderr(&pull));

    // An unsigned commit on the same remote (its summary signed again) is refused.
    let o = run_cairn([
        "commit",
        &t.path().join("root").display().to_string(),
        "--repo",
        &repo.display().to_string(),
        "--ref",
        "test/unsigned",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resign = Command::new("ostree")
        .args([&repo_arg, "summary", "-u", &format!("--gpg-sign={key}")])
        .env("GNUPGHOME", &home)
        .output()
        .unwrap();
    assert!(resign.status.success(), "{}", stderr(&resign));
    let pull = ostree(&[&client_arg, "pull", "origin", "test/unsigned"]);
    assert!(!pull.status.success(), "an unsigned commit was pulled");
    assert!(
        stderr(&pull).contains("no signatures found"),
        "{}",
        stderr(&pull)
    );

    // `cairn repo sign` signs it (and the summary): now it pulls.
    let o = run_cairn([
        "repo",
        "sign",
        "test/unsigned",
        "--repo",
        &repo.display().to_string(),
        "--gpg-sign",
        &key,
        "--gpg-homedir",
        &home.display().to_string(),
        "--json",
    ]);
    assert!(o.status.success(), "repo sign: {}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (j["apiVersion"].as_str(), j["kind"].as_str()),
        (Some("cairn/v1"), Some("SignResult"))
    );
    assert_eq!(j["summarySigned"], true);
    let pull = ostree(&[&client_arg, "pull", "origin", "test/unsigned"]);
    assert!(
        pull.status.success(),
        "pull after repo sign: {}",
        stderr(&pull)
    );
}

#[test]
fn compose_gpg_sign_flag_overrides_and_bad_key_commits_nothing() {
    if !have_tool("gpg", "package gnupg") {
        return;
    }
    let t = tempdir();
    let (home, key) = gpg_key(t.path());
    let tf = rootfs_treefile(t.path(), "gpg-key: 0000DEADBEEF0000\n");
    let repo = t.path().join("repo");
    let args = |k: &str| {
        vec![
            "compose".to_string(),
            tf.display().to_string(),
            "--repo".into(),
            repo.display().to_string(),
            "--gpg-homedir".into(),
            home.display().to_string(),
            "--gpg-sign".into(),
            k.to_string(),
        ]
    };
    // The treefile's key does not exist; --gpg-sign replaces it.
    let o = run_cairn(args(&key));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_cairn([
        "compose",
        &tf.display().to_string(),
        "--repo",
        &repo.display().to_string(),
        "--force-nocache",
        "--gpg-homedir",
        &home.display().to_string(),
    ]);
    assert!(!o.status.success(), "signing with a missing key succeeded");
    assert!(stderr(&o).contains("0000DEADBEEF0000"), "{}", stderr(&o));
    let refs = ostree(&[&format!("--repo={}", repo.display()), "log", "test/signed"]);
    assert_eq!(
        stdout(&refs).matches("commit ").count(),
        1,
        "the failed compose left a commit"
    );
}

#[test]
fn treefile_keys_a_backend_ignores_are_warnings() {
    let t = tempdir();
    let tf = rootfs_treefile(
        t.path(),
        "selinux: true\ninitramfs-args: [--no-hostonly]\nboot-location: modules\npackages: [bash]\n",
    );
    let o = run_cairn([
        "compose",
        &tf.display().to_string(),
        "--repo",
        &t.path().join("repo").display().to_string(),
        "--dry-run",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    for k in ["selinux", "initramfs-args", "packages"] {
        assert!(
            e.contains(&format!(
                "treefile key `{k}` is ignored by the rootfs backend"
            )),
            "{k}: {e}"
        );
    }
    // boot-location: modules is what cairn does anyway.
    assert!(!e.contains("`boot-location`"), "{e}");
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["warnings"].as_array().unwrap().len(), 3, "{j:#}");
}
