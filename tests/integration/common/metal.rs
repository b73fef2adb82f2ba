//! Fixtures for the bare-metal tests: inventories, a real `cairn serve` process, a real OSTree
//! repo built with the `ostree` CLI, and a tiny std-only HTTP client for request streams.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::cairn;

pub const HASH: &str = "$6$cairnexample$3yGplWObU2CLtbRf1OFSYXQFSaYHAEoeB/vVBKTAvTxv38aRju5hGci2xXC1xIoaouP8lvJewTUaFFsMhcoRC1";
pub const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFNMcTTw+M9xm8hFXzUOdk9NRLdAHOpVW7BSiUUWwp0a admin@example.com";

/// The shipped example inventory.
pub fn shipped_inventory() -> PathBuf {
    super::project_root().join("kickstart/inventory.yaml")
}

/// A minimal valid inventory header (defaults) followed by `hosts` YAML text.
pub fn inventory(hosts: &str) -> String {
    format!(
        "server: http://192.0.2.1:8080\n\
         defaults:\n  root-password: \"{HASH}\"\n  ssh-keys: [\"{KEY}\"]\n  disk: {{ device: vda }}\n  \
         ostree: {{ osname: cairn, ref: cairn/x86_64/base, gpg: false }}\n\
         roles:\n  k8s-node:\n    sysctl-presets: [kubernetes-node]\n\
         hosts:\n{hosts}"
    )
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `ostree` with `args`, panicking with its output on failure; returns stdout.
pub fn ostree(args: &[&str]) -> String {
    super::repo::ostree_ok(args)
}

/// An archive repo with one commit on `refname` holding `hello.txt`, summary updated.
pub fn make_repo(dir: &Path, refname: &str) -> PathBuf {
    let repo = dir.join("repo");
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("usr/share/cairn")).unwrap();
    std::fs::write(tree.join("usr/share/cairn/hello.txt"), "hello from cairn\n").unwrap();
    let r = format!("--repo={}", repo.display());
    ostree(&[&r, "init", "--mode=archive"]);
    ostree(&[
        &r,
        "commit",
        "-b",
        refname,
        "-s",
        "fixture",
        "--canonical-permissions",
        &format!("--tree=dir={}", tree.display()),
    ]);
    ostree(&[&r, "summary", "-u"]);
    repo
}

/// A running `cairn serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub url: String,
    pub stderr: PathBuf,
}

impl Server {
    /// Starts `cairn serve --listen 127.0.0.1:0 ARGS...` and reads the bound address from stdout.
    pub fn start(dir: &Path, args: &[&str]) -> Server {
        Server::start_cmd(dir, cairn(), args)
    }

    /// The same with the descriptor limit (soft and hard) set to `nofile` by util-linux `prlimit`,
    /// so filling it takes a few hundred connections.
    pub fn start_nofile(dir: &Path, nofile: u64, args: &[&str]) -> Server {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_cairn"));
        Server::start_cmd(dir, cmd, args)
    }

    fn start_cmd(dir: &Path, mut cmd: Command, args: &[&str]) -> Server {
        let stderr = dir.join(format!("serve-{}.stderr", std::process::id()));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        let (child, url) = super::spawn_listening(cmd, &stderr);
        let addr = url.trim_start_matches("http://").parse().unwrap();
        Server {
            child,
            addr,
            url,
            stderr,
        }
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until a log line containing `needle` appears at least `n` times.
    pub fn wait_log(&self, needle: &str, n: usize) -> String {
        for _ in 0..200 {
            let l = self.logs();
            if l.matches(needle).count() >= n {
                return l;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("log never showed {needle:?} x{n}:\n{}", self.logs());
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.addr, "GET", path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns status and body. The path is sent
/// exactly as given (no normalisation), which traversal tests rely on.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// `curl -s -o BODY -w %{http_code}`: the real client, for the endpoint tests.
pub fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("spawn curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}
