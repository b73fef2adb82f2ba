//! `cairn sysctl`: the preset registry, user presets, validation errors, apply into a sysroot.

use crate::common::sysroot::{Fixture, OS};
use crate::common::*;

#[test]
fn list_and_show_builtins_and_user_presets() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("web.conf"),
        "# frontends want deep accept queues\nnet.core.somaxconn = 4096\n",
    )
    .unwrap();
    let d = dir.path().display().to_string();
    let o = run_cairn(["sysctl", "list", "--preset-dir", &d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for name in ["elasticsearch", "kubernetes-node", "web"] {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing: {out}"
        );
    }
    assert!(out.contains("frontends want deep accept queues"));
    let o = run_cairn(["sysctl", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["apiVersion"], "cairn/v1");
    let es = v["presets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "elasticsearch")
        .unwrap();
    assert_eq!(es["settings"][0]["value"], "262144");
    let o = run_cairn(["sysctl", "show", "kubernetes-node"]);
    assert!(stdout(&o).contains("modules-load.d/cairn-kubernetes-node.conf"));
    assert!(stdout(&o).contains("br_netfilter"));
}

#[test]
fn invalid_user_presets_point_at_file_and_line() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("typo.conf"),
        "# oops\n\nvm.swapiness = 10\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("words.conf"), "vm.max_map_count = lots\n").unwrap();
    let d = dir.path().display().to_string();
    let o = run_cairn(["sysctl", "show", "typo", "--preset-dir", &d]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("typo.conf:3") && e.contains("did you mean `vm.swappiness`"),
        "{e}"
    );
    let o = run_cairn(["sysctl", "show", "words", "--preset-dir", &d]);
    assert!(
        stderr(&o).contains("takes an integer, got `lots`"),
        "{}",
        stderr(&o)
    );
    let o = run_cairn(["sysctl", "show", "nope"]);
    assert!(stderr(&o).contains("unknown sysctl preset `nope`"));
}

#[test]
fn apply_writes_into_the_default_deployment() {
    let fx = Fixture::new();
    fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    let o = fx.cairn_ok(&["sysctl", "apply", "database", "hardening"]);
    assert!(
        stdout(&o).contains("takes effect when the deployment boots"),
        "{}",
        stdout(&o)
    );
    let etc = fx.deployment_dir(0).join("etc/sysctl.d");
    let db = std::fs::read_to_string(etc.join("60-cairn-database.conf")).unwrap();
    assert!(db.contains("vm.swappiness = 1\n"));
    assert!(etc.join("60-cairn-hardening.conf").is_file());
    // Conflicts with a user preset are refused before anything is written.
    let dir = tempdir();
    std::fs::write(dir.path().join("low-swap.conf"), "vm.swappiness = 10\n").unwrap();
    let o = fx.cairn(&[
        "sysctl",
        "apply",
        "database",
        "low-swap",
        "--preset-dir",
        &dir.path().display().to_string(),
    ]);
    assert!(
        stderr(&o).contains("`database` and `low-swap` both set `vm.swappiness`"),
        "{}",
        stderr(&o)
    );
    assert!(!etc.join("60-cairn-low-swap.conf").exists());
    assert_eq!(fx.status()["deployments"][0]["osname"], OS);
}
