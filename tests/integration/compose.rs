//! Compose: real package backends into temp dirs, real postprocess, checked on the resulting tree.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use cairn_compose::backend::{self, dnf, DnfSpec, MmdebstrapSpec, Note, PackageDb, RootfsSpec};
use cairn_compose::manifest;
use cairn_compose::postprocess::{self, PostprocessSpec};

use crate::common::compose::{rpm_repo, standard_rpms};
use crate::common::{have_tool, impossible_here, tempdir};

fn quiet() -> impl FnMut(Note) {
    |_| {}
}

fn dnf_tree(work: &Path, packages: &[&str]) -> Result<PathBuf, backend::BackendError> {
    let repos = rpm_repo(&work.join("rpms"), &standard_rpms("1.0"));
    let root = work.join("root");
    let mut spec = DnfSpec::new(
        repos,
        vec!["cairn-test".into()],
        packages.iter().map(|s| s.to_string()).collect(),
    );
    spec.documentation = false;
    spec.recommends = false;
    spec.releasever = Some("1".into());
    dnf::install(&spec, &root, Some(&work.join("cache")), &mut quiet())?;
    Ok(root)
}

#[test]
fn dnf_installroot_from_local_rpms() {
    if !have_tool("rpmbuild", "package rpm") || !have_tool("createrepo_c", "package createrepo-c") {
        return;
    }
    let t = tempdir();
    let root = dnf_tree(t.path(), &["cairn-hello", "cairn-sh"]).expect("dnf install");
    // Files, the dependency, the %post (which ran in the tree with its /bin/sh).
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/cairn-hello/hello.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/cairn-base/base.txt")).unwrap(),
        "base\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/cairn-hello/post.txt")).unwrap(),
        "posted\n"
    );
    // documentation: false => tsflags=nodocs.
    assert!(!root.join("usr/share/doc/cairn-base/README").exists());
    // The rpmdb is where the target distro looks, not Debian's ~/.rpmdb.
    assert!(root.join("usr/lib/sysimage/rpm/rpmdb.sqlite").is_file());
    assert!(!root.join("root/.rpmdb").exists());
    assert_eq!(
        std::fs::read_link(root.join("var/lib/rpm")).unwrap(),
        Path::new("../../usr/lib/sysimage/rpm")
    );
    let pkgs = manifest::read(
        &root,
        PackageDb::Rpm {
            dbpath: dnf::DEFAULT_DBPATH,
        },
    )
    .unwrap();
    let names: Vec<_> = pkgs
        .iter()
        .map(|p| format!("{}-{}", p.name, p.evr()))
        .collect();
    assert_eq!(
        names,
        ["cairn-base-2.0-1", "cairn-hello-1.0-1", "cairn-sh-1-1"]
    );
    assert_eq!(pkgs[0].arch, "noarch");
    // dnf's cache (metadata here: file:// packages are used in place) lives outside the tree.
    let solv = walkdir::WalkDir::new(t.path().join("cache"))
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_name() == "cairn-test.solv")
        .count();
    assert_eq!(solv, 1);
    assert!(!root.join("var/cache/dnf").exists());

    postprocess_the_rpm_tree(t.path(), &root);
}

/// Postprocess the RPM tree: rpm-based remove-from-packages, units, sysctl, scripts, layout.
fn postprocess_the_rpm_tree(t: &Path, root: &Path) {
    let src = t.join("extra.conf");
    std::fs::write(&src, "extra\n").unwrap();
    let spec = PostprocessSpec {
        db: Some(PackageDb::Rpm {
            dbpath: dnf::DEFAULT_DBPATH,
        }),
        remove_from_packages: vec![("cairn-base".into(), vec!["/base\\.txt$".into()])],
        add_files: vec![(src, "/etc/cairn/extra.conf".into())],
        units: vec!["cairn-hello.service".into()],
        sysctl_presets: vec!["kubernetes-node".into()],
        sysctl: vec![("vm.swappiness".into(), "10".into())],
        postprocess: vec!["echo from-script; echo made > /usr/share/made-by-script".into()],
        ..Default::default()
    };
    let report = postprocess::run(root, &spec, &mut quiet()).expect("postprocess");
    assert_eq!(report.removed_from_packages, 1);
    assert!(!root.join("usr/share/cairn-base/base.txt").exists());
    assert!(root.join("usr/share/cairn-base").is_dir());
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/made-by-script")).unwrap(),
        "made\n"
    );
    assert!(report.scripts[0].1.contains("from-script"));
    assert_eq!(
        std::fs::read_to_string(root.join("usr/etc/cairn/extra.conf")).unwrap(),
        "extra\n"
    );
    assert_eq!(
        std::fs::read_link(
            root.join("usr/etc/systemd/system/multi-user.target.wants/cairn-hello.service")
        )
        .unwrap(),
        Path::new("/usr/lib/systemd/system/cairn-hello.service")
    );
    let k8s = std::fs::read_to_string(root.join("usr/lib/sysctl.d/60-cairn-kubernetes-node.conf"))
        .unwrap();
    assert!(k8s.contains("net.ipv4.ip_forward = 1\n"), "{k8s}");
    assert!(std::fs::read_to_string(
        root.join("usr/lib/modules-load.d/cairn-kubernetes-node.conf")
    )
    .unwrap()
    .contains("br_netfilter"));
    assert_eq!(
        std::fs::read_to_string(root.join("usr/lib/sysctl.d/61-cairn-treefile.conf"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["vm.swappiness = 10"]
    );
    // The rpmdb stayed in /usr and still answers.
    assert_eq!(
        manifest::read(
            root,
            PackageDb::Rpm {
                dbpath: dnf::DEFAULT_DBPATH
            }
        )
        .unwrap()
        .len(),
        3
    );
    let tmpfiles = std::fs::read_to_string(root.join("usr/lib/tmpfiles.d/cairn-var.conf")).unwrap();
    assert!(
        tmpfiles.contains("L /var/lib/rpm - - - - ../../usr/lib/sysimage/rpm"),
        "{tmpfiles}"
    );
    assert!(
        tmpfiles.contains("d /var/roothome 0700 root root -"),
        "{tmpfiles}"
    );
    assert_eq!(std::fs::read_dir(root.join("var")).unwrap().count(), 0);
    assert!(!root.join("etc").exists());
}

#[test]
fn dnf_missing_package_is_named() {
    if !have_tool("rpmbuild", "package rpm") || !have_tool("createrepo_c", "package createrepo-c") {
        return;
    }
    let t = tempdir();
    let e = dnf_tree(t.path(), &["cairn-hello", "cairn-no-such-package"]).unwrap_err();
    match &e {
        backend::BackendError::MissingPackages { packages, .. } => {
            assert_eq!(packages, &["cairn-no-such-package"])
        }
        other => panic!("expected MissingPackages, got {other}"),
    }
    assert!(e.to_string().contains("cairn-no-such-package"));
    // Nothing was installed.
    assert!(!t.path().join("root/usr/share/cairn-hello").exists());
}

#[test]
fn failing_postprocess_script_shows_its_output() {
    if !have_tool("rpmbuild", "package rpm") || !have_tool("createrepo_c", "package createrepo-c") {
        return;
    }
    let t = tempdir();
    let root = dnf_tree(t.path(), &["cairn-sh"]).expect("dnf install");
    let script = t.path().join("fail.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\necho about-to-fail\necho broken-thing-here >&2\nexit 3\n",
    )
    .unwrap();
    let spec = PostprocessSpec {
        postprocess_scripts: vec![script.clone()],
        ..Default::default()
    };
    let e = postprocess::run(&root, &spec, &mut quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken-thing-here"), "{e}");
    assert!(e.contains(&script.display().to_string()), "{e}");
    assert!(e.contains("exit status: 3"), "{e}");
    // The script does not linger in the tree.
    assert!(!root.join("tmp/cairn-postprocess-0").exists());
}

#[test]
fn mmdebstrap_minbase_then_postprocess() {
    if !have_tool("mmdebstrap", "package mmdebstrap") {
        return;
    }
    let t = tempdir();
    let root = t.path().join("root");
    let spec = MmdebstrapSpec {
        packages: vec!["netbase".into()],
        ..Default::default()
    };
    let cache = t.path().join("cache");
    backend::mmdebstrap::install(&spec, &root, Some(&cache), &mut quiet()).expect("mmdebstrap");
    let debs = std::fs::read_dir(cache.join("apt-archives/amd64"))
        .unwrap()
        .count();
    assert!(
        debs > 50,
        "apt archives cached for the next compose: {debs}"
    );
    let pkgs = manifest::read(&root, PackageDb::Dpkg).unwrap();
    assert!(pkgs.iter().any(|p| p.name == "netbase"));
    assert!(pkgs
        .iter()
        .any(|p| p.name == "base-files" && p.arch == "amd64"));

    let unit = t.path().join("cairn-test.service");
    std::fs::write(
        &unit,
        "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let pp = PostprocessSpec {
        db: Some(PackageDb::Dpkg),
        add_files: vec![(unit, "/usr/lib/systemd/system/cairn-test.service".into())],
        units: vec!["cairn-test.service".into()],
        remove_files: vec!["/usr/share/doc/netbase".into()],
        remove_from_packages: vec![("netbase".into(), vec!["^/etc/protocols$".into()])],
        mutate_os_release: Some("12".into()),
        version: Some("12.20260101.0".into()),
        sysctl_presets: vec!["database".into()],
        etc_group_members: vec!["adm".into()],
        postprocess: vec!["test -f /etc/os-release; echo in-tree-ok".into()],
        ..Default::default()
    };
    let report = postprocess::run(&root, &pp, &mut quiet()).expect("postprocess");
    assert!(report.scripts[0].1.contains("in-tree-ok"));
    assert!(root.join("usr/etc/passwd").is_file());
    assert!(!root.join("etc").exists());
    assert!(!root.join("usr/etc/protocols").exists());
    assert!(root.join("usr/etc/services").exists());
    assert!(!root.join("usr/share/doc/netbase").exists());
    let mid = root.join("usr/etc/machine-id");
    assert_eq!(mid.metadata().unwrap().len(), 0);
    let osr = std::fs::read_to_string(root.join("usr/lib/os-release")).unwrap();
    assert!(osr.contains("VERSION_ID=\"12.20260101.0\""), "{osr}");
    assert!(osr.contains("OSTREE_VERSION='12.20260101.0'"), "{osr}");
    assert_eq!(
        std::fs::read_to_string(root.join("usr/lib/sysctl.d/60-cairn-database.conf"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        ["vm.swappiness = 1", "vm.overcommit_memory = 1"]
    );
    assert!(root
        .join("usr/etc/systemd/system/multi-user.target.wants/cairn-test.service")
        .symlink_metadata()
        .is_ok());
    for (link, target) in postprocess::TOPLEVEL_LINKS {
        assert_eq!(
            std::fs::read_link(root.join(link)).unwrap(),
            Path::new(target),
            "{link}"
        );
    }
    // The dpkg database survives in the factory and is recreated in /var at boot.
    assert!(root.join("usr/share/factory/var/lib/dpkg/status").is_file());
    let tmpfiles = std::fs::read_to_string(root.join("usr/lib/tmpfiles.d/cairn-var.conf")).unwrap();
    assert!(
        tmpfiles.contains("C /var/lib/dpkg/status - - - - /usr/share/factory/var/lib/dpkg/status")
    );
    assert!(tmpfiles.contains("C /var/roothome/.bashrc "), "{tmpfiles}");
    assert!(tmpfiles.contains("d /var/log 0755 root root -"));
    assert!(
        tmpfiles.contains("d /var/mail 2775 root mail -"),
        "{tmpfiles}"
    );
    assert_eq!(std::fs::read_dir(root.join("var")).unwrap().count(), 0);
    // No device nodes anywhere; runtime dirs empty.
    for e in walkdir::WalkDir::new(&root) {
        let e = e.unwrap();
        let mode = e.path().symlink_metadata().unwrap().mode() & 0o170000;
        assert!(
            mode != 0o020000 && mode != 0o060000,
            "device node {}",
            e.path().display()
        );
    }
    assert_eq!(std::fs::read_dir(root.join("dev")).unwrap().count(), 0);
    assert_eq!(root.join("tmp").metadata().unwrap().mode() & 0o7777, 0o1777);

    tmpfiles_recreates_var(&root);
}

/// systemd-tmpfiles itself recreates /var from the generated file, as on a first boot
/// (/etc is where a deployment has it; user and group names resolve through it).
fn tmpfiles_recreates_var(root: &Path) {
    if have_tool("systemd-tmpfiles", "package systemd") {
        std::os::unix::fs::symlink("usr/etc", root.join("etc")).unwrap();
        let out = std::process::Command::new("systemd-tmpfiles")
            .arg(format!("--root={}", root.display()))
            .arg("--create")
            .arg(root.join("usr/lib/tmpfiles.d/cairn-var.conf"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "systemd-tmpfiles: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(root.join("var/lib/dpkg/status")).unwrap(),
            std::fs::read(root.join("usr/share/factory/var/lib/dpkg/status")).unwrap()
        );
        let m = root.join("var/roothome").metadata().unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o700, 0));
        let mail = root.join("var/mail").metadata().unwrap();
        assert_eq!(mail.mode() & 0o7777, 0o2775);
        assert_eq!(
            std::fs::read_link(root.join("var/run")).unwrap(),
            Path::new("/run")
        );
        assert!(root.join("var/roothome/.bashrc").is_file());
    }
}

#[test]
fn rootfs_from_directory_and_tarball() {
    let t = tempdir();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::write(src.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    // chown clears setuid, so it comes first.
    std::os::unix::fs::chown(src.join("usr/bin/tool"), Some(12345), Some(54321)).unwrap();
    std::fs::set_permissions(
        src.join("usr/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    std::os::unix::fs::symlink("usr/bin", src.join("bin")).unwrap();
    let xattr_ok = std::process::Command::new("setfattr")
        .args(["-n", "user.cairn", "-v", "kept"])
        .arg(src.join("usr/bin/tool"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);

    let check = |root: &Path| {
        let m = root.join("usr/bin/tool").metadata().unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755);
        assert_eq!((m.uid(), m.gid()), (12345, 54321));
        assert_eq!(
            std::fs::read_link(root.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        if xattr_ok {
            let out = std::process::Command::new("getfattr")
                .args(["--only-values", "-n", "user.cairn"])
                .arg(root.join("usr/bin/tool"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), "kept");
        }
    };
    let from_dir = t.path().join("from-dir");
    backend::rootfs::install(&RootfsSpec { path: src.clone() }, &from_dir, &mut quiet()).unwrap();
    check(&from_dir);

    let tarball = t.path().join("rootfs.tar.gz");
    let st = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "-czf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let from_tar = t.path().join("from-tar");
    backend::rootfs::install(&RootfsSpec { path: tarball }, &from_tar, &mut quiet()).unwrap();
    check(&from_tar);

    let e = backend::rootfs::install(
        &RootfsSpec {
            path: t.path().join("absent.tar"),
        },
        &t.path().join("x"),
        &mut quiet(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("absent.tar"), "{e}");
}

// ---- `cairn compose` end to end: real backends into real repos, checked with the ostree CLI ----

use crate::common::compose::ostree;
use crate::common::{run_cairn, stderr, stdout};

fn rev(repo: &Path, r: &str) -> Option<String> {
    let out = std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["rev-parse", r])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn meta(repo: &Path, r: &str, key: &str) -> String {
    ostree(repo, &["show", &format!("--print-metadata-key={key}"), r])
        .trim()
        .to_string()
}

/// A dnf treefile beside the test RPM repo's .repo file; returns its path.
fn dnf_treefile(dir: &Path, packages: &str, extra: &str) -> PathBuf {
    let tf = dir.join("host.yaml");
    std::fs::write(
        &tf,
        format!(
            "ref: test/dnf/x86_64\nrepos: [cairn-test]\nreleasever: \"1\"\nautomatic-version-prefix: \"1.<date:%Y>\"\n\
             documentation: false\nrecommends: false\npackages: [{packages}]\nunits: [cairn-hello.service]\n\
             cairn:\n  backend: dnf\n  bootable: false\n  sysctl-presets: [kubernetes-node]\n{extra}"
        ),
    )
    .unwrap();
    tf
}

fn compose_args(tf: &Path, repo: &Path, cache: &Path) -> Vec<String> {
    vec![
        "compose".into(),
        tf.display().to_string(),
        "--repo".into(),
        repo.display().to_string(),
        "--cachedir".into(),
        cache.display().to_string(),
    ]
}

fn rpm_tools() -> bool {
    have_tool("rpmbuild", "package rpm") && have_tool("createrepo_c", "package createrepo-c")
}

/// A temp dir with the standard RPMs in `src/` and a dnf treefile of `packages` (+ `extra`
/// YAML) over them: (dir, src, treefile, repo path, not yet created). `None` without the RPM
/// tools.
fn dnf_compose(
    packages: &str,
    extra: &str,
) -> Option<(tempfile::TempDir, PathBuf, PathBuf, PathBuf)> {
    if !rpm_tools() {
        return None;
    }
    let t = tempdir();
    let src = rpm_repo(&t.path().join("src"), &standard_rpms("1.0"));
    let tf = dnf_treefile(&src, packages, extra);
    let repo = t.path().join("repo");
    Some((t, src, tf, repo))
}

/// Build trees (`build-*`) left in the compose cache dir.
fn build_dirs(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("build-")
        })
        .count()
}

#[test]
fn compose_dnf_commit_unchanged_and_diff() {
    let Some((t, src, tf, repo)) = dnf_compose(
        "cairn-hello, cairn-sh",
        "postprocess:\n  - echo script-ran > /usr/share/script-ran\n",
    ) else {
        return;
    };
    let cache = t.path().join("cache");
    let sbom = t.path().join("out.spdx.json");
    let mut args = compose_args(&tf, &repo, &cache);
    args.extend(["--json".into(), "--sbom".into(), sbom.display().to_string()]);
    let out = run_cairn(&args);
    assert!(out.status.success(), "compose: {}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["apiVersion"], "cairn/v1");
    assert_eq!(j["status"], "committed");
    assert_eq!(j["backend"], "dnf");
    assert_eq!(j["packageCount"], 3);
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(j["version"], format!("1.{year}"));
    for phase in ["packages", "postprocess", "commit", "total"] {
        assert!(j["timings"][phase].as_f64().unwrap() > 0.0, "{phase}");
    }
    let c1 = rev(&repo, "test/dnf/x86_64").expect("ref exists");
    assert_eq!(j["commit"], c1.as_str());

    tree_is_in_the_commit(&repo);
    metadata_and_sbom_describe_it(&repo, &c1, &year, &sbom);
    // Unchanged inputs: no commit, exit 0, then 77 with the flag.
    let again = run_cairn(compose_args(&tf, &repo, &cache));
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("no changes"), "{}", stdout(&again));
    assert_eq!(rev(&repo, "test/dnf/x86_64").unwrap(), c1);
    let mut args77 = compose_args(&tf, &repo, &cache);
    args77.push("--unchanged-exit-77".into());
    assert_eq!(run_cairn(&args77).status.code(), Some(77));
    assert_eq!(rev(&repo, "test/dnf/x86_64").unwrap(), c1);

    recompose_picks_up_a_new_package(&src, &tf, &repo, &cache, &c1, &year);
}

/// The repository now serves cairn-hello 1.1: a forced recompose picks it up; repo diff shows it.
fn recompose_picks_up_a_new_package(
    src: &Path,
    tf: &Path,
    repo: &Path,
    cache: &Path,
    c1: &str,
    year: &str,
) {
    std::fs::remove_dir_all(src.join("repo")).unwrap();
    std::fs::remove_dir_all(src.join("rpmbuild")).unwrap();
    rpm_repo(src, &standard_rpms("1.1"));
    let mut forced = compose_args(tf, repo, cache);
    forced.push("--force-nocache".into());
    let out = run_cairn(&forced);
    assert!(out.status.success(), "{}", stderr(&out));
    let c2 = rev(repo, "test/dnf/x86_64").unwrap();
    assert_ne!(c2, c1);
    assert_eq!(meta(repo, &c2, "version"), format!("'1.{year}.1'"));
    assert_eq!(ostree(repo, &["rev-parse", &format!("{c2}^")]).trim(), c1);
    let diff = run_cairn([
        "repo",
        "diff",
        "--repo",
        &repo.display().to_string(),
        c1,
        &c2,
    ]);
    let text = stdout(&diff);
    assert!(diff.status.success(), "{}", stderr(&diff));
    assert!(
        text.contains("cairn-hello") && text.contains("1.0-1") && text.contains("1.1-1"),
        "{text}"
    );
}

/// The tree, through the real ostree CLI.
fn tree_is_in_the_commit(repo: &Path) {
    assert!(ostree(repo, &["ls", "test/dnf/x86_64", "/usr/etc"]).starts_with('d'));
    let no_etc = std::process::Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["ls", "test/dnf/x86_64", "/etc"])
        .output()
        .unwrap();
    assert!(!no_etc.status.success(), "/etc must not be in the commit");
    assert!(ostree(
        repo,
        &[
            "cat",
            "test/dnf/x86_64",
            "/usr/lib/sysctl.d/60-cairn-kubernetes-node.conf"
        ]
    )
    .contains("net.ipv4.ip_forward = 1"));
    let link = ostree(
        repo,
        &[
            "ls",
            "test/dnf/x86_64",
            "/usr/etc/systemd/system/multi-user.target.wants/cairn-hello.service",
        ],
    );
    assert!(
        link.starts_with('l') && link.contains("-> /usr/lib/systemd/system/cairn-hello.service"),
        "{link}"
    );
    assert_eq!(
        ostree(repo, &["cat", "test/dnf/x86_64", "/usr/share/script-ran"]),
        "script-ran\n"
    );
    assert_eq!(
        ostree(repo, &["cat", "test/dnf/x86_64", "/usr/etc/machine-id"]),
        ""
    );
    assert!(ostree(
        repo,
        &[
            "ls",
            "test/dnf/x86_64",
            "/usr/lib/sysimage/rpm/rpmdb.sqlite"
        ]
    )
    .starts_with('-'));
}

/// Metadata keys, and the SBOM: SPDX 2.3 with one element per package.
fn metadata_and_sbom_describe_it(repo: &Path, c1: &str, year: &str, sbom: &Path) {
    assert_eq!(meta(repo, c1, "version"), format!("'1.{year}'"));
    let hash = meta(repo, c1, "cairn.input-hash");
    assert_eq!(hash.trim_matches('\'').len(), 64);
    let pkgs = meta(repo, c1, "cairn.packages");
    assert!(
        pkgs.contains("\"name\":\"cairn-hello\"") && pkgs.contains("\"version\":\"1.0\""),
        "{pkgs}"
    );
    assert!(meta(repo, c1, "cairn.treefile").contains("test/dnf/x86_64"));

    // SBOM: SPDX 2.3 with one element per package.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sbom).unwrap()).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let purls: Vec<String> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(
        purls.contains(&"pkg:rpm/rpm/cairn-hello@1.0-1?arch=noarch".to_string()),
        "{purls:?}"
    );
}

#[test]
fn compose_missing_package_commits_nothing() {
    let Some((t, _, tf, repo)) = dnf_compose("cairn-hello, cairn-sh, cairn-not-a-package", "")
    else {
        return;
    };
    let out = run_cairn(compose_args(&tf, &repo, &t.path().join("cache")));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cairn-not-a-package"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ostree(&repo, &["refs"]).trim(), "");
    // The build tree is gone too.
    let builds = build_dirs(&t.path().join("cache"));
    assert_eq!(builds, 0);
}

#[test]
fn compose_failing_postprocess_shows_stderr() {
    let Some((t, _, tf, repo)) = dnf_compose(
        "cairn-hello, cairn-sh",
        "postprocess:\n  - echo the-disk-is-lava >&2; exit 4\n",
    ) else {
        return;
    };
    let out = run_cairn(compose_args(&tf, &repo, &t.path().join("cache")));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("the-disk-is-lava") && err.contains("postprocess[0]"),
        "{err}"
    );
    assert_eq!(ostree(&repo, &["refs"]).trim(), "");
}

#[test]
fn compose_killed_during_commit_leaves_repo_as_it_was() {
    let Some((t, _, tf, repo)) = dnf_compose("cairn-hello, cairn-sh", "") else {
        return;
    };
    let cache = t.path().join("cache");
    let out = run_cairn(compose_args(&tf, &repo, &cache));
    assert!(out.status.success(), "{}", stderr(&out));
    let c1 = rev(&repo, "test/dnf/x86_64").unwrap();
    let refs_before = ostree(&repo, &["refs"]);

    let mut args = compose_args(&tf, &repo, &cache);
    args.push("--force-nocache".into());
    let mut child = crate::common::cairn()
        .args(&args)
        .env("CAIRN_FAILPOINT", "repo-commit-before-ref=pause")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::common::wait_for_failpoint(&mut child, "repo-commit-before-ref");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(rev(&repo, "test/dnf/x86_64").unwrap(), c1);
    assert_eq!(ostree(&repo, &["refs"]), refs_before);
    ostree(&repo, &["fsck", "--quiet"]);
    // The next compose cleans the dead one's build tree and succeeds.
    let out = run_cairn(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(rev(&repo, "test/dnf/x86_64").unwrap(), c1);
    let builds = build_dirs(&cache);
    assert_eq!(builds, 0);
}

#[test]
fn compose_dry_run_writes_nothing() {
    let t = tempdir();
    let tf = t.path().join("deb.yaml");
    std::fs::write(&tf, "ref: test/deb\nautomatic-version-prefix: \"7\"\npackages: [netbase]\ncairn:\n  mmdebstrap: {suite: bookworm, variant: minbase}\n").unwrap();
    let repo = t.path().join("repo");
    let out = run_cairn([
        "compose",
        &tf.display().to_string(),
        "--repo",
        &repo.display().to_string(),
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("backend:  mmdebstrap"), "{text}");
    assert!(text.contains("mmdebstrap --variant=minbase"), "{text}");
    assert!(
        text.contains("netbase") && text.contains("test/deb") && text.contains("version:  7"),
        "{text}"
    );
    assert!(!repo.exists());
    assert!(!t.path().join("cairn-cache").exists());
}

#[test]
fn compose_rpm_ostree_backend() {
    if !impossible_here(
        "rpm-ostree",
        "its argv and rendered treefile are unit-tested (compose::backend::rpm_ostree)",
    ) {
        return;
    }
    panic!("rpm-ostree is installed here: extend this test to run a real rpm-ostree compose");
}

#[test]
fn compose_mmdebstrap_minbase_into_repo() {
    if !have_tool("mmdebstrap", "package mmdebstrap") {
        return;
    }
    let t = tempdir();
    let tf = t.path().join("deb.yaml");
    std::fs::write(
        &tf,
        "ref: test/debian/minbase\nautomatic-version-prefix: \"12.<date:%Y%m%d>\"\nmutate-os-release: \"12\"\n\
         packages: [netbase]\nremove-files: [usr/share/doc]\n\
         cairn:\n  backend: mmdebstrap\n  bootable: false\n  sysctl-presets: [database]\n  mmdebstrap: {suite: bookworm, variant: minbase}\n",
    )
    .unwrap();
    let repo = t.path().join("repo");
    let out = run_cairn([
        "compose",
        &tf.display().to_string(),
        "--repo",
        &repo.display().to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let version = j["version"].as_str().unwrap().to_string();
    assert!(version.starts_with("12.20"), "{version}");
    let r = "test/debian/minbase";
    assert!(ostree(&repo, &["ls", r, "/usr/etc/passwd"]).starts_with('-'));
    let osr = ostree(&repo, &["cat", r, "/usr/lib/os-release"]);
    assert!(
        osr.contains(&format!("VERSION=\"{version} (bookworm)\"")),
        "{osr}"
    );
    assert!(ostree(
        &repo,
        &["cat", r, "/usr/lib/sysctl.d/60-cairn-database.conf"]
    )
    .contains("vm.swappiness = 1"));
    assert!(ostree(&repo, &["ls", r, "/home"]).contains("-> var/home"));
    assert!(
        ostree(&repo, &["cat", r, "/usr/lib/tmpfiles.d/cairn-var.conf"])
            .contains("C /var/lib/dpkg/status")
    );
    let pkgs = meta(&repo, r, "cairn.packages");
    assert!(pkgs.contains("\"name\":\"netbase\""), "{pkgs}");
    // setuid survives the commit (keep_permissions).
    assert!(ostree(&repo, &["ls", r, "/usr/bin/su"]).starts_with("-04755"));
    // The SBOM lands beside the repository by default.
    assert!(t.path().join("test_debian_minbase.spdx.json").is_file());
}

/// A root filesystem with only a shell (the host's dash and the two libraries it loads): enough
/// for postprocess scripts to run in it, composed in well under a second by the rootfs backend.
fn shell_rootfs(dir: &Path) -> std::path::PathBuf {
    let arch = std::env::consts::ARCH;
    let libc = format!("lib/{arch}-linux-gnu/libc.so.6");
    let ld = if arch == "x86_64" {
        "lib64/ld-linux-x86-64.so.2".to_string()
    } else {
        format!("lib/ld-linux-{arch}.so.1")
    };
    let root = dir.join("rootfs-src");
    for (from, to) in [
        ("/bin/dash".to_string(), "bin/sh".to_string()),
        (format!("/{libc}"), libc.clone()),
        (format!("/{ld}"), ld.clone()),
    ] {
        let to = root.join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
    std::fs::create_dir_all(root.join("usr/share")).unwrap();
    root
}

/// A rootfs treefile whose postprocess script prints `NOISE` lines (`noisy-line-N`, one to
/// stderr) and then runs `tail` (shell text, e.g. `exit 3` to fail).
const NOISE: usize = 300;

fn noisy_treefile(dir: &Path, tail: &str) -> std::path::PathBuf {
    let root = shell_rootfs(dir);
    let tf = dir.join("noisy.yaml");
    std::fs::write(
        &tf,
        format!(
            "ref: test/rootfs/noisy\npostprocess:\n  - |\n    i=0\n    while [ $i -lt {NOISE} ]; do echo \"noisy-line-$i\"; i=$((i+1)); done\n\
             \x20   echo noisy-stderr >&2\n    {tail}\n\
             cairn:\n  backend: rootfs\n  bootable: false\n  rootfs: {{path: {}}}\n",
            root.display()
        ),
    )
    .unwrap();
    tf
}

/// The log path from the one `log: PATH` line a compose prints on stderr.
fn log_path(stderr: &str) -> std::path::PathBuf {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("log: ")).collect();
    assert_eq!(lines.len(), 1, "one log line: {stderr}");
    std::path::PathBuf::from(&lines[0]["log: ".len()..])
}

/// How many lines of `text` are exactly `noisy-line-N`, or end with it (`  | noisy-line-N`).
fn noise_lines(text: &str) -> usize {
    (0..NOISE)
        .filter(|i| {
            let want = format!("noisy-line-{i}");
            text.lines().any(|l| l.ends_with(&want))
        })
        .count()
}

#[test]
fn compose_off_a_terminal_prints_the_result_and_logs_tool_output() {
    let t = tempdir();
    let tf = noisy_treefile(t.path(), "true");
    let repo = t.path().join("repo");
    let cache = t.path().join("cache");
    // Older logs beyond the newest 10 are removed when a compose starts.
    std::fs::create_dir_all(cache.join("logs")).unwrap();
    for i in 0..12 {
        std::fs::write(
            cache.join(format!("logs/compose-2000010{i:02}T000000Z.log")),
            "old\n",
        )
        .unwrap();
    }
    let out = run_cairn(compose_args(&tf, &repo, &cache));
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{e}");
    // stdout: the summary (ref, commit, version, packages, sbom, time); stderr: the log path.
    assert_eq!(o.lines().count(), 6, "{o}");
    assert!(
        o.starts_with("ref:      test/rootfs/noisy\ncommit:   "),
        "{o}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    for tool_output in ["noisy-line", "noisy-stderr"] {
        assert!(
            !o.contains(tool_output) && !e.contains(tool_output),
            "{o}{e}"
        );
    }
    let log = log_path(&e);
    assert_eq!(log.parent().unwrap(), cache.join("logs"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(noise_lines(&text), NOISE, "{text}");
    assert!(text.contains("noisy-stderr\n") && text.contains("-- running postprocess[0]\n"));
    assert!(text.contains("== postprocess done in "), "{text}");
    let logs = std::fs::read_dir(cache.join("logs")).unwrap().count();
    assert_eq!(logs, 10);
    assert!(!cache.join("logs/compose-200001000T000000Z.log").exists());

    // No changes: nothing ran, so no log and no log line; the summary is all there is.
    let out = run_cairn(compose_args(&tf, &repo, &cache));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(stdout(&out).lines().count(), 5, "{}", stdout(&out));
    assert!(stdout(&out).starts_with("no changes: inputs match test/rootfs/noisy"));
    assert_eq!(std::fs::read_dir(cache.join("logs")).unwrap().count(), 10);

    // --json names the log (--log chooses it); the envelope carries the version once.
    let named = t.path().join("logs here/compose.log");
    let mut args = compose_args(&tf, &repo, &cache);
    args.extend(["--force-nocache", "--json", "--log"].map(String::from));
    args.push(named.display().to_string());
    let out = run_cairn(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["apiVersion"], "cairn/v1");
    assert_eq!(j["kind"], "ComposeResult");
    assert_eq!(j["status"], "committed");
    assert_eq!(j["log"], named.display().to_string());
    assert!(j.get("api_version").is_none() && j.get("apiVersion").is_some());
    assert_eq!(j["warnings"], serde_json::json!([]));
    assert_eq!(
        rev(&repo, "test/rootfs/noisy").as_deref(),
        j["commit"].as_str()
    );
    assert_eq!(
        noise_lines(&std::fs::read_to_string(&named).unwrap()),
        NOISE
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn compose_verbose_streams_tool_output() {
    let t = tempdir();
    let tf = noisy_treefile(t.path(), "true");
    let mut args = compose_args(&tf, &t.path().join("repo"), &t.path().join("cache"));
    args.push("-v".into());
    let out = run_cairn(&args);
    let e = stderr(&out);
    assert!(out.status.success(), "{e}");
    assert_eq!(noise_lines(&e), NOISE, "{e}");
    for want in [
        "compose: packages ...",
        "compose: running postprocess[0]",
        "  | noisy-stderr",
        "compose: commit ...",
    ] {
        assert!(e.lines().any(|l| l == want), "{want}: {e}");
    }
    // Everything streamed is also in the log.
    let text = std::fs::read_to_string(log_path(&e)).unwrap();
    assert_eq!(noise_lines(&text), NOISE);
    assert_eq!(stdout(&out).lines().count(), 6, "{}", stdout(&out));
}

#[test]
fn compose_failure_shows_the_whole_log_then_the_error() {
    let t = tempdir();
    let tf = noisy_treefile(t.path(), "echo the-last-straw >&2; exit 3");
    let repo = t.path().join("repo");
    let cache = t.path().join("cache");
    let out = run_cairn(compose_args(&tf, &repo, &cache));
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert_eq!(stdout(&out), "");
    let log = log_path(&e);
    let text = std::fs::read_to_string(&log).unwrap();
    // The whole log, framed by its path, then the error (which repeats the script's last lines).
    assert!(
        e.contains(&format!(
            "compose failed; its log ({}):\n{text}(end of ",
            log.display()
        )),
        "{e}"
    );
    assert_eq!(noise_lines(&text), NOISE);
    let after = e.split_once("\n(end of ").unwrap().1;
    let error = after.lines().nth(1).unwrap();
    assert!(
        error.starts_with("error: postprocess: postprocess script postprocess[0] failed"),
        "{e}"
    );
    assert!(e.contains("exit status: 3"), "{e}");
    assert!(e.lines().count() > NOISE, "{e}");
    assert_eq!(ostree(&repo, &["refs"]).trim(), "");

    // With -v the output already streamed: it is not shown a second time.
    let mut args = compose_args(&tf, &repo, &cache);
    args.push("--verbose".into());
    let out = run_cairn(&args);
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert_eq!(
        e.lines().filter(|l| l.ends_with("noisy-line-0")).count(),
        1,
        "{e}"
    );
    assert!(e.contains("compose failed; its log: "), "{e}");
    assert!(!e.contains("(end of "), "{e}");
}
