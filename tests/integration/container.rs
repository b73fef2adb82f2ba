//! Container images in the ostree-native format: export/import round trips keep the commit
//! checksum, ostree-ext (built from crates.io) reads cairn's images and cairn reads its, and a
//! host deploys, upgrades (fetching only changed layers) and rolls back from a real registry.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::compose::{rpm_repo, Rpm};
use crate::common::registry::{self, Registry};
use crate::common::repo::{assert_fsck_clean, make_tree, ostree_ok, rev_parse};
use crate::common::sysroot::{Fixture, OS};
use crate::common::{cairn, cairn_json, have_tool, ok, stderr, stdout, tempdir};

fn ostree_init(repo: &Path, mode: &str) {
    ostree_ok([
        "init".to_string(),
        format!("--mode={mode}"),
        format!("--repo={}", repo.display()),
    ]);
}

fn skopeo_json(args: &[&str], conf: Option<&Path>) -> Value {
    let mut cmd = Command::new("skopeo");
    if let Some(c) = conf {
        cmd.arg("--registries-conf").arg(c);
    }
    cmd.args(args);
    serde_json::from_str(&ok(&mut cmd)).unwrap()
}

fn ostree_ext(args: &[&str]) -> String {
    ok(Command::new(registry::ostree_ext()).args(args))
}

/// `ostree-ext container unencapsulate`: the commit ostree-ext finds in `image`.
fn ostree_ext_imports(repo: &Path, image: &str) -> String {
    ostree_init(repo, "bare-user");
    let out = ostree_ext(&[
        "container",
        "unencapsulate",
        "--repo",
        &repo.display().to_string(),
        &format!("ostree-unverified-image:{image}"),
    ]);
    let csum = out
        .lines()
        .find_map(|l| l.strip_prefix("Imported: "))
        .unwrap_or_else(|| panic!("no `Imported:` line from ostree-ext: {out}"));
    assert_fsck_clean(repo);
    csum.trim().to_string()
}

fn import(image: &str, repo: &Path) -> Value {
    cairn_json([
        "container",
        "import",
        image,
        "--repo",
        &repo.display().to_string(),
        "--ref",
        "imported",
        "--json",
    ])
}

#[test]
fn export_import_round_trip_and_ostree_ext_agree() {
    if !have_tool("skopeo", "install skopeo (scripts/setup.sh)") {
        return;
    }
    let t = tempdir();
    let p = |s: &str| t.path().join(s);
    let tree = make_tree(&p("tree"));
    ostree_init(&p("repo"), "bare-user");
    let c = ostree_ok([
        "commit".to_string(),
        format!("--repo={}", p("repo").display()),
        "-b".into(),
        "os/stable".into(),
        format!("--tree=dir={}", tree.display()),
        "--add-metadata-string=version=1.0".into(),
        "--add-metadata-string=ostree.linux=6.1.0-cairn".into(),
        "--add-metadata=ostree.bootable=true".into(),
        "--subject=round trip".into(),
    ])
    .trim()
    .to_string();
    let img = format!("oci:{}:v1", p("img").display());
    let repo = p("repo").display().to_string();
    let doc = cairn_json([
        "container",
        "export",
        "os/stable",
        "--repo",
        &repo,
        "--to",
        &img,
        "--json",
    ]);
    assert_eq!(doc["kind"], "ContainerExport");
    assert_eq!(doc["commit"], c.as_str());
    assert_eq!(doc["layers"].as_array().unwrap().len(), 1, "{doc}");

    // skopeo (the containers/image library) reads the layout and the labels.
    let insp = skopeo_json(&["inspect", &img], None);
    let labels = &insp["Labels"];
    assert_eq!(labels["ostree.commit"], c.as_str());
    assert_eq!(labels["ostree.final-diffid"], doc["layers"][0]["diffId"]);
    assert_eq!(labels["org.opencontainers.image.version"], "1.0");
    assert_eq!(labels["ostree.bootable"], "true");
    assert_eq!(labels["containers.bootc"], "1", "{labels}");
    assert_eq!(labels["ostree.linux"], "6.1.0-cairn");

    // Back into fresh repositories of both kinds: the same commit, fsck clean.
    for mode in ["archive", "bare-user"] {
        let r = p(&format!("back-{mode}"));
        ostree_init(&r, mode);
        let j = import(&img, &r);
        assert_eq!(j["commit"], c.as_str());
        assert_eq!(rev_parse(&r, "imported"), c);
        assert_fsck_clean(&r);
    }
    let archive = format!("oci-archive:{}:v1", p("img.tar").display());
    cairn_json([
        "container",
        "export",
        &c,
        "--repo",
        &repo,
        "--to",
        &archive,
        "--json",
    ]);
    ostree_init(&p("back-archive-file"), "bare-user");
    assert_eq!(
        import(&archive, &p("back-archive-file"))["commit"],
        c.as_str()
    );

    // ostree-ext reads cairn's image ...
    assert_eq!(ostree_ext_imports(&p("ext-in"), &img), c);
    // ... and cairn reads ostree-ext's, whose ostree layer is the same tar byte for byte.
    let ext_img = format!("oci:{}:v1", p("ext-img").display());
    ostree_ext(&[
        "container",
        "encapsulate",
        "--repo",
        &repo,
        "os/stable",
        &ext_img,
    ]);
    ostree_init(&p("from-ext"), "bare-user");
    assert_eq!(import(&ext_img, &p("from-ext"))["commit"], c.as_str());
    let ext_labels = skopeo_json(&["inspect", &ext_img], None)["Labels"].clone();
    assert_eq!(
        ext_labels["ostree.final-diffid"],
        labels["ostree.final-diffid"]
    );
}

/// Packages for the registry test: `cairn-app`'s file carries its version, so a new version
/// changes that package's layer and nothing else; `cairn-kernel` makes the tree deployable.
fn rpms(app_version: &str) -> Vec<Rpm<'static>> {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let version = leak(app_version.to_string());
    let app_files: &'static [(&'static str, &'static str)] = Box::leak(Box::new([(
        "/usr/share/cairn-app/version",
        leak(format!("cairn-app {app_version}\n")),
    )]));
    vec![
        Rpm {
            name: "cairn-base",
            version: "2.0",
            requires: &[],
            files: &[
                ("/usr/share/cairn-base/base.txt", "base\n"),
                ("/etc/os-release", "NAME=CairnOS\nID=cairnos\n"),
            ],
            post: None,
        },
        Rpm {
            name: "cairn-app",
            version,
            requires: &["cairn-base"],
            files: app_files,
            post: None,
        },
        Rpm {
            name: "cairn-kernel",
            version: "6.1",
            requires: &[],
            files: &[
                (
                    "/usr/lib/modules/6.1.0-cairn/vmlinuz",
                    "kernel 6.1.0-cairn\n",
                ),
                ("/usr/lib/modules/6.1.0-cairn/initramfs.img", "initramfs\n"),
            ],
            post: None,
        },
    ]
}

/// Composes (or, with `force`, recomposes) a dnf treefile over the RPM repository in
/// `dir/rpms` into the OSTree repository `dir/ostree`; returns the commit.
fn compose(dir: &Path, force: bool) -> String {
    let tf = dir.join("rpms/os.yaml");
    std::fs::write(
        &tf,
        "ref: test/container/x86_64\nrepos: [cairn-test]\nreleasever: \"1\"\n\
         automatic-version-prefix: \"1\"\ndocumentation: false\nrecommends: false\n\
         packages: [cairn-app, cairn-kernel, cairn-sh]\ncairn:\n  backend: dnf\n  bootable: false\n",
    )
    .unwrap();
    let mut args = vec![
        "compose".to_string(),
        tf.display().to_string(),
        "--repo".into(),
        dir.join("ostree").display().to_string(),
        "--cachedir".into(),
        dir.join("cache").display().to_string(),
    ];
    if force {
        args.push("--force-nocache".into());
    }
    let o = crate::common::run_cairn(&args);
    assert!(o.status.success(), "compose: {}", stderr(&o));
    rev_parse(&dir.join("ostree"), "test/container/x86_64")
}

/// cairn with the registry's registries.conf (for skopeo) and, for host commands, the
/// fixture's sysroot and OS.
fn cairn_reg(reg: &Registry, args: &[&str], host: Option<&Fixture>) -> Output {
    let mut cmd = cairn();
    cmd.env("CONTAINERS_REGISTRIES_CONF", &reg.conf).args(args);
    if let Some(f) = host {
        cmd.arg("--sysroot").arg(&f.sysroot).args(["--os", OS]);
    }
    cmd.output().unwrap()
}

fn json_ok(o: &Output, what: &str) -> Value {
    assert!(o.status.success(), "{what}: {}{}", stdout(o), stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: {e}: {}", stdout(o)))
}

/// (digest, packages) of each layer of an export report.
fn layers(doc: &Value) -> Vec<(String, String, u64)> {
    doc["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let pk: Vec<&str> = l["packages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            (
                l["digest"].as_str().unwrap().to_string(),
                pk.join(","),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn registry_deploy_upgrade_fetches_only_changed_layers_and_rolls_back() {
    if !registry::available()
        || !have_tool("rpmbuild", "package rpm")
        || !have_tool("createrepo_c", "package createrepo-c")
    {
        return;
    }
    let t = tempdir();
    let src = t.path();
    rpm_repo(&src.join("rpms"), &rpms("1.0"));
    let c1 = compose(src, false);
    let repo = src.join("ostree").display().to_string();

    let l1 = chunked_image(t.path(), &repo, &c1);

    let reg = Registry::start();
    let tag = format!("docker://{}/cairn/os:stable", reg.addr);
    let push = |rev: &str, previous: bool| {
        let mut args = vec![
            "container",
            "export",
            rev,
            "--repo",
            &repo,
            "--to",
            &tag,
            "--json",
        ];
        if previous {
            args.extend(["--previous", &tag]);
        }
        json_ok(&cairn_reg(&reg, &args, None), "export to the registry")
    };
    push(&c1, false);
    let labels = skopeo_json(&["inspect", &tag], Some(&reg.conf))["Labels"].clone();
    assert_eq!(labels["ostree.commit"], c1.as_str());
    let info = json_ok(
        &cairn_reg(&reg, &["container", "inspect", &tag, "--json"], None),
        "inspect",
    );
    assert_eq!(info["commit"], c1.as_str());
    assert_eq!(info["layers"].as_array().unwrap().len(), 5);
    // No ostree.bootable metadata in a cairn compose: the kernel in the tree makes it bootable.
    assert_eq!(labels["containers.bootc"], "1", "{labels}");
    assert_eq!(labels["ostree.linux"], "6.1.0-cairn");

    let f = Fixture::new();
    let image = format!("ostree-unverified-registry:{}/cairn/os:stable", reg.addr);
    let d = json_ok(
        &cairn_reg(&reg, &["deploy", &image, "--json"], Some(&f)),
        "deploy",
    );
    assert_eq!(d["checksum"], c1.as_str());
    assert_eq!(d["origin"], image.as_str());
    assert_eq!(d["pull"]["layersFetched"], 5);
    assert_eq!(f.checksums(), vec![c1.clone()]);
    assert_eq!(f.status()["deployments"][0]["origin"], image.as_str());

    upgrade_fetches_only_changed_layers(&f, &reg, &image, src, &c1, &l1, &push);
    agent_follows_the_tag(&f, &reg, src, &push);
}

/// One pass of the update agent (`upgrade --reboot`) pulls a newly pushed tag, stages it and
/// reboots into it.
fn agent_follows_the_tag(
    f: &Fixture,
    reg: &Registry,
    src: &Path,
    push: &dyn Fn(&str, bool) -> Value,
) {
    for d in ["rpms/repo", "rpms/rpmbuild"] {
        std::fs::remove_dir_all(src.join(d)).unwrap();
    }
    rpm_repo(&src.join("rpms"), &rpms("1.2"));
    let c3 = compose(src, true);
    push(&c3, true);
    let marker = f.dir.path().join("rebooted");
    let mut cmd = cairn();
    cmd.env("CONTAINERS_REGISTRIES_CONF", &reg.conf)
        .env(
            "CAIRN_REBOOT_COMMAND",
            format!("echo $CAIRN_REBOOT_TO >> {}", marker.display()),
        )
        .args(["upgrade", "--reboot", "--sysroot"])
        .arg(&f.sysroot)
        .args(["--os", OS]);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), c3);
    assert_eq!(f.checksums()[0], c3);
}

/// The composed commit exported to an OCI directory: chunked by package (the ostree layer plus
/// one layer per package, named in annotations), importable by cairn and ostree-ext, shown by
/// `container inspect` and the text report. Returns the layers.
fn chunked_image(t: &Path, repo: &str, c1: &str) -> Vec<(String, String, u64)> {
    // Owned, so `&c1`/`&repo` sit in argument arrays beside string literals.
    let (c1, repo) = (c1.to_string(), repo.to_string());
    // Chunked by package: the ostree layer plus one layer per package, named in annotations.
    let img = format!("oci:{}:v1", t.join("img").display());
    let doc = cairn_json([
        "container",
        "export",
        &c1,
        "--repo",
        &repo,
        "--to",
        &img,
        "--json",
    ]);
    let l1 = layers(&doc);
    let packages: BTreeSet<&str> = l1.iter().map(|l| l.1.as_str()).collect();
    assert_eq!(
        packages,
        BTreeSet::from(["", "cairn-app", "cairn-base", "cairn-kernel", "cairn-sh"]),
        "{doc}"
    );
    let raw = skopeo_json(&["inspect", "--raw", &img], None);
    for (i, l) in raw["layers"].as_array().unwrap().iter().enumerate().skip(1) {
        assert_eq!(l["annotations"]["ostree.components"], l1[i].1.as_str());
    }
    // cairn and ostree-ext import the chunked image to the same commit.
    ostree_init(&t.join("back"), "archive");
    assert_eq!(import(&img, &t.join("back"))["commit"], c1.as_str());
    assert_fsck_clean(&t.join("back"));
    assert_eq!(ostree_ext_imports(&t.join("ext"), &img), c1);
    // `container inspect` shows the same layers and packages from the manifest alone.
    let info = cairn_json(["container", "inspect", &img, "--json"]);
    assert_eq!(info["commit"], c1.as_str());
    for (i, l) in l1.iter().enumerate() {
        assert_eq!(info["layers"][i]["digest"], l.0.as_str());
        assert_eq!(
            info["layers"][i]["packages"].as_array().unwrap().len(),
            usize::from(!l.1.is_empty())
        );
    }
    // The text report names every layer's packages.
    let text = stdout(&crate::common::cairn_ok([
        "container",
        "export",
        &c1,
        "--repo",
        &repo,
        "--to",
        &img,
    ]));
    assert!(text.contains("5 layers"), "{text}");
    for pkg in ["cairn-app", "cairn-base", "cairn-kernel", "cairn-sh"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("  layer ") && l.ends_with(&format!(": {pkg}"))),
            "{text}"
        );
    }

    l1
}

fn upgrade_fetches_only_changed_layers(
    f: &Fixture,
    reg: &Registry,
    image: &str,
    src: &Path,
    c1: &str,
    l1: &[(String, String, u64)],
    push: &dyn Fn(&str, bool) -> Value,
) {
    // v2: cairn-app 1.1, pushed with the previous image's layout.
    for d in ["rpms/repo", "rpms/rpmbuild"] {
        std::fs::remove_dir_all(src.join(d)).unwrap();
    }
    rpm_repo(&src.join("rpms"), &rpms("1.1"));
    let c2 = compose(src, true);
    assert_ne!(c2, c1);
    let l2 = layers(&push(&c2, true));
    let old: BTreeSet<&str> = l1.iter().map(|l| l.0.as_str()).collect();
    let changed: Vec<&(String, String, u64)> =
        l2.iter().filter(|l| !old.contains(l.0.as_str())).collect();
    let changed_pkgs: Vec<&str> = changed.iter().map(|l| l.1.as_str()).collect();
    assert_eq!(
        changed_pkgs,
        vec!["", "cairn-app"],
        "only the ostree and cairn-app layers change"
    );

    let c = json_ok(
        &cairn_reg(reg, &["upgrade", "--check", "--json"], Some(f)),
        "upgrade --check",
    );
    assert_eq!(c["result"], "available");
    assert_eq!(c["to"], c2.as_str());
    assert_eq!(c["version"], "1.1", "the image's version label");

    let before = reg.log_text().len();
    let u = json_ok(&cairn_reg(reg, &["upgrade", "--json"], Some(f)), "upgrade");
    assert_eq!(u["result"], "deployed");
    assert_eq!(u["to"], c2.as_str());
    let want_bytes: u64 = changed.iter().map(|l| l.2).sum();
    let total: u64 = l2.iter().map(|l| l.2).sum();
    eprintln!(
        "upgrade: {want_bytes} of {total} layer bytes change ({} of {} layers)",
        changed.len(),
        l2.len()
    );
    assert_eq!(u["pull"]["layersFetched"], 2);
    assert_eq!(u["pull"]["bytesFetched"], want_bytes);
    // The registry's own access log: exactly the changed layers were downloaded.
    let gets: BTreeSet<String> = Registry::blob_gets(&reg.log_text()[before..])
        .into_iter()
        .collect();
    let all_layers: BTreeSet<&str> = l2
        .iter()
        .map(|l| l.0.as_str())
        .chain(old.iter().copied())
        .collect();
    let fetched_layers: BTreeSet<&str> = gets
        .iter()
        .map(String::as_str)
        .filter(|g| all_layers.contains(g))
        .collect();
    let want: BTreeSet<&str> = changed.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(fetched_layers, want, "registry log: {gets:?}");
    assert_eq!(f.checksums(), vec![c2.clone(), c1.to_string()]);
    assert_eq!(f.status()["deployments"][0]["origin"], image);

    let again = cairn_reg(reg, &["upgrade"], Some(f));
    assert_eq!(again.status.code(), Some(77), "{}", stderr(&again));
    json_ok(
        &cairn_reg(reg, &["rollback", "--json"], Some(f)),
        "rollback",
    );
    assert_eq!(f.checksums()[0], c1);
}

/// `ostree-remote-image`: the commit's GPG signature travels in the image (its detached
/// metadata) and is checked against a remote's keys by cairn and by ostree-ext alike.
#[test]
fn signed_image_is_verified_against_the_remote_keys() {
    if !have_tool("gpg", "package gnupg")
        || !have_tool("skopeo", "install skopeo (scripts/setup.sh)")
    {
        return;
    }
    let t = tempdir();
    let p = |s: &str| t.path().join(s);
    let (home, key) = crate::signing::gpg_key(t.path());
    let tree = make_tree(&p("tree"));
    ostree_init(&p("repo"), "bare-user");
    let repo = format!("--repo={}", p("repo").display());
    let commit = |branch: &str| {
        ostree_ok([
            "commit",
            &repo,
            "-b",
            branch,
            &format!("--tree=dir={}", tree.display()),
        ])
        .trim()
        .to_string()
    };
    let signed = commit("os/signed");
    ostree_ok([
        "gpg-sign",
        &repo,
        &format!("--gpg-homedir={}", home.display()),
        &signed,
        &key,
    ]);
    std::fs::write(tree.join("usr/bin/extra"), "unsigned\n").unwrap();
    let unsigned = commit("os/unsigned");
    let export = |rev: &str, tag: &str| {
        let img = format!("oci:{}:{tag}", p("img").display());
        let r = p("repo").display().to_string();
        cairn_json([
            "container",
            "export",
            rev,
            "--repo",
            &r,
            "--to",
            &img,
            "--json",
        ]);
        img
    };
    let (good, bad) = (export(&signed, "signed"), export(&unsigned, "unsigned"));

    let client = p("client");
    trusting_client(&client, &p("keys/cairn-test.asc"));
    let verify = |img: &str| {
        cairn()
            .args([
                "container",
                "import",
                img,
                "--ref",
                "verified",
                "--verify-remote",
                "origin",
                "--json",
            ])
            .arg("--repo")
            .arg(&client)
            .output()
            .unwrap()
    };
    let ok_doc = json_ok(&verify(&good), "import of the signed image");
    assert_eq!(ok_doc["commit"], signed.as_str());
    assert!(
        ok_doc["signature"]
            .as_str()
            .unwrap()
            .contains(&key[key.len() - 16..]),
        "{ok_doc}"
    );
    let refused = verify(&bad);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not signed"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(rev_parse(&client, "verified"), signed);

    // ostree-ext verifies the same signature in cairn's image.
    let out = ostree_ext(&[
        "container",
        "unencapsulate",
        "--repo",
        &client.display().to_string(),
        &format!("ostree-remote-image:origin:{good}"),
    ]);
    assert!(out.contains(&format!("Imported: {signed}")), "{out}");
}

/// A repository whose remote `origin` trusts the key in `pubkey` (and pulls from nowhere).
fn trusting_client(client: &Path, pubkey: &Path) {
    ostree_init(client, "bare-user");
    ostree_ok([
        format!("--repo={}", client.display()),
        "remote".into(),
        "add".into(),
        "--set=gpg-verify=true".into(),
        format!("--gpg-import={}", pubkey.display()),
        "origin".into(),
        "file:///nonexistent".into(),
    ]);
}

/// dpkg's file lists (where cairn compose keeps /var: usr/share/factory) chunk a merged-/usr
/// tree: `/bin/foo` in foo's list names the file stored at usr/bin/foo.
#[test]
fn dpkg_lists_chunk_a_merged_usr_tree() {
    let t = tempdir();
    let p = |s: &str| t.path().join(s);
    let tree = p("tree");
    let info = tree.join("usr/share/factory/var/lib/dpkg/info");
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    std::fs::create_dir_all(&info).unwrap();
    std::os::unix::fs::symlink("usr/bin", tree.join("bin")).unwrap();
    std::fs::write(tree.join("usr/bin/foo"), "foo\n").unwrap();
    std::fs::write(tree.join("usr/bin/bar"), "bar\n").unwrap();
    std::fs::write(tree.join("usr/bin/unowned"), "x\n").unwrap();
    std::fs::write(info.join("foo:amd64.list"), "/.\n/bin/foo\n").unwrap();
    std::fs::write(info.join("bar.list"), "/usr/bin/bar\n").unwrap();
    ostree_init(&p("repo"), "bare-user");
    let repo = format!("--repo={}", p("repo").display());
    let c = ostree_ok([
        "commit",
        &repo,
        "-b",
        "t",
        &format!("--tree=dir={}", tree.display()),
    ]);
    let img = format!("oci:{}:t", p("img").display());
    let r = p("repo").display().to_string();
    let doc = cairn_json([
        "container",
        "export",
        "t",
        "--repo",
        &r,
        "--to",
        &img,
        "--json",
    ]);
    let l = layers(&doc);
    let pk: Vec<&str> = l.iter().map(|l| l.1.as_str()).collect();
    assert_eq!(pk, vec!["", "bar", "foo"], "{doc}");
    assert_eq!(doc["layers"][2]["objects"], 1);
    ostree_init(&p("back"), "bare-user");
    assert_eq!(import(&img, &p("back"))["commit"], c.trim());
}
