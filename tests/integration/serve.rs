//! `cairn serve` end to end on loopback: the real binary on port 0, curl and the real `ostree`
//! client as clients, signals for reload and shutdown.

use std::time::Duration;

use rustix::process::Signal;

use crate::common::metal::*;
use crate::common::*;

const REF: &str = "cairn/x86_64/base";

fn hosts(extra: &str) -> String {
    inventory(&format!(
        "  - hostname: node1\n    mac: \"52:54:00:aa:00:01\"\n    role: k8s-node\n    network: {{ ip: 10.0.0.11/24, gateway: 10.0.0.1 }}\n\
         \x20 - hostname: node2\n    macs: [\"52:54:00:aa:00:02\", \"52:54:00:aa:00:03\"]\n{extra}"
    ))
    // The server must point hosts at itself, not at the inventory's example address.
    .replace("server: http://192.0.2.1:8080\n", "")
}

#[test]
fn endpoints_answer_with_the_rendered_documents() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let s = Server::start(d.path(), &["-i", inv.to_str().unwrap()]);
    let u = &s.url;

    // What serve answers is byte for byte what `kickstart render` writes for the same server URL.
    let out = d.path().join("out");
    let o = run_cairn([
        "kickstart",
        "render",
        "-i",
        inv.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--server-url",
        u,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();

    for (path, want) in [
        ("/ks/52:54:00:aa:00:01", file("ks/52:54:00:aa:00:01")),
        ("/ks/52-54-00-AA-00-01", file("ks/52:54:00:aa:00:01")),
        ("/ks?mac=5254.00aa.0001", file("ks/52:54:00:aa:00:01")),
        ("/ks/52:54:00:aa:00:03", file("ks/52:54:00:aa:00:02")),
        (
            "/ipxe?mac=52:54:00:aa:00:02",
            file("ipxe/52:54:00:aa:00:02"),
        ),
        ("/boot.ipxe", file("boot.ipxe")),
        (
            "/pxelinux/01-52-54-00-aa-00-01",
            file("pxelinux.cfg/01-52-54-00-aa-00-01"),
        ),
        (
            "/pxelinux/52:54:00:aa:00:01",
            file("pxelinux.cfg/01-52-54-00-aa-00-01"),
        ),
        (
            "/grub/grub.cfg-01-52-54-00-aa-00-02",
            file("grub/grub.cfg-01-52-54-00-aa-00-02"),
        ),
        (
            "/grub/52:54:00:aa:00:02",
            file("grub/grub.cfg-01-52-54-00-aa-00-02"),
        ),
    ] {
        let (code, body) = curl(&[&format!("{u}{path}")]);
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(body, want, "{path}");
    }
    let ks = curl(&[&format!("{u}/ks/52:54:00:aa:00:01")]).1;
    assert!(
        ks.contains(&format!(
            "curl -fsS -m 30 -X POST '{u}/built/52:54:00:aa:00:01'"
        )),
        "{ks}"
    );
    assert!(ks.contains(&format!("--url={u}/repo/")), "{ks}");

    for (path, code) in [
        ("/ks/52:54:00:aa:00:99", 404),
        ("/ks/not-a-mac", 400),
        ("/ks", 400),
        ("/ipxe?mac=zz", 400),
        ("/pxelinux/52:54:00:aa:00:99", 404),
        ("/grub/..%2f..%2fetc%2fpasswd", 400),
        ("/repo/config", 404), // no --repo given
    ] {
        assert_eq!(curl(&[&format!("{u}{path}")]).0, code, "{path}");
    }

    // Callbacks: recorded, unknown 404, malformed 400.
    assert_eq!(
        curl(&["-X", "POST", &format!("{u}/built/52:54:00:aa:00:01")]).0,
        200
    );
    assert_eq!(
        curl(&["-X", "POST", &format!("{u}/failed/52:54:00:aa:00:99")]).0,
        404
    );
    assert_eq!(curl(&["-X", "POST", &format!("{u}/failed/xyz")]).0, 400);
    assert_eq!(curl(&[&format!("{u}/built/52:54:00:aa:00:01")]).0, 405);

    // Graceful shutdown on SIGTERM, and the access log is flushed on the way out.
    let mut s = s;
    s.signal(Signal::TERM);
    let status = wait_exit(&mut s.child);
    assert!(status.success(), "{status:?}");
    let logs = s.logs();
    let access: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j.get("status").is_some())
        .collect();
    assert!(
        access.iter().any(|j| j["path"] == "/ks/52:54:00:aa:00:99"
            && j["status"] == 404
            && j["method"] == "GET"),
        "{logs}"
    );
    assert!(logs.contains("\"event\":\"shutdown\""), "{logs}");
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("server did not exit");
}

#[test]
fn build_events_are_appended_to_the_json_log() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let log = d.path().join("builds.jsonl");
    std::fs::write(&log, "{\"earlier\":true}\n").unwrap();
    let s = Server::start(
        d.path(),
        &["-i", inv.to_str().unwrap(), "--log", log.to_str().unwrap()],
    );
    assert_eq!(http(s.addr, "POST", "/built/52-54-00-AA-00-03").0, 200);
    assert_eq!(http(s.addr, "POST", "/failed/52:54:00:aa:00:01").0, 200);
    // A failure report's body (cairn install's log tail) is kept, its last 8 KiB.
    let long = format!("{}\nerror: disk too small\n", "x".repeat(9000));
    let u = format!("{}/failed/52:54:00:aa:00:01", s.url);
    assert_eq!(curl(&["-X", "POST", "--data-binary", &long, &u]).0, 200);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        lines[0]["earlier"], true,
        "existing content kept: append-only"
    );
    assert_eq!(lines[1]["event"], "built");
    assert_eq!(lines[1]["mac"], "52:54:00:aa:00:03");
    assert_eq!(lines[1]["host"], "node2");
    assert_eq!(lines[2]["event"], "failed");
    assert!(lines[2]["ts"].as_str().unwrap().ends_with('Z'));
    assert!(lines[2].get("log").is_none(), "no body, no log");
    let log = lines[3]["log"].as_str().unwrap();
    assert_eq!(log.len(), 8 * 1024);
    assert!(log.ends_with("error: disk too small\n"), "{log}");
}

#[test]
fn ostree_pull_through_repo_and_traversal_is_impossible() {
    if !have_tool("ostree", "Debian package ostree (scripts/setup.sh)") {
        panic!("ostree CLI required");
    }
    let d = tempdir();
    let repo = make_repo(d.path(), REF);
    // Things a traversal would reach: a secret beside the repo and symlinks out of it.
    std::fs::write(d.path().join("secret"), "TOP-SECRET\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", repo.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../secret", repo.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("config", repo.join("inner-link")).unwrap();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let s = Server::start(
        d.path(),
        &[
            "-i",
            inv.to_str().unwrap(),
            "--repo",
            repo.to_str().unwrap(),
        ],
    );

    let pulled = d.path().join("pulled");
    let r = format!("--repo={}", pulled.display());
    ostree(&[&r, "init", "--mode=archive"]);
    ostree(&[
        &r,
        "remote",
        "add",
        "--no-gpg-verify",
        "origin",
        &format!("{}/repo/", s.url),
    ]);
    ostree(&[&r, "pull", "origin", REF]);
    let want = ostree(&[&format!("--repo={}", repo.display()), "rev-parse", REF]);
    assert_eq!(ostree(&[&r, "rev-parse", REF]), want);
    assert_eq!(
        ostree(&[&r, "cat", REF, "/usr/share/cairn/hello.txt"]),
        "hello from cairn\n"
    );
    ostree(&[&r, "fsck"]);
    // `ostree remote refs` reads the summary through /repo/ too.
    assert!(ostree(&[&r, "remote", "refs", "origin"]).contains(REF));

    let (code, body) = s.get("/repo/config");
    assert_eq!(code, 200);
    assert!(body.contains("mode=archive"), "{body}");
    assert_eq!(
        s.get("/repo/inner-link").0,
        200,
        "symlinks inside the repo still work"
    );
    for path in [
        "/repo/../secret",
        "/repo/../../../../etc/passwd",
        "/repo/%2e%2e/secret",
        "/repo/%2E%2E/%2e%2e/etc/passwd",
        "/repo/objects/%2e%2e/%2e%2e/secret",
        "/repo/..%2fsecret",
        "/repo//etc/passwd",
        "/repo/%2fetc%2fpasswd",
        "/repo/abs-link",
        "/repo/rel-link",
        "/repo/objects",
        "/repo/",
    ] {
        let (code, body) = s.get(path);
        assert!(code == 400 || code == 404, "{path}: {code}");
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("root:"),
            "{path}: {body}"
        );
        // curl as a second client, with its own encoding of the same path.
        let (c2, b2) = curl(&["--path-as-is", &format!("{}{path}", s.url)]);
        assert!(c2 == 400 || c2 == 404, "curl {path}: {c2}");
        assert!(
            !b2.contains("TOP-SECRET") && !b2.contains("root:"),
            "curl {path}"
        );
    }
}

fn token_of(s: &Server, mac: &str) -> String {
    let (code, body) = s.get(&format!("/pxelinux/{mac}"));
    assert_eq!(code, 200);
    body.split("?token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in {body}"))
        .to_string()
}

#[test]
fn build_tokens_work_once_then_401() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let s = Server::start(d.path(), &["-i", inv.to_str().unwrap(), "--tokens"]);
    let t1 = token_of(&s, "52:54:00:aa:00:01");
    assert_eq!(t1.len(), 32);
    // Every boot config of the host carries the same token.
    assert!(s.get("/grub/52:54:00:aa:00:01").1.contains(&t1));
    assert!(s.get("/ipxe?mac=52:54:00:aa:00:01").1.contains(&t1));
    assert_ne!(token_of(&s, "52:54:00:aa:00:02"), t1, "tokens are per host");

    assert_eq!(s.get("/ks/52:54:00:aa:00:01").0, 401);
    assert_eq!(
        s.get("/ks/52:54:00:aa:00:01?token=00000000000000000000000000000000")
            .0,
        401
    );
    let (code, body) = curl(&[&format!("{}/ks/52:54:00:aa:00:01?token={t1}", s.url)]);
    assert_eq!(code, 200);
    assert!(body.contains("ostreesetup"));
    let (code, body) = curl(&[&format!("{}/ks?mac=52:54:00:aa:00:01&token={t1}", s.url)]);
    assert_eq!((code, body.trim()), (401, "build token already used"));
    // The second MAC of a host shares its token.
    let t2 = token_of(&s, "52:54:00:aa:00:03");
    assert_eq!(s.get(&format!("/ks/52:54:00:aa:00:02?token={t2}")).0, 200);

    // SIGHUP re-arms used tokens and keeps unused ones.
    let t_unused = token_of(&s, "52:54:00:aa:00:02");
    assert_eq!(
        t_unused, t2,
        "same host, same token until used and reloaded"
    );
    s.signal(Signal::HUP);
    s.wait_log("\"event\":\"reload\",\"ok\":true", 1);
    let t1b = token_of(&s, "52:54:00:aa:00:01");
    assert_ne!(t1b, t1);
    assert_eq!(s.get(&format!("/ks/52:54:00:aa:00:01?token={t1}")).0, 401);
    assert_eq!(s.get(&format!("/ks/52:54:00:aa:00:01?token={t1b}")).0, 200);
    // The log never shows tokens.
    assert!(!s.logs().contains(&t1b));
}

#[test]
fn build_tokens_expire() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let s = Server::start(
        d.path(),
        &["-i", inv.to_str().unwrap(), "--tokens", "--token-ttl", "1"],
    );
    let t = token_of(&s, "52:54:00:aa:00:01");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = s.get(&format!("/ks/52:54:00:aa:00:01?token={t}"));
    assert_eq!((code, body.trim()), (401, "build token expired"));
}

#[test]
fn reload_during_requests_loses_none_and_bad_reload_keeps_old() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let s = Server::start(d.path(), &["-i", inv.to_str().unwrap()]);
    let addr = s.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mac = ["52:54:00:aa:00:01", "52:54:00:aa:00:03"][(n + i) % 2];
                    let (code, body) = http(addr, "GET", &format!("/ks/{mac}"));
                    assert_eq!(code, 200, "request {n} failed during reload: {body}");
                    assert!(body.contains("ostreesetup"));
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Reload repeatedly, each time with a new host added.
    for i in 0..10 {
        let extra = format!("  - hostname: new{i}\n    mac: \"52:54:00:bb:00:{i:02x}\"\n");
        std::fs::write(&inv, hosts(&extra)).unwrap();
        s.signal(Signal::HUP);
        s.wait_log("\"event\":\"reload\",\"ok\":true", i + 1);
        assert_eq!(
            s.get(&format!("/ks/52:54:00:bb:00:{i:02x}")).0,
            200,
            "new host served after reload {i}"
        );
        if i > 0 {
            assert_eq!(
                s.get(&format!("/ks/52:54:00:bb:00:{:02x}", i - 1)).0,
                404,
                "removed host gone"
            );
        }
    }
    // A broken inventory: the reload is refused, the old state keeps serving.
    std::fs::write(
        &inv,
        hosts("  - hostname: bad\n    mac: \"52:54:00:aa:00:01\"\n"),
    )
    .unwrap();
    s.signal(Signal::HUP);
    let logs = s.wait_log("\"ok\":false", 1);
    let line = logs.lines().find(|l| l.contains("\"ok\":false")).unwrap();
    let j: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains("duplicate MAC 52:54:00:aa:00:01"),
        "{line}"
    );
    assert!(
        j["error"]
            .as_str()
            .unwrap()
            .contains(&format!("{}:", inv.display())),
        "{line}"
    );
    assert_eq!(j["kept_generation"], 11);
    assert_eq!(
        s.get("/ks/52:54:00:bb:00:09").0,
        200,
        "old state still served"
    );
    assert!(s.get("/healthz").1.contains("generation=11"));
    std::fs::write(&inv, "hosts: [\n").unwrap();
    s.signal(Signal::HUP);
    s.wait_log("\"ok\":false", 2);
    assert_eq!(s.get("/ks/52:54:00:bb:00:09").0, 200);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(total > 10, "only {total} requests during reloads");
    eprintln!("reload test: {total} requests, all 200");
}

#[test]
fn every_request_is_logged_by_every_worker() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let log = d.path().join("access.jsonl");
    let mut s = Server::start(
        d.path(),
        &[
            "-i",
            inv.to_str().unwrap(),
            "--workers",
            "3",
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    // Separate connections (spread over the workers' listeners by the kernel), hitting the
    // direct /ks path, the router, and errors.
    let mut want = Vec::new();
    for i in 0..30 {
        let (path, code) = match i % 3 {
            0 => ("/ks/52:54:00:aa:00:01", 200),
            1 => ("/ks/52:54:00:aa:00:99", 404),
            _ => ("/pxelinux/52-54-00-AA-00-02", 200),
        };
        let (got, body) = http(s.addr, "GET", path);
        assert_eq!(got, code, "{path}: {body}");
        want.push((path, code, body.len()));
    }
    // And several requests on one keep-alive connection.
    let u = &s.url;
    let o = std::process::Command::new("curl")
        .args([
            "-fsS",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
        ])
        .args([2, 3, 2].map(|n| format!("{u}/ks/52:54:00:aa:00:0{n}")))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    s.signal(Signal::TERM);
    assert!(wait_exit(&mut s.child).success());

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), want.len() + 3, "{lines:#?}");
    for (path, code, len) in &want {
        let n = lines
            .iter()
            .filter(|j| j["path"] == *path && j["status"] == *code)
            .count();
        assert_eq!(n, 10, "{path}");
        let j = lines.iter().find(|j| j["path"] == *path).unwrap();
        assert_eq!(j["bytes"], *len as u64, "{j}");
        assert_eq!(j["method"], "GET");
        assert!(
            j["remote"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{j}"
        );
        assert!(j["ts"].as_str().unwrap().ends_with('Z'), "{j}");
    }
    for (n, times) in [(2, 2), (3, 1)] {
        let path = format!("/ks/52:54:00:aa:00:0{n}");
        assert_eq!(
            lines.iter().filter(|j| j["path"] == path).count(),
            times,
            "{path}"
        );
    }
}

/// Opens a connection from 127.0.0.1 that sends half a request line and then nothing.
fn half_open(addr: std::net::SocketAddr) -> Option<std::net::TcpStream> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.write_all(b"GET /ks/52:54").ok()?;
    Some(s)
}

/// Fetches `/ks/<mac>` `n` times from 127.0.0.2, each on a new connection, with curl; returns
/// the status codes and the sorted times in seconds.
fn ks_from_other_address(s: &Server, n: usize) -> (Vec<u16>, Vec<f64>) {
    let url = format!("{}/ks/52:54:00:aa:00:01", s.url);
    let mut args = vec![
        "-s",
        "--interface",
        "127.0.0.2",
        "--max-time",
        "2",
        "--fail-early",
    ];
    args.extend(["-H", "Connection: close"]);
    args.extend(["-w", "%{http_code} %{time_total}\\n"]);
    // -o applies to one URL each.
    for _ in 0..n {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .expect("spawn curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (mut codes, mut times) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let (c, t) = line.split_once(' ').unwrap();
        codes.push(c.parse().unwrap());
        times.push(t.parse::<f64>().unwrap());
    }
    times.sort_by(f64::total_cmp);
    (codes, times)
}

/// Issue 16: one address fills the server's descriptor limit with half-sent requests and keeps
/// opening more; another address still gets its kickstart at once. The timeouts are long here
/// and the per-address cap is off, so what is tested is the overall cap giving way to the
/// newcomer (with the caps off the server reaches EMFILE and curl gets nothing: the test fails).
#[test]
fn a_greedy_address_at_the_descriptor_limit_does_not_lock_out_others() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let s = Server::start_nofile(
        d.path(),
        256,
        &[
            "-i",
            inv.to_str().unwrap(),
            "--workers",
            "2",
            "--header-timeout",
            "120",
            "--max-conns-per-addr",
            "100000",
        ],
    );
    // More connections than the server has descriptors.
    let mut greedy: Vec<_> = (0..400).filter_map(|_| half_open(s.addr)).collect();
    assert!(greedy.len() > 200, "only {} connections", greedy.len());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (stop, addr) = (stop.clone(), s.addr);
        std::thread::spawn(move || {
            let mut more = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && more.len() < 3000 {
                more.extend(half_open(addr));
                std::thread::sleep(Duration::from_millis(2));
            }
            more
        })
    };
    let (codes, times) = ks_from_other_address(&s, 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    greedy.extend(flood.join().unwrap());
    assert_eq!(codes.len(), 200, "curl gave up: {codes:?}");
    assert!(codes.iter().all(|&c| c == 200), "{codes:?}");
    let p99 = times[times.len() * 99 / 100 - 1];
    eprintln!(
        "greedy connections attempted: {}; p99 {:.1} ms, max {:.1} ms",
        greedy.len(),
        p99 * 1e3,
        times[times.len() - 1] * 1e3
    );
    assert!(p99 < 0.1, "p99 {p99} s over {times:?}");
    // The greedy address was refused and evicted, and the log says so (once the worker's
    // 200 ms access-log buffer is handed over: reading at once raced it).
    s.wait_log(r#""status":503"#, 1);
}

/// Half a request line is cut at --header-timeout; an idle keep-alive connection at
/// --keepalive-timeout; a client that stops reading a response at --send-timeout.
#[test]
fn timeouts_close_connections_that_stall() {
    use std::io::{Read, Write};
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let files = d.path().join("files");
    std::fs::create_dir(&files).unwrap();
    // Larger than loopback's socket buffers on both sides, so the writer must block.
    let big = 64 << 20;
    std::fs::write(files.join("big"), vec![7u8; big]).unwrap();
    let s = Server::start(
        d.path(),
        &[
            "-i",
            inv.to_str().unwrap(),
            "--files",
            files.to_str().unwrap(),
        ]
        .into_iter()
        .chain(["--header-timeout", "1", "--keepalive-timeout", "1"])
        .chain(["--send-timeout", "1"])
        .collect::<Vec<_>>(),
    );
    let closed_within = |mut c: std::net::TcpStream, limit: Duration| {
        c.set_read_timeout(Some(limit)).unwrap();
        let t = std::time::Instant::now();
        let mut sink = Vec::new();
        let r = c.read_to_end(&mut sink);
        assert!(
            r.is_ok() && t.elapsed() < limit,
            "{r:?} after {:?}",
            t.elapsed()
        );
        sink
    };
    closed_within(half_open(s.addr).unwrap(), Duration::from_secs(4));

    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let got = closed_within(c, Duration::from_secs(4));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));

    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(c, "GET /files/big HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    c.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let mut got = Vec::new();
    // Reset or end of file: either way the response stops short.
    let _ = c.read_to_end(&mut got);
    assert!(
        got.len() < big,
        "the whole response arrived: no send timeout"
    );
}

/// A request whose body stops coming holds nothing: no endpoint reads a request body, so the
/// answer comes at once and the connection closes (an unread body is never kept alive), well
/// inside --body-timeout and long before the 30 s header and keep-alive timeouts could act.
#[test]
fn a_stalled_request_body_does_not_hold_the_connection() {
    use std::io::{Read, Write};
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &hosts(""));
    let log = d.path().join("builds.jsonl");
    let s = Server::start(
        d.path(),
        &[
            "-i",
            inv.to_str().unwrap(),
            "--log",
            log.to_str().unwrap(),
            "--body-timeout",
            "2",
            "--header-timeout",
            "30",
            "--keepalive-timeout",
            "30",
        ],
    );
    let mut c = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "POST /built/52:54:00:aa:00:01 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = std::time::Instant::now();
    let mut got = Vec::new();
    let r = c.read_to_end(&mut got);
    let took = t.elapsed();
    assert!(
        r.is_ok(),
        "{r:?} after {took:?}: the connection stayed open"
    );
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    // And the event was recorded once, from the headers alone.
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Memory stays bounded across reloads, idle workers included (issue 16: it used to grow by
/// about one snapshot per reload until every worker had served a request; 2.4x the start after
/// four reloads at 5,000 hosts). The bound is generous (1.6x): the point is no growth per reload.
#[test]
fn reloads_do_not_grow_memory() {
    let d = tempdir();
    let many: String = (0..3000)
        .map(|i| {
            format!(
                "  - hostname: m{i}\n    mac: \"52:54:00:cc:{:02x}:{:02x}\"\n",
                i / 256,
                i % 256
            )
        })
        .collect();
    let inv = write(d.path(), "inv.yaml", &hosts(&many));
    let s = Server::start(d.path(), &["-i", inv.to_str().unwrap(), "--workers", "4"]);
    let start = rss_kb(s.child.id());
    for i in 1..=4 {
        s.signal(Signal::HUP);
        s.wait_log("\"event\":\"released\",\"freed\":true", i);
    }
    let after = rss_kb(s.child.id());
    assert!(
        after * 10 <= start * 16,
        "RSS {start} kB at start, {after} kB after 4 reloads"
    );
    eprintln!("reload memory: {start} kB at start, {after} kB after 4 reloads");
}
