//! The CLI surface itself: help that teaches, errors that exit non-zero, and one JSON envelope
//! for every command's `--json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::common::metal::shipped_inventory;
use crate::common::repo::{cairn_commit, cairn_init, make_tree, repo_arg};
use crate::common::sysroot::{Fixture, OS, REF};
use crate::common::*;

#[test]
fn help_lists_command_families() {
    let o = run_cairn(["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("treefile"), "{out}");
}

#[test]
fn unknown_command_fails() {
    let o = run_cairn(["no-such-command"]);
    assert!(!o.status.success());
}

/// A full disk loses output: the command must say so and not exit 0, and must not panic (101).
#[test]
fn lost_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = cairn()
        .args(["sysctl", "list"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("writing to stdout failed"),
        "{}",
        stderr(&o)
    );
}

/// A reader that leaves early (`| head`) is normal for a filter: quiet, and the real status.
#[test]
fn closed_pipe_is_quiet() {
    // The read end is closed before cairn starts, so its first write gets EPIPE for certain.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = cairn()
        .args(["treefile", "render"])
        .arg(project_root().join("treefiles/k8s-node.yaml"))
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

// ------------------------------------------------- every --json document, found from --help

/// Commands with `--json` that this file does not run, and where their document is checked.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "image build",
        "builds a disk image through a loop device (minutes, root); tests/integration/image.rs \
         asserts its apiVersion and kind on every build",
    ),
    (
        "install",
        "partitions a loop-backed disk image and pulls a commit over HTTP from cairn serve (root, \
         ~20 s); tests/integration/install.rs asserts its kind on every successful install",
    ),
    (
        "snapshot",
        "downloads a treefile's resolution (RPMs built by rpmbuild, or Debian packages); \
         tests/integration/lockfile.rs and snapshot.rs assert its apiVersion and kind",
    ),
    (
        "repo sign",
        "needs a GPG secret key; tests/integration/signing.rs makes one and asserts its apiVersion \
         and kind",
    ),
];

/// Leaf commands without `--json`, and why they have none. A new command fails the discovery
/// test until it gets `--json` (and a row in `cases`) or a row here.
const NO_JSON: &[(&str, &str)] = &[
    (
        "treefile render",
        "prints a treefile (rpm-ostree's format), not a cairn document",
    ),
    ("repo init", "prints nothing on stdout"),
    ("repo delta generate", "prints nothing on stdout"),
    (
        "kickstart hosts",
        "prints a JSON document without being asked; run in `cases` without a flag",
    ),
    (
        "serve",
        "a server: its output is HTTP responses and JSON-lines logs",
    ),
    (
        "agent",
        "a daemon: prints one JSON event per line (tests/integration/agent.rs reads them)",
    ),
    (
        "fleetlock serve",
        "a server: prints its address, then one JSON line per request on stderr",
    ),
    (
        "fleetlock pre-reboot",
        "node side of the protocol: the answer is the exit status (0, 75 full)",
    ),
    (
        "fleetlock steady-state",
        "node side of the protocol: the answer is the exit status",
    ),
    ("fleetlock id", "prints one id, for scripts"),
];

/// The subcommands a `--help` text lists (clap's `Commands:` block), without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        // Wrapped descriptions are indented further than the two spaces before a name.
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every leaf command as `cairn ... --help` shows it, with whether it accepts `--json`.
fn leaf_commands() -> BTreeMap<String, bool> {
    let mut leaves = BTreeMap::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(words) = todo.pop() {
        let o = run_cairn(words.iter().map(String::as_str).chain(["--help"]));
        assert!(o.status.success(), "cairn {words:?} --help: {}", stderr(&o));
        let help = stdout(&o);
        let subs = subcommands(&help);
        if subs.is_empty() {
            let json = help.lines().any(|l| l.trim_start().starts_with("--json"));
            leaves.insert(words.join(" "), json);
        }
        for s in subs {
            let mut w = words.clone();
            w.push(s);
            todo.push(w);
        }
    }
    leaves
}

/// One command run for its JSON document.
struct Case {
    cmd: &'static str,
    kind: &'static str,
    args: Vec<String>,
    /// Whether `--json` is passed (false: the command always prints JSON).
    flag: bool,
    status: i32,
}

fn case(cmd: &'static str, kind: &'static str, args: &[&str]) -> Case {
    Case {
        cmd,
        kind,
        args: args.iter().map(|s| s.to_string()).collect(),
        flag: true,
        status: 0,
    }
}

/// Real inputs for every command: a repo made by cairn (two commits, a delta), the shipped
/// treefiles and inventory, and an empty sysroot with a remote built by the ostree CLI.
struct World {
    t: tempfile::TempDir,
    repo: PathBuf,
    first: String,
    fx: Fixture,
    /// A second sysroot with an update staged (`upgrade --stage`), for `finalize`.
    staged: Fixture,
    /// One etcd member with a held FleetLock slot, for `fleetlock status` and `release`
    /// (`None` only outside CI without etcd installed: a loud SKIP).
    etcd: Option<crate::common::etcd::Cluster>,
}

impl World {
    fn new() -> World {
        let t = tempdir();
        let tree = make_tree(&t.path().join("tree"));
        let repo = cairn_init(&t.path().join("repo"), "archive");
        let first = cairn_commit(&tree, &repo, "os/x", &["--version", "1"]);
        std::fs::write(tree.join("usr/bin/added"), "new\n").unwrap();
        cairn_commit(&tree, &repo, "os/x", &["--version", "2"]);
        let repo_flag = repo_arg(&repo);
        let o = run_cairn([
            "repo", "delta", "generate", "--empty", "--to", "os/x", &repo_flag,
        ]);
        assert!(o.status.success(), "delta generate: {}", stderr(&o));
        std::fs::create_dir(t.path().join("health")).unwrap();
        let fx = Fixture::new();
        fx.commit("1.0");
        let staged = Fixture::new();
        staged.commit("1.0");
        staged.deploy(&["--karg", "root=/dev/vda3"]);
        staged.commit("2.0");
        staged.cairn_ok(&["upgrade", "--stage"]);
        let etcd = crate::common::etcd::available().then(|| {
            let c = crate::common::etcd::Cluster::start(1);
            let key = "com.coreos.airlock/groups/default/v1/semaphore";
            let o = c.etcdctl(&["put", key, r#"{"total_slots":1,"holders":["n1"]}"#]);
            assert!(o.status.success(), "etcdctl put: {}", stderr(&o));
            c
        });
        World {
            t,
            repo,
            first,
            fx,
            staged,
            etcd,
        }
    }

    fn path(&self, rel: &str) -> String {
        self.t.path().join(rel).display().to_string()
    }
}

/// Commands that build and inspect: treefiles, repos, compose (its dry run).
fn build_cases(w: &World) -> Vec<Case> {
    let tf = |name: &str| {
        project_root()
            .join("treefiles")
            .join(name)
            .display()
            .to_string()
    };
    let (deb, k8s) = (tf("debian-12.yaml"), tf("k8s-node.yaml"));
    let repo = repo_arg(&w.repo);
    let compose_tf = w.path("deb.yaml");
    std::fs::write(
        &compose_tf,
        "ref: test/deb\npackages: [netbase]\ncairn:\n  mmdebstrap: {suite: bookworm}\n",
    )
    .unwrap();
    let arch = ["--arch", "x86_64"];
    let img = format!("oci:{}:t", w.path("img"));
    let (lock_a, lock_b) = (w.path("a.lock.json"), w.path("b.lock.json"));
    std::fs::write(
        &lock_a,
        r#"{"packages": {"bash": {"evra": "5.2-1.x86_64"}}}"#,
    )
    .unwrap();
    std::fs::write(
        &lock_b,
        r#"{"packages": {"bash": {"evra": "5.3-1.x86_64"}}}"#,
    )
    .unwrap();
    vec![
        case("treefile check", "TreefileCheck", &[&deb, arch[0], arch[1]]),
        case(
            "treefile diff",
            "TreefileDiff",
            &[&deb, &k8s, arch[0], arch[1]],
        ),
        case(
            "commit",
            "CommitResult",
            &[&w.path("tree"), &repo, "--ref", "os/y"],
        ),
        case("repo refs", "RefList", &[&repo]),
        case("repo log", "CommitLog", &["os/x", &repo]),
        case("repo show", "Commit", &["os/x", &repo]),
        case("repo diff", "CommitDiff", &[&w.first, "os/x", &repo]),
        case("repo delta list", "DeltaList", &[&repo]),
        case("repo prune", "PruneResult", &["--keep", "5", &repo]),
        case("repo verify", "VerifyReport", &[&repo]),
        case(
            "container export",
            "ContainerExport",
            &["os/x", &repo, "--to", &img],
        ),
        case(
            "container import",
            "ContainerImport",
            &[&img, &repo, "--ref", "os/imported"],
        ),
        case("container inspect", "ContainerImage", &[&img]),
        case(
            "compose",
            "ComposeResult",
            &[&compose_tf, "--repo", &w.path("composed"), "--dry-run"],
        ),
        case("lockfile diff", "LockfileDiff", &[&lock_a, &lock_b]),
    ]
}

/// Commands for bare metal and VM images, and the preset registry.
fn metal_cases(w: &World) -> Vec<Case> {
    let inv = shipped_inventory().display().to_string();
    let mut hosts = case("kickstart hosts", "InventoryHosts", &["--inventory", &inv]);
    hosts.flag = false;
    vec![
        case("kickstart check", "InventoryCheck", &["--inventory", &inv]),
        case(
            "kickstart render",
            "RenderReport",
            &["--inventory", &inv, "--out", &w.path("ks")],
        ),
        hosts,
        case("sysctl list", "SysctlPresetList", &[]),
        case("sysctl show", "SysctlPreset", &["kubernetes-node"]),
        case(
            "packer render",
            "PackerRender",
            &["--profile", "qemu-iso", "--out", &w.path("packer")],
        ),
        case("packer profiles", "PackerProfileList", &[]),
    ]
}

/// Host commands on the fixture sysroot, in an order where each has something to act on.
fn host_cases(w: &World) -> Vec<Case> {
    let url = w.fx.url();
    let health = w.path("health");
    let mut upgrade = case("upgrade", "UpgradeResult", &[]);
    // `deploy` runs first and takes the remote's newest commit: upgrade's documented exit 77.
    upgrade.status = 77;
    let mut cases = vec![
        case(
            "deploy",
            "DeployResult",
            &[
                REF,
                "--remote",
                "origin",
                "--url",
                &url,
                "--karg",
                "root=/dev/vda3",
            ],
        ),
        upgrade,
        case("status", "HostStatus", &[]),
        case("kargs", "KargsResult", &["--append", "cairn.test=1"]),
        case("pin", "PinResult", &["0"]),
        case("unpin", "PinResult", &["0"]),
        case("rollback", "RollbackResult", &[]),
        case("cleanup", "CleanupResult", &[]),
        case("health check", "HealthReport", &["--config", &health]),
        case("sysctl apply", "SysctlApplyResult", &["kubernetes-node"]),
    ];
    let sysroot = w.fx.sysroot.display().to_string();
    for c in &mut cases {
        c.args.extend([
            "--sysroot".into(),
            sysroot.clone(),
            "--os".into(),
            OS.into(),
        ]);
    }
    let staged = w.staged.sysroot.display().to_string();
    cases.push(case("finalize", "FinalizeResult", &["--sysroot", &staged]));
    cases
}

/// The `fleetlock` commands with `--json`: they read etcd, so they run only where it is installed.
const FLEET_NEED_ETCD: &[&str] = &["fleetlock status", "fleetlock release"];

/// `fleetlock status` and `release` against the world's etcd member (slot held by `n1`).
fn fleet_cases(w: &World) -> Vec<Case> {
    let Some(c) = &w.etcd else {
        return Vec::new();
    };
    let eps = c.endpoints();
    vec![
        case("fleetlock status", "FleetLockStatus", &["--etcd", &eps]),
        case(
            "fleetlock release",
            "FleetLockRelease",
            &["--etcd", &eps, "--id", "n1"],
        ),
    ]
}

/// Runs one case and checks its stdout is exactly one document in the envelope.
fn run_case(c: &Case) {
    let mut args: Vec<String> = c.cmd.split(' ').map(String::from).collect();
    args.extend(c.args.iter().cloned());
    if c.flag {
        args.push("--json".into());
    }
    let o = run_cairn(&args);
    assert_eq!(
        o.status.code(),
        Some(c.status),
        "cairn {args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "cairn {args:?}: not one JSON document ({e}): {}",
            stdout(&o)
        )
    });
    assert_eq!(doc["apiVersion"], "cairn/v1", "cairn {args:?}: {doc:#}");
    assert_eq!(doc["kind"], c.kind, "cairn {args:?}: {doc:#}");
    assert!(
        doc.as_object().unwrap().len() > 2,
        "cairn {args:?}: no body: {doc:#}"
    );
}

/// Every command that prints JSON does so in one envelope (`apiVersion`, `kind`), found from the
/// binary's own help so a new command cannot be left out.
#[test]
fn every_json_command_prints_one_envelope() {
    let leaves = leaf_commands();
    assert!(
        leaves.len() > 30,
        "help parsing found too few commands: {leaves:?}"
    );
    let w = World::new();
    let cases: Vec<Case> = [
        build_cases(&w),
        metal_cases(&w),
        host_cases(&w),
        fleet_cases(&w),
    ]
    .into_iter()
    .flatten()
    .collect();

    let with_json: BTreeSet<&str> = leaves
        .iter()
        .filter(|(_, j)| **j)
        .map(|(c, _)| c.as_str())
        .collect();
    let covered: BTreeSet<&str> = cases
        .iter()
        .filter(|c| c.flag)
        .map(|c| c.cmd)
        .chain(NOT_RUN.iter().map(|(c, _)| *c))
        .chain(
            w.etcd
                .is_none()
                .then_some(FLEET_NEED_ETCD)
                .into_iter()
                .flatten()
                .copied(),
        )
        .collect();
    assert_eq!(
        with_json, covered,
        "every command with --json must be run in `cases` (or listed in NOT_RUN with the reason)"
    );
    let without: BTreeSet<&str> = leaves
        .iter()
        .filter(|(_, j)| !**j)
        .map(|(c, _)| c.as_str())
        .collect();
    let listed: BTreeSet<&str> = NO_JSON.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        without, listed,
        "a command without --json: give it one, or list it in NO_JSON with the reason"
    );
    for c in &cases {
        assert!(c.flag || listed.contains(c.cmd), "{}", c.cmd);
        run_case(c);
    }
}
