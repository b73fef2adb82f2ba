//! `cairn packer render`: every generated template passes Debian's `packer validate` (1.6.6) and
//! `packer fmt -check`; broken variables fail it; nasty strings survive the round trip through
//! Packer's own HCL parser (`packer console`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::ok;
use crate::common::{have_tool, run_cairn, stderr, stdout, tempdir};

fn render(profile: &str, out: &Path, vars: &[&str]) -> Output {
    let mut args = vec![
        "packer".to_owned(),
        "render".into(),
        "--profile".into(),
        profile.into(),
        "--out".into(),
        out.display().to_string(),
    ];
    for v in vars {
        args.push("--var".into());
        args.push((*v).into());
    }
    run_cairn(&args)
}

fn render_ok(profile: &str, out: &Path, vars: &[&str]) {
    let o = render(profile, out, vars);
    assert!(o.status.success(), "render {profile}: {}", stderr(&o));
}

/// `packer validate DIR` from a fresh scratch dir (Packer 1.6.6 fails when the output directory
/// already exists, so never run it where a build ran). OpenStack credentials point at a closed
/// local port: configuration checks run first, then the builder tries to authenticate.
fn validate(dir: &Path, scratch: &Path, extra: &[&str]) -> Output {
    std::fs::create_dir_all(scratch).unwrap();
    Command::new("packer")
        .arg("validate")
        .args(extra)
        .arg(dir)
        .current_dir(scratch)
        .env("CHECKPOINT_DISABLE", "1")
        .env("OS_AUTH_URL", "http://127.0.0.1:9/v3")
        .env("OS_USERNAME", "cairn")
        .env("OS_PASSWORD", "cairn")
        .env("OS_USER_DOMAIN_NAME", "Default")
        .env("OS_PROJECT_NAME", "cairn")
        .env("OS_PROJECT_DOMAIN_NAME", "Default")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A local stand-in ISO and its real sha256 (validate checks the checksum syntax; the shipped
/// profiles point at a `file:` checksum URL that needs the internet).
fn local_iso(dir: &Path) -> (PathBuf, String) {
    let iso = dir.join("installer.iso");
    std::fs::write(&iso, b"an installer image").unwrap();
    let sum = ok(Command::new("sha256sum").arg(&iso));
    (
        iso,
        format!("sha256:{}", sum.split_whitespace().next().unwrap()),
    )
}

#[test]
fn every_builtin_profile_validates_and_is_formatted() {
    if !have_tool("packer", "Debian package packer") {
        return;
    }
    let dir = tempdir();
    let (iso, sum) = local_iso(dir.path());
    let iso_vars = [
        format!("iso_url={}", iso.display()),
        format!("iso_checksum={sum}"),
    ];
    let iso_vars: Vec<&str> = iso_vars.iter().map(String::as_str).collect();
    for profile in ["qemu-iso", "qemu-iso-efi", "qemu-disk", "openstack"] {
        let out = dir.path().join(profile);
        let vars: &[&str] = if profile.starts_with("qemu-iso") {
            &iso_vars
        } else {
            &[]
        };
        render_ok(profile, &out, vars);
        let fmt = Command::new("packer")
            .args(["fmt", "-check"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            fmt.status.success(),
            "{profile}: not in packer fmt form: {}",
            text(&fmt)
        );
        let v = validate(&out, &dir.path().join(format!("scratch-{profile}")), &[]);
        if profile == "openstack" {
            // The only complaint may be the unreachable identity endpoint: every argument was
            // accepted by the openstack builder's schema and every variable by its validation.
            let t = text(&v);
            assert!(
                t.contains("127.0.0.1:9") && t.contains("connection refused"),
                "{t}"
            );
            assert!(
                !t.contains("Unsupported argument") && !t.contains("Invalid value"),
                "{t}"
            );
            assert_eq!(t.matches("Error:").count(), 1, "{t}");
        } else {
            assert!(
                v.status.success(),
                "{profile}: packer validate: {}",
                text(&v)
            );
        }
    }
    // The ISO profiles serve a kickstart (rendered by crate::kickstart) that pykickstart accepts.
    if have_tool("ksvalidator", "pykickstart (scripts/setup.sh)") {
        for profile in ["qemu-iso", "qemu-iso-efi"] {
            let ks = dir.path().join(profile).join("http/ks.cfg");
            ok(Command::new("ksvalidator").args(["-v", "RHEL9"]).arg(&ks));
            let text = std::fs::read_to_string(&ks).unwrap();
            // The install's final action is poweroff (Packer's only signal), never reboot.
            assert!(text.lines().any(|l| l == "poweroff"), "{text}");
            assert!(!text.lines().any(|l| l == "reboot"), "{text}");
            assert!(
                text.contains("ostreesetup --osname=debian --remote=cairn"),
                "{text}"
            );
            assert!(
                text.contains("--append=\"console=ttyS0,115200n8\""),
                "{text}"
            );
        }
    }
    let tpl = std::fs::read_to_string(dir.path().join("qemu-iso/qemu-iso.pkr.hcl")).unwrap();
    for needle in [
        "communicator      = \"none\"",
        "http_bind_address = \"127.0.0.1\"",
        "format            = \"qcow2\"",
        "post-processor \"checksum\"",
        "output         = \"${var.output_directory}/${var.vm_name}.{{.ChecksumType}}\"",
        "post-processor \"manifest\"",
        "post-processor \"shell-local\"",
    ] {
        assert!(tpl.contains(needle), "{needle} missing from\n{tpl}");
    }
    let efi =
        std::fs::read_to_string(dir.path().join("qemu-iso-efi/qemu-iso-efi.pkr.hcl")).unwrap();
    assert!(
        efi.contains(
            "qemuargs          = [[\"-serial\", \"file:${var.output_directory}/console.log\"], [\"-bios\", var.ovmf_firmware]]"
        ),
        "{efi}"
    );
}

#[test]
fn broken_variables_fail_packer_validate() {
    if !have_tool("packer", "Debian package packer") {
        return;
    }
    let dir = tempdir();
    let out = dir.path().join("t");
    render_ok("qemu-disk", &out, &[]);
    let good = validate(&out, &dir.path().join("s0"), &[]);
    assert!(good.status.success(), "{}", text(&good));
    let tpl_path = out.join("qemu-disk.pkr.hcl");
    let tpl = std::fs::read_to_string(&tpl_path).unwrap();

    // An undefined variable reference.
    let broken = tpl.replace(
        "accelerator      = var.accelerator",
        "accelerator      = var.accel",
    );
    assert_ne!(broken, tpl);
    std::fs::write(&tpl_path, &broken).unwrap();
    let v = validate(&out, &dir.path().join("s1"), &[]);
    assert!(!v.status.success());
    assert!(text(&v).contains("accel"), "{}", text(&v));

    // A wrong-typed default.
    let broken = tpl.replace("default     = 2048", "default     = \"lots\"");
    assert_ne!(broken, tpl);
    std::fs::write(&tpl_path, &broken).unwrap();
    let v = validate(&out, &dir.path().join("s2"), &[]);
    assert!(!v.status.success());
    assert!(text(&v).contains("memory"), "{}", text(&v));
    std::fs::write(&tpl_path, &tpl).unwrap();

    // A well-typed but invalid --var: rendered (it is a string), caught by the validation block.
    render_ok("qemu-disk", &out, &["accelerator=xen"]);
    let pkrvars = std::fs::read_to_string(out.join("cairn.auto.pkrvars.hcl")).unwrap();
    assert_eq!(pkrvars, "accelerator = \"xen\"\n");
    let v = validate(&out, &dir.path().join("s3"), &[]);
    assert!(!v.status.success());
    assert!(
        text(&v).contains("The accelerator variable must be kvm or tcg."),
        "{}",
        text(&v)
    );
    // ...and the same rule guards `packer build -var` on a clean render.
    render_ok("qemu-disk", &out, &[]);
    assert!(!out.join("cairn.auto.pkrvars.hcl").exists());
    let v = validate(
        &out,
        &dir.path().join("s4"),
        &["-var", "base_image_checksum=sha257:00"],
    );
    assert!(!v.status.success());
    assert!(text(&v).contains("must be none, file:URL"), "{}", text(&v));

    // A wrong-typed or unknown --var never reaches Packer.
    let o = render("qemu-disk", &out, &["disk_size=big"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--var disk_size: expected a whole number"),
        "{}",
        stderr(&o)
    );
    let o = render("qemu-disk", &out, &["iso_url=x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("declares no such variable"),
        "{}",
        stderr(&o)
    );
}

/// Strings that would break out of a naively quoted template: quotes, backslashes,
/// interpolation and directive openers, already-escaped openers, newlines, tabs, control chars.
const NASTY: &str = "a\"b\\c ${HOME} %{ if x } $${y} %%{z} \n tab\t bell\u{7} ünï ✓";

#[test]
fn nasty_strings_round_trip_through_packer() {
    if !have_tool("packer", "Debian package packer") {
        return;
    }
    let dir = tempdir();
    // Through a profile file (YAML double-quoted escapes) and through --var.
    let profile = dir.path().join("nasty.yaml");
    std::fs::write(
        &profile,
        format!(
            "kind: qemu-disk\nbase-image: base.qcow2\nvm-name: {}\nboot-command: [{}]\n",
            serde_json::to_string(NASTY).unwrap(),
            serde_json::to_string(&format!("<tab>{NASTY}<enter>")).unwrap()
        ),
    )
    .unwrap();
    let out = dir.path().join("t");
    render_ok(
        profile.to_str().unwrap(),
        &out,
        &[&format!("output_directory={NASTY}")],
    );
    let fmt = Command::new("packer")
        .args(["fmt", "-check"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(fmt.status.success(), "{}", text(&fmt));
    let v = validate(&out, &dir.path().join("s"), &[]);
    assert!(v.status.success(), "{}", text(&v));

    // What Packer parsed is exactly what went in.
    for var in ["vm_name", "output_directory"] {
        let mut child = Command::new("packer")
            .arg("console")
            .arg(&out)
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "jsonencode(var.{var})").unwrap();
        let o = child.wait_with_output().unwrap();
        let printed = stdout(&o);
        let line = printed
            .lines()
            .find(|l| l.starts_with('"'))
            .unwrap_or_else(|| panic!("{printed}"));
        let back: String = serde_json::from_str(line).unwrap();
        assert_eq!(back, NASTY, "var.{var}");
    }
}

#[test]
fn disk_profile_fits_disk_size_to_the_base_image() {
    if !have_tool("qemu-img", "Debian package qemu-utils") {
        return;
    }
    let dir = tempdir();
    let base = dir.path().join("base.qcow2");
    ok(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&base)
        .arg("3000M"));
    let out = dir.path().join("t");
    let o = render(
        "qemu-disk",
        &out,
        &[&format!("base_image={}", base.display()), "accelerator=tcg"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(out.join("cairn.auto.pkrvars.hcl")).unwrap();
    let vars: Vec<(&str, &str)> = text
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.trim(), v.trim())
        })
        .collect();
    let base_q = format!("\"{}\"", base.display());
    assert_eq!(
        vars,
        [
            ("base_image", base_q.as_str()),
            ("disk_size", "3000"),
            ("accelerator", "\"tcg\"")
        ],
        "{text}"
    );

    // A size Packer's MiB-based disk_size cannot express is refused, with the fix.
    let odd = dir.path().join("odd.qcow2");
    ok(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&odd)
        .arg("1000001K"));
    let o = render(
        "qemu-disk",
        &out,
        &[&format!("base_image={}", odd.display())],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("qemu-img resize IMAGE 977M"),
        "{}",
        stderr(&o)
    );
}
