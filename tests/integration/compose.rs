//! Compose: real package backends into temp dirs, real postprocess, checked on the resulting tree.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cairn::compose::backend::{self, dnf, DnfSpec, MmdebstrapSpec, PackageDb, RootfsSpec};
use cairn::compose::manifest;
use cairn::compose::postprocess::{self, PostprocessSpec};

use crate::common::compose::{rpm_repo, standard_rpms};
use crate::common::{have_tool, tempdir};

fn quiet() -> impl FnMut(&str) {
    |_| {}
}

fn dnf_tree(work: &Path, packages: &[&str]) -> Result<std::path::PathBuf, backend::BackendError> {
    let repos = rpm_repo(&work.join("rpms"), &standard_rpms("1.0"));
    let root = work.join("root");
    let mut spec = DnfSpec::new(repos, vec!["cairn-test".into()], packages.iter().map(|s| s.to_string()).collect());
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
    assert_eq!(std::fs::read_to_string(root.join("usr/share/cairn-hello/hello.txt")).unwrap(), "hello\n");
    assert_eq!(std::fs::read_to_string(root.join("usr/share/cairn-base/base.txt")).unwrap(), "base\n");
    assert_eq!(std::fs::read_to_string(root.join("usr/share/cairn-hello/post.txt")).unwrap(), "posted\n");
    // documentation: false => tsflags=nodocs.
    assert!(!root.join("usr/share/doc/cairn-base/README").exists());
    // The rpmdb is where the target distro looks, not Debian's ~/.rpmdb.
    assert!(root.join("usr/lib/sysimage/rpm/rpmdb.sqlite").is_file());
    assert!(!root.join("root/.rpmdb").exists());
    assert_eq!(std::fs::read_link(root.join("var/lib/rpm")).unwrap(), Path::new("../../usr/lib/sysimage/rpm"));
    let pkgs = manifest::read(&root, PackageDb::Rpm { dbpath: dnf::DEFAULT_DBPATH }).unwrap();
    let names: Vec<_> = pkgs.iter().map(|p| format!("{}-{}", p.name, p.evr())).collect();
    assert_eq!(names, ["cairn-base-2.0-1", "cairn-hello-1.0-1", "cairn-sh-1-1"]);
    assert_eq!(pkgs[0].arch, "noarch");
    // dnf's cache (metadata here: file:// packages are used in place) lives outside the tree.
    let solv = walkdir::WalkDir::new(t.path().join("cache"))
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_name() == "cairn-test.solv")
        .count();
    assert_eq!(solv, 1);
    assert!(!root.join("var/cache/dnf").exists());

    // Postprocess the RPM tree: rpm-based remove-from-packages, units, sysctl, scripts, layout.
    let src = t.path().join("extra.conf");
    std::fs::write(&src, "extra\n").unwrap();
    let spec = PostprocessSpec {
        db: Some(PackageDb::Rpm { dbpath: dnf::DEFAULT_DBPATH }),
        remove_from_packages: vec![("cairn-base".into(), vec!["/base\\.txt$".into()])],
        add_files: vec![(src, "/etc/cairn/extra.conf".into())],
        units: vec!["cairn-hello.service".into()],
        sysctl_presets: vec!["kubernetes-node".into()],
        sysctl: vec![("vm.swappiness".into(), "10".into())],
        postprocess: vec!["echo from-script; echo made > /usr/share/made-by-script".into()],
        ..Default::default()
    };
    let report = postprocess::run(&root, &spec, &mut quiet()).expect("postprocess");
    assert_eq!(report.removed_from_packages, 1);
    assert!(!root.join("usr/share/cairn-base/base.txt").exists());
    assert!(root.join("usr/share/cairn-base").is_dir());
    assert_eq!(std::fs::read_to_string(root.join("usr/share/made-by-script")).unwrap(), "made\n");
    assert!(report.scripts[0].1.contains("from-script"));
    assert_eq!(std::fs::read_to_string(root.join("usr/etc/cairn/extra.conf")).unwrap(), "extra\n");
    assert_eq!(
        std::fs::read_link(root.join("usr/etc/systemd/system/multi-user.target.wants/cairn-hello.service")).unwrap(),
        Path::new("/usr/lib/systemd/system/cairn-hello.service")
    );
    let k8s = std::fs::read_to_string(root.join("usr/lib/sysctl.d/60-cairn-kubernetes-node.conf")).unwrap();
    assert!(k8s.contains("net.ipv4.ip_forward = 1\n"), "{k8s}");
    assert!(std::fs::read_to_string(root.join("usr/lib/modules-load.d/cairn-kubernetes-node.conf")).unwrap().contains("br_netfilter"));
    assert_eq!(std::fs::read_to_string(root.join("usr/lib/sysctl.d/61-cairn-treefile.conf")).unwrap().lines().nth(1), Some("vm.swappiness = 10"));
    // The rpmdb stayed in /usr and still answers.
    assert_eq!(manifest::read(&root, PackageDb::Rpm { dbpath: dnf::DEFAULT_DBPATH }).unwrap().len(), 3);
    let tmpfiles = std::fs::read_to_string(root.join("usr/lib/tmpfiles.d/cairn-var.conf")).unwrap();
    assert!(tmpfiles.contains("L /var/lib/rpm - - - - ../../usr/lib/sysimage/rpm"), "{tmpfiles}");
    assert!(tmpfiles.contains("d /var/roothome 0700 root root -"), "{tmpfiles}");
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
        backend::BackendError::MissingPackages { packages, .. } => assert_eq!(packages, &["cairn-no-such-package"]),
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
    std::fs::write(&script, "#!/bin/sh\necho about-to-fail\necho broken-thing-here >&2\nexit 3\n").unwrap();
    let spec = PostprocessSpec { postprocess_scripts: vec![script.clone()], ..Default::default() };
    let e = postprocess::run(&root, &spec, &mut quiet()).unwrap_err().to_string();
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
    let spec = MmdebstrapSpec { packages: vec!["netbase".into()], ..Default::default() };
    let cache = t.path().join("cache");
    backend::mmdebstrap::install(&spec, &root, Some(&cache), &mut quiet()).expect("mmdebstrap");
    let debs = std::fs::read_dir(cache.join("apt-archives/amd64")).unwrap().count();
    assert!(debs > 50, "apt archives cached for the next compose: {debs}");
    let pkgs = manifest::read(&root, PackageDb::Dpkg).unwrap();
    assert!(pkgs.iter().any(|p| p.name == "netbase"));
    assert!(pkgs.iter().any(|p| p.name == "base-files" && p.arch == "amd64"));

    let unit = t.path().join("cairn-test.service");
    std::fs::write(&unit, "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n").unwrap();
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
        std::fs::read_to_string(root.join("usr/lib/sysctl.d/60-cairn-database.conf")).unwrap().lines().skip(1).collect::<Vec<_>>(),
        ["vm.swappiness = 1", "vm.overcommit_memory = 1"]
    );
    assert!(root.join("usr/etc/systemd/system/multi-user.target.wants/cairn-test.service").symlink_metadata().is_ok());
    for (link, target) in postprocess::TOPLEVEL_LINKS {
        assert_eq!(std::fs::read_link(root.join(link)).unwrap(), Path::new(target), "{link}");
    }
    // The dpkg database survives in the factory and is recreated in /var at boot.
    assert!(root.join("usr/share/factory/var/lib/dpkg/status").is_file());
    let tmpfiles = std::fs::read_to_string(root.join("usr/lib/tmpfiles.d/cairn-var.conf")).unwrap();
    assert!(tmpfiles.contains("C /var/lib/dpkg/status - - - - /usr/share/factory/var/lib/dpkg/status"));
    assert!(tmpfiles.contains("C /var/roothome/.bashrc "), "{tmpfiles}");
    assert!(tmpfiles.contains("d /var/log 0755 root root -"));
    assert!(tmpfiles.contains("d /var/mail 2775 root mail -"), "{tmpfiles}");
    assert_eq!(std::fs::read_dir(root.join("var")).unwrap().count(), 0);
    // No device nodes anywhere; runtime dirs empty.
    for e in walkdir::WalkDir::new(&root) {
        let e = e.unwrap();
        let mode = e.path().symlink_metadata().unwrap().mode() & 0o170000;
        assert!(mode != 0o020000 && mode != 0o060000, "device node {}", e.path().display());
    }
    assert_eq!(std::fs::read_dir(root.join("dev")).unwrap().count(), 0);
    assert_eq!(root.join("tmp").metadata().unwrap().mode() & 0o7777, 0o1777);
}

#[test]
fn rootfs_from_directory_and_tarball() {
    let t = tempdir();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::write(src.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    // chown clears setuid, so it comes first.
    std::os::unix::fs::chown(src.join("usr/bin/tool"), Some(12345), Some(54321)).unwrap();
    std::fs::set_permissions(src.join("usr/bin/tool"), std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
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
        assert_eq!(std::fs::read_link(root.join("bin")).unwrap(), Path::new("usr/bin"));
        if xattr_ok {
            let out = std::process::Command::new("getfattr").args(["--only-values", "-n", "user.cairn"]).arg(root.join("usr/bin/tool")).output().unwrap();
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

    let e = backend::rootfs::install(&RootfsSpec { path: t.path().join("absent.tar") }, &t.path().join("x"), &mut quiet()).unwrap_err();
    assert!(e.to_string().contains("absent.tar"), "{e}");
}

