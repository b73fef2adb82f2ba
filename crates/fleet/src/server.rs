//! `cairn fleetlock serve`: the FleetLock HTTP endpoints over the etcd store. Stateless: every
//! answer comes from etcd, so replicas behind one name (or listed in the client) are
//! interchangeable and any of them can die.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::sync::watch;
use tower_service::Service;

use crate::batch::Batcher;
use crate::metrics::{Metrics, Op};
use crate::protocol::{error_body, parse_request, Rejection, PROTOCOL_HEADER};
use crate::store::{self, Store, StoreOptions};
use crate::FleetError;

/// Server settings beyond the store's.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub store: StoreOptions,
    /// Largest request body read; a longer one is refused with 413 before it is read.
    pub body_limit: usize,
    /// Time a client gets to send its request head, and separately its body.
    pub read_timeout: Duration,
}

impl ServeOptions {
    pub fn new(store: StoreOptions) -> Self {
        Self {
            store,
            // A FleetLock body is ~100 bytes; 64 KiB leaves room for any sane id.
            body_limit: 64 * 1024,
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// A listening socket, bound before serving so the caller can announce the address (port 0).
pub struct Bound {
    listener: std::net::TcpListener,
    pub addr: SocketAddr,
}

pub fn bind(addr: SocketAddr) -> Result<Bound, FleetError> {
    let err = |e| FleetError::Bind(addr, e);
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    // tokio requires non-blocking sockets.
    listener.set_nonblocking(true).map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok(Bound { listener, addr })
}

/// One answered lock request, for the caller's log (domain code does not print).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub endpoint: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Holders after the request, when it reached etcd and succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holders: Option<usize>,
    pub micros: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

type Log = Arc<dyn Fn(&Event) + Send + Sync>;

struct App {
    batcher: Arc<Batcher>,
    metrics: Metrics,
    opts: ServeOptions,
    log: Log,
}

/// Serves until SIGTERM or SIGINT, then lets requests in flight finish (for at most the store
/// deadline) and returns.
pub fn serve(
    bound: Bound,
    opts: ServeOptions,
    log: impl Fn(&Event) + Send + Sync + 'static,
) -> Result<(), FleetError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| FleetError::Io("tokio runtime".into(), e))?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let sig = |k| signal(k).map_err(|e| FleetError::Io("signal handler".into(), e));
        let (mut term, mut int) = (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
        let listener = tokio::net::TcpListener::from_std(bound.listener)
            .map_err(|e| FleetError::Io("listener".into(), e))?;
        let grace = opts.store.deadline;
        let app = Arc::new(App {
            batcher: Batcher::new(Store::connect(opts.store.clone()).await?),
            metrics: Metrics::default(),
            opts,
            log: Arc::new(log),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, router(app), stop_rx));
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(grace, accept).await;
        Ok(())
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, router.clone(), stop.clone()));
                }
                // Out of file descriptors and the like: let connections close rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stopping.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

async fn connection(
    stream: tokio::net::TcpStream,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let svc = hyper::service::service_fn(move |req| {
        let mut router = router.clone();
        async move { Ok::<_, Infallible>(router.call(req).await.unwrap_or_else(|e| match e {})) }
    });
    // The header timeout is what stops a client that opens a connection and never finishes
    // its request from holding it forever.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/v1/pre-reboot",
            post(|State(app), req| handle(app, Op::PreReboot, req)),
        )
        .route(
            "/v1/steady-state",
            post(|State(app), req| handle(app, Op::SteadyState, req)),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { error(404, "not_found", "no such endpoint") })
        .with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let ct = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, ct)], app.metrics.render()).into_response()
}

fn error(status: u16, kind: &str, value: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let ct = HeaderValue::from_static("application/json");
    (
        status,
        [(header::CONTENT_TYPE, ct)],
        error_body(kind, value),
    )
        .into_response()
}

async fn handle(app: Arc<App>, op: Op, req: Request) -> Response {
    let start = Instant::now();
    let mut ev = Event {
        endpoint: op.name(),
        status: 200,
        kind: None,
        group: None,
        id: None,
        holders: None,
        micros: 0,
        error: None,
    };
    let resp = match read_identity(&app, req).await {
        Err(r) => {
            (ev.status, ev.kind, ev.error) = (r.status, Some(r.kind), Some(r.value.clone()));
            error(r.status, r.kind, &r.value)
        }
        Ok(who) => {
            let batched = store::Op {
                lock: op == Op::PreReboot,
                id: who.id.clone(),
            };
            let (res, attempts) = app.batcher.submit(&who.group, batched).await;
            app.metrics
                .attempts(attempts.conflicts, attempts.etcd_errors);
            let resp = match res {
                Ok(sem) => {
                    app.metrics
                        .group(&who.group, sem.holders.len(), sem.total_slots);
                    ev.holders = Some(sem.holders.len());
                    StatusCode::OK.into_response()
                }
                Err(e) => {
                    let (status, kind) = failure(&e);
                    (ev.status, ev.kind, ev.error) = (status, Some(kind), Some(e.to_string()));
                    error(status, kind, &e.to_string())
                }
            };
            (ev.group, ev.id) = (Some(who.group), Some(who.id));
            resp
        }
    };
    let took = start.elapsed();
    ev.micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    app.metrics.answered(op, ev.status, took);
    (app.log)(&ev);
    resp
}

/// The status and error kind for a request that reached etcd and failed. A full semaphore is a
/// definite "not now" (409, the client waits and asks again); an etcd failure is this
/// replica's problem (503, the client may ask another replica).
fn failure(e: &FleetError) -> (u16, &'static str) {
    match e {
        FleetError::Full { .. } => (409, "failed_lock_semaphore_full"),
        FleetError::BadSemaphore { .. } => (500, "failed_lock_bad_semaphore"),
        FleetError::Contention(..) => (503, "failed_lock_contention"),
        _ => (503, "failed_lock_etcd_unavailable"),
    }
}

/// Header first, so that a request without it is refused before its body is read; then the
/// body, read only up to the limit.
async fn read_identity(app: &App, req: Request) -> Result<crate::protocol::Identity, Rejection> {
    let header = req
        .headers()
        .get(PROTOCOL_HEADER)
        .map(|v| v.as_bytes().to_vec());
    if header.as_deref() != Some(b"true") {
        return parse_request(header.as_deref(), b"");
    }
    let limit = app.opts.body_limit;
    let too_large = || Rejection {
        status: 413,
        kind: "request_too_large",
        value: format!("request body over {limit} bytes"),
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = Body::new(req.into_body());
    let read = tokio::time::timeout(app.opts.read_timeout, axum::body::to_bytes(body, limit));
    let bytes = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let inner = e.into_inner();
            if inner.is::<http_body_util::LengthLimitError>() {
                return Err(too_large());
            }
            return Err(Rejection {
                status: 400,
                kind: "invalid_client_identity",
                value: format!("reading the request body: {inner}"),
            });
        }
        Err(_) => {
            return Err(Rejection {
                status: 408,
                kind: "request_timeout",
                value: "request body not received in time".into(),
            })
        }
    };
    parse_request(header.as_deref(), &bytes)
}
