//! The served state: every host's documents pre-rendered at load time, so a request is one map
//! lookup and a reference-counted copy of bytes. Reloads build a whole new snapshot and swap it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::ServeError;
use cairn_kickstart::{self as kickstart, LoadOptions, Mac, Templates};

/// One host's documents, shared by all its MACs.
pub struct Entry {
    pub fqdn: String,
    /// The MAC tokens are kept under (the host's first).
    pub primary: Mac,
    pub kickstart: Bytes,
    pub pxelinux: Bytes,
    pub grub: Bytes,
    pub ipxe: Bytes,
}

pub struct Snapshot {
    pub generation: u64,
    pub hosts: usize,
    pub by_mac: HashMap<Mac, Arc<Entry>>,
    pub boot_ipxe: Bytes,
}

#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub issued: Instant,
    pub used: bool,
}

/// Build-token policy: `None` disables tokens.
#[derive(Clone, Copy)]
pub struct TokenPolicy {
    pub ttl: Duration,
}

pub struct Loader {
    pub inventory: std::path::PathBuf,
    pub load: LoadOptions,
    pub templates: Option<std::path::PathBuf>,
    pub tokens: Option<TokenPolicy>,
}

/// The live state behind an `Arc`: readers clone the snapshot pointer and never wait on a reload.
pub struct Live {
    pub snap: RwLock<Arc<Snapshot>>,
    /// The generation in `snap`, readable without the lock: workers keep their own `Arc` of the
    /// snapshot and take the lock only when this moves (see [`Cached`]).
    generation: AtomicU64,
    pub tokens: Mutex<HashMap<Mac, Token>>,
    pub loader: Loader,
    /// Serialises reloads (a SIGHUP storm must not interleave two builds).
    reload_lock: Mutex<()>,
}

impl Live {
    pub fn new(loader: Loader) -> Result<Live, ServeError> {
        let mut tokens = HashMap::new();
        let snap = build(&loader, 1, &mut tokens)?;
        Ok(Live {
            generation: AtomicU64::new(snap.generation),
            snap: RwLock::new(Arc::new(snap)),
            tokens: Mutex::new(tokens),
            loader,
            reload_lock: Mutex::new(()),
        })
    }

    pub fn current(&self) -> Arc<Snapshot> {
        self.snap.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rebuilds from the inventory; on any error the old snapshot stays and the error is returned.
    /// On success, the new snapshot and a weak pointer to the one it replaced, which is freed
    /// once the workers have let go of it (see [`release_old`]).
    pub fn reload(&self) -> Result<(Arc<Snapshot>, Weak<Snapshot>), ServeError> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let generation = self.current().generation + 1;
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let snap = Arc::new(build(&self.loader, generation, &mut tokens)?);
        // Swap tokens and snapshot together so a served boot config always carries a live token.
        let mut live_tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        // Tokens consumed while we were building stay consumed.
        for (mac, t) in live_tokens.iter() {
            if let Some(new) = tokens.get_mut(mac) {
                if new.value == t.value {
                    new.used |= t.used;
                }
            }
        }
        *live_tokens = tokens;
        let old = std::mem::replace(
            &mut *self.snap.write().unwrap_or_else(|e| e.into_inner()),
            snap.clone(),
        );
        self.generation.store(snap.generation, Ordering::Release);
        Ok((snap, Arc::downgrade(&old)))
    }

    /// Checks and consumes a build token. `Ok(())` when tokens are off or the token is valid.
    pub fn take_token(&self, primary: Mac, given: Option<&str>) -> Result<(), &'static str> {
        let Some(policy) = self.loader.tokens else {
            return Ok(());
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let Some(t) = tokens.get_mut(&primary) else {
            return Err("no build token for this host");
        };
        match given {
            None => Err("a build token is required (?token=)"),
            Some(g) if !constant_time_eq(g.as_bytes(), t.value.as_bytes()) => {
                Err("wrong build token")
            }
            Some(_) if t.used => Err("build token already used"),
            Some(_) if t.issued.elapsed() > policy.ttl => Err("build token expired"),
            Some(_) => {
                t.used = true;
                Ok(())
            }
        }
    }
}

/// One worker's copy of the live snapshot. At 100k requests/s a shared lock or reference count
/// per request is a contended cache line between cores; this reads one atomic that changes only
/// on reload.
pub struct Cached {
    snap: std::cell::RefCell<Arc<Snapshot>>,
}

impl Cached {
    pub fn new(live: &Live) -> Cached {
        Cached {
            snap: std::cell::RefCell::new(live.current()),
        }
    }

    /// The current snapshot; `f` runs on it without touching shared state unless a reload
    /// happened since the last call.
    pub fn with<R>(&self, live: &Live, f: impl FnOnce(&Snapshot) -> R) -> R {
        self.refresh(live);
        f(&self.snap.borrow())
    }

    /// Lets go of a replaced snapshot. Workers call this on their timer too, not only per
    /// request: an idle worker would otherwise keep its old snapshot (12 KB a host) alive until
    /// its next request, and with several workers seeing different reloads, several of them.
    pub fn refresh(&self, live: &Live) {
        if live.generation.load(Ordering::Acquire) != self.snap.borrow().generation {
            *self.snap.borrow_mut() = live.current();
        }
    }
}

/// How long [`release_old`] waits for the workers to drop a replaced snapshot: they do on their
/// next request or access-log tick (200 ms); a handler mid-request holds it no longer than that.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Waits until nothing holds the replaced snapshot any more, then hands the freed memory back
/// to the system. Why the second step: the snapshot is hundreds of thousands of small
/// allocations (12 KB a host), made by whichever thread ran the reload; freed, glibc keeps them
/// in that thread's arena for reuse, and the next reload, built in another blocking-pool thread's
/// arena, does not reuse them. Measured with 50,000 hosts: 584 MB at start, 1.69 GB after four
/// reloads without the trim (bench/serve-scale.sh, docs/serve.md).
pub async fn release_old(old: Weak<Snapshot>) -> Released {
    let start = Instant::now();
    while old.strong_count() > 0 && start.elapsed() < RELEASE_WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let freed = old.strong_count() == 0;
    drop(old);
    let waited = start.elapsed();
    let _ = tokio::task::spawn_blocking(trim).await;
    Released {
        freed,
        waited,
        trimmed: start.elapsed() - waited,
    }
}

/// What [`release_old`] did, for the lifecycle log.
pub struct Released {
    /// False when something still held the old snapshot after [`RELEASE_WAIT`].
    pub freed: bool,
    pub waited: Duration,
    pub trimmed: Duration,
}

/// Returns free heap pages of every malloc arena to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and releases pages
    // that hold no live allocation; it touches no memory of ours and is thread-safe.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's among them) have no malloc_trim; they return memory their own way.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn new_token() -> Result<String, ServeError> {
    use std::io::Read;
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| ServeError::Io("/dev/urandom".into(), e))?;
    Ok(hex::encode(buf))
}

/// Loads, validates and pre-renders everything. `tokens` carries the previous table in and the
/// new one out: unused, unexpired tokens survive a reload (a machine mid-boot keeps working);
/// used or expired ones are replaced, which is how a host is re-armed for another build.
pub(crate) fn build(
    loader: &Loader,
    generation: u64,
    tokens: &mut HashMap<Mac, Token>,
) -> Result<Snapshot, ServeError> {
    let inv = kickstart::load(&loader.inventory, &loader.load)?;
    let templates = Templates::load(loader.templates.as_deref())?;
    let server = inv.server.clone().unwrap_or_default();
    let mut next = HashMap::new();
    let mut by_mac = HashMap::new();
    for h in &inv.hosts {
        let primary = h.mac;
        let token = match loader.tokens {
            None => None,
            Some(policy) => {
                let t = match tokens.get(&primary) {
                    Some(t) if !t.used && t.issued.elapsed() <= policy.ttl => t.clone(),
                    _ => Token {
                        value: new_token()?,
                        issued: Instant::now(),
                        used: false,
                    },
                };
                let v = t.value.clone();
                next.insert(primary, t);
                Some(v)
            }
        };
        let docs = templates.render_host(&inv, h, token.as_deref())?;
        let entry = Arc::new(Entry {
            fqdn: h.fqdn.clone(),
            primary,
            kickstart: Bytes::from(docs.kickstart),
            pxelinux: Bytes::from(docs.pxelinux),
            grub: Bytes::from(docs.grub),
            ipxe: Bytes::from(docs.ipxe),
        });
        for mac in &h.macs {
            by_mac.insert(*mac, entry.clone());
        }
    }
    *tokens = next;
    Ok(Snapshot {
        generation,
        hosts: inv.hosts.len(),
        by_mac,
        boot_ipxe: Bytes::from(templates.render_boot_ipxe(&server)?),
    })
}
