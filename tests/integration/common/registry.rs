//! A real OCI registry on loopback (Debian's `docker-registry`, distribution 2.8) with its
//! access log, a registries.conf marking it insecure (plain HTTP) for skopeo, and the
//! ostree-ext CLI built from crates.io (tests/interop/ostree-ext-check) as the independent reader
//! of the format.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::etcd::free_port;

pub struct Registry {
    pub addr: String,
    /// registries.conf to hand skopeo (and cairn) as `CONTAINERS_REGISTRIES_CONF`.
    pub conf: PathBuf,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = super::tempdir();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let conf = dir.path().join("registries.conf");
        std::fs::write(
            &conf,
            format!("[[registry]]\nlocation = \"{addr}\"\ninsecure = true\n"),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            addr,
            conf,
            log,
            child,
            _dir: dir,
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "registry did not listen on {}: {}",
            self.addr,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Blob digests fetched (`GET .../blobs/sha256:...` answered 200) in log text `text`.
    pub fn blob_gets(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .filter(|l| l.contains("HTTP/1.1\" 200"))
            .filter_map(|l| {
                let i = l.find("/blobs/")? + "/blobs/".len();
                Some(l[i..].split([' ', '"']).next()?.to_string())
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when skopeo and docker-registry are installed (else a SKIP; a failure under CI).
pub fn available() -> bool {
    super::have_tool("skopeo", "install skopeo (scripts/setup.sh)")
        && super::have_tool(
            "docker-registry",
            "install docker-registry (scripts/setup.sh)",
        )
}

/// The ostree-ext CLI (ostree-ext 0.15.3 over the ostree crate 0.19), built once per test run
/// into target/interop. It needs libzstd-dev (scripts/setup.sh) and crates.io or a warm cargo
/// cache; a build failure fails the test, it never skips it.
pub fn ostree_ext() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = super::project_root();
        let manifest = root.join("tests/interop/ostree-ext-check/Cargo.toml");
        let target = root.join("target/interop");
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--locked", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", &target)
            .stdin(Stdio::null())
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "building the ostree-ext interop tool failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target.join("debug/ostree-ext-check")
    })
}
