//! `cairn fleetlock` against real etcd members and real server processes: the FleetLock protocol
//! rule by rule (curl as the client, etcdctl as the oracle for what is stored), the operator
//! commands, and failover with an etcd member and a server replica killed mid-traffic.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::etcd::{self, Cluster};
use crate::common::*;

const KEY: &str = "com.coreos.airlock/groups/default/v1/semaphore";

/// A `cairn fleetlock serve` process on a free port; SIGKILLed on drop.
pub(crate) struct LockServer {
    child: Child,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl LockServer {
    pub(crate) fn start(cluster: &Cluster, args: &[&str]) -> Self {
        let dir = tempdir();
        let log = dir.path().join("serve.stderr");
        let mut cmd = cairn();
        cmd.args(["fleetlock", "serve", "--listen", "127.0.0.1:0"])
            .args(["--etcd", &cluster.endpoints()])
            .args(args);
        let (child, url) = spawn_listening(cmd, &log);
        LockServer {
            child,
            url,
            _dir: dir,
            log,
        }
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LockServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// POSTs `body` with curl (`header`: whether to send `fleet-lock-protocol: true`); returns the
/// status and the body.
fn post(url: &str, path: &str, header: Option<&str>, body: &[u8]) -> (u16, String) {
    post_with(url, path, header, body, &[])
}

fn post_with(
    url: &str,
    path: &str,
    header: Option<&str>,
    body: &[u8],
    extra: &[&str],
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-S",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "--max-time",
        "20",
    ])
    .args(["-H", "content-type: application/json"])
    .args(["--data-binary", "@-"]);
    if let Some(v) = header {
        c.args(["-H", &format!("fleet-lock-protocol: {v}")]);
    }
    let mut child = c
        .args(extra)
        .arg(format!("{url}{path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn curl");
    // The server may answer (and close) before it has read a large body: ignore EPIPE.
    let _ = child.stdin.take().unwrap().write_all(body);
    let o = child.wait_with_output().unwrap();
    let out = stdout(&o);
    let (body, code) = out.rsplit_once('\n').expect("curl printed the status");
    (
        code.trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl: {}", stderr(&o))),
        body.to_string(),
    )
}

fn params(id: &str, group: &str) -> Vec<u8> {
    format!(r#"{{"client_params":{{"id":"{id}","group":"{group}"}}}}"#).into_bytes()
}

fn lock(s: &LockServer, id: &str) -> (u16, String) {
    post(
        &s.url,
        "/v1/pre-reboot",
        Some("true"),
        &params(id, "default"),
    )
}

fn unlock(s: &LockServer, id: &str) -> (u16, String) {
    post(
        &s.url,
        "/v1/steady-state",
        Some("true"),
        &params(id, "default"),
    )
}

/// The stored semaphore as etcd has it.
fn stored(c: &Cluster, key: &str) -> Option<serde_json::Value> {
    c.get(key)
        .map(|v| serde_json::from_str(&v).expect("semaphore is JSON"))
}

fn holders(c: &Cluster, key: &str) -> Vec<String> {
    let v = stored(c, key).expect("semaphore key exists");
    serde_json::from_value(v["holders"].clone()).unwrap()
}

/// etcd's (revision, the key's version): any write anywhere bumps the revision.
fn revision(c: &Cluster) -> (i64, i64) {
    let o = c.etcdctl(&["get", KEY, "-w", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let version = v["kvs"][0]["version"].as_i64().unwrap_or(0);
    (v["header"]["revision"].as_i64().unwrap(), version)
}

fn setup(args: &[&str]) -> Option<(Cluster, LockServer)> {
    if !etcd::available() {
        return None;
    }
    let c = Cluster::start(1);
    let s = LockServer::start(&c, args);
    Some((c, s))
}

#[test]
fn pre_reboot_takes_a_slot_and_steady_state_gives_it_back() {
    let Some((c, s)) = setup(&[]) else { return };
    assert_eq!(lock(&s, "node-a"), (200, String::new()));
    assert_eq!(holders(&c, KEY), ["node-a"]);
    assert_eq!(unlock(&s, "node-a"), (200, String::new()));
    assert_eq!(holders(&c, KEY), Vec::<String>::new());
}

#[test]
fn the_protocol_header_is_required() {
    let Some((c, s)) = setup(&[]) else { return };
    for header in [None, Some("false"), Some("1")] {
        let (code, body) = post(&s.url, "/v1/pre-reboot", header, &params("a", "default"));
        assert_eq!(code, 400, "header {header:?}: {body}");
        let (code, _) = post(&s.url, "/v1/steady-state", header, &params("a", "default"));
        assert_eq!(code, 400, "header {header:?}");
    }
    assert_eq!(
        c.get(KEY),
        None,
        "nothing may be written without the header"
    );
}

#[test]
fn the_legacy_node_uuid_field_is_accepted() {
    let Some((c, s)) = setup(&[]) else { return };
    let body =
        br#"{"client_params":{"node_uuid":"c988d2509fdf4cdcbed39037c56406fb","group":"default"}}"#;
    assert_eq!(post(&s.url, "/v1/pre-reboot", Some("true"), body).0, 200);
    assert_eq!(holders(&c, KEY), ["c988d2509fdf4cdcbed39037c56406fb"]);
    assert_eq!(post(&s.url, "/v1/steady-state", Some("true"), body).0, 200);
    assert!(holders(&c, KEY).is_empty());
}

#[test]
fn groups_must_match_the_protocol_pattern() {
    let Some((c, s)) = setup(&[]) else { return };
    for bad in ["", "a b", "a/b", "a_b", "grüppe", "../x"] {
        let (code, body) = post(&s.url, "/v1/pre-reboot", Some("true"), &params("n", bad));
        assert_eq!(code, 400, "group {bad:?}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["kind"], "invalid_group");
    }
    assert_eq!(
        c.dump("com.coreos.airlock/"),
        "",
        "bad groups wrote nothing"
    );
    let (code, _) = post(
        &s.url,
        "/v1/pre-reboot",
        Some("true"),
        &params("n", "a.B-9"),
    );
    assert_eq!(code, 200);
    assert_eq!(
        holders(&c, "com.coreos.airlock/groups/a.B-9/v1/semaphore"),
        ["n"]
    );
}

#[test]
fn a_full_group_answers_a_json_error_with_kind_and_value() {
    let Some((c, s)) = setup(&["--slots", "1"]) else {
        return;
    };
    assert_eq!(lock(&s, "a").0, 200);
    let (code, body) = lock(&s, "b");
    assert_eq!(code, 409);
    let err: serde_json::Value = serde_json::from_str(&body).expect("error body is JSON");
    let obj = err.as_object().unwrap();
    assert_eq!(obj.len(), 2, "exactly kind and value: {body}");
    assert_eq!(err["kind"], "failed_lock_semaphore_full");
    assert!(err["value"].as_str().unwrap().contains("1 reboot slots"));
    assert_eq!(holders(&c, KEY), ["a"]);
    // Once a's slot is given back, b gets it.
    assert_eq!(unlock(&s, "a").0, 200);
    assert_eq!(lock(&s, "b").0, 200);
    assert_eq!(holders(&c, KEY), ["b"]);
}

#[test]
fn taking_a_slot_twice_with_the_same_id_succeeds_without_a_write() {
    let Some((c, s)) = setup(&["--slots", "1"]) else {
        return;
    };
    assert_eq!(lock(&s, "a").0, 200);
    let before = revision(&c);
    assert_eq!(lock(&s, "a").0, 200, "the holder asking again is success");
    assert_eq!(revision(&c), before, "a recursive lock writes nothing");
    assert_eq!(holders(&c, KEY), ["a"]);
}

#[test]
fn releasing_a_slot_not_held_succeeds_and_leaves_the_holder() {
    let Some((c, s)) = setup(&["--slots", "1"]) else {
        return;
    };
    assert_eq!(unlock(&s, "never-held").0, 200);
    assert_eq!(lock(&s, "a").0, 200);
    let before = revision(&c);
    assert_eq!(unlock(&s, "b").0, 200);
    assert_eq!(revision(&c), before);
    assert_eq!(holders(&c, KEY), ["a"]);
}

#[test]
fn bad_requests_get_4xx_and_leave_etcd_unchanged() {
    let Some((c, s)) = setup(&[]) else { return };
    assert_eq!(lock(&s, "holder").0, 200);
    let before = revision(&c);
    let big = vec![b'a'; 1 << 20];
    // (what, protocol header, body, extra curl args, wanted status)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, &'a [&'a str], u16);
    let cases: Vec<Case> = vec![
        ("no header", None, params("x", "default"), &[], 400),
        (
            "bad JSON",
            Some("true"),
            b"{\"client_params\":".to_vec(),
            &[],
            400,
        ),
        ("not an object", Some("true"), b"[1,2]".to_vec(), &[], 400),
        ("empty id", Some("true"), params("", "default"), &[], 400),
        ("bad group", Some("true"), params("x", "no/slash"), &[], 400),
        ("1 MB body", Some("true"), big.clone(), &[], 413),
        (
            "1 MB chunked body",
            Some("true"),
            big,
            &["-H", "transfer-encoding: chunked"],
            413,
        ),
    ];
    for (what, header, body, extra, want) in cases {
        for path in ["/v1/pre-reboot", "/v1/steady-state"] {
            let (code, resp) = post_with(&s.url, path, header, &body, extra);
            assert_eq!(code, want, "{what} on {path}: {resp}");
            let err: serde_json::Value = serde_json::from_str(&resp).expect("JSON error");
            assert!(
                err["kind"].is_string() && err["value"].is_string(),
                "{resp}"
            );
        }
    }
    assert_eq!(revision(&c), before, "no bad request may write to etcd");
    assert_eq!(holders(&c, KEY), ["holder"]);
    // The server is still healthy after refusing them.
    assert_eq!(unlock(&s, "holder").0, 200);
}

#[test]
fn state_is_airlocks_key_and_value_so_both_can_share_etcd() {
    let Some((c, s)) = setup(&["--slots", "1", "--group", "workers=3"]) else {
        return;
    };
    // A semaphore as airlock writes it (Go's json.Marshal of its struct), with 2 slots where
    // cairn's --slots says 1: the stored count wins.
    let o = c.etcdctl(&["put", KEY, r#"{"total_slots":2,"holders":["m"]}"#]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lock(&s, "z").0, 200);
    assert_eq!(lock(&s, "a").0, 409, "2 slots, both taken");
    // Holders stay sorted: airlock finds them by binary search.
    assert_eq!(
        c.get(KEY).unwrap(),
        r#"{"total_slots":2,"holders":["m","z"]}"#
    );
    // A group created by cairn gets its --group count, in the same layout.
    let (code, _) = post(
        &s.url,
        "/v1/pre-reboot",
        Some("true"),
        &params("w1", "workers"),
    );
    assert_eq!(code, 200);
    assert_eq!(
        c.get("com.coreos.airlock/groups/workers/v1/semaphore")
            .unwrap(),
        r#"{"total_slots":3,"holders":["w1"]}"#
    );
}

/// One FleetLock POST over a plain socket, written only once every racer is connected, so the
/// requests really arrive together (curl processes would spread them over milliseconds).
fn racing_post(url: &str, path: &str, id: &str, barrier: &std::sync::Barrier) -> u16 {
    use std::io::Read;
    let addr = url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    let body = String::from_utf8(params(id, "default")).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nfleet-lock-protocol: true\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    barrier.wait();
    conn.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn replicas_racing_never_hand_out_more_than_the_slots() {
    if !etcd::available() {
        return;
    }
    let c = Cluster::start(1);
    let servers: Vec<LockServer> = (0..3)
        .map(|_| LockServer::start(&c, &["--slots", "3"]))
        .collect();
    // Rounds of 45 nodes at once over 3 replicas, racing for 3 slots: each replica batches its
    // own, and the replicas' batches race through compare-and-set.
    for round in 0..5 {
        let barrier = std::sync::Barrier::new(45);
        let granted = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for i in 0..45 {
                let (s, granted, barrier) = (&servers[i % 3], &granted, &barrier);
                scope.spawn(move || {
                    let id = format!("r{round}-n{i:02}");
                    match racing_post(&s.url, "/v1/pre-reboot", &id, barrier) {
                        200 => granted.lock().unwrap().push(id),
                        409 => {}
                        other => panic!("{id}: {other}"),
                    }
                });
            }
        });
        let mut granted = granted.into_inner().unwrap();
        granted.sort();
        assert_eq!(
            granted.len(),
            3,
            "round {round}: only the slots: {granted:?}"
        );
        assert_eq!(
            holders(&c, KEY),
            granted,
            "round {round}: etcd holds the granted ids"
        );
        for id in &granted {
            assert_eq!(unlock(&servers[0], id).0, 200);
        }
    }
}

#[test]
fn status_and_release_show_and_free_a_dead_nodes_slot() {
    let Some((c, s)) = setup(&["--slots", "2"]) else {
        return;
    };
    assert_eq!(lock(&s, "dead-node").0, 200);
    assert_eq!(lock(&s, "live-node").0, 200);
    let eps = c.endpoints();
    let o = run_cairn(["fleetlock", "status", "--etcd", &eps]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "default: 2/2 slots held: dead-node, live-node\n"
    );
    let o = run_cairn(["fleetlock", "status", "--etcd", &eps, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["apiVersion"], "cairn/v1");
    assert_eq!(doc["kind"], "FleetLockStatus");
    assert_eq!(doc["groups"][0]["group"], "default");
    assert_eq!(doc["groups"][0]["total_slots"], 2);
    assert_eq!(doc["groups"][0]["holders"][0], "dead-node");

    let o = run_cairn(["fleetlock", "release", "--etcd", &eps, "--id", "dead-node"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "released dead-node in default\n");
    assert_eq!(holders(&c, KEY), ["live-node"]);
    let o = run_cairn(["fleetlock", "release", "--etcd", &eps, "--id", "dead-node"]);
    assert_eq!(o.status.code(), Some(77), "nothing held: 77");
    assert_eq!(holders(&c, KEY), ["live-node"]);
}

#[test]
fn metrics_count_answers_in_prometheus_text() {
    let Some((_c, s)) = setup(&["--slots", "1"]) else {
        return;
    };
    assert_eq!(lock(&s, "a").0, 200);
    assert_eq!(lock(&s, "b").0, 409);
    assert_eq!(post(&s.url, "/v1/pre-reboot", None, b"{}").0, 400);
    let o = Command::new("curl")
        .args(["-s", "-f", &format!("{}/metrics", s.url)])
        .output()
        .unwrap();
    assert!(o.status.success());
    let m = stdout(&o);
    for line in [
        "cairn_fleetlock_requests_total{endpoint=\"pre-reboot\",code=\"200\"} 1",
        "cairn_fleetlock_requests_total{endpoint=\"pre-reboot\",code=\"409\"} 1",
        "cairn_fleetlock_requests_total{endpoint=\"pre-reboot\",code=\"400\"} 1",
        "cairn_fleetlock_request_duration_seconds_count{endpoint=\"pre-reboot\"} 3",
        "cairn_fleetlock_semaphore_holders{group=\"default\"} 1",
        "cairn_fleetlock_semaphore_slots{group=\"default\"} 1",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in:\n{m}");
    }
}

/// What the node-side command answered: 0 slot held, 75 full; anything else fails the test.
fn node_cmd(cmd: &str, servers: &str, id: &str) -> i32 {
    let o = run_cairn([
        "fleetlock",
        cmd,
        "--server",
        servers,
        "--group",
        "pool",
        "--id",
        id,
    ]);
    match o.status.code() {
        Some(c @ (0 | 75)) => c,
        other => panic!("{cmd} {id}: exit {other:?}: {}", stderr(&o)),
    }
}

#[test]
fn clients_get_their_locks_while_an_etcd_member_and_a_replica_die() {
    if !etcd::available() {
        return;
    }
    const NODES: usize = 16;
    const SLOTS: usize = 2;
    let mut c = Cluster::start(3);
    let mut a = LockServer::start(&c, &["--slots", "2"]);
    let b = LockServer::start(&c, &["--slots", "2"]);
    let servers = format!("{},{}", a.url, b.url);
    let done = Arc::new(AtomicUsize::new(0));
    // (acquired, released) per node, as seen by the node: inside the server-side hold.
    let spans = Arc::new(Mutex::new(Vec::new()));
    let nodes: Vec<_> = (0..NODES)
        .map(|i| {
            let (servers, done, spans) = (servers.clone(), done.clone(), spans.clone());
            std::thread::spawn(move || {
                let id = format!("node{i:02}");
                assert_eq!(node_cmd("steady-state", &servers, &id), 0);
                while node_cmd("pre-reboot", &servers, &id) == 75 {
                    std::thread::sleep(Duration::from_millis(30));
                }
                let got = Instant::now();
                std::thread::sleep(Duration::from_millis(150)); // "rebooting"
                let left = Instant::now();
                assert_eq!(node_cmd("steady-state", &servers, &id), 0);
                spans.lock().unwrap().push((got, left));
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let start = Instant::now();
    while done.load(Ordering::SeqCst) < 3 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Mid-traffic: the raft leader crashes (an election follows) and replica A crashes.
    let leader = c.leader();
    c.kill(leader);
    a.kill();
    let done_at_kill = done.load(Ordering::SeqCst);
    for n in nodes {
        n.join().expect("every node got and gave back its slot");
    }
    assert!(done_at_kill < NODES, "the kills happened mid-traffic");
    assert_eq!(done.load(Ordering::SeqCst), NODES);
    // Never more nodes in their reboot window than there are slots.
    let spans = spans.lock().unwrap();
    for (got, _) in spans.iter() {
        let inside = spans.iter().filter(|(g, l)| g <= got && got < l).count();
        assert!(inside <= SLOTS, "{inside} nodes rebooting at once");
    }
    c.wait_healthy(Duration::from_secs(10));
    let key = "com.coreos.airlock/groups/pool/v1/semaphore";
    assert_eq!(
        holders(&c, key),
        Vec::<String>::new(),
        "every slot given back"
    );
    assert!(b.logs().contains("\"status\":200"), "replica B served");
}

/// nginx on two free ports: one answering every request 204, one proxying to a port nothing
/// listens on (502), the way a proxy in front of a dead replica answers. Stopped on drop.
struct Nginx {
    child: Child,
    ok_204: String,
    bad_gateway: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Option<Self> {
        if !have_tool("nginx", "install nginx (scripts/setup.sh)") {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nginx missing under CI"
            );
            return None;
        }
        let dir = tempdir();
        let d = dir.path().display();
        let (p1, p2, dead) = (etcd::free_port(), etcd::free_port(), etcd::free_port());
        let conf = format!(
            // One process (no master and workers), so killing the child stops nginx whole.
            "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
             events {{}}\n\
             http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;\n\
               server {{ listen 127.0.0.1:{p1}; location / {{ return 204; }} }}\n\
               server {{ listen 127.0.0.1:{p2}; location / {{ proxy_pass http://127.0.0.1:{dead}; }} }}\n\
             }}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", p2)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx {
            child,
            ok_204: format!("http://127.0.0.1:{p1}"),
            bad_gateway: format!("http://127.0.0.1:{p2}"),
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_client_takes_any_2xx_as_success_and_skips_a_failing_replica() {
    let Some((c, s)) = setup(&[]) else { return };
    let Some(nginx) = Nginx::start() else { return };
    let node = |servers: &str| {
        run_cairn([
            "fleetlock",
            "pre-reboot",
            "--server",
            servers,
            "--group",
            "default",
            "--id",
            "n1",
        ])
    };
    // 204 is a 2xx: success (and nothing reached etcd).
    let o = node(&nginx.ok_204);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(c.get(KEY), None);
    // A 502 from the first replica sends the client on to the next, which grants the slot.
    let o = node(&format!("{},{}", nginx.bad_gateway, s.url));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(holders(&c, KEY), ["n1"]);
    // With no working replica at all, the node is told so (exit 1, each failure named).
    let o = node(&nginx.bad_gateway);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no lock server answered"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("502"), "{}", stderr(&o));
}
