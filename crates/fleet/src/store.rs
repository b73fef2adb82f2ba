//! The semaphores in etcd v3: read a group's key, change it, write it back only if its version is
//! still the one read (airlock's compare-and-set), retrying on conflicts and on etcd members that
//! do not answer until a deadline. Also the operator's views: status and forced release.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use serde::Serialize;

use crate::protocol::{group_of_key, semaphore_key, Change, Semaphore, KEY_PREFIX};
use crate::FleetError;

/// How to reach etcd and what a group's semaphore starts with.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// etcd client URLs (`http://host:2379`); requests are balanced over them.
    pub endpoints: Vec<String>,
    /// Slots a group gets when its key is first created.
    pub default_slots: u64,
    /// Per-group slots for keys created from now on (an existing key keeps its own count).
    pub group_slots: BTreeMap<String, u64>,
    /// Longest one operation (with its retries) may take before it is reported as failed.
    pub deadline: Duration,
}

impl StoreOptions {
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            default_slots: 1,
            group_slots: BTreeMap::new(),
            deadline: Duration::from_secs(5),
        }
    }

    fn slots_for(&self, group: &str) -> u64 {
        self.group_slots
            .get(group)
            .copied()
            .unwrap_or(self.default_slots)
    }
}

/// Counts the store reports to the server's metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Attempts {
    /// Compare-and-set transactions that lost to a concurrent writer.
    pub conflicts: u64,
    /// etcd calls that failed (member down, timeout) and were retried.
    pub etcd_errors: u64,
}

/// An etcd connection plus the options; cheap to clone (the client is a handle).
#[derive(Clone)]
pub struct Store {
    client: Client,
    opts: StoreOptions,
}

/// A request either finished with a semaphore, or failed; the attempts are counted either way.
pub type Outcome = (Result<Semaphore, FleetError>, Attempts);

impl Store {
    /// Connecting does not contact etcd (tonic connects lazily), so a server starts even while
    /// its etcd members are still coming up.
    pub async fn connect(opts: StoreOptions) -> Result<Self, FleetError> {
        if opts.endpoints.is_empty() {
            return Err(FleetError::NoEndpoints);
        }
        // A member that is down must cost one short timeout, not the whole deadline, so the
        // retry can reach another member.
        let per_call = (opts.deadline / 3).max(Duration::from_millis(200));
        let co = ConnectOptions::new()
            .with_connect_timeout(per_call)
            .with_timeout(per_call)
            .with_keep_alive(Duration::from_secs(5), per_call);
        let client = Client::connect(&opts.endpoints, Some(co)).await?;
        Ok(Self { client, opts })
    }

    /// `pre-reboot`: take a slot for `id` in `group`.
    pub async fn lock(&self, group: &str, id: &str) -> Outcome {
        self.update(group, |s| s.lock(id)).await
    }

    /// `steady-state`: give back `id`'s slot in `group`, if it holds one.
    pub async fn unlock(&self, group: &str, id: &str) -> Outcome {
        self.update(group, |s| s.unlock(id)).await
    }

    /// Read-modify-CAS until it sticks. A key that does not exist yet is created with the
    /// group's slots by the same transaction (compare version == 0), so two servers racing to
    /// create it cannot both win. Safe to repeat after a lost answer: the retry re-reads and
    /// finds the change already made (`Unchanged`).
    async fn update(&self, group: &str, change: impl Fn(&mut Semaphore) -> Change) -> Outcome {
        let key = semaphore_key(group);
        let start = Instant::now();
        let mut n = Attempts::default();
        let mut backoff = Duration::from_millis(5);
        loop {
            let err = match self.try_update(&key, group, &change).await {
                Ok(Some(sem)) => return (Ok(sem), n),
                Ok(None) => {
                    n.conflicts += 1;
                    None
                }
                Err(e @ (FleetError::Full { .. } | FleetError::BadSemaphore { .. })) => {
                    return (Err(e), n)
                }
                Err(e) => {
                    n.etcd_errors += 1;
                    Some(e)
                }
            };
            if start.elapsed() + backoff > self.opts.deadline {
                let last =
                    err.map_or_else(|| "compare-and-set conflicts".into(), |e| e.to_string());
                return (Err(FleetError::EtcdTimeout(self.opts.deadline, last)), n);
            }
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// One round: `Ok(None)` when another writer got there first.
    async fn try_update(
        &self,
        key: &str,
        group: &str,
        change: &impl Fn(&mut Semaphore) -> Change,
    ) -> Result<Option<Semaphore>, FleetError> {
        let mut kv = self.client.kv_client();
        let resp = kv.get(key, None).await?;
        let (mut sem, version) = match resp.kvs().first() {
            Some(kv) => (decode(key, kv.value())?, kv.version()),
            None => (Semaphore::new(self.opts.slots_for(group)), 0),
        };
        match change(&mut sem) {
            Change::Unchanged if version > 0 => return Ok(Some(sem)),
            Change::Full => {
                return Err(FleetError::Full {
                    group: group.to_string(),
                    slots: sem.total_slots,
                    holders: sem.holders.join(", "),
                })
            }
            Change::Changed | Change::Unchanged => {}
        }
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, version)])
            .and_then([TxnOp::put(key, sem.to_json(), None)]);
        let resp = kv.txn(txn).await?;
        Ok(resp.succeeded().then_some(sem))
    }

    /// Every group's semaphore in airlock's layout, by group name.
    pub async fn groups(&self) -> Result<Vec<GroupStatus>, FleetError> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(KEY_PREFIX, Some(GetOptions::new().with_prefix()))
            .await?;
        let mut out = Vec::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(group) = group_of_key(&key) else {
                continue;
            };
            let sem = decode(&key, kv.value())?;
            out.push(GroupStatus {
                group: group.to_string(),
                total_slots: sem.total_slots,
                holders: sem.holders,
                version: kv.version(),
            });
        }
        Ok(out)
    }
}

fn decode(key: &str, raw: &[u8]) -> Result<Semaphore, FleetError> {
    Semaphore::from_json(raw).map_err(|source| FleetError::BadSemaphore {
        key: key.to_string(),
        source,
    })
}

/// 50-100% of `d`, so that requests that collided do not collide again in step. std's
/// `RandomState` is seeded randomly per thread and stepped per instance: random enough to
/// spread retries, without a dependency.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    d / 2 + d.mul_f64((r % 1000) as f64 / 2000.0)
}

/// One group as `cairn fleetlock status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupStatus {
    pub group: String,
    pub total_slots: u64,
    pub holders: Vec<String>,
    /// The etcd key's version: how many times the semaphore has been written.
    pub version: i64,
}

/// What `release` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Released {
    pub id: String,
    /// Groups in which `id` held a slot and no longer does.
    pub groups: Vec<String>,
}

fn runtime() -> Result<tokio::runtime::Runtime, FleetError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FleetError::Io("tokio runtime".into(), e))
}

/// Every group's semaphore (or only `group`'s), sorted by group.
pub fn status(opts: StoreOptions, group: Option<&str>) -> Result<Vec<GroupStatus>, FleetError> {
    runtime()?.block_on(async {
        let store = Store::connect(opts).await?;
        let mut groups = store.groups().await?;
        groups.retain(|g| group.is_none_or(|want| g.group == want));
        Ok(groups)
    })
}

/// Frees the slot a node holds, for a node that died holding it: FleetLock has no lease, so a
/// slot is held until its node says steady-state or an operator releases it. Only the groups
/// in which `id` is a holder are written, each by compare-and-set.
pub fn release(opts: StoreOptions, id: &str, group: Option<&str>) -> Result<Released, FleetError> {
    runtime()?.block_on(async {
        let store = Store::connect(opts).await?;
        let mut released = Vec::new();
        for g in store.groups().await? {
            if group.is_some_and(|want| g.group != want) || !g.holders.iter().any(|h| h == id) {
                continue;
            }
            let (res, _) = store.unlock(&g.group, id).await;
            res?;
            released.push(g.group);
        }
        Ok(Released {
            id: id.to_string(),
            groups: released,
        })
    })
}
