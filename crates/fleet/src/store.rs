//! The semaphores in etcd v3: read a group's key, change it, write it back only if its version is
//! still the one read (airlock's compare-and-set), retrying on conflicts and on etcd members that
//! do not answer until a deadline. Also the operator's views: status and forced release.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, TxnOpResponse,
};
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

enum Round {
    /// Written (or nothing to write): the semaphore after, and what each op did.
    Done(Semaphore, Vec<Change>),
    /// Another writer changed the key first; its value and version.
    Lost((Semaphore, i64)),
}

/// One lock or unlock, as a batch element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub lock: bool,
    pub id: String,
}

/// A request either finished with a semaphore, or failed; the attempts are counted either way.
pub type Outcome = (Result<Semaphore, FleetError>, Attempts);

/// A batch's result: the semaphore after it with what each op did, or one failure for all.
pub type BatchOutcome = (Result<(Semaphore, Vec<Change>), FleetError>, Attempts);

/// Applies `ops` in order; what each did.
fn apply(sem: &mut Semaphore, ops: &[Op]) -> Vec<Change> {
    ops.iter()
        .map(|op| {
            if op.lock {
                sem.lock(&op.id)
            } else {
                sem.unlock(&op.id)
            }
        })
        .collect()
}

/// One op's answer out of its batch's: a full semaphore is an error for that op alone.
pub fn op_result(group: &str, sem: &Semaphore, change: Change) -> Result<Semaphore, FleetError> {
    match change {
        Change::Full => Err(FleetError::Full {
            group: group.to_string(),
            slots: sem.total_slots,
            holders: sem.holders.join(", "),
        }),
        Change::Changed | Change::Unchanged => Ok(sem.clone()),
    }
}

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

    /// `steady-state` for one id, outside any batch (operator's release).
    pub async fn unlock(&self, group: &str, id: &str) -> Outcome {
        let op = Op {
            lock: false,
            id: id.to_string(),
        };
        let (res, n) = self.update(group, std::slice::from_ref(&op)).await;
        (res.and_then(|(sem, c)| op_result(group, &sem, c[0])), n)
    }

    /// Read-modify-CAS until it sticks. A key that does not exist yet is created with the
    /// group's slots by the same transaction (compare version == 0), so two servers racing to
    /// create it cannot both win. Safe to repeat after a lost answer: the retry re-reads and
    /// finds the change already made (`Unchanged`).
    ///
    /// A lost race is retried at once: the losing transaction read the winner's value in its
    /// else branch, and someone won that round, so there is no livelock to back off from. Only
    /// etcd failures (a member down, an election) wait before the next try.
    pub async fn update(&self, group: &str, ops: &[Op]) -> BatchOutcome {
        let key = semaphore_key(group);
        let start = Instant::now();
        let mut n = Attempts::default();
        let mut backoff = Duration::from_millis(5);
        let mut known = None;
        loop {
            let err = match self.round(&key, group, ops, known.take()).await {
                Ok(Round::Done(sem, changes)) => return (Ok((sem, changes)), n),
                Ok(Round::Lost(fresh)) => {
                    n.conflicts += 1;
                    if start.elapsed() > self.opts.deadline {
                        let e = FleetError::Contention(self.opts.deadline, n.conflicts);
                        return (Err(e), n);
                    }
                    known = Some(fresh);
                    continue;
                }
                Err(e @ FleetError::BadSemaphore { .. }) => return (Err(e), n),
                Err(e) => e,
            };
            n.etcd_errors += 1;
            if start.elapsed() + backoff > self.opts.deadline {
                let e = FleetError::EtcdTimeout(self.opts.deadline, err.to_string());
                return (Err(e), n);
            }
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_millis(200));
        }
    }

    /// One read (unless the last round's loss already told us the value) and one transaction.
    async fn round(
        &self,
        key: &str,
        group: &str,
        ops: &[Op],
        known: Option<(Semaphore, i64)>,
    ) -> Result<Round, FleetError> {
        let mut kv = self.client.kv_client();
        let (mut sem, version) = match known {
            Some(k) => k,
            None => {
                let resp = kv.get(key, None).await?;
                self.current(key, group, resp.kvs())?
            }
        };
        let changes = apply(&mut sem, ops);
        // Nothing to write unless the key must be created: holding twice, releasing what is
        // not held and a full group are all answered from the read alone.
        if version > 0 && !changes.contains(&Change::Changed) {
            return Ok(Round::Done(sem, changes));
        }
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, version)])
            .and_then([TxnOp::put(key, sem.to_json(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = kv.txn(txn).await?;
        if resp.succeeded() {
            return Ok(Round::Done(sem, changes));
        }
        match resp.op_responses().first() {
            Some(TxnOpResponse::Get(g)) => Ok(Round::Lost(self.current(key, group, g.kvs())?)),
            // etcd always answers a failed compare with its else branch's results.
            _ => Ok(Round::Lost(self.current(key, group, &[])?)),
        }
    }

    /// The semaphore and key version a read returned; a missing key is a new semaphore at
    /// version 0.
    fn current(
        &self,
        key: &str,
        group: &str,
        kvs: &[etcd_client::KeyValue],
    ) -> Result<(Semaphore, i64), FleetError> {
        Ok(match kvs.first() {
            Some(kv) => (decode(key, kv.value())?, kv.version()),
            None => (Semaphore::new(self.opts.slots_for(group)), 0),
        })
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
    Semaphore::from_json(raw).map_err(|e| FleetError::BadSemaphore {
        key: key.to_string(),
        reason: e.to_string(),
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
