//! Real etcd for tests: clusters of `etcd` members on loopback (free ports, temp data dirs,
//! killed on drop) and `etcdctl` as the oracle for what is stored.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when etcd and etcdctl are installed; a loud SKIP otherwise, and a failure under CI
/// (`CI=true`), where scripts/setup.sh must have installed them.
pub fn available() -> bool {
    super::have_tool("etcd", "install etcd-server (scripts/setup.sh)")
        && super::have_tool("etcdctl", "install etcd-client (scripts/setup.sh)")
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

pub struct Member {
    pub name: String,
    pub client_url: String,
    child: Option<Child>,
}

/// A cluster of `n` members; every member is killed when it drops.
pub struct Cluster {
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start(n: usize) -> Self {
        let dir = super::tempdir();
        let peers: Vec<(String, u16, u16)> = (0..n)
            .map(|i| (format!("m{i}"), free_port(), free_port()))
            .collect();
        let initial = peers
            .iter()
            .map(|(name, _, p)| format!("{name}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        // Unique per cluster so members of two clusters can never join each other.
        let token = format!("cairn-test-{}-{}", std::process::id(), free_port());
        let members = peers
            .iter()
            .map(|(name, c, p)| spawn_member(dir.path(), name, *c, *p, &initial, &token))
            .collect();
        let cluster = Self { members, _dir: dir };
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// Comma-separated client URLs of every member (dead ones included, as a server's config
    /// would still list them).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn live_endpoints(&self) -> String {
        self.members
            .iter()
            .filter(|m| m.child.is_some())
            .map(|m| m.client_url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn wait_healthy(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let o = self.etcdctl(&["endpoint", "health"]);
            if o.status.success() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "etcd cluster not healthy after {limit:?}: {}",
                super::stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `etcdctl` (v3 API) against the live members.
    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.live_endpoints())
            .arg("--command-timeout=5s")
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    /// The value stored at `key`, read by etcdctl; `None` when the key does not exist.
    pub fn get(&self, key: &str) -> Option<String> {
        let o = self.etcdctl(&["get", "--print-value-only", key]);
        assert!(o.status.success(), "etcdctl get: {}", super::stderr(&o));
        let v = super::stdout(&o);
        let v = v.strip_suffix('\n').unwrap_or(&v);
        (!v.is_empty()).then(|| v.to_string())
    }

    /// Every key/value under `prefix`, as etcdctl prints them (key and value lines).
    pub fn dump(&self, prefix: &str) -> String {
        let o = self.etcdctl(&["get", "--prefix", prefix, "-w", "simple"]);
        assert!(o.status.success(), "etcdctl get: {}", super::stderr(&o));
        super::stdout(&o)
    }

    /// The index of the member that is the raft leader now.
    pub fn leader(&self) -> usize {
        let o = self.etcdctl(&["endpoint", "status", "-w", "json"]);
        assert!(
            o.status.success(),
            "etcdctl endpoint status: {}",
            super::stderr(&o)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("status JSON");
        let rows = v.as_array().expect("one row per endpoint");
        let row = rows
            .iter()
            .find(|r| r["Status"]["header"]["member_id"] == r["Status"]["leader"])
            .expect("one endpoint is the leader");
        let url = row["Endpoint"].as_str().unwrap();
        self.members
            .iter()
            .position(|m| m.client_url == url)
            .expect("the leader is one of ours")
    }

    /// SIGKILLs member `i`: a crash, not a clean stop.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_member(
    dir: &Path,
    name: &str,
    client: u16,
    peer: u16,
    initial: &str,
    token: &str,
) -> Member {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let child = Command::new("etcd")
        .args(["--name", name])
        .arg("--data-dir")
        .arg(dir.join(name))
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", initial])
        .args(["--initial-cluster-state", "new"])
        .args(["--initial-cluster-token", token])
        // Short raft timers: a killed leader is replaced in about a second, not several.
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .args(["--logger", "zap", "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn etcd");
    Member {
        name: name.to_string(),
        client_url,
        child: Some(child),
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
