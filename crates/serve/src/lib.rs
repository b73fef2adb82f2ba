//! `cairn serve`: kickstarts, boot configs and the OSTree repo for PXE clients, over HTTP.
//!
//! Every host's documents are rendered when the inventory loads, so answering is a hash lookup.
//! SIGHUP rebuilds the whole state off to the side and swaps it in only if it is valid;
//! SIGTERM/SIGINT stop accepting and let in-flight requests finish.

// User data (files, requests) must never panic the program: no unwrap/expect/indexing outside
// tests; clippy (-D warnings in CI) enforces it, and a provably safe site says why with #[allow].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

#[cfg(test)]
mod check_prop;
mod files;
mod http;
mod limits;
mod log;
mod state;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use files::check_path;
pub use limits::Limits;
use state::{Live, Loader, TokenPolicy};

use cairn_common::notice::{self, Notice};
use cairn_kickstart::{KickstartError, LoadOptions, Mac};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Inventory(#[from] KickstartError),
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    #[error("{0}: not an OSTree repository (no `config` and `objects/`)")]
    NotARepo(PathBuf),
    #[error("--snapshot {0}: not a package snapshot (no cairn-snapshot.json; make one with `cairn snapshot`)")]
    NotASnapshot(PathBuf),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub inventory: PathBuf,
    pub templates: Option<PathBuf>,
    /// Base URL hosts reach this server at; default: the inventory's `server:`, else the bound
    /// address.
    pub server_url: Option<String>,
    pub repo: Option<PathBuf>,
    /// Boot images (kernel, initrd) served under `/files/`.
    pub files: Option<PathBuf>,
    /// A package snapshot (`cairn snapshot`) served under `/snapshot/`, for
    /// `cairn compose --snapshot http://SERVER/snapshot/`.
    pub snapshot: Option<PathBuf>,
    pub listen: SocketAddr,
    /// One-time build tokens with this lifetime; `None` disables them.
    pub token_ttl: Option<Duration>,
    /// Build events (`/built`, `/failed`): append-only JSON lines.
    pub event_log: Option<PathBuf>,
    /// Access log (JSON lines); stderr when absent.
    pub access_log: Option<PathBuf>,
    /// Worker threads, each with its own listener and runtime; 0 = one per CPU.
    pub workers: usize,
    /// Timeouts and connection caps against clients that hold connections without using them.
    pub limits: Limits,
}

struct App {
    live: Live,
    repo: Option<Arc<files::Root>>,
    files: Option<Arc<files::Root>>,
    snapshot: Option<Arc<files::Root>>,
    access: Arc<log::AccessLog>,
    events: log::EventLog,
    limits: Limits,
    conns: Arc<limits::Table>,
}

type Shared = Arc<App>;

/// Binds, announces the bound address ([`Notice::Listening`]: `cairn serve` prints
/// `listening on http://ADDR` on stdout, which tests and scripts read; port 0 works), and serves
/// until SIGTERM or SIGINT. The server's own log lines (lifecycle, access, build events) are its
/// output and go where [`Options`] says, stderr by default.
pub fn run(opts: Options) -> Result<(), ServeError> {
    let workers = match opts.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (listeners, addr) = http::bind(opts.listen, workers)?;
    let app = Arc::new(build_app(&opts, addr)?);
    let snap = app.live.current();
    log::lifecycle(
        &serde_json::json!({"ts": log::now(), "event": "loaded", "hosts": snap.hosts,
        "macs": snap.by_mac.len(), "generation": snap.generation, "workers": workers,
        "max_conns": app.conns.max()}),
    );
    drop(snap);
    // This thread only handles signals and reloads; the workers serve.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Io("tokio runtime".into(), e))?;
    let threads = rt.block_on(async {
        // Handlers go in before the address is announced: a SIGHUP that arrives first must
        // reload, not kill the server (the default action).
        use tokio::signal::unix::{signal, SignalKind};
        let sig = |k| signal(k).map_err(|e| ServeError::Io("signal handler".into(), e));
        let (mut hup, mut term, mut int) = (
            sig(SignalKind::hangup())?,
            sig(SignalKind::terminate())?,
            sig(SignalKind::interrupt())?,
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let threads = http::start(app.clone(), router(app.clone()), listeners, stop_rx)?;
        notice::emit(Notice::Listening {
            url: format!("http://{addr}"),
        });
        loop {
            tokio::select! {
                _ = hup.recv() => reload(&app).await,
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        let _ = stop_tx.send(true);
        Ok::<_, ServeError>(threads)
    })?;
    // Workers finish their in-flight requests and flush their access logs before they end.
    for t in threads {
        let _ = t.join();
    }
    log::lifecycle(&serde_json::json!({"ts": log::now(), "event": "shutdown"}));
    Ok(())
}

async fn reload(app: &Shared) {
    let app2 = app.clone();
    let res = tokio::task::spawn_blocking(move || app2.live.reload()).await;
    let mut replaced = None;
    let line = match res {
        Ok(Ok((s, old))) => {
            replaced = Some(old);
            serde_json::json!({"ts": log::now(), "event": "reload", "ok": true,
            "hosts": s.hosts, "generation": s.generation})
        }
        Ok(Err(e)) => {
            serde_json::json!({"ts": log::now(), "event": "reload", "ok": false,
            "kept_generation": app.live.current().generation,
            "error": e.to_string()})
        }
        Err(e) => serde_json::json!({"ts": log::now(), "event": "reload", "ok": false,
            "error": e.to_string()}),
    };
    log::lifecycle(&line);
    // In the background: the signal loop must not wait on workers to take the next signal.
    if let Some(old) = replaced {
        tokio::spawn(async move {
            let r = state::release_old(old).await;
            log::lifecycle(&serde_json::json!({"ts": log::now(), "event": "released",
                "freed": r.freed, "wait_ms": r.waited.as_millis(),
                "trim_ms": r.trimmed.as_millis()}));
        });
    }
}

fn build_app(opts: &Options, addr: SocketAddr) -> Result<App, ServeError> {
    let load = LoadOptions {
        server_url: opts.server_url.clone(),
    };
    // Without a configured URL, the boot configs point at the address we are bound to.
    let mut loader = Loader {
        inventory: opts.inventory.clone(),
        load,
        templates: opts.templates.clone(),
        tokens: opts.token_ttl.map(|ttl| TokenPolicy { ttl }),
    };
    if loader.load.server_url.is_none() {
        // Only the `server:` key matters here; full validation happens in `Live::new`.
        let declared = std::fs::read_to_string(&opts.inventory)
            .ok()
            .and_then(|src| cairn_yaml::parse(&src, &opts.inventory).ok())
            .is_some_and(|n| n.get("server").is_some());
        if !declared {
            loader.load.server_url = Some(format!("http://{addr}"));
        }
    }
    let repo = match &opts.repo {
        Some(r) => {
            if !r.join("config").is_file() || !r.join("objects").is_dir() {
                return Err(ServeError::NotARepo(r.clone()));
            }
            Some(Arc::new(files::Root::open(r)?))
        }
        None => None,
    };
    let files = match &opts.files {
        Some(f) => Some(Arc::new(files::Root::open(f)?)),
        None => None,
    };
    let snapshot = match &opts.snapshot {
        Some(d) => {
            // What `cairn snapshot` writes last: without it the directory is not a snapshot.
            if !d.join("cairn-snapshot.json").is_file() {
                return Err(ServeError::NotASnapshot(d.clone()));
            }
            Some(Arc::new(files::Root::open(d)?))
        }
        None => None,
    };
    Ok(App {
        live: Live::new(loader)?,
        repo,
        files,
        snapshot,
        access: Arc::new(log::AccessLog::open(opts.access_log.as_deref())?),
        events: log::EventLog::open(opts.event_log.as_deref())?,
        limits: opts.limits,
        conns: limits::Table::new(
            opts.limits.max_conns_per_addr,
            opts.limits.max_conns.unwrap_or_else(limits::default_max),
        ),
    })
}

/// The router behind every request that is not the hot `/ks/<mac>` lookup, built from `opts`
/// without binding a socket (`opts.listen` stands in for the bound address): it drives the
/// request path, query and MAC parsing in-process (fuzz/serve_request).
pub fn router_for(opts: &Options) -> Result<Router, ServeError> {
    Ok(router(Arc::new(build_app(opts, opts.listen)?)))
}

fn router(app: Shared) -> Router {
    Router::new()
        .route("/ks/{mac}", get(ks_path))
        .route("/ks", get(ks_query))
        .route("/ipxe", get(ipxe))
        .route("/boot.ipxe", get(boot_ipxe))
        .route("/pxelinux/{mac}", get(pxelinux))
        .route("/grub/{mac}", get(grub))
        .route("/built/{mac}", post(built))
        .route("/failed/{mac}", post(failed))
        .route("/repo/{*path}", get(repo))
        .route("/files/{*path}", get(boot_files))
        .route("/snapshot/{*path}", get(snapshot_files))
        .route("/healthz", get(healthz))
        .with_state(app)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response {
    (status, [(header::CONTENT_TYPE, http::TEXT)], body.into()).into_response()
}

#[derive(Clone, Copy)]
enum Doc {
    Kickstart,
    Pxelinux,
    Grub,
    Ipxe,
}

/// The one lookup every per-host endpoint makes.
fn lookup(app: &App, mac: Option<&str>, doc: Doc, token: Option<&str>) -> Response {
    let Some(raw) = mac else {
        return text(StatusCode::BAD_REQUEST, "missing ?mac=\n");
    };
    let mac: Mac = match raw.parse() {
        Ok(m) => m,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let snap = app.live.current();
    let Some(entry) = snap.by_mac.get(&mac) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no host with MAC {mac} in the inventory\n"),
        );
    };
    let body = match doc {
        Doc::Kickstart => {
            if let Err(why) = app.live.take_token(entry.primary, token) {
                return text(StatusCode::UNAUTHORIZED, format!("{why}\n"));
            }
            &entry.kickstart
        }
        Doc::Pxelinux => &entry.pxelinux,
        Doc::Grub => &entry.grub,
        Doc::Ipxe => &entry.ipxe,
    };
    text(StatusCode::OK, body.clone())
}

type Q = Query<HashMap<String, String>>;

async fn ks_path(
    State(app): State<Shared>,
    UrlPath(mac): UrlPath<String>,
    RawQuery(q): RawQuery,
) -> Response {
    // The hot path: no query map unless there is a query.
    let token = q.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    lookup(&app, Some(&mac), Doc::Kickstart, token.as_deref())
}

async fn ks_query(State(app): State<Shared>, q: Q) -> Response {
    lookup(
        &app,
        q.get("mac").map(String::as_str),
        Doc::Kickstart,
        q.get("token").map(String::as_str),
    )
}

async fn ipxe(State(app): State<Shared>, q: Q) -> Response {
    lookup(&app, q.get("mac").map(String::as_str), Doc::Ipxe, None)
}

async fn pxelinux(State(app): State<Shared>, UrlPath(mac): UrlPath<String>) -> Response {
    lookup(&app, Some(&mac), Doc::Pxelinux, None)
}

async fn grub(State(app): State<Shared>, UrlPath(mac): UrlPath<String>) -> Response {
    // GRUB asks for `grub.cfg-01-aa-bb-...`; accept that spelling as well as a bare MAC.
    let mac = mac.strip_prefix("grub.cfg-").unwrap_or(&mac);
    lookup(&app, Some(mac), Doc::Grub, None)
}

async fn boot_ipxe(State(app): State<Shared>) -> Response {
    text(StatusCode::OK, app.live.current().boot_ipxe.clone())
}

async fn healthz(State(app): State<Shared>) -> Response {
    let s = app.live.current();
    text(
        StatusCode::OK,
        format!("ok generation={} hosts={}\n", s.generation, s.hosts),
    )
}

async fn built(
    State(app): State<Shared>,
    ci: ConnectInfo<SocketAddr>,
    UrlPath(mac): UrlPath<String>,
) -> Response {
    event(app, ci.0, &mac, "built", None).await
}

/// The most of a failure report's body (`cairn install` sends its log's tail) the event keeps.
const FAILED_LOG_MAX: usize = 8 * 1024;

async fn failed(
    State(app): State<Shared>,
    ci: ConnectInfo<SocketAddr>,
    UrlPath(mac): UrlPath<String>,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body);
    // The end of a log says what went wrong: keep the tail, on a character boundary.
    let mut start = text.len().saturating_sub(FAILED_LOG_MAX);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let log = Some(text[start..].to_string()).filter(|t| !t.trim().is_empty());
    event(app, ci.0, &mac, "failed", log).await
}

async fn event(
    app: Shared,
    remote: SocketAddr,
    raw: &str,
    kind: &'static str,
    log: Option<String>,
) -> Response {
    let mac: Mac = match raw.parse() {
        Ok(m) => m,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let Some(entry) = app.live.current().by_mac.get(&mac).cloned() else {
        return text(
            StatusCode::NOT_FOUND,
            format!("no host with MAC {mac} in the inventory\n"),
        );
    };
    let mut ev = serde_json::json!({"ts": log::now(), "event": kind, "mac": mac.to_string(),
        "host": entry.fqdn, "remote": remote.to_string()});
    if let (Some(l), Some(fields)) = (log, ev.as_object_mut()) {
        fields.insert("log".to_owned(), serde_json::Value::String(l));
    }
    let app2 = app.clone();
    match tokio::task::spawn_blocking(move || app2.events.append(&ev)).await {
        Ok(Ok(())) => text(StatusCode::OK, "recorded\n"),
        Ok(Err(e)) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot record event: {e}\n"),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

async fn repo(State(app): State<Shared>, UrlPath(path): UrlPath<String>) -> Response {
    static_dir(app.repo.as_ref(), path, "no --repo is served\n").await
}

async fn boot_files(State(app): State<Shared>, UrlPath(path): UrlPath<String>) -> Response {
    static_dir(app.files.as_ref(), path, "no --files directory is served\n").await
}

async fn snapshot_files(State(app): State<Shared>, UrlPath(path): UrlPath<String>) -> Response {
    static_dir(app.snapshot.as_ref(), path, "no --snapshot is served\n").await
}

/// A read-only directory confined like /repo/ (no `..`, no symlinks out).
async fn static_dir(
    root: Option<&Arc<files::Root>>,
    path: String,
    absent: &'static str,
) -> Response {
    match root {
        Some(r) => files::serve(r.clone(), path).await,
        None => text(StatusCode::NOT_FOUND, absent),
    }
}
