//! The HTTP front: nginx's worker model on tokio. One single-threaded runtime per worker thread,
//! all accepting on one shared listening socket, so a connection lives on one core from
//! accept to close and requests share nothing mutable across cores: the snapshot is a
//! per-worker `Arc` (refreshed when a reload bumps the generation) and the access log a
//! per-worker buffer. Connections are served by hyper's HTTP/1.1 directly; the hot request
//! (`GET /ks/<mac>` without a token) is answered from the snapshot without routing, everything
//! else goes through the axum router, with the same answers either way.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tower_service::Service;

use super::limits::{Expired, Refusal, Ticket, Watch, Watched};
use super::log::{Access, LocalLog};
use super::state::Cached;
use super::{ServeError, Shared};
use cairn_kickstart::Mac;

pub const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Binds one listening socket and hands each of the `n` workers its own handle to it. Returns
/// them and the bound address (port 0 resolved).
///
/// One shared socket rather than one `SO_REUSEPORT` socket per worker: with per-worker sockets
/// the kernel assigns each connection by hash, so a worker that is preempted (2 cores shared
/// with the clients) stalls its connections while the other idles; measured on bench/serve.sh,
/// that cost about a third of the throughput. With a shared socket whichever worker is free
/// accepts, the way nginx workers share theirs. Binding once also makes a second server on
/// the same port fail with "address in use".
pub fn bind(
    addr: SocketAddr,
    n: usize,
) -> Result<(Vec<std::net::TcpListener>, SocketAddr), ServeError> {
    let err = |e: std::io::Error| ServeError::Bind(addr, e);
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    // tokio requires non-blocking sockets; the flag is on the shared file description.
    listener.set_nonblocking(true).map_err(err)?;
    let at = listener.local_addr().map_err(err)?;
    let mut listeners = (1..n.max(1))
        .map(|_| listener.try_clone())
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(err)?;
    listeners.push(listener);
    Ok((listeners, at))
}

/// Starts one worker thread per listener. Runtimes are built here so that failures surface
/// before the server announces itself. `stop` turning true starts a graceful shutdown; the
/// threads end when their connections have.
pub fn start(
    app: Shared,
    router: Router,
    listeners: Vec<std::net::TcpListener>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, ServeError> {
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, l) in listeners.into_iter().enumerate() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ServeError::Io("tokio runtime".into(), e))?;
        let (app, router, stop) = (app.clone(), router.clone(), stop.clone());
        let t = std::thread::Builder::new()
            .name(format!("cairn-http-{i}"))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, worker(app, router, l, stop));
            })
            .map_err(|e| ServeError::Io("worker thread".into(), e))?;
        threads.push(t);
    }
    Ok(threads)
}

struct Worker {
    app: Shared,
    router: Router,
    snap: Cached,
    log: LocalLog,
}

async fn worker(
    app: Shared,
    router: Router,
    listener: std::net::TcpListener,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            super::log::lifecycle(
                &serde_json::json!({"ts": super::log::now(), "event": "worker",
                "ok": false, "error": e.to_string()}),
            );
            return;
        }
    };
    let w = Rc::new(Worker {
        snap: Cached::new(&app.live),
        log: LocalLog::new(app.access.clone()),
        app,
        router,
    });
    // The access log is buffered per worker; hand it over a few times a second and at the end.
    // The same tick lets go of a snapshot a reload replaced, traffic or not.
    let flusher = {
        let w = w.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                w.log.flush();
                w.snap.refresh(&w.app.live);
            }
        })
    };
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, remote)) => match w.app.conns.admit(remote.ip()) {
                    Ok(ticket) => {
                        let _ = stream.set_nodelay(true);
                        conns.spawn_local(connection(
                            w.clone(), stream, remote, ticket, stop.clone(),
                        ));
                    }
                    Err(why) => w.refuse(&stream, remote, why),
                },
                // Out of file descriptors and the like: wait for connections to close rather
                // than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
    flusher.abort();
    w.log.flush();
}

async fn connection(
    w: Rc<Worker>,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    ticket: Ticket,
    mut stop: watch::Receiver<bool>,
) {
    let peer: Rc<str> = remote.to_string().into();
    let watch = Rc::new(Watch::new(Instant::now()));
    let svc = {
        let (w, peer, watch) = (w.clone(), peer.clone(), watch.clone());
        hyper::service::service_fn(move |req| {
            let (w, peer, watch) = (w.clone(), peer.clone(), watch.clone());
            async move {
                watch.handler_started();
                let resp = w.handle(req, remote, &peer).await;
                watch.handler_done();
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let io = TokioIo::new(Watched {
        inner: stream,
        watch: watch.clone(),
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
    tokio::pin!(conn);
    let limits = w.app.limits;
    let mut stopping = false;
    // One timer per connection, re-armed only when it fires before the deadline it was set for
    // has really passed (progress moved it): requests themselves arm nothing.
    loop {
        let (due, _) = watch.deadline(&limits);
        tokio::select! {
            _ = conn.as_mut() => return,
            () = tokio::time::sleep_until(due.into()) => {
                let (due, why) = watch.deadline(&limits);
                if due <= Instant::now() {
                    w.expired(&peer, why);
                    return;
                }
            }
            () = ticket.kicked.notified() => {
                w.refuse_status(&peer, 503);
                return;
            }
            // Finish the request in flight, then close (idle keep-alive connections at once);
            // the deadlines still apply, so a half-sent request cannot hold up the shutdown.
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

impl Worker {
    /// A connection over a cap: a reason if the socket takes it now, then close.
    fn refuse(&self, stream: &tokio::net::TcpStream, remote: SocketAddr, why: Refusal) {
        let _ = stream.try_write(why.response());
        self.refuse_status(&remote.to_string(), 503);
    }

    /// Refused and timed-out connections show in the access log with method and path `-`.
    fn refuse_status(&self, peer: &str, status: u16) {
        self.log.record(&Access {
            remote: peer,
            method: "-",
            path: "-",
            status,
            bytes: None,
            us: 0,
        });
    }

    /// A request that did not arrive in time is logged as a 408, as nginx does (neither sends
    /// it). A response cut for a client that stopped reading was logged when it started, and
    /// an idle keep-alive connection closing is routine.
    fn expired(&self, peer: &str, why: Expired) {
        if matches!(why, Expired::Header | Expired::Body) {
            self.refuse_status(peer, 408);
        }
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        remote: SocketAddr,
        peer: &str,
    ) -> Response<Body> {
        let start = Instant::now();
        let (resp, method, uri) = match self.fast(&req) {
            Some(resp) => (resp, req.method().clone(), req.uri().clone()),
            None => {
                let (method, uri) = (req.method().clone(), req.uri().clone());
                let mut req = req;
                // The handlers that record who called (/built, /failed) read it from here.
                req.extensions_mut().insert(ConnectInfo(remote));
                let resp = match self.router.clone().call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                (resp, method, uri)
            }
        };
        let bytes = resp.body().size_hint().exact().or_else(|| {
            resp.headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        });
        self.log.record(&Access {
            remote: peer,
            method: method.as_str(),
            path: uri.path(),
            status: resp.status().as_u16(),
            bytes,
            us: start.elapsed().as_micros(),
        });
        resp
    }

    /// `GET /ks/<mac>` of a known host with tokens off: a lookup and a reference-counted body.
    /// `None` sends the request through the router (errors, tokens, percent-encoded paths...).
    fn fast(&self, req: &Request<Incoming>) -> Option<Response<Body>> {
        if req.method() != Method::GET
            || req.uri().query().is_some()
            || self.app.live.loader.tokens.is_some()
        {
            return None;
        }
        let raw = req.uri().path().strip_prefix("/ks/")?;
        let mac = Mac::parse_canonical(raw)?;
        let body: Bytes = self.snap.with(&self.app.live, |s| {
            s.by_mac.get(&mac).map(|e| e.kickstart.clone())
        })?;
        let mut resp = Response::new(Body::from(body));
        resp.headers_mut().insert(header::CONTENT_TYPE, TEXT);
        Some(resp)
    }
}
