//! The serve_request target: an arbitrary method and request target through the router
//! `cairn serve` uses (path, query and MAC parsing, percent-decoding, `/repo/` confinement), and
//! the hot path's MAC parser checked against the general one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use tower_service::Service;

use cairn_kickstart::Mac;

const INVENTORY: &str = include_str!("../../kickstart/inventory.yaml");

/// A fixed directory, made once: the example inventory, a tiny repository and the event log.
/// Fixed (not a temp dir) because every afl restart of the target would leave one behind; in
/// /dev/shm when there is one, because every recorded event is fsynced.
fn fixture_dir() -> PathBuf {
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join("cairn-fuzz-serve")
}

/// Removes the fixture directory (the regression test calls it when done).
pub fn cleanup() {
    let _ = std::fs::remove_dir_all(fixture_dir());
}

fn fixture() -> PathBuf {
    let dir = fixture_dir();
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("objects/ab")).unwrap();
    let write = |p: &Path, text: &str| {
        if std::fs::read_to_string(p).ok().as_deref() != Some(text) {
            let tmp = p.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, p).unwrap();
        }
    };
    write(&dir.join("inventory.yaml"), INVENTORY);
    write(
        &repo.join("config"),
        "[core]\nrepo_version=1\nmode=archive-z2\n",
    );
    write(&repo.join("objects/ab/cdef.filez"), "object bytes\n");
    dir
}

struct Fixture {
    events: PathBuf,
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn fixture_router() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = fixture();
        let opts = cairn_serve::Options {
            inventory: dir.join("inventory.yaml"),
            templates: None,
            server_url: None,
            repo: Some(dir.join("repo")),
            files: None,
            snapshot: None,
            listen: "127.0.0.1:8080".parse().unwrap(),
            token_ttl: None,
            event_log: Some(dir.join("events.jsonl")),
            access_log: Some("/dev/null".into()),
            workers: 1,
            limits: cairn_serve::Limits::default(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The router's handlers spawn onto the runtime they run on: build it inside.
        let router = rt
            .block_on(async { cairn_serve::router_for(&opts) })
            .unwrap();
        Fixture {
            events: dir.join("events.jsonl"),
            rt,
            router,
        }
    })
}

/// Input: one byte choosing the method, then the request target (`/ks/...?token=...`).
pub fn request(data: &[u8]) {
    let Some((m, target)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    hot_path_mac(target);
    let method = if m % 2 == 0 {
        Method::GET
    } else {
        Method::POST
    };
    // hyper refuses what does not parse as a URI before any cairn code runs.
    let Ok(mut req) = Request::builder()
        .method(method)
        .uri(target)
        .body(Body::empty())
    else {
        return;
    };
    let remote: SocketAddr = "192.0.2.9:4000".parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(remote));
    let f = fixture_router();
    // Known MACs posting /built append to the event log: keep it from growing without bound.
    if let Ok(log) = std::fs::OpenOptions::new().write(true).open(&f.events) {
        if log.metadata().is_ok_and(|m| m.len() > 1 << 20) {
            let _ = log.set_len(0);
        }
    }
    let mut router = f.router.clone();
    f.rt.block_on(async move {
        let resp = match router.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        assert!(
            !status.is_server_error() || status.as_u16() == 503,
            "{target}: {status}"
        );
        let _ = resp.into_body().collect().await;
    });
}

/// The hot `/ks/<mac>` path parses with `Mac::parse_canonical`; whatever it accepts, the general
/// parser must read as the same address.
fn hot_path_mac(target: &str) {
    let Some(raw) = target.strip_prefix("/ks/") else {
        return;
    };
    if let Some(mac) = Mac::parse_canonical(raw) {
        assert_eq!(raw.parse::<Mac>().ok(), Some(mac), "{raw}");
    }
    let _ = raw.parse::<Mac>();
}
