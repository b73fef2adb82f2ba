//! `cairn commit` / `cairn repo ...` against real libostree repos, with the `ostree` CLI,
//! `gpg` and a real HTTP `ostree pull` as oracles.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::http::HttpServer;
use crate::common::repo::*;
use crate::common::*;

const MODES: [&str; 2] = ["archive", "bare-user"];

fn show_json(repo: &Path, rev: &str) -> serde_json::Value {
    cairn_json([
        "repo",
        "show",
        rev,
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ])
}

/// A new repo of `mode` at `path` with remote `origin` at `url`; `verify` is `--no-gpg-verify`
/// or `--gpg-import=KEYRING`.
fn client(path: &Path, mode: &str, url: &str, verify: &str) -> std::path::PathBuf {
    ostree_ok(["init", &repo_arg(path), &format!("--mode={mode}")]);
    ostree_ok(["remote", "add", &repo_arg(path), verify, "origin", url]);
    path.to_path_buf()
}

/// `ostree pull` of os/stable from origin that must go through a static delta.
fn pull_through_delta(client: &Path) -> String {
    ostree_ok([
        "pull",
        &repo_arg(client),
        "--require-static-deltas",
        "origin",
        "os/stable",
    ])
}

/// `cairn repo delta generate --repo REPO ARGS...`, asserting success.
fn delta_generate(repo: &Path, args: &[&str]) {
    let mut all = vec![
        "repo",
        "delta",
        "generate",
        "--repo",
        repo.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    cairn_ok(all);
}

#[test]
fn commit_matches_ostree_cli_in_both_modes() {
    let t = tempdir();
    let tree = make_tree(&t.path().join("tree"));
    for mode in MODES {
        let ours = cairn_init(&t.path().join(format!("cairn-{mode}")), mode);
        let csum = cairn_commit(&tree, &ours, "test/x", &["--timestamp", "1700000000"]);
        assert_fsck_clean(&ours);
        assert_eq!(refs(&ours).get("test/x"), Some(&csum));

        let theirs = t.path().join(format!("ostree-{mode}"));
        ostree_ok(["init", &repo_arg(&theirs), &format!("--mode={mode}")]);
        ostree_ok([
            "commit",
            &repo_arg(&theirs),
            "--canonical-permissions",
            "-b",
            "test/x",
            tree.to_str().unwrap(),
        ]);
        let (a, b) = (
            ls_checksums(&ours, "test/x"),
            ls_checksums(&theirs, "test/x"),
        );
        assert!(a.len() >= 15, "listing too short: {a:?}");
        assert_eq!(a, b, "cairn and ostree commit differ ({mode})");
        // Canonical permissions: setuid squashed, owner 0:0, as --canonical-permissions does.
        assert!(
            a["/usr/bin/su"].starts_with("-00755 0 0"),
            "{}",
            a["/usr/bin/su"]
        );
        assert!(a.contains_key("/var/empty") && a.contains_key("/usr/bin/hello-hardlink"));
        let content = |repo: &Path| {
            ostree_ok(["show", &repo_arg(repo), "test/x"])
                .lines()
                .find(|l| l.starts_with("ContentChecksum"))
                .unwrap()
                .to_string()
        };
        assert_eq!(content(&ours), content(&theirs));
    }
}

#[test]
fn keep_permissions_stores_setuid() {
    let (_t, tree, repo) = tree_and_repo("bare-user");
    cairn_commit(&tree, &repo, "p", &["--keep-permissions"]);
    let ls = ls_checksums(&repo, "p");
    assert!(
        ls["/usr/bin/su"].starts_with("-04755"),
        "{}",
        ls["/usr/bin/su"]
    );
}

#[test]
fn same_tree_metadata_and_time_give_same_checksum_across_repos_and_modes() {
    let t = tempdir();
    let tree = make_tree(&t.path().join("tree"));
    let commit = |name: &str, mode: &str, epoch: &str| {
        let repo = cairn_init(&t.path().join(name), mode);
        let o = cairn()
            .args([
                "commit",
                tree.to_str().unwrap(),
                "--repo",
                repo.to_str().unwrap(),
            ])
            .args([
                "--ref",
                "os/stable",
                "--version",
                "1.0",
                "--add-metadata",
                "build=7",
            ])
            .env("SOURCE_DATE_EPOCH", epoch)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    let a = commit("a", "archive", "1700000000");
    let b = commit("b", "archive", "1700000000");
    let c = commit("c", "bare-user", "1700000000");
    let d = commit("d", "archive", "1700000001");
    assert_eq!(a, b);
    assert_eq!(a, c, "archive and bare-user commits differ");
    assert_ne!(a, d, "the timestamp must be part of the commit");
    let info = show_json(&t.path().join("a"), "os/stable");
    assert_eq!(info["timestamp"], 1700000000);
}

#[test]
fn history_show_log_and_diff() {
    let (_t, tree, repo) = tree_and_repo("archive");
    let pk1 = r#"[{"name":"bash","version":"5.2.15-2","arch":"amd64"},{"name":"vim","version":"9.0","arch":"amd64"}]"#;
    let pk2 = r#"[{"name":"bash","version":"5.2.21-1","arch":"amd64"},{"name":"curl","version":"7.88","arch":"amd64"}]"#;
    let c1 = cairn_commit(
        &tree,
        &repo,
        "os/x",
        &[
            "--version",
            "1",
            "--subject",
            "first",
            "--add-metadata",
            &format!("cairn.packages={pk1}"),
        ],
    );
    std::fs::write(tree.join("etc/hostname"), "changed\n").unwrap();
    std::fs::remove_file(tree.join("usr/lib/os-release")).unwrap();
    std::fs::create_dir_all(tree.join("opt/new")).unwrap();
    std::fs::write(tree.join("opt/new/file"), "x").unwrap();
    std::fs::write(tree.join("usr/bin/added"), "y").unwrap();
    let c2 = cairn_commit(
        &tree,
        &repo,
        "os/x",
        &[
            "--version",
            "2",
            "--add-metadata",
            &format!("cairn.packages={pk2}"),
        ],
    );

    // Parent chaining, checked with the ostree CLI.
    let log = ostree_ok(["log", &repo_arg(&repo), "os/x"]);
    assert!(
        log.contains(&format!("commit {c2}")) && log.contains(&format!("Parent:  {c1}")),
        "{log}"
    );

    let info = show_json(&repo, "os/x");
    assert_eq!(info["apiVersion"], "cairn/v1");
    assert_eq!(info["checksum"], c2);
    assert_eq!(info["parent"], c1);
    assert_eq!(info["version"], "2");
    assert_eq!(
        info["metadata"]["ostree.ref-binding"],
        serde_json::json!(["os/x"])
    );
    assert_eq!(info["signatures"], serde_json::json!([]));
    assert_eq!(show_json(&repo, "os/x^")["subject"], "first");

    let o = run_cairn(["repo", "log", "os/x", "--repo", repo.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(out.find(&c2).unwrap() < out.find(&c1).unwrap(), "{out}");

    let d = cairn_json([
        "repo",
        "diff",
        &c1,
        "os/x",
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        d["files"]["added"],
        serde_json::json!(["/opt/", "/usr/bin/added"])
    );
    assert_eq!(
        d["files"]["removed"],
        serde_json::json!(["/usr/lib/os-release"])
    );
    assert_eq!(d["files"]["modified"], serde_json::json!(["/etc/hostname"]));
    assert_eq!(d["packages"]["added"][0]["name"], "curl");
    assert_eq!(d["packages"]["removed"][0]["name"], "vim");
    assert_eq!(d["packages"]["changed"][0]["from"], "5.2.15-2");
    assert_eq!(d["packages"]["changed"][0]["to"], "5.2.21-1");
    // Cross-check the file lists with `ostree diff`.
    let od = ostree_ok(["diff", &repo_arg(&repo), &c1, &c2]);
    for l in [
        "M    /etc/hostname",
        "D    /usr/lib/os-release",
        "A    /opt",
        "A    /usr/bin/added",
    ] {
        assert!(od.contains(l), "ostree diff lacks {l}: {od}");
    }

    let o = run_cairn(["repo", "refs", "--repo", repo.to_str().unwrap()]);
    assert_eq!(stdout(&o).trim(), format!("os/x {c2}"));
}

#[test]
fn pull_over_http_then_through_a_static_delta() {
    let (t, tree, repo) = tree_and_repo("archive");
    let c1 = cairn_commit(&tree, &repo, "os/stable", &["--version", "1"]);
    let server = HttpServer::serve(&repo);

    // First pull, object by object, into an archive mirror.
    let mirror = client(
        &t.path().join("mirror"),
        "archive",
        &server.url,
        "--no-gpg-verify",
    );
    ostree_ok(["pull", &repo_arg(&mirror), "origin", "os/stable"]);
    assert_eq!(rev_parse(&mirror, "origin:os/stable"), c1);
    assert_fsck_clean(&mirror);
    // libostree applies static deltas only into bare repos ("Can't use static deltas in an
    // archive repo"), i.e. what hosts have: the delta pull goes to a bare-user client.
    let client = client(
        &t.path().join("client"),
        "bare-user",
        &server.url,
        "--no-gpg-verify",
    );
    ostree_ok(["pull", &repo_arg(&client), "origin", "os/stable"]);

    std::fs::write(tree.join("usr/lib/big.bin"), vec![7u8; 1 << 20]).unwrap();
    let c2 = cairn_commit(&tree, &repo, "os/stable", &["--version", "2"]);
    delta_generate(&repo, &["--from", &c1, "--to", "os/stable"]);
    let o = run_cairn(["repo", "delta", "list", "--repo", repo.to_str().unwrap()]);
    assert_eq!(stdout(&o).trim(), format!("{c1} -> {c2}"));

    let before = server.requests().len();
    let out = pull_through_delta(&client);
    assert_eq!(rev_parse(&client, "origin:os/stable"), c2, "{out}");
    let fetched = &server.requests()[before..];
    // The delta's superblock and its part 0 carry the update (libostree may still probe for
    // commitmeta or take a "fallback" object loose).
    assert!(
        fetched
            .iter()
            .any(|p| p.starts_with("/deltas/") && p.ends_with("/superblock")),
        "no delta: {fetched:?}"
    );
    assert!(
        fetched
            .iter()
            .any(|p| p.starts_with("/deltas/") && p.ends_with("/0")),
        "no delta part: {fetched:?}"
    );
    assert_fsck_clean(&client);
}

#[test]
fn empty_delta_serves_a_first_pull() {
    let (t, tree, repo) = tree_and_repo("archive");
    let c1 = cairn_commit(&tree, &repo, "os/stable", &[]);
    delta_generate(&repo, &["--empty", "--to", "os/stable"]);
    let server = HttpServer::serve(&repo);
    let client = client(
        &t.path().join("client"),
        "bare-user",
        &server.url,
        "--no-gpg-verify",
    );
    pull_through_delta(&client);
    assert_eq!(rev_parse(&client, "origin:os/stable"), c1);
}

#[test]
fn gpg_signed_commit_pulls_and_unsigned_is_refused() {
    if !have_tool("gpg", "gnupg is needed to make a throwaway signing key") {
        return;
    }
    let t = tempdir();
    let (home, key) = gpg_key(t.path());
    let pubkey = t.path().join("pub.gpg");
    gpg_export(&home, &key, &pubkey);
    let tree = make_tree(&t.path().join("tree"));
    let repo = cairn_init(&t.path().join("repo"), "archive");
    let signed = cairn_commit(
        &tree,
        &repo,
        "os/signed",
        &["--gpg-sign", &key, "--gpg-homedir", home.to_str().unwrap()],
    );
    cairn_commit(&tree, &repo, "os/unsigned", &[]);

    let info = cairn_json([
        "repo",
        "show",
        "os/signed",
        "--repo",
        repo.to_str().unwrap(),
        "--keyring",
        pubkey.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(info["checksum"], signed);
    assert_eq!(info["signatures"][0]["valid"], true, "{info}");
    assert_eq!(info["signatures"][0]["fingerprint"], key.as_str());

    let server = HttpServer::serve(&repo);
    let gpg_import = format!("--gpg-import={}", pubkey.display());
    let client = client(
        &t.path().join("client"),
        "archive",
        &server.url,
        &gpg_import,
    );
    ostree_ok(["pull", &repo_arg(&client), "origin", "os/signed"]);
    assert_eq!(rev_parse(&client, "origin:os/signed"), signed);
    let o = ostree(["pull", &repo_arg(&client), "origin", "os/unsigned"]);
    assert!(!o.status.success(), "unsigned commit was accepted");
    assert!(
        stderr(&o).contains("GPG") || stderr(&o).contains("signature"),
        "{}",
        stderr(&o)
    );

    // verify with the keyring: the unsigned ref fails, naming it.
    let o = run_cairn([
        "repo",
        "verify",
        "--repo",
        repo.to_str().unwrap(),
        "--keyring",
        pubkey.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("os/unsigned") && !stdout(&o).contains("ref os/signed"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn ed25519_is_reported_unavailable() {
    let (_t, tree, repo) = tree_and_repo("archive");
    let o = run_cairn([
        "commit",
        tree.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--ref",
        "x",
        "--sign-type",
        "ed25519",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ed25519 signatures are unavailable"),
        "{}",
        stderr(&o)
    );
    assert!(refs(&repo).is_empty());
}

fn spawn_commit(tree: &Path, repo: &Path, failpoint: Option<&str>) -> std::process::Child {
    let mut cmd = cairn();
    cmd.args([
        "commit",
        tree.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--ref",
        "os/x",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some(f) = failpoint {
        cmd.env("CAIRN_FAILPOINT", f);
    }
    cmd.spawn().unwrap()
}

#[test]
fn sigkill_at_failpoint_leaves_repo_clean_and_ref_unchanged() {
    for mode in MODES {
        let (_t, tree, repo) = tree_and_repo(mode);
        let c1 = cairn_commit(&tree, &repo, "os/x", &[]);
        let objects = object_count(&repo);
        std::fs::write(tree.join("usr/lib/new-file"), "new content\n").unwrap();

        let mut child = spawn_commit(&tree, &repo, Some("repo-commit-before-ref=pause"));
        wait_for_failpoint(&mut child, "repo-commit-before-ref");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        assert_fsck_clean(&repo);
        assert_eq!(
            refs(&repo).get("os/x"),
            Some(&c1),
            "ref moved by a killed commit ({mode})"
        );
        assert_eq!(
            object_count(&repo),
            objects,
            "objects leaked out of the transaction ({mode})"
        );
        // The repo stays usable: the next commit succeeds and chains to c1.
        let c2 = cairn_commit(&tree, &repo, "os/x", &[]);
        assert_eq!(show_json(&repo, &c2)["parent"], c1);
        assert_fsck_clean(&repo);
    }
}

#[test]
fn failpoint_error_aborts_cleanly() {
    let (_t, tree, repo) = tree_and_repo("archive");
    let c1 = cairn_commit(&tree, &repo, "os/x", &[]);
    std::fs::write(tree.join("etc/motd"), "hi\n").unwrap();
    let objects = object_count(&repo);
    let out = spawn_commit(&tree, &repo, Some("repo-commit-before-ref=error"))
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("failpoint repo-commit-before-ref triggered"),
        "{}",
        stderr(&out)
    );
    assert_eq!(refs(&repo).get("os/x"), Some(&c1));
    assert_eq!(object_count(&repo), objects);
    assert_fsck_clean(&repo);
}

#[test]
fn sigkill_at_a_random_moment_on_a_big_tree() {
    let (_t, tree, repo) = tree_and_repo("archive");
    // ~2500 files, 40 MB: long enough that a kill lands mid-write.
    for d in 0..50 {
        let dir = tree.join(format!("usr/share/bulk/{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            let data: Vec<u8> = (0..16384u32)
                .map(|i| (i ^ (d * 131 + f * 7)).wrapping_mul(2654435761) as u8)
                .collect();
            std::fs::write(dir.join(f.to_string()), data).unwrap();
        }
    }
    let c1 = cairn_commit(&tree.join("etc"), &repo, "os/x", &[]);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let delay = std::time::Duration::from_millis(100 + u64::from(nanos % 600));
    let mut child = spawn_commit(&tree, &repo, None);
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    eprintln!("killed after {delay:?} (finished first: {finished})");
    assert_fsck_clean(&repo);
    let now = refs(&repo)["os/x"].clone();
    if now != c1 {
        // Only a completed commit may move the ref, and then it is whole.
        assert_eq!(show_json(&repo, &now)["parent"], c1);
    }
}

/// What a refused command must leave as it was: the refs and the object files.
struct Unchanged<'a> {
    repo: &'a Path,
    refs: BTreeMap<String, String>,
    objects: usize,
}

impl Unchanged<'_> {
    fn of(repo: &Path) -> Unchanged<'_> {
        Unchanged {
            repo,
            refs: refs(repo),
            objects: object_count(repo),
        }
    }

    fn check(&self) {
        assert_eq!(refs(self.repo), self.refs);
        assert_eq!(object_count(self.repo), self.objects);
    }
}

/// cairn `args` fails with `needle` in its stderr.
fn fails(args: &[&str], needle: &str) {
    let o = run_cairn(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(
        stderr(&o).contains(needle),
        "{args:?}: want {needle:?} in {}",
        stderr(&o)
    );
}

/// `cairn commit TREE --repo REPO --ref REFNAME` fails with `needle` in its stderr.
fn commit_fails(tree: &Path, repo: &Path, refname: &str, needle: &str) {
    fails(
        &[
            "commit",
            tree.to_str().unwrap(),
            "--repo",
            repo.to_str().unwrap(),
            "--ref",
            refname,
        ],
        needle,
    );
}

#[test]
fn bad_input_fails_clearly_and_leaves_repo_unchanged() {
    let (t, tree, repo) = tree_and_repo("archive");
    let c1 = cairn_commit(&tree, &repo, "os/x", &[]);
    let unchanged = Unchanged::of(&repo);
    bad_arguments_are_refused(t.path(), &tree, &repo, &unchanged);
    special_files_are_refused(t.path(), &repo, &unchanged);
    an_unreadable_file_is_refused(&tree, &repo, &unchanged);
    assert_eq!(refs(&repo)["os/x"], c1);
    assert_fsck_clean(&repo);
}

fn bad_arguments_are_refused(t: &Path, tree: &Path, repo: &Path, unchanged: &Unchanged) {
    let r = repo.to_str().unwrap();
    commit_fails(
        Path::new("/nonexistent/rootfs"),
        repo,
        "os/x",
        "/nonexistent/rootfs: rootfs does not exist",
    );
    unchanged.check();
    let notrepo = t.join("tree");
    commit_fails(tree, &notrepo, "x", "not an OSTree repository");
    fails(
        &["repo", "refs", "--repo", "/nonexistent"],
        "not an OSTree repository",
    );
    fails(
        &["repo", "show", "no/such/ref", "--repo", r],
        "`no/such/ref`: no such ref or commit",
    );
    fails(
        &["repo", "log", "no/such/ref", "--repo", r],
        "no such ref or commit",
    );
    fails(
        &["repo", "diff", "os/x^", "os/x", "--repo", r],
        "`os/x^`: no such ref or commit",
    );
    commit_fails(tree, repo, "bad ref!", "invalid ref name");
    fails(
        &["repo", "prune", "--keep", "0", "--repo", r],
        "--keep must be at least 1",
    );
    unchanged.check();
}

/// Device nodes and FIFOs: refused, every one named by its path in the tree.
fn special_files_are_refused(t: &Path, repo: &Path, unchanged: &Unchanged) {
    let dev = t.join("devtree");
    make_tree(&dev);
    std::fs::create_dir_all(dev.join("dev")).unwrap();
    let mknod = Command::new("mknod")
        .arg(dev.join("dev/null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(mknod.success(), "tests run as root");
    Command::new("mkfifo")
        .arg(dev.join("etc/fifo"))
        .status()
        .unwrap();
    commit_fails(&dev, repo, "os/x", "/dev/null, /etc/fifo");
    unchanged.check();
}

/// An unreadable file: drop root's DAC override so mode 000 really is unreadable.
fn an_unreadable_file_is_refused(tree: &Path, repo: &Path, unchanged: &Unchanged) {
    std::fs::write(tree.join("etc/shadow"), "secret").unwrap();
    std::fs::set_permissions(
        tree.join("etc/shadow"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let o = Command::new("setpriv")
        .args([
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
        ])
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "commit",
            tree.to_str().unwrap(),
            "--repo",
            repo.to_str().unwrap(),
            "--ref",
            "os/x",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("/etc/shadow") && stderr(&o).contains("Permission denied"),
        "{}",
        stderr(&o)
    );
    unchanged.check();
}

#[test]
fn prune_keeps_newest_n_per_ref() {
    let (_t, tree, repo) = tree_and_repo("archive");
    let mut commits = Vec::new();
    for i in 0..4 {
        std::fs::write(tree.join("etc/build"), format!("{i}\n")).unwrap();
        commits.push(cairn_commit(&tree, &repo, "os/a", &[]));
    }
    let other = cairn_commit(&tree, &repo, "os/b", &["--parent", "none"]);
    let res = cairn_json([
        "repo",
        "prune",
        "--keep",
        "2",
        "--repo",
        repo.to_str().unwrap(),
        "--json",
    ]);
    assert!(res["objectsPruned"].as_i64().unwrap() >= 2, "{res}");
    let exists = |c: &str| ostree(["show", &repo_arg(&repo), c]).status.success();
    assert!(exists(&commits[3]) && exists(&commits[2]) && exists(&other));
    assert!(!exists(&commits[1]) && !exists(&commits[0]));
    assert_fsck_clean(&repo);
    let o = run_cairn(["repo", "log", "os/a", "--repo", repo.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("History beyond this commit"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn verify_catches_a_corrupted_object() {
    let (_t, tree, repo) = tree_and_repo("bare-user");
    cairn_commit(&tree, &repo, "os/x", &[]);
    let ok = cairn_json(["repo", "verify", "--repo", repo.to_str().unwrap(), "--json"]);
    assert_eq!(ok["ok"], true);
    assert!(ok["objectsChecked"].as_u64().unwrap() > 10);
    // Find the object holding big.bin (the only 1 MiB file) and flip a byte.
    let obj = walkdir::WalkDir::new(repo.join("objects"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.metadata().map(|m| m.len() == 1 << 20).unwrap_or(false))
        .expect("big object");
    let mut data = std::fs::read(obj.path()).unwrap();
    data[1000] ^= 0xff;
    std::fs::write(obj.path(), data).unwrap();
    let o = run_cairn(["repo", "verify", "--repo", repo.to_str().unwrap()]);
    assert!(!o.status.success());
    let name = obj
        .path()
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        stdout(&o).contains(&name) && stdout(&o).contains("FAILED"),
        "{}",
        stdout(&o)
    );
}
