//! `cairn treefile render|check|diff` against the real-world corpus (Fedora CoreOS, Fedora
//! workstation, CentOS Atomic, rpm-ostree's examples), the shipped treefiles, and one fixture per
//! merge rule and per error path. Facts asserted below were derived by reading the corpus files.

use std::path::Path;

use serde_json::json;

use crate::common::treefile::*;
use crate::common::*;

const FCOS: &str = "treefiles/fedora-coreos-config-2d0fce6d";
const WS: &str = "treefiles/workstation-ostree-config-f6457f06";
const CENTOS: &str = "treefiles/centos-atomic-host-c3ea749f";

fn postprocess_has(tf: &serde_json::Value, needle: &str) -> bool {
    strings(&tf["postprocess"])
        .iter()
        .any(|s| s.contains(needle))
}

// ---------------------------------------------------------------- corpus: Fedora CoreOS

#[test]
fn fcos_manifest_renders_per_arch_and_prod() {
    let Some(corpus) = corpus() else { return };
    for arch in ["x86_64", "aarch64", "s390x"] {
        for prod in [true, false] {
            let var = format!("prod={prod}");
            let tf = render_ok(
                &corpus,
                &format!("{FCOS}/manifest.yaml"),
                &["--arch", arch, "--var", &var],
            );
            let ctx = format!("{arch} prod={prod}");
            assert_eq!(
                tf["ref"],
                format!("fedora/{arch}/coreos/testing-devel"),
                "{ctx}"
            );
            assert_eq!(tf["basearch"], arch);
            assert_eq!(tf["releasever"], 40);
            // <date:...> is left for compose; ${releasever} is substituted.
            assert_eq!(tf["automatic-version-prefix"], "40.<date:%Y%m%d>.dev");
            assert_eq!(tf["mutate-os-release"], "40");
            assert_eq!(tf["rojig"]["summary"], "Fedora CoreOS testing-devel");
            assert_eq!(
                tf["add-commit-metadata"]["fedora-coreos.stream"],
                "testing-devel"
            );
            for k in [
                "include",
                "conditional-include",
                "variables",
                "packages-x86_64",
            ] {
                assert!(tf.get(k).is_none(), "{k} must not be rendered ({ctx})");
            }

            // `if: prod == false` -> disable-zincati.yaml
            let layers = strings(&tf["ostree-layers"]);
            assert_eq!(
                layers.contains(&"overlay/16disable-zincati".to_string()),
                !prod,
                "{ctx}"
            );
            // `if: basearch != "s390x"` -> grub2-removals.yaml
            let rfp = tf["remove-from-packages"].as_array().unwrap();
            let grub = rfp.iter().any(|e| e[0] == "grub2-tools");
            assert_eq!(grub, arch != "s390x", "{ctx}");
            assert!(rfp.iter().any(|e| e == &json!(["cracklib-dicts", ".*"])));
            // releasever 40 < 41: exclude-dnf and wifi firmwares, no composefs/selinux workaround
            assert!(strings(&tf["exclude-packages"]).contains(&"dnf5".to_string()));
            assert!(!has_pkg(&tf, "dnf5"));
            assert!(has_pkg(&tf, "atheros-firmware"));
            assert!(!layers.contains(&"overlay/08composefs".to_string()));
            assert!(!postprocess_has(&tf, "fcos-workarounds.cil"));

            // packages-$basearch only on that arch (fedora-coreos-base.yaml, bootable-rpm-ostree.yaml)
            assert_eq!(has_pkg(&tf, "irqbalance"), arch != "s390x", "{ctx}");
            assert_eq!(has_pkg(&tf, "microcode_ctl"), arch == "x86_64", "{ctx}");
            assert_eq!(has_pkg(&tf, "grub2-efi-aa64"), arch == "aarch64", "{ctx}");
            assert_eq!(has_pkg(&tf, "/usr/sbin/zipl"), arch == "s390x", "{ctx}");
            assert_eq!(
                has_pkg(&tf, "qemu-user-static-x86"),
                arch != "x86_64",
                "{ctx}"
            );
            // whitespace-split entries: "nano nano-default-editor", "rpm-ostree nss-altfiles"
            for p in [
                "nano",
                "nano-default-editor",
                "nss-altfiles",
                "kernel",
                "ignition",
            ] {
                assert!(has_pkg(&tf, p), "{p} ({ctx})");
            }
            assert!(!has_pkg(&tf, "nano nano-default-editor"));
            let pk = strings(&tf["packages"]);
            let mut sorted = pk.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(pk, sorted, "packages are a sorted set");

            // rpm-ostree's documented postprocess order: included files first, and of several
            // includes the later one first (bootupd before ignition-and-ostree before
            // system-configuration), the including file's own scripts last.
            let pp = strings(&tf["postprocess"]);
            assert_eq!(pp.len(), 10, "{ctx}");
            assert!(pp[0].contains("bootupctl backend generate-update-metadata"));
            assert!(pp[1].contains("systemctl preset-all"));
            assert!(pp[2].contains("systemctl mask systemd-repart.service"));
            assert!(pp[9].contains("list_broken_symlinks_folders"));
            // scalars: the including file wins (fedora-coreos-base.yaml sets these)
            assert_eq!(tf["default-target"], "multi-user.target");
            assert_eq!(tf["recommends"], false);
            assert_eq!(tf["boot-location"], "modules");
            // sets: etc-group-members is an array (base's first, then fedora-coreos.yaml's)
            assert_eq!(
                strings(&tf["etc-group-members"]),
                ["wheel", "sudo", "systemd-journal", "adm", "docker"]
            );
        }
    }
}

#[test]
fn fcos_releasever_41_from_an_including_file_switches_conditionals() {
    let Some(corpus) = corpus() else { return };
    let manifest = corpus.join(FCOS).join("manifest.yaml");
    // The including file wins for `releasever`, and so for the `releasever` variable too.
    let dir = tree(&[(
        "f41.yaml",
        &format!("releasever: 41\ninclude: {}\n", manifest.display()),
    )]);
    let tf = render_ok(dir.path(), "f41.yaml", &["--arch", "x86_64"]);
    assert_eq!(tf["releasever"], 41);
    assert_eq!(tf["mutate-os-release"], "41");
    assert!(has_pkg(&tf, "dnf5"), "include-dnf.yaml applies at >= 41");
    assert!(!strings(&tf["exclude-packages"]).contains(&"dnf".to_string()));
    assert!(
        !has_pkg(&tf, "atheros-firmware"),
        "wifi firmwares only < 41"
    );
    assert!(strings(&tf["ostree-layers"]).contains(&"overlay/08composefs".to_string()));
    assert!(postprocess_has(&tf, "fcos-workarounds.cil"));
}

#[test]
fn fcos_var_overrides_the_manifest_variables() {
    let Some(corpus) = corpus() else { return };
    let tf = render_ok(
        &corpus,
        &format!("{FCOS}/manifest.yaml"),
        &["--arch", "aarch64", "--var", "stream=stable"],
    );
    assert_eq!(tf["ref"], "fedora/aarch64/coreos/stable");
    assert_eq!(tf["rojig"]["summary"], "Fedora CoreOS stable");
    // prod stays the manifest's `false`
    assert!(strings(&tf["ostree-layers"]).contains(&"overlay/16disable-zincati".to_string()));
}

#[test]
fn fcos_checks_clean_on_every_arch() {
    let Some(corpus) = corpus() else { return };
    for arch in ["x86_64", "aarch64", "s390x", "ppc64le"] {
        let o = cairn()
            .current_dir(&corpus)
            .args([
                "treefile",
                "check",
                &format!("{FCOS}/manifest.yaml"),
                "--arch",
                arch,
                "--json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{arch}: {}", stdout(&o));
        let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(d["diagnostics"], json!([]), "{arch}");
    }
}

// ---------------------------------------------------------------- corpus: workstation, CentOS

#[test]
fn workstation_entry_points_render() {
    let Some(corpus) = corpus() else { return };
    let mut entries: Vec<String> = std::fs::read_dir(corpus.join(WS))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("fedora-") && n.ends_with(".yaml") && !n.ends_with("-pkgs.yaml"))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 9, "{entries:?}");
    for name in &entries {
        for arch in ["x86_64", "aarch64"] {
            let tf = render_ok(&corpus, &format!("{WS}/{name}"), &["--arch", arch]);
            let variant = name.trim_start_matches("fedora-").trim_end_matches(".yaml");
            let want = if variant == "common-ostree" {
                "ostree-base"
            } else {
                variant
            };
            // Each entry's own ref wins over fedora-common-ostree.yaml's.
            assert_eq!(tf["ref"], format!("fedora/rawhide/{arch}/{want}"), "{name}");
            // legacy underscore spellings migrate to the canonical keys
            assert_eq!(tf["automatic-version-prefix"], "38", "{name}");
            assert_eq!(tf["default-target"], "graphical.target", "{name}");
            assert!(
                has_pkg(&tf, "rpm-ostree") && has_pkg(&tf, "flatpak"),
                "{name}"
            );
            assert_eq!(has_pkg(&tf, "grub2-efi-x64"), arch == "x86_64", "{name}");
            assert_eq!(has_pkg(&tf, "grub2-efi"), arch == "aarch64", "{name}");
            assert!(strings(&tf["exclude-packages"]).contains(&"PackageKit".to_string()));
        }
    }
    let sb = render_ok(
        &corpus,
        &format!("{WS}/fedora-silverblue.yaml"),
        &["--arch", "x86_64"],
    );
    assert!(has_pkg(&sb, "gdm") && has_pkg(&sb, "fedora-release-silverblue"));
    assert_eq!(sb["rojig"]["name"], "fedora-silverblue");
    let kinoite = render_ok(
        &corpus,
        &format!("{WS}/fedora-kinoite.yaml"),
        &["--arch", "x86_64"],
    );
    assert!(!has_pkg(&kinoite, "gdm"));
    let ex = strings(&kinoite["exclude-packages"]);
    assert!(ex.contains(&"plasma-discover-packagekit".into()) && ex.contains(&"PackageKit".into()));
}

#[test]
fn centos_atomic_json_renders_with_warnings_for_unknown_keys() {
    let Some(corpus) = corpus() else { return };
    let r = render_in(
        &corpus,
        &format!("{CENTOS}/centos-atomic-host-continuous.json"),
        &["--arch", "x86_64"],
    );
    assert!(r.out.status.success(), "{}", r.stderr);
    let tf = &r.json;
    assert_eq!(tf["ref"], "centos-atomic-host/7/x86_64/devel/continuous");
    assert_eq!(tf["automatic-version-prefix"], "7.2018");
    assert_eq!(tf["default-target"], "multi-user.target");
    // arrays: the included file's entries first
    let repos = strings(&tf["repos"]);
    assert_eq!(repos.first().map(String::as_str), Some("CentOS-Base"));
    assert_eq!(
        repos.last().map(String::as_str),
        Some("atomic-centos-continuous")
    );
    assert_eq!(repos.len(), 7);
    assert!(has_pkg(tf, "centos-devel-atomic-host-release") && has_pkg(tf, "docker-latest"));
    assert_eq!(tf["remove-from-packages"].as_array().unwrap().len(), 4);
    assert_eq!(strings(&tf["install-langs"]).len(), 40);
    assert!(tf.get("comment").is_none() && tf.get("osname").is_none());
    let inc = format!("{CENTOS}/centos-atomic-host.json");
    assert!(
        r.stderr.contains(&format!(
            "{inc}:2:5: warning: unknown key `comment` ignored"
        )),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains(&format!("{inc}:4:5: warning: unknown key `osname` ignored")));
    assert!(r.stderr.contains(&format!(
        "included from {CENTOS}/centos-atomic-host-continuous.json:2:16"
    )));
    let base = render_ok(&corpus, &inc, &["--arch", "x86_64"]);
    assert_eq!(base["ref"], "centos-atomic-host/7/x86_64/standard");
    assert_eq!(
        base["check-passwd"],
        json!({"type": "file", "filename": "passwd"})
    );
}

#[test]
fn rpm_ostree_examples_render() {
    let Some(corpus) = corpus() else { return };
    let ex = "treefiles/rpm-ostree-examples-d5ef5f0c";
    let docker = render_ok(
        &corpus,
        &format!("{ex}/api-doc/treefile-examples/fedora-rawhide-docker.json"),
        &["--arch", "x86_64"],
    );
    assert_eq!(docker["ref"], "fedora-atomic/rawhide/x86_64/server/docker");
    assert!(has_pkg(&docker, "docker-io") && has_pkg(&docker, "kernel"));
    assert_eq!(docker["gpg-key"], "<SET KEY ID FOR GPG>");
    assert_eq!(
        strings(&docker["units"]),
        ["docker.service", "docker.socket"]
    );
    let rootfs = render_ok(
        &corpus,
        &format!("{ex}/tests/compose-rootfs/manifest.yaml"),
        &["--arch", "x86_64"],
    );
    assert_eq!(rootfs["edition"], "2024");
    assert_eq!(strings(&rootfs["packages"]).len(), 7);
}

// ---------------------------------------------------------------- shipped treefiles

#[test]
fn shipped_treefiles_check_clean() {
    let files: Vec<String> = [
        "debian-12.yaml",
        "fedora-minimal.yaml",
        "k8s-node.yaml",
        "elasticsearch-node.yaml",
    ]
    .iter()
    .map(|f| shipped(f).display().to_string())
    .collect();
    for arch in ["x86_64", "aarch64"] {
        let o = cairn()
            .args(["treefile", "check", "--arch", arch])
            .args(&files)
            .output()
            .unwrap();
        assert!(o.status.success(), "{arch}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("checked 4 treefile(s): 0 error(s), 0 warning(s)"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn shipped_debian_default_is_bootable_and_names_real_packages() {
    let root = project_root();
    let tf = render_ok(&root, "treefiles/debian-12.yaml", &["--arch", "x86_64"]);
    assert_eq!(tf["ref"], "cairn/debian/12/x86_64/default");
    assert_eq!(tf["automatic-version-prefix"], "12.<date:%Y%m%d>");
    assert_eq!(tf["cairn"]["backend"], "mmdebstrap");
    assert_eq!(tf["cairn"]["mmdebstrap"]["suite"], "bookworm");
    for p in [
        "linux-image-amd64",
        "systemd",
        "systemd-sysv",
        "ostree",
        "ostree-boot",
        "dracut",
    ] {
        assert!(has_pkg(&tf, p), "{p}");
    }
    let arm = render_ok(&root, "treefiles/debian-12.yaml", &["--arch", "aarch64"]);
    assert!(has_pkg(&arm, "linux-image-arm64") && !has_pkg(&arm, "linux-image-amd64"));

    if !have_tool(
        "apt-cache",
        "Debian's package index is the oracle for package names",
    ) {
        return;
    }
    let mut names = std::collections::BTreeSet::new();
    for f in ["debian-12.yaml", "k8s-node.yaml", "elasticsearch-node.yaml"] {
        let tf = render_ok(&root, &format!("treefiles/{f}"), &["--arch", "x86_64"]);
        names.extend(strings(&tf["packages"]));
    }
    // One apt-cache call for all names (each call reads the whole index). apt-cache exits 0
    // even when some names are unknown, so the oracle is its `Package:` stanzas.
    let all = std::process::Command::new("apt-cache")
        .arg("show")
        .args(&names)
        .output()
        .unwrap();
    let text = stdout(&all);
    for p in &names {
        assert!(
            text.contains(&format!("Package: {p}\n")),
            "apt-cache knows no `{p}`"
        );
    }
}

#[test]
fn shipped_fedora_minimal_has_the_seed_package_list() {
    let tf = render_ok(
        &project_root(),
        "treefiles/fedora-minimal.yaml",
        &["--arch", "x86_64"],
    );
    let mut want = vec![
        "kernel",
        "ostree",
        "lvm2",
        "btrfs-progs",
        "e2fsprogs",
        "xfsprogs",
        "gnupg2",
        "selinux-policy-targeted",
        "openssh-server",
        "openssh-clients",
        "NetworkManager",
        "vim-minimal",
        "nano",
        "sudo",
    ];
    want.sort();
    assert_eq!(strings(&tf["packages"]), want);
    assert_eq!(tf["ref"], "cairn/fedora/40/x86_64/minimal");
    assert_eq!(strings(&tf["repos"]), ["fedora", "updates"]);
    assert!(shipped("fedora.repo").is_file());
}

#[test]
fn shipped_k8s_node_lowers_for_rpm_ostree() {
    let root = project_root();
    let tf = render_ok(&root, "treefiles/k8s-node.yaml", &["--arch", "x86_64"]);
    assert_eq!(tf["ref"], "cairn/debian/12/x86_64/k8s-node");
    assert_eq!(tf["cairn"]["sysctl-presets"], json!(["kubernetes-node"]));
    // the cairn section merges per key: debian-12.yaml's mmdebstrap settings survive
    assert_eq!(
        tf["cairn"]["mmdebstrap"]["mirror"],
        "http://deb.debian.org/debian"
    );
    assert!(has_pkg(&tf, "containerd") && has_pkg(&tf, "linux-image-amd64"));

    let out = tempdir();
    let o = cairn()
        .current_dir(&root)
        .args([
            "treefile",
            "render",
            "treefiles/k8s-node.yaml",
            "--arch",
            "x86_64",
            "--for",
            "rpm-ostree",
            "-o",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cairn.backend mmdebstrap: dropped"),
        "{}",
        stderr(&o)
    );
    let path = out.path().join("treefile.json");
    let low: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(low.get("cairn").is_none());
    let add = low["add-files"].as_array().unwrap();
    let dests: Vec<&str> = add.iter().map(|p| p[1].as_str().unwrap()).collect();
    assert!(
        dests.contains(&"/usr/lib/sysctl.d/60-cairn-kubernetes-node.conf"),
        "{dests:?}"
    );
    assert!(dests.contains(&"/usr/lib/modules-load.d/cairn-kubernetes-node.conf"));
    // the shipped network file, made absolute so the flattened treefile works from anywhere
    assert!(Path::new(add[0][0].as_str().unwrap()).is_absolute());
    let sysctl = out
        .path()
        .join("cairn-generated/sysctl-60-cairn-kubernetes-node.conf");
    let text = std::fs::read_to_string(sysctl).unwrap();
    assert!(
        text.contains("net.bridge.bridge-nf-call-iptables = 1\n"),
        "{text}"
    );
    assert!(text.contains("fs.inotify.max_user_watches = 524288\n"));
    // The lowered file uses only rpm-ostree keys: cairn's YAML-strict schema is rpm-ostree's, so
    // reading it back (as JSON, where unknown keys would warn) gives no diagnostics at all.
    let o = run_cairn([
        "treefile",
        "check",
        "--arch",
        "x86_64",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["diagnostics"],
        json!([])
    );
    let back = render_ok(out.path(), "treefile.json", &["--arch", "x86_64"]);
    assert_eq!(back["packages"], tf["packages"]);
    assert_eq!(back["ref"], tf["ref"]);
}

#[test]
fn diff_shows_packages_and_keys() {
    let root = project_root();
    let o = cairn()
        .current_dir(&root)
        .args([
            "treefile",
            "diff",
            "treefiles/debian-12.yaml",
            "treefiles/elasticsearch-node.yaml",
            "--arch",
            "x86_64",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["apiVersion"], "cairn/v1");
    assert_eq!(
        d["packagesAdded"],
        json!(["curl", "openjdk-17-jre-headless"])
    );
    assert_eq!(d["packagesRemoved"], json!([]));
    let changed = d["changed"].as_array().unwrap();
    let key = |k: &str| changed.iter().find(|c| c["key"] == k).cloned();
    assert_eq!(
        key("ref").unwrap()["new"],
        "cairn/debian/12/x86_64/elasticsearch-node"
    );
    assert_eq!(
        key("cairn.sysctl-presets").unwrap()["new"],
        json!(["elasticsearch", "high-connections"])
    );
    assert_eq!(key("cairn.sysctl").unwrap()["old"], serde_json::Value::Null);
    assert!(
        key("cairn.mmdebstrap").is_none(),
        "unchanged keys are not listed"
    );
    let o = cairn()
        .current_dir(&root)
        .args([
            "treefile",
            "diff",
            "treefiles/elasticsearch-node.yaml",
            "treefiles/debian-12.yaml",
        ])
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(
        text.contains("packages: +0 -2\n  - curl\n  - openjdk-17-jre-headless"),
        "{text}"
    );
}

// ---------------------------------------------------------------- merge rules

#[test]
fn merge_scalars_including_file_wins() {
    let d = tree(&[
        ("a.yaml", "include: b.yaml\nref: a/ref\n"),
        (
            "b.yaml",
            "ref: b/ref\nselinux: false\ndefault-target: b.target\n",
        ),
    ]);
    let tf = render_ok(d.path(), "a.yaml", &["--arch", "x86_64"]);
    assert_eq!(tf["ref"], "a/ref");
    assert_eq!(tf["selinux"], false);
    assert_eq!(tf["default-target"], "b.target");
}

/// rpm-ostree reads a YAML file holding only comments as an empty treefile (serde_yaml leaves
/// every field unset), so including one changes nothing; an empty JSON file stays an error, as
/// serde_json has it.
#[test]
fn a_comments_only_yaml_include_is_an_empty_treefile() {
    let d = tree(&[
        (
            "a.yaml",
            "include: [b.yaml]\nref: a/ref\nunits: [a.service]\n",
        ),
        (
            "b.yaml",
            "# nothing here yet\n\n# (a placeholder, as in early-2024 FCOS manifests)\n",
        ),
        ("c.json", "{\"ref\": \"c/ref\", \"include\": \"d.json\"}"),
        ("d.json", ""),
    ]);
    let tf = render_ok(d.path(), "a.yaml", &["--arch", "x86_64"]);
    assert_eq!(tf["ref"], "a/ref");
    assert_eq!(strings(&tf["units"]), ["a.service"]);
    let err = render_err(d.path(), "c.json", &["--arch", "x86_64"]);
    assert!(err.contains("d.json: the document is empty"), "{err}");
}

#[test]
fn merge_arrays_included_entries_first() {
    let d = tree(&[
        ("a.yaml", "include: [b.yaml, c.yaml]\nunits: [a.service]\n"),
        ("b.yaml", "units: [b.service]\n"),
        ("c.yaml", "units: [c.service]\n"),
    ]);
    let tf = render_ok(d.path(), "a.yaml", &["--arch", "x86_64"]);
    // rpm-ostree: of several includes, the later one's entries come first.
    assert_eq!(
        strings(&tf["units"]),
        ["c.service", "b.service", "a.service"]
    );
}

#[test]
fn merge_maps_including_file_wins_per_key() {
    let d = tree(&[
        (
            "a.yaml",
            "include: b.yaml\nadd-commit-metadata: {k: a, only-a: 1}\n",
        ),
        ("b.yaml", "add-commit-metadata: {k: b, only-b: true}\n"),
    ]);
    let tf = render_ok(d.path(), "a.yaml", &["--arch", "x86_64"]);
    assert_eq!(
        tf["add-commit-metadata"],
        json!({"k": "a", "only-b": true, "only-a": 1})
    );
}

#[test]
fn merge_packages_set_split_quoted_and_per_arch() {
    let d = tree(&[
        ("a.yaml", "include: b.yaml\npackages:\n  - zsh  vim\n  - \"'podman >= 4.1' curl\"\npackages-aarch64: [arm-only]\n"),
        ("b.yaml", "packages: [vim, bash]\npackages-x86_64: [\"x86 only\"]\n"),
    ]);
    let x = render_ok(d.path(), "a.yaml", &["--arch", "x86_64"]);
    assert_eq!(
        strings(&x["packages"]),
        ["bash", "curl", "only", "podman >= 4.1", "vim", "x86", "zsh"]
    );
    let a = render_ok(d.path(), "a.yaml", &["--arch", "aarch64"]);
    assert_eq!(
        strings(&a["packages"]),
        ["arm-only", "bash", "curl", "podman >= 4.1", "vim", "zsh"]
    );
}

#[test]
fn arch_include_and_conditional_inline_treefile() {
    let d = tree(&[
        ("a.yaml", "ref: r\nvariables: {big: true}\narch-include:\n  s390x: s.yaml\n  x86_64: [x.yaml]\nconditional-include:\n  - if: [big == true, basearch == \"x86_64\"]\n    include:\n      packages: [inline-pkg]\n      units: [inline.service]\n"),
        ("s.yaml", "packages: [zipl]\n"),
        ("x.yaml", "packages: [grub2]\n"),
    ]);
    let x = render_ok(d.path(), "a.yaml", &["--arch", "x86_64"]);
    assert_eq!(strings(&x["packages"]), ["grub2", "inline-pkg"]);
    assert_eq!(strings(&x["units"]), ["inline.service"]);
    let s = render_ok(d.path(), "a.yaml", &["--arch", "s390x"]);
    assert_eq!(strings(&s["packages"]), ["zipl"]);
    let off = render_ok(
        d.path(),
        "a.yaml",
        &["--arch", "x86_64", "--var", "big=false"],
    );
    assert_eq!(strings(&off["packages"]), ["grub2"]);
}

#[test]
fn variables_including_file_wins_and_releasever_is_a_variable() {
    let d = tree(&[
        ("a.yaml", "include: b.yaml\nvariables: {stream: stable}\nreleasever: \"12\"\n"),
        ("b.yaml", "variables: {stream: testing, other: x}\nref: os/${releasever}/${stream}/${other}/${basearch}\nconditional-include:\n  - if: releasever == \"12\"\n    include: {packages: [twelve]}\n"),
    ]);
    let tf = render_ok(d.path(), "a.yaml", &["--arch", "ppc64le"]);
    assert_eq!(tf["ref"], "os/12/stable/x/ppc64le");
    assert!(tf.get("variables").is_none());
    assert_eq!(strings(&tf["packages"]), ["twelve"]);
    let v = render_ok(
        d.path(),
        "a.yaml",
        &["--arch", "ppc64le", "--var", "stream=dev"],
    );
    assert_eq!(v["ref"], "os/12/dev/x/ppc64le");
}

#[test]
fn add_files_resolve_relative_to_the_declaring_file() {
    let d = tree(&[
        ("top.yaml", "ref: r\ninclude: sub/base.yaml\n"),
        ("sub/base.yaml", "add-files: [[motd, /etc/motd]]\n"),
        ("sub/motd", "hello\n"),
    ]);
    let r = render_in(
        d.path(),
        "top.yaml",
        &["--arch", "x86_64", "--for", "rpm-ostree"],
    );
    assert!(r.out.status.success(), "{}", r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let src = r.json["add-files"][0][0].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(src).unwrap(), "hello\n");
}

// ---------------------------------------------------------------- error paths

#[test]
fn error_include_cycle() {
    let d = tree(&[
        ("a.yaml", "ref: r\ninclude: b.yaml\n"),
        ("b.yaml", "include: a.yaml\n"),
    ]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains("b.yaml:1:10: include cycle: a.yaml -> b.yaml -> a.yaml"),
        "{e}"
    );
    assert!(e.contains("included from a.yaml:2:10"), "{e}");
}

#[test]
fn error_duplicate_include() {
    let d = tree(&[
        ("a.yaml", "include:\n  - b.yaml\n  - c.yaml\n"),
        ("b.yaml", "include: d.yaml\n"),
        ("c.yaml", "include: d.yaml\n"),
        ("d.yaml", "packages: [x]\n"),
    ]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains("c.yaml:1:10: `d.yaml` is already included (first at b.yaml:1:10)"),
        "{e}"
    );
    assert!(e.contains("included from a.yaml:3:5"), "{e}");
}

#[test]
fn error_include_depth_limit() {
    // f0 .. f50 is the deepest chain rpm-ostree allows; f51 is one too many.
    let mut files: Vec<(String, String)> = (0..51)
        .map(|i| (format!("f{i}.yaml"), format!("include: f{}.yaml\n", i + 1)))
        .collect();
    files.push(("f51.yaml".into(), "packages: [deep]\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let d = tree(&refs);
    let e = render_err(d.path(), "f0.yaml", &[]);
    assert!(
        e.contains("f50.yaml:1:10: include depth limit of 50 reached"),
        "{e}"
    );
    assert_eq!(e.matches("included from").count(), 50, "{e}");
    let ok = render_ok(d.path(), "f1.yaml", &["--arch", "x86_64"]);
    assert_eq!(strings(&ok["packages"]), ["deep"]);
}

#[test]
fn error_missing_include_names_the_including_file() {
    let d = tree(&[("a.yaml", "ref: r\n\ninclude: nothere.yaml\n")]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains("a.yaml:3:10: included file `nothere.yaml` does not exist"),
        "{e}"
    );
    let e = render_err(d.path(), "missing.yaml", &[]);
    assert!(e.contains("cannot read missing.yaml"), "{e}");
}

#[test]
fn error_bad_yaml_in_an_included_file() {
    let d = tree(&[
        ("a.yaml", "include: b.yaml\n"),
        ("b.yaml", "packages: [a, b\nref: x\n"),
    ]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(e.contains("b.yaml:2:"), "{e}");
    assert!(e.contains("included from a.yaml:1:10"), "{e}");
}

#[test]
fn error_unknown_key_suggests_the_nearest() {
    let d = tree(&[(
        "a.yaml",
        "ref: r\npackges: [a]\ncairn:\n  sysctl-preset: [database]\n",
    )]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains("a.yaml:2:1: unknown key `packges` (did you mean `packages`?)"),
        "{e}"
    );
    assert!(
        e.contains("a.yaml:4:3: unknown key `sysctl-preset` (did you mean `sysctl-presets`?)"),
        "{e}"
    );
    // The same typo in JSON is a warning, as rpm-ostree accepts it.
    let j = tree(&[("a.json", "{\"ref\": \"r\",\n \"packges\": [\"a\"]}")]);
    let r = render_in(j.path(), "a.json", &[]);
    assert!(r.out.status.success());
    assert!(
        r.stderr.contains(
            "a.json:2:2: warning: unknown key `packges` ignored (did you mean `packages`?)"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn error_condition_type_mismatch() {
    let d = tree(&[("a.yaml", "variables:\n  prod: false\nconditional-include:\n  - if: prod == \"false\"\n    include: b.yaml\n")]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains(
            "a.yaml:4:9: condition `prod == \"false\"` compares `prod` (a boolean) with a string"
        ),
        "{e}"
    );
    // --var values are typed: `prod=false` is a boolean, so this now evaluates (false != "x" is
    // still a type error, but `prod == false` matches)
    let d = tree(&[("a.yaml", "variables: {prod: true}\nconditional-include:\n  - if: prod == false\n    include: {packages: [dev]}\n")]);
    let tf = render_ok(d.path(), "a.yaml", &["--var", "prod=false"]);
    assert_eq!(strings(&tf["packages"]), ["dev"]);
}

#[test]
fn error_undefined_variable() {
    let d = tree(&[("a.yaml", "variables: {stream: stable}\nref: os/${strem}/x\nconditional-include:\n  - if: nope >= 3\n    include: b.yaml\n")]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains("a.yaml:2:6: undefined variable `strem` in `ref`; defined: basearch, stream"),
        "{e}"
    );
    assert!(
        e.contains("a.yaml:4:9: undefined variable `nope` in `conditional-include.if`"),
        "{e}"
    );
}

#[test]
fn error_type_mismatch_and_bad_package_entries() {
    let d = tree(&[("a.yaml", "ref: r\nselinux: \"yes\"\npackages:\n  - good\n  - \"bad 'quote\"\n  - 42\nadd-files: [[x, /usr/local/x]]\n")]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains("a.yaml:2:10: `selinux` must be true or false, found string"),
        "{e}"
    );
    assert!(
        e.contains("a.yaml:5:5: invalid package entry: missing closing quote"),
        "{e}"
    );
    assert!(
        e.contains("a.yaml:6:5: invalid package entry: `packages` entries must be strings"),
        "{e}"
    );
    assert!(
        e.contains("a.yaml:7:17: add-files destination `/usr/local/x` is outside"),
        "{e}"
    );
    assert!(e.contains("4 errors"), "{e}");
}

#[test]
fn error_unknown_sysctl_preset_and_bad_var() {
    let d = tree(&[("a.yaml", "ref: r\ncairn:\n  sysctl-presets: [kubernetes]\n")]);
    let e = render_err(d.path(), "a.yaml", &[]);
    assert!(
        e.contains(
            "a.yaml:3:20: unknown sysctl preset `kubernetes` (did you mean `kubernetes-node`?)"
        ),
        "{e}"
    );
    let o = run_cairn(["treefile", "render", "x.yaml", "--var", "novalue"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    assert!(stderr(&o).contains("expected NAME=VALUE"));
    let e = render_err(d.path(), "a.yaml", &["--var", "basearch=x"]);
    assert!(e.contains("basearch is reserved; use --arch"), "{e}");
}

#[test]
fn check_reports_everything_as_json() {
    let d = tree(&[
        ("a.yaml", "ref: r\ninclude: b.yaml\nrecommend: false\n"),
        (
            "b.yaml",
            "packages: [x]\npackages-x86-64: [y]\nunits: yes\n",
        ),
    ]);
    let o = cairn()
        .current_dir(d.path())
        .args(["treefile", "check", "a.yaml", "--json", "--arch", "x86_64"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let diags = v["diagnostics"].as_array().unwrap();
    let find = |needle: &str| {
        diags
            .iter()
            .find(|d| d["message"].as_str().unwrap().contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("{needle} in {v:#}"))
    };
    let unk = find("unknown key `recommend`");
    assert_eq!(
        (
            unk["file"].as_str(),
            unk["line"].as_u64(),
            unk["col"].as_u64()
        ),
        (Some("a.yaml"), Some(3), Some(1))
    );
    assert_eq!(unk["severity"], "error");
    let ty = find("`units` must be a list");
    assert_eq!(
        (ty["file"].as_str(), ty["line"].as_u64(), ty["col"].as_u64()),
        (Some("b.yaml"), Some(3), Some(8))
    );
    assert_eq!(ty["included_from"], json!(["a.yaml:2:10"]));
    let w = find("packages-x86-64");
    assert_eq!(w["severity"], "warning");
    assert!(w["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `packages-x86_64`?"));
}
