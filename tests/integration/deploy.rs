//! A/B deploy, upgrade, rollback, kargs, pins, cleanup and health-checked rollback on sysroots in
//! temp dirs, through real libostree; the real `ostree admin` CLI and the BLS entries libostree
//! writes are the oracles.

use crate::common::http::HttpServer;
use crate::common::repo::ostree;
use crate::common::sysroot::{Fixture, OS, REF};
use crate::common::*;

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// `cairn status --json` and `ostree admin status` list the same deployments in the same order,
/// and the highest-versioned BLS entry boots cairn's default.
fn assert_agree(fx: &Fixture) {
    let st = fx.status();
    let ours: Vec<(String, String, u32, bool)> = st["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["osname"].as_str().unwrap().to_string(),
                d["checksum"].as_str().unwrap().to_string(),
                d["deployserial"].as_u64().unwrap() as u32,
                d["pinned"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ours,
        fx.ostree_status(),
        "cairn status vs ostree admin status"
    );
    let bls = fx.bls();
    assert_eq!(bls.len(), ours.len(), "{bls:?}");
    for (entry, d) in bls.iter().zip(&ours) {
        assert_eq!(
            entry.checksum, d.1,
            "BLS {} boots the wrong deployment",
            entry.file
        );
    }
    assert_eq!(st["deployments"][0]["default"], true);
}

#[test]
fn etc_merge_upgrade_keeps_kargs_and_rollback_swaps_boot_entries() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    let o = fx.deploy(&["--karg", "root=/dev/vda3", "--karg", "console=ttyS0"]);
    assert!(stdout(&o).contains("version 1.0"), "{}", stdout(&o));
    assert_eq!(fx.checksums(), std::slice::from_ref(&v1));
    assert_agree(&fx);

    // A local /etc edit, a new /etc file, and state in /var.
    let d1 = fx.deployment_dir(0);
    std::fs::write(d1.join("etc/app/app.conf"), "level = debug\n").unwrap();
    std::fs::write(d1.join("etc/local.conf"), "mine\n").unwrap();
    let var_marker = fx
        .sysroot
        .join(format!("ostree/deploy/{OS}/var/lib-marker"));
    std::fs::write(&var_marker, "state\n").unwrap();

    let v2 = fx.commit("2.0");
    let o = fx.cairn(&["upgrade"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(fx.checksums(), [v2.clone(), v1.clone()]);
    let d2 = fx.deployment_dir(0);
    assert_eq!(
        std::fs::read_to_string(d2.join("etc/app/app.conf")).unwrap(),
        "level = debug\n"
    );
    assert_eq!(
        std::fs::read_to_string(d2.join("etc/local.conf")).unwrap(),
        "mine\n"
    );
    assert_eq!(std::fs::read_to_string(&var_marker).unwrap(), "state\n");

    // Kernel arguments survived the upgrade, in the status and in the boot entry.
    let st = fx.status();
    let kargs: Vec<&str> = st["deployments"][0]["kargs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(kargs, ["root=/dev/vda3", "console=ttyS0"]);
    assert_eq!(st["deployments"][0]["version"], "2.0");
    assert_eq!(st["deployments"][0]["origin"], format!("origin:{REF}"));
    assert_eq!(st["deployments"][1]["rollback"], true);
    let bls = fx.bls();
    assert!(bls[0].title.contains("CairnOS 2.0"), "{bls:?}");
    assert!(bls[0].options.contains("root=/dev/vda3") && bls[0].options.contains("console=ttyS0"));
    assert_agree(&fx);

    // Rollback: v1 is the default again; boot entries follow; nothing was deleted.
    let o = fx.cairn_ok(&["rollback"]);
    assert!(stdout(&o).contains(&v1), "{}", stdout(&o));
    assert_eq!(fx.checksums(), [v1.clone(), v2.clone()]);
    let bls = fx.bls();
    assert_eq!(bls[0].checksum, v1);
    assert!(bls[0].title.contains("CairnOS 1.0"), "{bls:?}");
    assert!(bls[1].title.contains("CairnOS 2.0"), "{bls:?}");
    assert_agree(&fx);
    // And back.
    fx.cairn_ok(&["rollback"]);
    assert_eq!(fx.checksums(), [v2, v1]);
    assert_agree(&fx);
}

#[test]
fn upgrade_exits_77_when_nothing_new_and_deploys_a_new_commit() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    for args in [
        &["upgrade"][..],
        &["upgrade", "--check"],
        &["upgrade", "--download-only"],
    ] {
        let o = fx.cairn(args);
        assert_eq!(
            o.status.code(),
            Some(77),
            "{args:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    let v2 = fx.commit("2.0");
    let o = fx.cairn(&["upgrade", "--check", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["result"], "available");
    assert_eq!(json(&o)["to"], v2.as_str());
    let o = fx.cairn(&["upgrade", "--download-only"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        fx.checksums(),
        std::slice::from_ref(&v1),
        "--check/--download-only must not deploy"
    );
    let o = fx.cairn(&["upgrade"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fx.checksums(), [v2.clone(), v1]);
    let o = fx.cairn(&["upgrade"]);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert_agree(&fx);
}

#[test]
fn deploy_pulls_over_http() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    let url = HttpServer::serve(&fx.remote).url;
    let o = fx.cairn_ok(&[
        "deploy",
        REF,
        "--remote",
        "web",
        "--url",
        &url,
        "--karg",
        "root=/dev/vda3",
        "--json",
    ]);
    assert_eq!(json(&o)["checksum"], v1.as_str());
    assert_eq!(json(&o)["initialized"], true);
    assert_eq!(
        fx.status()["deployments"][0]["origin"],
        format!("web:{REF}")
    );
    let v2 = fx.commit("2.0");
    assert_eq!(fx.cairn(&["upgrade"]).status.code(), Some(0));
    assert_eq!(fx.checksums(), [v2, v1]);
}

#[test]
fn sigkill_mid_deploy_leaves_the_old_default_bootable() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    let before = fx.bls();
    fx.commit("2.0");
    let mut child = fx.spawn(&["upgrade"], Some("deploy-before-write=pause"));
    wait_for_failpoint(&mut child.0, "deploy-before-write");
    // The new deployment dir exists at this point; only the boot loader swap is missing.
    let dirs = std::fs::read_dir(fx.sysroot.join(format!("ostree/deploy/{OS}/deploy")))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    assert_eq!(
        dirs, 2,
        "deploy_tree should have written the new deployment"
    );
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();

    assert_eq!(fx.checksums(), std::slice::from_ref(&v1));
    assert_eq!(fx.ostree_status().len(), 1);
    let after = fx.bls();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].checksum, v1);
    assert_eq!(after[0].options, before[0].options);
    assert_agree(&fx);
    // The lock died with the process: the next upgrade works.
    assert_eq!(fx.cairn(&["upgrade"]).status.code(), Some(0));
    assert_eq!(fx.checksums().len(), 2);
    assert_agree(&fx);
}

/// A second writer blocks on the sysroot lock, says so, and does its work once the holder is
/// gone (here: an upgrade SIGKILLed at its failpoint, lock held).
#[test]
fn a_second_writer_waits_for_the_lock_and_says_so() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    fx.commit("2.0");
    let mut holder = fx.spawn(&["upgrade"], Some("deploy-before-write=pause"));
    wait_for_failpoint(&mut holder.0, "deploy-before-write");
    let mut waiter = fx.spawn(&["kargs", "--append", "quiet"], None);
    let line = wait_for_stderr(
        &mut waiter.0,
        "waiting for another process",
        std::time::Duration::from_secs(60),
    );
    assert_eq!(
        line,
        format!(
            "waiting for another process to release the lock on {}",
            fx.sysroot.display()
        )
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(waiter.0.try_wait().unwrap().is_none(), "it did not wait");
    drop(holder); // SIGKILL: the kernel releases its lock
    assert!(waiter.0.wait().unwrap().success());
    assert_eq!(fx.checksums(), [v1.clone(), v1]);
    assert_eq!(
        fx.status()["deployments"][0]["kargs"],
        serde_json::json!(["root=/dev/vda3", "quiet"])
    );
    assert_agree(&fx);
}

#[test]
fn health_failures_roll_back_after_three_boots_and_a_pass_resets() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    let v2 = fx.commit("2.0");
    fx.cairn_ok(&["upgrade"]);
    let cfg = fx.dir.path().join("health");
    let flag = fx.dir.path().join("broken");
    std::fs::create_dir_all(cfg.join("required.d")).unwrap();
    std::fs::create_dir_all(cfg.join("wanted.d")).unwrap();
    let script = cfg.join("required.d/10-service-up");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntest ! -e {}\n", flag.display()),
    )
    .unwrap();
    std::fs::write(cfg.join("wanted.d/20-optional"), "#!/bin/sh\nexit 1\n").unwrap();
    for f in [&script, &cfg.join("wanted.d/20-optional")] {
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(f)
            .status()
            .unwrap();
    }
    let cfg_s = cfg.display().to_string();
    let boot = |fx: &Fixture| fx.cairn(&["health", "check", "--config", &cfg_s]);
    let failed_boots = |fx: &Fixture| {
        fx.status()["deployments"][0]["failedBoots"]
            .as_u64()
            .unwrap()
    };

    std::fs::write(&flag, "").unwrap();
    for n in 1..=2 {
        let o = boot(&fx);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(failed_boots(&fx), n);
        assert_eq!(fx.checksums()[0], v2);
    }
    // A healthy boot (wanted failures only warn) clears the counter.
    std::fs::remove_file(&flag).unwrap();
    let o = boot(&fx);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("wanted 20-optional: FAILED"),
        "{}",
        stderr(&o)
    );
    assert_eq!(failed_boots(&fx), 0);
    assert_eq!(fx.checksums()[0], v2);

    std::fs::write(&flag, "").unwrap();
    for _ in 0..2 {
        assert_eq!(boot(&fx).status.code(), Some(1));
        assert_eq!(fx.checksums()[0], v2);
    }
    let o = boot(&fx);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("rolled back"), "{}", stdout(&o));
    assert_eq!(fx.checksums(), [v1.clone(), v2.clone()]);
    assert_eq!(fx.bls()[0].checksum, v1);
    let st = fx.status();
    let events = st["health"]["events"].as_array().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "rolled-back");
    assert!(last["deployment"].as_str().unwrap().starts_with(&v2));
    assert!(last["rolledBackTo"].as_str().unwrap().starts_with(&v1));
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "check-failed")
            .count(),
        5
    );
    assert_agree(&fx);
    // The counter file is valid JSON, replaced atomically (no temp files left behind).
    let state = fx.sysroot.join("ostree/cairn");
    let names: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".cairn-")), "{names:?}");
}

#[test]
fn pins_survive_deploys_and_cleanup() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    fx.cairn_ok(&["pin", "0"]);
    let v2 = fx.commit("2.0");
    fx.cairn_ok(&["upgrade"]);
    let v3 = fx.commit("3.0");
    fx.cairn_ok(&["upgrade"]);
    let v4 = fx.commit("4.0");
    // This upgrade prunes v2's objects; libostree's "Freed objects" note must not reach stdout.
    let o = fx.cairn_ok(&["upgrade", "--json"]);
    assert_eq!(json(&o)["result"], "deployed");
    // v2 was neither merge nor pinned when v4 came: gone. v1 is pinned: kept.
    assert_eq!(fx.checksums(), [v4.clone(), v3.clone(), v1.clone()]);
    assert_eq!(fx.status()["deployments"][2]["pinned"], true);
    assert_agree(&fx);
    fx.cairn_ok(&["cleanup", "--keep", "1"]);
    assert_eq!(
        fx.checksums(),
        [v4.clone(), v3.clone(), v1.clone()],
        "rollback and pinned are kept"
    );
    fx.cairn_ok(&["unpin", "2"]);
    let o = fx.cairn_ok(&["cleanup", "--keep", "1"]);
    assert!(stdout(&o).contains(&v1), "{}", stdout(&o));
    assert_eq!(fx.checksums(), [v4, v3]);
    assert_agree(&fx);
    // The pruned commit is gone from the repo too.
    let o = ostree([
        "show",
        &format!("--repo={}/ostree/repo", fx.sysroot.display()),
        &v2,
    ]);
    assert!(!o.status.success(), "v2 should have been pruned");
    let bad = fx.cairn(&["pin", "7"]);
    assert!(!bad.status.success() && stderr(&bad).contains("no deployment with index 7"));
}

#[test]
fn kargs_edit_makes_a_new_deployment_and_keeps_the_old_one() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3", "--karg", "quiet"]);
    let o = fx.cairn_ok(&[
        "kargs",
        "--append",
        "console=ttyS0,115200",
        "--delete",
        "quiet",
        "--replace",
        "root=/dev/vdb1",
    ]);
    assert!(
        stdout(&o).contains("root=/dev/vdb1 console=ttyS0,115200"),
        "{}",
        stdout(&o)
    );
    let st = fx.status();
    assert_eq!(fx.checksums(), [v1.clone(), v1]);
    assert_eq!(
        st["deployments"][0]["kargs"],
        serde_json::json!(["root=/dev/vdb1", "console=ttyS0,115200"])
    );
    assert_eq!(
        st["deployments"][1]["kargs"],
        serde_json::json!(["root=/dev/vda3", "quiet"])
    );
    let bls = fx.bls();
    assert!(
        bls[0]
            .options
            .starts_with("root=/dev/vdb1 console=ttyS0,115200 ostree="),
        "{}",
        bls[0].options
    );
    assert_agree(&fx);
    let o = fx.cairn(&["kargs", "--delete", "nosuch"]);
    assert!(
        !o.status.success() && stderr(&o).contains("`nosuch` is not set"),
        "{}",
        stderr(&o)
    );
    let o = fx.cairn_ok(&["kargs"]);
    assert_eq!(stdout(&o).trim(), "root=/dev/vdb1 console=ttyS0,115200");
}

/// Everything that describes the sysroot, to compare before and after a failed command.
fn snapshot(fx: &Fixture) -> String {
    let remotes = ostree([
        "remote",
        "list",
        &format!("--repo={}/ostree/repo", fx.sysroot.display()),
    ]);
    let deploy_dirs: Vec<String> =
        std::fs::read_dir(fx.sysroot.join(format!("ostree/deploy/{OS}/deploy")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    let bls: Vec<String> = fx
        .bls()
        .iter()
        .map(|b| format!("{} {} {}", b.file, b.version, b.options))
        .collect();
    format!(
        "{}\n{:?}\n{:?}\n{}",
        stdout(&fx.cairn_ok(&["status", "--json"])),
        deploy_dirs,
        bls,
        stdout(&remotes)
    )
}

#[test]
fn bad_input_fails_clearly_and_changes_nothing() {
    let fx = Fixture::new();
    fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    let before = snapshot(&fx);
    let url = fx.url();
    each_fails_and_changes_nothing(&fx, bad_commands(&url), &before);
    not_a_sysroot_is_refused(&fx);
    // Rollback with nothing to roll back to.
    let o = fx.cairn(&["rollback"]);
    assert!(
        stderr(&o).contains("no previous deployment"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&fx), before);
}

/// Commands that must fail, with what their error must say; `PRESETS` stands for a preset dir.
fn bad_commands(url: &str) -> Vec<(Vec<&str>, &str)> {
    vec![
        (vec!["deploy", "no/such/ref"], "neither a ref nor a commit"),
        (
            vec!["deploy", "no/such/ref", "--remote", "other", "--url", url],
            "pulling `no/such/ref` from remote other",
        ),
        (
            vec![
                "deploy",
                REF,
                "--remote",
                "origin",
                "--url",
                "file:///elsewhere",
            ],
            "already exists with URL",
        ),
        (
            vec![
                "deploy",
                "origin:cairnos/x86_64/stable",
                "--sysctl-preset",
                "no-such-preset",
            ],
            "unknown sysctl preset `no-such-preset`",
        ),
        (
            vec!["deploy", "origin:cairnos/x86_64/stable", "--karg", "=oops"],
            "invalid kernel argument `=oops`",
        ),
        (
            vec![
                "deploy",
                "origin:cairnos/x86_64/stable",
                "--karg",
                "root=/dev/vda3 rw",
            ],
            "spaces separate arguments",
        ),
        (
            vec![
                "deploy",
                "origin:cairnos/x86_64/stable",
                "--sysctl-preset",
                "database",
                "--sysctl-preset",
                "low-swap",
                "--preset-dir",
                "PRESETS",
            ],
            "presets `database` and `low-swap` both set `vm.swappiness`",
        ),
        (
            vec!["kargs", "--append", "ostree=/x"],
            "managed by libostree",
        ),
        (
            vec!["deploy", "ftp://x", "--remote", "x", "--url", "ftp://x"],
            "unsupported URL",
        ),
    ]
}

fn each_fails_and_changes_nothing(fx: &Fixture, cases: Vec<(Vec<&str>, &str)>, before: &str) {
    let presets = fx.dir.path().join("presets");
    std::fs::create_dir_all(&presets).unwrap();
    std::fs::write(
        presets.join("low-swap.conf"),
        "# less swapping\nvm.swappiness = 10\n",
    )
    .unwrap();
    let presets_s = presets.display().to_string();
    for (args, want) in cases {
        let args: Vec<&str> = args
            .into_iter()
            .map(|a| {
                if a == "PRESETS" {
                    presets_s.as_str()
                } else {
                    a
                }
            })
            .collect();
        let o = fx.cairn(&args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?} should fail: {}",
            stdout(&o)
        );
        assert!(
            stderr(&o).contains(want),
            "{args:?}: want `{want}` in: {}",
            stderr(&o)
        );
        assert_eq!(snapshot(fx), before, "{args:?} changed the sysroot");
    }
}

/// Not a sysroot: a non-empty directory is refused by every host command, untouched.
fn not_a_sysroot_is_refused(fx: &Fixture) {
    let not = fx.dir.path().join("not-a-sysroot");
    std::fs::create_dir_all(&not).unwrap();
    std::fs::write(not.join("file"), "x").unwrap();
    for args in [
        &["deploy", "x", "--os", "x"][..],
        &["status"],
        &["rollback"],
        &["upgrade"],
    ] {
        let mut all: Vec<&str> = args.to_vec();
        let s = not.display().to_string();
        all.extend(["--sysroot", &s]);
        let o = run_cairn(&all);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains("is not an OSTree sysroot"),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(std::fs::read_dir(&not).unwrap().count(), 1);
}

#[test]
fn deploy_writes_presets_and_dry_run_writes_nothing() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    let url = fx.url();
    let o = fx.cairn_ok(&[
        "deploy",
        REF,
        "--remote",
        "origin",
        "--url",
        &url,
        "--sysctl-preset",
        "kubernetes-node",
        "--dry-run",
        "--karg",
        "root=/dev/vda3",
    ]);
    assert!(
        stdout(&o).contains("would write etc/sysctl.d/60-cairn-kubernetes-node.conf"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read_dir(&fx.sysroot).unwrap().count(),
        0,
        "dry run initialized the sysroot"
    );
    fx.deploy(&[
        "--karg",
        "root=/dev/vda3",
        "--sysctl-preset",
        "kubernetes-node",
        "--sysctl-preset",
        "elasticsearch",
    ]);
    let d = fx.deployment_dir(0);
    let k8s =
        std::fs::read_to_string(d.join("etc/sysctl.d/60-cairn-kubernetes-node.conf")).unwrap();
    assert!(
        k8s.contains("net.bridge.bridge-nf-call-iptables = 1"),
        "{k8s}"
    );
    let mods =
        std::fs::read_to_string(d.join("etc/modules-load.d/cairn-kubernetes-node.conf")).unwrap();
    assert!(mods.lines().any(|l| l == "br_netfilter"), "{mods}");
    assert!(d.join("etc/sysctl.d/60-cairn-elasticsearch.conf").is_file());
    // The presets are /etc content: the next upgrade carries them.
    fx.commit("2.0");
    fx.cairn_ok(&["upgrade"]);
    assert!(fx
        .deployment_dir(0)
        .join("etc/sysctl.d/60-cairn-kubernetes-node.conf")
        .is_file());
    let o = fx.cairn_ok(&["deploy", &v1, "--dry-run"]);
    assert!(stdout(&o).contains(&v1));
    assert_eq!(fx.checksums().len(), 2);
}

/// `upgrade --stage` writes the new deployment but the old one stays the default (and is what
/// boots: the BLS oracle); a second `--stage` is nothing new; rollback and health never pick the
/// staged one; `finalize` makes it the default and status shows each step.
#[test]
fn staged_upgrade_keeps_the_default_until_finalize() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    let o = fx.cairn(&["finalize"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no staged deployment"),
        "{}",
        stderr(&o)
    );
    let v2 = fx.commit("2.0");
    let o = fx.cairn_ok(&["upgrade", "--stage", "--json"]);
    let doc = json(&o);
    assert_eq!(doc["result"], "deployed");
    assert_eq!(doc["locked"], true);
    assert_eq!(fx.checksums(), [v1.clone(), v2.clone()]);
    assert_eq!(
        fx.bls()[0].checksum,
        v1,
        "an unplanned reboot boots the old one"
    );
    let st = fx.status();
    assert_eq!(st["deployments"][0]["staged"], false);
    assert_eq!(st["deployments"][1]["staged"], true);
    assert_eq!(st["deployments"][1]["rollback"], false);
    assert_eq!(st["staged"]["checksum"], v2.as_str());
    assert_eq!(st["staged"]["mechanism"], "cairn");
    assert_eq!(st["staged"]["locked"], true);
    assert_agree(&fx);

    let o = fx.cairn(&["upgrade", "--stage", "--json"]);
    assert_eq!(o.status.code(), Some(77), "{}", stderr(&o));
    assert_eq!(json(&o)["result"], "already-staged");
    // The staged deployment is never the rollback target nor pinnable.
    let o = fx.cairn(&["rollback"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("no previous deployment"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fx.cairn(&["pin", "1"]).status.code(), Some(1));

    let o = fx.cairn_ok(&["finalize", "--json"]);
    assert_eq!(json(&o)["checksum"], v2.as_str());
    assert_eq!(fx.checksums(), [v2.clone(), v1.clone()]);
    assert_eq!(fx.bls()[0].checksum, v2);
    let st = fx.status();
    assert!(st["staged"].is_null(), "{st}");
    assert_eq!(st["deployments"][1]["rollback"], true);
    assert_eq!(fx.cairn(&["finalize"]).status.code(), Some(1));
    assert_agree(&fx);
}

/// A newer commit replaces a staged one; a plain `upgrade` of the staged commit finalizes it; a
/// `deploy` supersedes a staged deployment (the stale record is ignored).
#[test]
fn restaging_and_plain_upgrades_of_a_staged_commit() {
    let fx = Fixture::new();
    let v1 = fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    let v2 = fx.commit("2.0");
    fx.cairn_ok(&["upgrade", "--stage"]);
    let v3 = fx.commit("3.0");
    fx.cairn_ok(&["upgrade", "--stage"]);
    assert_eq!(
        fx.checksums(),
        [v1.clone(), v3.clone()],
        "{v2} was replaced"
    );
    let o = fx.cairn_ok(&["upgrade", "--json"]);
    assert_eq!(json(&o)["result"], "deployed");
    assert_eq!(json(&o)["locked"], false);
    assert_eq!(fx.checksums(), [v3.clone(), v1.clone()]);
    assert!(fx.status()["staged"].is_null());
    let v4 = fx.commit("4.0");
    fx.cairn_ok(&["upgrade", "--stage"]);
    fx.deploy(&[]);
    assert_eq!(fx.checksums()[0], v4);
    assert!(fx.status()["staged"].is_null());
    assert_eq!(fx.cairn(&["finalize"]).status.code(), Some(1));
    assert_agree(&fx);
}
