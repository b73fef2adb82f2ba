//! A remote archive repo built with the real `ostree` CLI, a sysroot in a temp dir, and readers
//! for what libostree wrote (BLS entries, `ostree admin status`) to check cairn against.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use super::repo::ostree_ok as ostree;
use super::{run_cairn, stderr, stdout, tempdir, KillOnDrop};

pub const OS: &str = "cairnos";
pub const REF: &str = "cairnos/x86_64/stable";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub remote: PathBuf,
    pub sysroot: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempdir();
        let remote = dir.path().join("remote");
        let sysroot = dir.path().join("sysroot");
        std::fs::create_dir(&sysroot).unwrap();
        ostree([
            "init",
            "--mode=archive",
            &format!("--repo={}", remote.display()),
        ]);
        Fixture {
            dir,
            remote,
            sysroot,
        }
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    /// Commits a bootable tree with `version` on REF (kernel content differs per version, so
    /// each version has its own boot checksum) and updates the summary. Returns the checksum.
    pub fn commit(&self, version: &str) -> String {
        let tree = self.dir.path().join(format!("tree-{version}"));
        let kdir = tree.join("usr/lib/modules/6.1.0-cairn");
        std::fs::create_dir_all(&kdir).unwrap();
        std::fs::write(kdir.join("vmlinuz"), format!("kernel {version}\n")).unwrap();
        std::fs::write(kdir.join("initramfs.img"), format!("initramfs {version}\n")).unwrap();
        std::fs::create_dir_all(tree.join("usr/etc/app")).unwrap();
        std::fs::write(tree.join("usr/etc/app/app.conf"), "level = info\n").unwrap();
        std::fs::write(tree.join("usr/etc/hostname"), "cairn\n").unwrap();
        std::fs::write(
            tree.join("usr/lib/os-release"),
            format!(
                "NAME=CairnOS\nID=cairnos\nVERSION={version}\nPRETTY_NAME=\"CairnOS {version}\"\n"
            ),
        )
        .unwrap();
        let repo = format!("--repo={}", self.remote.display());
        let out = ostree([
            "commit",
            &repo,
            "--canonical-permissions",
            "-b",
            REF,
            &format!("--tree=dir={}", tree.display()),
            &format!("--add-metadata-string=version={version}"),
            &format!("--subject=CairnOS {version}"),
        ]);
        ostree(["summary", "-u", &repo]);
        out.trim().to_string()
    }

    /// Runs cairn with `args` followed by `--sysroot S --os OS` (host commands).
    pub fn cairn(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend([
            "--sysroot".into(),
            self.sysroot.display().to_string(),
            "--os".into(),
            OS.into(),
        ]);
        run_cairn(all)
    }

    /// Starts cairn with `args` followed by `--sysroot S --os OS` in the background, stderr
    /// piped, with `CAIRN_FAILPOINT=failpoint` when given; killed when dropped.
    pub fn spawn(&self, args: &[&str], failpoint: Option<&str>) -> KillOnDrop {
        let mut cmd = super::cairn();
        cmd.args(args)
            .arg("--sysroot")
            .arg(&self.sysroot)
            .args(["--os", OS])
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        if let Some(f) = failpoint {
            cmd.env("CAIRN_FAILPOINT", f);
        }
        KillOnDrop(cmd.spawn().expect("spawn cairn"))
    }

    pub fn cairn_ok(&self, args: &[&str]) -> Output {
        let o = self.cairn(args);
        assert!(
            o.status.success(),
            "cairn {args:?} failed: {}{}",
            stdout(&o),
            stderr(&o)
        );
        o
    }

    /// `cairn deploy REF` pulling from the fixture remote.
    pub fn deploy(&self, extra: &[&str]) -> Output {
        let url = self.url();
        let mut args = vec!["deploy", REF, "--remote", "origin", "--url", &url];
        args.extend_from_slice(extra);
        self.cairn_ok(&args)
    }

    pub fn status(&self) -> serde_json::Value {
        let o = self.cairn_ok(&["status", "--json"]);
        serde_json::from_slice(&o.stdout).expect("status JSON")
    }

    /// Checksums of deployments in order, from `cairn status --json`.
    pub fn checksums(&self) -> Vec<String> {
        self.status()["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["checksum"].as_str().unwrap().to_string())
            .collect()
    }

    /// `(osname, checksum, serial, pinned)` per deployment from the real `ostree admin status`.
    pub fn ostree_status(&self) -> Vec<(String, String, u32, bool)> {
        let text = ostree([
            "admin",
            &format!("--sysroot={}", self.sysroot.display()),
            "status",
        ]);
        let mut out: Vec<(String, String, u32, bool)> = Vec::new();
        for line in text.lines() {
            let t = line.trim_start_matches(['*', ' ']);
            let mut words = t.split_whitespace();
            if let (Some(os), Some(id)) = (words.next(), words.next()) {
                if let Some((csum, serial)) = id.split_once('.') {
                    if csum.len() == 64 && line.starts_with(['*', ' ']) && !line.starts_with("    ")
                    {
                        out.push((os.into(), csum.into(), serial.parse().unwrap(), false));
                        continue;
                    }
                }
            }
            if t.starts_with("Pinned: yes") {
                out.last_mut().unwrap().3 = true;
            }
        }
        out
    }

    /// The deployment root dir of the deployment at `index` (from cairn status).
    pub fn deployment_dir(&self, index: usize) -> PathBuf {
        let st = self.status();
        let d = &st["deployments"][index];
        self.sysroot.join(format!(
            "ostree/deploy/{OS}/deploy/{}",
            d["id"].as_str().unwrap()
        ))
    }

    /// BLS entries, highest `version` (the boot loader's default) first.
    pub fn bls(&self) -> Vec<Bls> {
        let dir = self.sysroot.join("boot/loader/entries");
        let mut out: Vec<Bls> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| Bls::parse(&self.sysroot, &e.unwrap().path()))
            .collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.version));
        out
    }
}

/// One boot loader entry and the deployment its `ostree=` argument leads to.
#[derive(Debug)]
pub struct Bls {
    pub file: String,
    pub version: u32,
    pub title: String,
    pub options: String,
    /// Checksum of the deployment the `ostree=` symlink resolves to.
    pub checksum: String,
}

impl Bls {
    fn parse(sysroot: &Path, path: &Path) -> Bls {
        let text = std::fs::read_to_string(path).unwrap();
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("{} lacks {k}", path.display()))
        };
        let options = field("options ");
        let ostree_arg = options
            .split_whitespace()
            .find_map(|a| a.strip_prefix("ostree="))
            .expect("ostree= karg");
        let target =
            std::fs::canonicalize(sysroot.join(ostree_arg.trim_start_matches('/'))).unwrap();
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        Bls {
            file: path.file_name().unwrap().to_string_lossy().into_owned(),
            version: field("version ").parse().unwrap(),
            title: field("title "),
            checksum: name.split('.').next().unwrap().to_string(),
            options,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        super::make_removable(self.dir.path());
    }
}
