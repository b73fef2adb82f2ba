//! Property: `cairn kickstart check` accepts an inventory exactly when `kickstart render` and
//! `serve` can use it. Inventories are generated structurally (defaults, roles, hosts; every field
//! drawn from values that are valid, wrong in type, wrong in content, dangling or duplicated), then
//! each goes through the three real code paths: `kickstart::load` (what `check` runs), load plus
//! `render_to_dir` into a temp dir (what `render` runs), and this crate's snapshot `build` (what
//! `serve` runs at start and on SIGHUP). All three get the same `--server-url`: render refuses an
//! inventory without `server:` unless given one, which `check` cannot know about.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use super::state::{self, Loader, TokenPolicy};
use cairn_kickstart::{self as kickstart, LoadOptions, Templates};

const SERVER: &str = "http://192.0.2.1:8080";
const HASH: &str = "$6$cairnexample$3yGplWObU2CLtbRf1OFSYXQFSaYHAEoeB/vVBKTAvTxv38aRju5hGci2xXC1xIoaouP8lvJewTUaFFsMhcoRC1";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFNMcTTw+M9xm8hFXzUOdk9NRLdAHOpVW7BSiUUWwp0a a@b";

/// Where a fault lands: the top level, or the host with this index (modulo the host count).
#[derive(Debug, Clone)]
enum Scope {
    Top,
    Host(usize),
}

/// One mistake: `value` written at the dotted `path` (`Null` removes the key).
#[derive(Debug, Clone)]
struct Fault {
    scope: Scope,
    path: &'static str,
    value: Value,
}

/// Mistakes an author makes, each on its own: wrong type, wrong content, dangling references,
/// duplicates, missing required keys, and a few that are fine (a dotted hostname).
fn host_faults() -> Vec<(&'static str, Value)> {
    vec![
        ("macs", json!([])),
        ("mac", json!([])),
        ("mac", json!("zz:54:00:00:00:01")),
        ("mac", json!("aabb.ccdd.\u{29a};e")),
        ("mac", json!("52:54:00:00:00:00")),
        ("macs", json!(["52:54:00:00:00:aa", "52:54:00:00:00:aa"])),
        ("macs", json!(["52:54:00:00:00:ab", "52-54-00-00-00-ac"])),
        ("hostname", Value::Null),
        ("hostname", json!("Bad_Name")),
        ("hostname", json!("h0")),
        ("hostname", json!("c.example.com")),
        ("hostname", json!(7)),
        ("role", json!("missing-role")),
        ("roles", json!(["web", "web"])),
        ("network.ip", json!("300.1.2.3/24")),
        ("network.ip", json!("192.0.2.0/24")),
        ("network.ip", json!("192.0.2.255/24")),
        ("network.gateway", json!("10.0.0.1")),
        ("network.netmask", json!("255.0.255.0")),
        ("network.vlan", json!(5000)),
        ("network.mtu", json!(10)),
        ("network.bootproto", json!("statc")),
        ("network.bootproto", json!("dhcp")),
        ("network.bond", json!({"name": "bond0", "slaves": []})),
        (
            "network.bond",
            json!({"name": "bond0", "mode": "802.3ad", "slaves": ["ens1f0", "ens1f1"]}),
        ),
        ("network.dns", json!(["not an address"])),
        ("disk.fstype", json!("zfs")),
        ("disk.boot-size", json!("lots")),
        ("disk.var-size", json!([1])),
        ("disk.device", json!("")),
        ("ostree.url", json!("ftp://x/")),
        ("ostree.gpg", json!("maybe")),
        ("ostree.ref", json!("")),
        ("ostree.osname", json!("bad name")),
        ("kernel-args", json!(["two words"])),
        ("kernel-args", json!("a string")),
        ("sysctl-presets", json!(["no-such-preset"])),
        ("root-password", json!("hunter2")),
        ("ssh-keys", json!(["not a key"])),
        ("timezone", json!("Mars/Olympus")),
        ("domain", json!("bad domain!")),
        ("pxe.append", json!(7)),
        ("surprise", json!(1)),
    ]
}

fn top_faults() -> Vec<(&'static str, Value)> {
    vec![
        ("api-version", json!("cairn/v2")),
        ("api-version", Value::Null),
        ("server", json!("not a url")),
        ("server", Value::Null),
        ("hosts", json!("not a list")),
        ("hosts", json!([])),
        ("defaults.ostree", Value::Null),
        ("defaults.disk", Value::Null),
        ("defaults.root-password", Value::Null),
        ("roles.web.disk.var-size", json!([1])),
        ("roles.web.network.vlan", json!(0)),
        ("roles", json!(["web"])),
    ]
}

fn fault() -> BoxedStrategy<Fault> {
    let host =
        (0..3usize, prop::sample::select(host_faults())).prop_map(|(i, (path, value))| Fault {
            scope: Scope::Host(i),
            path,
            value,
        });
    let top = prop::sample::select(top_faults()).prop_map(|(path, value)| Fault {
        scope: Scope::Top,
        path,
        value,
    });
    prop_oneof![4 => host, 1 => top].boxed()
}

/// A valid host `i`: its own name, MAC (in one of the three spellings) and address.
fn host(i: usize, spelling: usize, network: bool, role: bool) -> Value {
    let mac = match spelling % 3 {
        0 => format!("52:54:00:00:00:{i:02x}"),
        1 => format!("52-54-00-00-00-{i:02X}"),
        _ => format!("5254.0000.00{i:02x}"),
    };
    let mut h = json!({ "hostname": format!("h{i}"), "mac": mac });
    if network {
        h["network"] = json!({ "ip": format!("192.0.2.{}/24", 10 + i), "gateway": "192.0.2.1",
            "dns": ["192.0.2.53"] });
    }
    if role {
        h["role"] = json!("web");
    }
    h
}

/// A valid inventory of 1-3 hosts with some optional parts, then 0-2 faults.
fn inventory() -> BoxedStrategy<Value> {
    let hosts = prop::collection::vec((0..3usize, any::<bool>(), any::<bool>()), 1..4);
    (hosts, any::<bool>(), prop::collection::vec(fault(), 0..3))
        .prop_map(|(hosts, roles, faults)| {
            let mut inv = json!({
                "api-version": "cairn/v1",
                "server": SERVER,
                "defaults": {
                    "domain": "lab.example.com", "timezone": "UTC", "root-password": HASH,
                    "ssh-keys": [KEY], "kernel-args": ["console=ttyS0"],
                    "sysctl-presets": ["hardening"],
                    "disk": { "device": "sda", "fstype": "xfs", "boot-size": "1GiB" },
                    "ostree": { "osname": "cairn", "ref": "cairn/x86_64/a", "url": "http://x/repo/" },
                },
                "hosts": hosts.iter().enumerate()
                    .map(|(i, (sp, net, role))| host(i, *sp, *net, *role && roles))
                    .collect::<Vec<_>>(),
            });
            if roles {
                inv["roles"] = json!({ "web": { "sysctl-presets": ["kubernetes-node"],
                    "disk": { "var-size": "200GiB" } } });
            }
            for f in faults {
                apply(&mut inv, &f);
            }
            inv
        })
        .boxed()
}

fn apply(inv: &mut Value, f: &Fault) {
    let target = match f.scope {
        Scope::Top => Some(&mut *inv),
        Scope::Host(i) => inv["hosts"]
            .as_array_mut()
            .filter(|hs| !hs.is_empty())
            .map(|hs| {
                let n = hs.len();
                &mut hs[i % n]
            }),
    };
    let Some(mut node) = target else {
        return;
    };
    let parts: Vec<&str> = f.path.split('.').collect();
    let (last, parents) = parts.split_last().unwrap();
    for p in parents {
        if !node.is_object() {
            return;
        }
        node = node
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert_with(|| json!({}));
    }
    if let Some(map) = node.as_object_mut() {
        match &f.value {
            Value::Null => map.remove(*last),
            v => map.insert(last.to_string(), v.clone()),
        };
    }
}

/// (check, render, serve): each `Ok` or the first error, as text.
fn verdicts(path: &Path, out: &Path) -> [Result<(), String>; 3] {
    let opts = LoadOptions {
        server_url: Some(SERVER.into()),
    };
    let check = kickstart::load(path, &opts)
        .map(drop)
        .map_err(|e| e.to_string());
    let render = kickstart::load(path, &opts)
        .and_then(|inv| kickstart::render_to_dir(&inv, &Templates::load(None)?, out))
        .map(drop)
        .map_err(|e| e.to_string());
    let loader = Loader {
        inventory: path.to_path_buf(),
        load: opts,
        templates: None,
        tokens: Some(TokenPolicy {
            ttl: Duration::from_secs(60),
        }),
    };
    let serve = state::build(&loader, 1, &mut HashMap::new())
        .map(drop)
        .map_err(|e| e.to_string());
    [check, render, serve]
}

#[test]
fn check_accepts_exactly_what_render_and_serve_use() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let with_hosts = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let result = runner.run(&inventory(), |inv| {
        // JSON is YAML: the loader reads it as it reads any inventory.
        std::fs::write(&path, serde_json::to_string_pretty(&inv).unwrap()).unwrap();
        let out = dir.path().join("out");
        let [check, render, serve] = verdicts(&path, &out);
        let _ = std::fs::remove_dir_all(&out);
        prop_assert_eq!(
            check.is_ok(),
            render.is_ok(),
            "check {:?} render {:?}",
            check,
            render
        );
        prop_assert_eq!(
            check.is_ok(),
            serve.is_ok(),
            "check {:?} serve {:?}",
            check,
            serve
        );
        match &check {
            Ok(()) => accepted.fetch_add(1, Ordering::Relaxed),
            Err(_) => refused.fetch_add(1, Ordering::Relaxed),
        };
        if check.is_ok() && inv["hosts"].as_array().is_some_and(|h| !h.is_empty()) {
            with_hosts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // A generator that only makes bad (or only good) inventories would prove nothing.
    let (a, r, h) = (
        accepted.into_inner(),
        refused.into_inner(),
        with_hosts.into_inner(),
    );
    eprintln!("accepted {a} ({h} with hosts), refused {r}");
    assert!(
        h >= 60 && r >= 60,
        "accepted {a} ({h} with hosts), refused {r} of 300"
    );
}
