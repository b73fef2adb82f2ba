//! Defences against clients that hold connections without using them: nginx's four timeouts
//! (request header, request body, idle keep-alive, response send) and connection caps per client
//! address and overall. A half-open connection costs a descriptor; without these one machine
//! could take them all and lock every installer out.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Every limit is configurable (`cairn serve --help`, docs/serve.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From accept (first request) or first byte (later ones) to the end of the request header.
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Longest wait, after a response, for the next request to start.
    pub keepalive_timeout: Duration,
    /// Longest wait for the client to accept the next piece of a response.
    pub send_timeout: Duration,
    /// Open connections one client address may hold.
    pub max_conns_per_addr: usize,
    /// Open connections overall; `None`: derived from the descriptor limit ([`default_max`]).
    pub max_conns: Option<usize>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_conns_per_addr: 256,
            max_conns: None,
        }
    }
}

/// The overall cap when none is given: three quarters of the soft descriptor limit, and at least
/// 64 descriptors kept back. The rest is for what connections open while they are served (a
/// `/repo/` file each, logs, the event loops); a connection is accepted before its address is
/// known, so the cap must bite before the kernel refuses `accept` itself (EMFILE), which would
/// leave the newcomer waiting in the backlog whoever it is.
pub fn default_max() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    soft.saturating_sub((soft / 4).max(64)).max(1)
}

/// Why an accepted connection is closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerAddress,
    Overall,
}

impl Refusal {
    /// Sent without waiting: a client that reads gets a reason, one that does not costs nothing.
    pub fn response(self) -> &'static [u8] {
        match self {
            Refusal::PerAddress => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\n\r\ntoo many connections from your address\n",
            Refusal::Overall => b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 29\r\nConnection: close\r\n\r\nserver at its connection cap\n",
        }
    }
}

/// Open connections by client address, shared by all workers. Touched once per connection
/// (accept and close), never per request.
pub struct Table {
    per_addr: usize,
    max: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    total: usize,
    /// Ids grow with time, so an address's last entry is its newest connection.
    by_addr: HashMap<IpAddr, BTreeMap<u64, Arc<Notify>>>,
}

/// A place in the [`Table`]; leaving drops it. `kicked` fires when a newcomer from a less greedy
/// address needs the place.
pub struct Ticket {
    table: Arc<Table>,
    ip: IpAddr,
    id: u64,
    pub kicked: Arc<Notify>,
}

impl Table {
    pub fn new(per_addr: usize, max: usize) -> Arc<Table> {
        Arc::new(Table {
            per_addr: per_addr.max(1),
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Admits a connection from `ip` or says why not. At the overall cap, the address holding
    /// the most connections loses its newest one to a newcomer that holds fewer (after the
    /// swap it would still hold more); the newcomer is refused when it is itself the greediest.
    pub fn admit(self: &Arc<Table>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let mut t = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mine = t.by_addr.get(&ip).map_or(0, BTreeMap::len);
        if mine >= self.per_addr {
            return Err(Refusal::PerAddress);
        }
        if t.total >= self.max {
            let greediest = t
                .by_addr
                .iter()
                .max_by_key(|(_, c)| c.len())
                .map(|(a, c)| (*a, c.len()));
            match greediest {
                Some((g, n)) if n > mine + 1 => {
                    // Just found in the map, under the same lock.
                    let newest = t.by_addr.get_mut(&g).and_then(BTreeMap::pop_last);
                    if let Some((_, kick)) = newest {
                        kick.notify_one();
                        t.total -= 1;
                    }
                }
                _ => return Err(Refusal::Overall),
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let kicked = Arc::new(Notify::new());
        t.by_addr.entry(ip).or_default().insert(id, kicked.clone());
        t.total += 1;
        Ok(Ticket {
            table: self.clone(),
            ip,
            id,
            kicked,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> usize {
        let t = self.inner.lock().unwrap();
        t.by_addr.get(&ip).map_or(0, BTreeMap::len)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut t = self.table.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(conns) = t.by_addr.get_mut(&self.ip) else {
            return;
        };
        // An evicted ticket was taken out (and counted out) when it was evicted.
        if conns.remove(&self.id).is_some() {
            let empty = conns.is_empty();
            if empty {
                t.by_addr.remove(&self.ip);
            }
            t.total -= 1;
        }
    }
}

/// What one connection has been doing, for its deadline. Updated by [`Watched`] on I/O and by
/// the worker around each handler: a few clock reads per request, no timer per request.
pub struct Watch {
    accepted: Instant,
    served: Cell<u64>,
    in_handler: Cell<bool>,
    /// When the last handler returned (accept time before the first).
    idle_since: Cell<Instant>,
    /// The first byte read since then: the next request has started.
    first_byte: Cell<Option<Instant>>,
    last_write: Cell<Instant>,
    read_blocked: Cell<Option<Instant>>,
    write_blocked: Cell<Option<Instant>>,
}

/// Which deadline a connection missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Header,
    Body,
    KeepAlive,
    Send,
}

impl Watch {
    pub fn new(now: Instant) -> Watch {
        Watch {
            accepted: now,
            served: Cell::new(0),
            in_handler: Cell::new(false),
            idle_since: Cell::new(now),
            first_byte: Cell::new(None),
            last_write: Cell::new(now),
            read_blocked: Cell::new(None),
            write_blocked: Cell::new(None),
        }
    }

    pub fn handler_started(&self) {
        self.in_handler.set(true);
    }

    pub fn handler_done(&self) {
        self.in_handler.set(false);
        self.served.set(self.served.get() + 1);
        self.idle_since.set(Instant::now());
        self.first_byte.set(None);
    }

    /// The earliest deadline that applies now, and what it guards. Waiting for the client to
    /// read bounds every phase; otherwise the phase decides: a request header must arrive whole
    /// within `header_timeout`, a body must keep coming, an idle connection must start a request.
    pub fn deadline(&self, l: &Limits) -> (Instant, Expired) {
        let phase = if self.in_handler.get() {
            match self.read_blocked.get() {
                Some(t) => (t + l.body_timeout, Expired::Body),
                // The handler is working, not waiting on the client: look again later.
                None => (Instant::now() + l.body_timeout, Expired::Body),
            }
        } else if self.served.get() == 0 {
            (self.accepted + l.header_timeout, Expired::Header)
        } else if let Some(t) = self.first_byte.get() {
            (t + l.header_timeout, Expired::Header)
        } else {
            let since = self.idle_since.get().max(self.last_write.get());
            (since + l.keepalive_timeout, Expired::KeepAlive)
        };
        match self.write_blocked.get() {
            Some(t) if t + l.send_timeout < phase.0 => (t + l.send_timeout, Expired::Send),
            _ => phase,
        }
    }
}

/// A stream that reports its progress to a [`Watch`].
pub struct Watched<S> {
    pub inner: S,
    pub watch: std::rc::Rc<Watch>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let w = &this.watch;
        match r {
            Poll::Pending => {
                if w.read_blocked.get().is_none() {
                    w.read_blocked.set(Some(Instant::now()));
                }
            }
            Poll::Ready(_) => {
                w.read_blocked.set(None);
                if buf.filled().len() > before && w.first_byte.get().is_none() {
                    w.first_byte.set(Some(Instant::now()));
                }
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(r.is_pending());
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S> Watched<S> {
    fn wrote(&self, pending: bool) {
        let w = &self.watch;
        if pending {
            if w.write_blocked.get().is_none() {
                w.write_blocked.set(Some(Instant::now()));
            }
        } else {
            w.write_blocked.set(None);
            w.last_write.set(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_per_address_cap_refuses_the_newest_from_that_address_only() {
        let t = Table::new(2, 100);
        let _a = (t.admit(ip("10.0.0.1")), t.admit(ip("10.0.0.1")));
        assert_eq!(t.admit(ip("10.0.0.1")).err(), Some(Refusal::PerAddress));
        assert!(t.admit(ip("10.0.0.2")).is_ok());
    }

    #[test]
    fn at_the_overall_cap_the_greediest_address_gives_way() {
        let t = Table::new(100, 4);
        let greedy: Vec<_> = (0..4).map(|_| t.admit(ip("10.0.0.1")).unwrap()).collect();
        // The greedy address itself gets nothing more.
        assert_eq!(t.admit(ip("10.0.0.1")).err(), Some(Refusal::Overall));
        let good = t.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(t.count(ip("10.0.0.1")), 3);
        // Its newest connection was the one told to close, not an older one.
        let (kicked, kept): (Vec<_>, Vec<_>) = greedy
            .iter()
            .partition(|g| Arc::strong_count(&g.kicked) == 1);
        assert_eq!(kicked.len(), 1);
        assert!(kept.iter().all(|k| k.id < kicked[0].id));
        drop(greedy);
        drop(good);
        assert_eq!(t.inner.lock().unwrap().total, 0);
    }

    #[test]
    fn phases_pick_their_timeout() {
        let l = Limits::default();
        let t0 = Instant::now();
        let w = Watch::new(t0);
        assert_eq!(w.deadline(&l), (t0 + l.header_timeout, Expired::Header));
        w.handler_started();
        w.handler_done();
        assert_eq!(w.deadline(&l).1, Expired::KeepAlive);
        w.first_byte.set(Some(t0));
        assert_eq!(w.deadline(&l), (t0 + l.header_timeout, Expired::Header));
        w.write_blocked.set(Some(t0 - l.send_timeout));
        assert_eq!(w.deadline(&l), (t0, Expired::Send));
    }

    #[test]
    fn a_handler_waiting_on_the_body_gets_the_body_timeout() {
        let l = Limits::default();
        let t0 = Instant::now();
        let w = Watch::new(t0);
        w.handler_started();
        // Working, not waiting on the client: no deadline falls due before a body_timeout.
        assert!(w.deadline(&l).0 >= t0 + l.body_timeout);
        assert_eq!(w.deadline(&l).1, Expired::Body);
        // Blocked on the client's body since t0: due body_timeout later, whatever else runs.
        w.read_blocked.set(Some(t0));
        assert_eq!(w.deadline(&l), (t0 + l.body_timeout, Expired::Body));
    }
}
