//! Unit tests of the preset table, sysctl.d parsing, validation, resolution and rendering.

use super::*;

fn user(name: &str, text: &str) -> OwnedPreset {
    validate::parse(name, Path::new(&format!("/presets/{name}.conf")), text).unwrap()
}

#[test]
fn every_builtin_passes_the_shipped_list() {
    let all: Vec<OwnedPreset> = builtin().iter().map(OwnedPreset::from).collect();
    for p in &all {
        Validator::shipped_only()
            .check_all(std::slice::from_ref(p))
            .unwrap();
        assert!(!p.reason.is_empty());
    }
    assert!(find("kubernetes-node")
        .unwrap()
        .modules
        .contains(&"br_netfilter"));
    assert!(find("elasticsearch").unwrap().reason.contains("1048576"));
}

#[test]
fn parses_sysctl_d_syntax_with_reason_and_modules() {
    let p = user(
        "web",
        "# Web frontends need a deep backlog\n; another comment\n# cairn-modules: tcp_bbr\n\n\
         net.core.somaxconn = 4096\n-net.ipv4.tcp_congestion_control=bbr\n",
    );
    assert_eq!(p.reason, "Web frontends need a deep backlog");
    assert_eq!(p.modules, vec!["tcp_bbr"]);
    assert_eq!(p.settings.len(), 2);
    assert_eq!(p.settings[1].key, "-net.ipv4.tcp_congestion_control");
    assert_eq!(p.settings[1].line, Some(6));
    Validator::shipped_only().check_all(&[p]).unwrap();
}

#[test]
fn line_without_equals_is_a_syntax_error_with_position() {
    let e = validate::parse(
        "x",
        Path::new("/p/x.conf"),
        "vm.swappiness = 1\nvm.max_map_count\n",
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("/p/x.conf:2:"), "{msg}");
}

#[test]
fn bad_key_syntax_is_rejected() {
    for key in [
        "swappiness",
        "vm..swappiness",
        "vm.swap piness",
        "net.ipv4.conf.*.forwarding",
    ] {
        let p = OwnedPreset::inline("t", &[(key.into(), "1".into())]);
        let e = Validator::shipped_only().check_all(&[p]).unwrap_err();
        assert!(matches!(e, SysctlError::BadKey { .. }), "{key}: {e}");
    }
}

#[test]
fn unknown_key_suggests_the_close_one() {
    let p = user("t", "vm.swapiness = 10\n");
    let e = Validator::shipped_only().check_all(&[p]).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, SysctlError::UnknownKey { .. }));
    assert!(
        msg.contains("/presets/t.conf:1") && msg.contains("did you mean `vm.swappiness`"),
        "{msg}"
    );
}

#[test]
fn proc_sys_makes_unlisted_keys_known_and_infers_numeric() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("kernel")).unwrap();
    std::fs::write(dir.path().join("kernel/numa_balancing"), "1\n").unwrap();
    let v = Validator {
        proc_sys: Some(dir.path().to_path_buf()),
    };
    v.check_all(&[OwnedPreset::inline(
        "a",
        &[("kernel.numa_balancing".into(), "0".into())],
    )])
    .unwrap();
    let e = v
        .check_all(&[OwnedPreset::inline(
            "a",
            &[("kernel.numa_balancing".into(), "off".into())],
        )])
        .unwrap_err();
    assert!(matches!(e, SysctlError::BadValue { .. }), "{e}");
    // Absent from both the shipped list and this /proc/sys.
    let e = v.check_all(&[OwnedPreset::inline("a", &[("kernel.x".into(), "1".into())])]);
    assert!(matches!(e, Err(SysctlError::UnknownKey { .. })));
}

#[test]
fn non_numeric_values_for_numeric_keys() {
    for (k, v) in [
        ("vm.swappiness", "low"),
        ("net.ipv4.ip_local_port_range", "1024-65535"),
    ] {
        let e = Validator::shipped_only()
            .check_all(&[OwnedPreset::inline("a", &[(k.into(), v.into())])])
            .unwrap_err();
        assert!(matches!(e, SysctlError::BadValue { .. }), "{k}={v}: {e}");
    }
    Validator::shipped_only()
        .check_all(&[OwnedPreset::inline(
            "a",
            &[("kernel.core_pattern".into(), "|/bin/x %p".into())],
        )])
        .unwrap();
}

#[test]
fn two_presets_disagreeing_on_a_key_name_both() {
    let a = OwnedPreset::from(find("database").unwrap());
    let b = user("low-latency", "vm/swappiness = 10\n");
    let e = Validator::shipped_only()
        .check_all(&[a.clone(), b])
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("`database`") && msg.contains("`low-latency`"),
        "{msg}"
    );
    assert!(msg.contains("vm.swappiness"), "{msg}");
    // Agreeing presets are fine (whitespace in vectors does not matter).
    let c = user("same", "vm.swappiness = 1\n");
    Validator::shipped_only().check_all(&[a, c]).unwrap();
}

#[test]
fn slash_form_keeps_dots_literal() {
    assert_eq!(
        validate::components("net/ipv4/conf/eth0.100/forwarding")[3],
        "eth0.100"
    );
    assert_eq!(
        validate::components("net.ipv4.conf.eth0/100.forwarding")[3],
        "eth0.100"
    );
    assert_eq!(
        validate::components("-vm.swappiness"),
        vec!["vm", "swappiness"]
    );
}

#[test]
fn render_writes_sysctl_and_modules_files() {
    let files = render(&[
        find("kubernetes-node").unwrap(),
        find("elasticsearch").unwrap(),
    ]);
    let paths: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert_eq!(
        paths,
        [
            "sysctl.d/60-cairn-kubernetes-node.conf",
            "modules-load.d/cairn-kubernetes-node.conf",
            "sysctl.d/60-cairn-elasticsearch.conf"
        ]
    );
    assert!(files[0].1.contains("\nnet.ipv4.ip_forward = 1\n"));
    assert!(files[1].1.lines().any(|l| l == "br_netfilter"));
    // Rendered files parse back to the same settings.
    let back = validate::parse("elasticsearch", Path::new("/x"), &files[2].1).unwrap();
    assert_eq!(back.settings[0].key, "vm.max_map_count");
    assert_eq!(back.settings[0].value, "262144");
}

#[test]
fn resolve_unknown_preset_suggests() {
    let e = resolve(&["kubernetes-nod".into()], None, &Validator::shipped_only()).unwrap_err();
    assert!(
        e.to_string().contains("did you mean `kubernetes-node`"),
        "{e}"
    );
}

#[test]
fn unknown_preset_is_worded_once() {
    // A prefix of a preset's name is suggested although it is many edits away.
    let e = find_builtin("kubernetes").unwrap_err().to_string();
    assert!(
        e.starts_with(
            "unknown sysctl preset `kubernetes` (did you mean `kubernetes-node`?); known presets: "
        ),
        "{e}"
    );
    assert!(e.contains("elasticsearch"), "{e}");
    // resolve (deploy, `cairn sysctl`) says exactly what the built-in lookup says.
    let r = resolve(&["kubernetes".into()], None, &Validator::shipped_only()).unwrap_err();
    assert_eq!(r.to_string(), e);
    let far = find_builtin("zzzzzz").unwrap_err().to_string();
    assert!(!far.contains("did you mean"), "{far}");
    assert!(find_builtin("elasticsearch").is_ok());
}

#[test]
fn user_dir_shadows_builtin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("elasticsearch.conf"),
        "# big heaps\nvm.max_map_count = 1048576\n",
    )
    .unwrap();
    let got = resolve(
        &["elasticsearch".into()],
        Some(dir.path()),
        &Validator::shipped_only(),
    )
    .unwrap();
    assert_eq!(got[0].settings[0].value, "1048576");
    assert!(matches!(got[0].source, Source::File(_)));
}
