//! `cairn agent` end to end: real sysroots (one per node, real libostree), real `cairn agent`
//! processes, real lock servers on a real etcd cluster.
//!
//! What is simulated: the reboot. A sysroot in a directory has no boots, so each node's reboot
//! command is a script that appends a timestamped `reboot` line to a shared event log and exits;
//! the agent then exits as it would when the host goes down, and the harness starts it again:
//! that process is the next boot (the agent gives each process on such a sysroot its own boot id,
//! and the default deployment is the one "booting", as for `cairn health check`). Hooks are
//! scripts logging to the same file, standing in for `kubectl cordon/drain/uncordon`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::etcd::{self, Cluster};
use crate::common::sysroot::{Fixture, OS, REF};
use crate::common::*;
use crate::fleet::LockServer;

const KEY: &str = "com.coreos.airlock/groups/default/v1/semaphore";

/// The remote (with its commits), the shared event log and the hook scripts.
struct Bench {
    fx: Fixture,
    log: PathBuf,
    hook: PathBuf,
}

/// One node: its sysroot, config, and the agent's stdout (its event stream).
struct Node {
    name: String,
    sysroot: PathBuf,
    config: PathBuf,
    events: PathBuf,
    health: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let fx = Fixture::new();
        let log = fx.dir.path().join("events.log");
        let hook = fx.dir.path().join("hook");
        // `hook EVENT NODE`: one timestamped JSON line; as the reboot command it is the reboot.
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nprintf '{{\"time\":\"%s\",\"node\":\"%s\",\"event\":\"%s\",\"to\":\"%s\"}}\\n' \
                 \"$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)\" \"$2\" \"$1\" \"${{CAIRN_REBOOT_TO:-}}\" >> {}\n",
                log.display()
            ),
        )
        .unwrap();
        chmod_x(&hook);
        Bench { fx, log, hook }
    }

    /// A node on the remote's current commit, with `strategy` (TOML for `[updates]`) and a
    /// health check that fails when `<node>/broken` exists and the booting deployment starts
    /// with `bad` (a checksum prefix; empty: never).
    fn node(&self, name: &str, strategy: &str, pre_reboot: &str) -> Node {
        let dir = self.fx.dir.path().join(name);
        let sysroot = dir.join("sysroot");
        std::fs::create_dir_all(&sysroot).unwrap();
        let url = self.fx.url();
        cairn_ok(
            [
                "deploy",
                REF,
                "--remote",
                "origin",
                "--url",
                &url,
                "--karg",
                "root=/dev/vda3",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(["--sysroot".into(), sysroot.display().to_string()])
            .chain(["--os".into(), OS.into()]),
        );
        let health = dir.join("health");
        std::fs::create_dir_all(health.join("required.d")).unwrap();
        let hook = self.hook.display();
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                r#"[agent]
sysroot = "{sysroot}"
os = "{OS}"
interval_secs = 0.2
jitter_secs = 0.1

[identity]
id = "{name}"
node_name = "{name}"

{strategy}

[hooks]
pre_reboot = [{pre_reboot}["{hook}", "pre-reboot", "{{node}}"]]
post_boot = [["{hook}", "post-boot", "{{node}}"]]

[reboot]
command = ["{hook}", "reboot", "{name}"]

[health]
config = "{health}"
max_attempts = 1
"#,
                sysroot = sysroot.display(),
                health = health.display(),
            ),
        )
        .unwrap();
        Node {
            name: name.into(),
            sysroot,
            config,
            events: dir.join("events.jsonl"),
            health,
        }
    }

    /// The shared log's lines for `node` with `event`.
    fn logged(&self, node: &str, event: &str) -> Vec<serde_json::Value> {
        read_lines(&self.log)
            .into_iter()
            .filter(|e| e["node"] == node && e["event"] == event)
            .collect()
    }
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn read_lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

impl Node {
    fn events(&self, event: &str) -> Vec<serde_json::Value> {
        read_lines(&self.events)
            .into_iter()
            .filter(|e| e["event"] == event)
            .collect()
    }

    fn default_checksum(&self) -> String {
        let st = cairn_json([
            "status",
            "--json",
            "--sysroot",
            &self.sysroot.display().to_string(),
            "--os",
            OS,
        ]);
        st["deployments"][0]["checksum"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The health check fails on this node for deployments of commit `bad`.
    fn break_health_for(&self, bad: &str) {
        let script = self.health.join("required.d/10-app");
        std::fs::write(
            &script,
            format!("#!/bin/sh\ncase \"$CAIRN_DEPLOYMENT\" in {bad}.*) exit 1 ;; esac\n"),
        )
        .unwrap();
        chmod_x(&script);
    }

    /// One `cairn agent` run; its events are appended to the node's stream.
    fn agent(&self, args: &[&str]) -> std::process::Output {
        use std::io::Write;
        let o = run_cairn(
            ["agent", "--config", &self.config.display().to_string()]
                .into_iter()
                .chain(args.iter().copied()),
        );
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.events)
            .and_then(|mut f| f.write_all(&o.stdout))
            .unwrap();
        o
    }
}

/// Runs a node's long-running agent, starting it again each time it exits after asking for a
/// reboot (that start is the next boot), until `stop`. Returns the exit statuses.
fn boot_loop(node: &Node, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<i32>> {
    let (config, events) = (node.config.clone(), node.events.clone());
    let errlog = node.events.with_extension("stderr");
    std::thread::spawn(move || {
        let mut statuses = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let append = |p: &Path| {
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(p)
                    .unwrap()
            };
            let mut child: Child = cairn()
                .arg("agent")
                .arg("--config")
                .arg(&config)
                .stdout(append(&events))
                .stderr(append(&errlog))
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn cairn agent");
            let status = loop {
                if let Some(st) = child.try_wait().unwrap() {
                    break st.code().unwrap_or(-1);
                }
                if stop.load(Ordering::Relaxed) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return statuses;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            statuses.push(status);
            assert_eq!(status, 0, "the agent exits only to reboot ({config:?})");
        }
        statuses
    })
}

/// Polls `done` every 200 ms; panics with `what` after `limit`.
fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Holders of the default group's semaphore, as stored in etcd.
fn holders(c: &Cluster) -> Vec<String> {
    c.get(KEY)
        .map(|v| serde_json::from_str::<serde_json::Value>(&v).unwrap())
        .map(|v| {
            v["holders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn fleetlock_toml(servers: &[&LockServer]) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.url)).collect();
    format!(
        "[updates]\nstrategy = \"fleetlock\"\n[updates.fleetlock]\nservers = [{}]\n",
        list.join(", ")
    )
}

/// Most nodes at once between taking a slot (`slot-taken`, after the server said yes) and giving
/// it back (`slot-released`'s `requested`, before asking): each such span lies inside the time
/// the slot was really held, so a count above the slots is a real violation.
fn max_concurrent(nodes: &[Node]) -> usize {
    let mut edges: Vec<(String, i32)> = Vec::new();
    for n in nodes {
        for e in n.events("slot-taken") {
            edges.push((e["time"].as_str().unwrap().into(), 1));
        }
        for e in n.events("slot-released") {
            edges.push((e["requested"].as_str().unwrap().into(), -1));
        }
    }
    // RFC 3339 in UTC with microseconds: the strings sort as the instants; a release before a
    // take at the same microsecond.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

/// Twelve nodes, two lock-server replicas on a three-member etcd cluster, two slots: the rollout
/// completes through the loss of the etcd leader and one replica, never more than two nodes are
/// between pre-reboot and steady-state, each node reboots once inside its slot, and every node
/// ends on the new commit with no slot held.
#[test]
fn a_fleet_of_twelve_rolls_out_two_at_a_time_through_failures() {
    if !etcd::available() {
        return;
    }
    let mut cluster = Cluster::start(3);
    let mut s1 = LockServer::start(&cluster, &["--slots", "2"]);
    let s2 = LockServer::start(&cluster, &["--slots", "2"]);
    let bench = Bench::new();
    let v1 = bench.fx.commit("1.0");
    let strategy = fleetlock_toml(&[&s1, &s2]);
    let nodes: Vec<Node> = (0..12)
        .map(|i| bench.node(&format!("node{i:02}"), &strategy, ""))
        .collect();
    let v2 = bench.fx.commit("2.0");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let loops: Vec<_> = nodes.iter().map(|n| boot_loop(n, stop.clone())).collect();
    let released = || {
        nodes
            .iter()
            .filter(|n| !n.events("slot-released").is_empty())
            .count()
    };
    wait_until(Duration::from_secs(180), "3 nodes through", || {
        released() >= 3
    });
    let leader = cluster.leader();
    cluster.kill(leader);
    s1.kill();
    let at_kill = released();
    eprintln!("killed etcd member {leader} and replica 1 after {at_kill} nodes");
    wait_until(Duration::from_secs(300), "all 12 nodes through", || {
        released() == 12
    });
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().expect("boot loop");
    }
    assert!(at_kill < 12, "the failures must hit mid-rollout");
    let max = max_concurrent(&nodes);
    eprintln!("rollout of 12 nodes took {took:?}; at most {max} nodes held a slot at once");
    assert_eq!(max, 2, "slots=2: never more, and both slots are used");
    for n in &nodes {
        assert_eq!(n.default_checksum(), v2, "{}", n.name);
        let reboots = bench.logged(&n.name, "reboot");
        assert_eq!(reboots.len(), 1, "{}: {reboots:?}", n.name);
        let reboot = reboots[0]["time"].as_str().unwrap();
        let taken = n.events("slot-taken");
        let rel = n.events("slot-released");
        assert_eq!((taken.len(), rel.len()), (1, 1), "{}", n.name);
        assert!(
            taken[0]["time"].as_str().unwrap() < reboot
                && reboot < rel[0]["requested"].as_str().unwrap(),
            "{}: the reboot happens inside the slot",
            n.name
        );
        let pre = bench.logged(&n.name, "pre-reboot");
        let post = bench.logged(&n.name, "post-boot");
        assert!(pre[0]["time"].as_str().unwrap() < reboot);
        assert!(reboot < post[0]["time"].as_str().unwrap());
    }
    assert!(holders(&cluster).is_empty(), "{:?}", holders(&cluster));
    assert_ne!(v1, v2);
}

/// A release whose health check fails on the first node: it rolls back, reboots into the old
/// deployment and keeps its slot, so no other node reboots; `cairn fleetlock release` lets the
/// rollout go on, and the failed node does not try that commit again.
#[test]
fn a_bad_release_halts_the_rollout_until_the_slot_is_released() {
    if !etcd::available() {
        return;
    }
    let cluster = Cluster::start(1);
    let server = LockServer::start(&cluster, &["--slots", "1"]);
    let bench = Bench::new();
    let v1 = bench.fx.commit("1.0");
    let strategy = fleetlock_toml(&[&server]);
    let nodes: Vec<Node> = (0..3)
        .map(|i| bench.node(&format!("node{i}"), &strategy, ""))
        .collect();
    let v2 = bench.fx.commit("2.0");
    nodes[0].break_health_for(&v2);
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = vec![boot_loop(&nodes[0], stop.clone())];
    wait_until(Duration::from_secs(60), "node0 takes the slot", || {
        !nodes[0].events("slot-taken").is_empty()
    });
    loops.extend(nodes[1..].iter().map(|n| boot_loop(n, stop.clone())));
    wait_until(Duration::from_secs(120), "node0 keeps its slot", || {
        !nodes[0].events("slot-kept").is_empty()
    });
    // The others ask again and again and are refused.
    wait_until(Duration::from_secs(60), "the others are refused", || {
        nodes[1..]
            .iter()
            .all(|n| n.events("waiting-for-slot").len() >= 5)
    });
    assert_eq!(nodes[0].default_checksum(), v1, "rolled back");
    let reboots: Vec<String> = bench
        .logged("node0", "reboot")
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reboots, [v2.clone(), v1.clone()], "into v2, then back");
    let kept = &nodes[0].events("slot-kept")[0];
    assert_eq!(kept["bad"], v2.as_str());
    for n in &nodes[1..] {
        assert!(bench.logged(&n.name, "reboot").is_empty(), "{}", n.name);
        assert_eq!(n.default_checksum(), v1);
    }
    assert_eq!(holders(&cluster), ["node0"]);

    cairn_ok([
        "fleetlock",
        "release",
        "--id",
        "node0",
        "--etcd",
        &cluster.endpoints(),
    ]);
    wait_until(Duration::from_secs(120), "the rollout goes on", || {
        nodes[1..]
            .iter()
            .all(|n| !n.events("slot-released").is_empty())
    });
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.join().expect("boot loop");
    }
    for n in &nodes[1..] {
        assert_eq!(n.default_checksum(), v2, "{}", n.name);
    }
    assert_eq!(nodes[0].default_checksum(), v1);
    assert_eq!(bench.logged("node0", "reboot").len(), 2, "no retry of v2");
    assert!(!nodes[0].events("skipped-bad").is_empty());
    assert!(holders(&cluster).is_empty());
}

/// `periodic` with the clock injected (`--now`): staged but no reboot outside the window (also
/// just after its end, and on a day without one), the reboot inside it (the window is 22:00 in
/// Berlin: 20:00 UTC in June), then the boot checks health and the node is up to date.
#[test]
fn periodic_reboots_only_inside_the_window() {
    let bench = Bench::new();
    let v1 = bench.fx.commit("1.0");
    let strategy = "[updates]\nstrategy = \"periodic\"\n[updates.periodic]\n\
        time_zone = \"Europe/Berlin\"\n[[updates.periodic.window]]\ndays = [\"Sat\"]\n\
        start_time = \"22:00\"\nlength_minutes = 60\n";
    let n = bench.node("node0", strategy, "");
    let v2 = bench.fx.commit("2.0");
    // Saturday 2024-06-01 noon, 21:00Z (23:00 Berlin: the end), Sunday 20:30Z.
    for now in [
        "2024-06-01T12:00:00Z",
        "2024-06-01T21:00:00Z",
        "2024-06-02T20:30:00Z",
    ] {
        let o = n.agent(&["--once", "--now", now]);
        assert_eq!(o.status.code(), Some(75), "{now}: {}", stderr(&o));
        assert!(bench.logged("node0", "reboot").is_empty(), "{now}");
        assert_eq!(n.default_checksum(), v1);
    }
    let waits = n.events("waiting-for-window");
    assert_eq!(waits[0]["nextOpen"], "2024-06-01T20:00:00Z");
    assert_eq!(waits[2]["nextOpen"], "2024-06-08T20:00:00Z");
    assert_eq!(
        n.events("staged").len(),
        1,
        "staged once, then found staged"
    );
    let o = n.agent(&["--once", "--now", "2024-06-01T20:30:00Z"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(bench.logged("node0", "reboot").len(), 1);
    assert_eq!(n.default_checksum(), v2);
    let o = n.agent(&["--once", "--now", "2024-06-03T09:00:00Z"]);
    assert_eq!(
        o.status.code(),
        Some(77),
        "the boot, then nothing new: {}",
        stderr(&o)
    );
    let checked = n.events("health-checked");
    assert_eq!(checked[0]["passed"], true);
    assert_eq!(bench.logged("node0", "post-boot").len(), 1);
}

/// A failing drain hook stops the reboot (immediate strategy): the update stays staged and the
/// current deployment stays the default.
#[test]
fn a_failing_pre_reboot_hook_stops_the_reboot() {
    let bench = Bench::new();
    let v1 = bench.fx.commit("1.0");
    let strategy = "[updates]\nstrategy = \"immediate\"\n";
    let n = bench.node("node0", strategy, "[\"false\"], ");
    bench.fx.commit("2.0");
    let o = n.agent(&["--once"]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let hooks = n.events("hook");
    assert_eq!(hooks[0]["ok"], false);
    assert!(bench.logged("node0", "reboot").is_empty());
    assert!(
        bench.logged("node0", "pre-reboot").is_empty(),
        "stops at the first failure"
    );
    assert_eq!(n.default_checksum(), v1);
}

/// The one shot for operators without the agent: `upgrade --reboot --fleetlock` takes the slot
/// and reboots; run again after the boot, it checks health and gives the slot back.
#[test]
fn upgrade_reboot_fleetlock_is_one_pass_of_the_agent() {
    if !etcd::available() {
        return;
    }
    let cluster = Cluster::start(1);
    let server = LockServer::start(&cluster, &["--slots", "1"]);
    let fx = Fixture::new();
    fx.commit("1.0");
    fx.deploy(&["--karg", "root=/dev/vda3"]);
    let v2 = fx.commit("2.0");
    let marker = fx.dir.path().join("rebooted");
    let run = || {
        let mut cmd = cairn();
        cmd.args([
            "upgrade",
            "--reboot",
            "--fleetlock",
            &server.url,
            "--id",
            "n1",
        ])
        .arg("--sysroot")
        .arg(&fx.sysroot)
        .args(["--os", OS])
        .env(
            "CAIRN_REBOOT_COMMAND",
            format!("echo $CAIRN_REBOOT_TO >> {}", marker.display()),
        );
        cmd.output().unwrap()
    };
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), v2);
    assert_eq!(holders(&cluster), ["n1"]);
    assert_eq!(fx.checksums()[0], v2);
    let o = run();
    assert_eq!(o.status.code(), Some(77), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("\"event\":\"slot-released\""),
        "{}",
        stdout(&o)
    );
    assert!(holders(&cluster).is_empty());
}
