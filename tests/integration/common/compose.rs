//! Compose fixtures: a local RPM repository built from generated .spec files with the real
//! `rpmbuild` and `createrepo_c`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ok;

/// One package to build.
pub struct Rpm<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub requires: &'a [&'a str],
    /// (path in the tree, content)
    pub files: &'a [(&'a str, &'a str)],
    /// %post scriptlet body.
    pub post: Option<&'a str>,
}

/// The packages the dnf tests install: a shell (so %post and postprocess scripts run in the
/// tree), a base package and one that depends on it and has a %post.
pub fn standard_rpms(hello_version: &str) -> Vec<Rpm<'static>> {
    let v: &'static str = Box::leak(hello_version.to_string().into_boxed_str());
    vec![
        Rpm {
            name: "cairn-base",
            version: "2.0",
            requires: &[],
            files: &[("/usr/share/cairn-base/base.txt", "base\n"), ("/etc/cairn-base.conf", "setting=1\n"), ("/usr/share/doc/cairn-base/README", "docs\n")],
            post: None,
        },
        Rpm {
            name: "cairn-hello",
            version: v,
            requires: &["cairn-base"],
            files: &[("/usr/share/cairn-hello/hello.txt", "hello\n"), ("/usr/lib/systemd/system/cairn-hello.service", "[Unit]\nDescription=hello\n[Service]\nExecStart=/bin/sh -c true\n[Install]\nWantedBy=multi-user.target\n")],
            post: Some("echo posted > /usr/share/cairn-hello/post.txt"),
        },
    ]
}

fn spec_text(r: &Rpm) -> String {
    let mut s = format!(
        "Name: {}\nVersion: {}\nRelease: 1\nSummary: cairn test package\nLicense: MIT\nBuildArch: noarch\n",
        r.name, r.version
    );
    for q in r.requires {
        s.push_str(&format!("Requires: {q}\n"));
    }
    s.push_str("%description\ncairn test package\n%install\n");
    for (i, (path, content)) in r.files.iter().enumerate() {
        s.push_str(&format!("mkdir -p %{{buildroot}}$(dirname {path})\ncat > %{{buildroot}}{path} <<'CAIRN_EOF_{i}'\n{content}CAIRN_EOF_{i}\n"));
    }
    if let Some(p) = r.post {
        s.push_str(&format!("%post\n{p}\n"));
    }
    s.push_str("%files\n");
    for (path, _) in r.files {
        if path.starts_with("/usr/share/doc/") {
            s.push_str(&format!("%doc {path}\n"));
        } else if path.starts_with("/etc/") {
            s.push_str(&format!("%config(noreplace) {path}\n"));
        } else {
            s.push_str(&format!("{path}\n"));
        }
    }
    s
}

/// A package carrying the host's dash as /bin/sh with the two libraries it needs.
fn shell_spec() -> String {
    let arch = std::env::consts::ARCH;
    let libc = format!("/lib/{arch}-linux-gnu/libc.so.6");
    let ld = if arch == "x86_64" {
        "/lib64/ld-linux-x86-64.so.2".to_string()
    } else {
        format!("/lib/ld-linux-{arch}.so.1")
    };
    format!(
        "%global debug_package %{{nil}}\n%global __os_install_post %{{nil}}\n%global _build_id_links none\n\
         Name: cairn-sh\nVersion: 1\nRelease: 1\nSummary: sh\nLicense: MIT\nAutoReqProv: no\nProvides: /bin/sh\n\
         %description\nsh\n%install\nmkdir -p %{{buildroot}}/bin %{{buildroot}}$(dirname {libc}) %{{buildroot}}$(dirname {ld})\n\
         cp /bin/dash %{{buildroot}}/bin/sh\ncp {libc} %{{buildroot}}{libc}\ncp {ld} %{{buildroot}}{ld}\n\
         %files\n/bin/sh\n{libc}\n{ld}\n"
    )
}

/// Builds `rpms` (plus cairn-sh) into `dir/repo`, indexes it, and writes `dir/cairn-test.repo`
/// declaring repository id `cairn-test`. Returns `dir`.
pub fn rpm_repo(dir: &Path, rpms: &[Rpm]) -> PathBuf {
    let top = dir.join("rpmbuild");
    for d in ["SPECS", "RPMS", "BUILD", "SOURCES", "SRPMS", "BUILDROOT"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    let mut specs = vec![("cairn-sh".to_string(), shell_spec())];
    specs.extend(rpms.iter().map(|r| (r.name.to_string(), spec_text(r))));
    for (name, text) in specs {
        let spec = top.join("SPECS").join(format!("{name}.spec"));
        std::fs::write(&spec, text).unwrap();
        ok(Command::new("rpmbuild")
            .arg("-bb")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .arg(&spec));
    }
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for e in walkdir::WalkDir::new(top.join("RPMS")) {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "rpm") {
            std::fs::copy(e.path(), repo.join(e.file_name())).unwrap();
        }
    }
    ok(Command::new("createrepo_c").arg("-q").arg(&repo));
    std::fs::write(
        dir.join("cairn-test.repo"),
        format!(
            "[cairn-test]\nname=cairn test\nbaseurl=file://{}\ngpgcheck=0\nmetadata_expire=0\n",
            repo.display()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

/// `ostree --repo=R ARGS...` stdout, asserting success.
pub fn ostree(repo: &Path, args: &[&str]) -> String {
    ok(Command::new("ostree")
        .arg(super::repo::repo_arg(repo))
        .args(args))
}
