//! Group commit: a replica funnels the concurrent requests of one group into one
//! compare-and-set. A group's semaphore is one etcd key, so concurrent writers of it take
//! turns, one per raft commit; measured with 1000 nodes (bench/fleetlock.sh), one transaction
//! per request lost dozens of races in a row and ran into the deadline. Batched, only the
//! replicas contend with each other, and a batch costs what one request did.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{op_result, Op, Outcome, Store};

/// Largest batch: bounds the etcd value change and the time a batch's ops wait on each other.
const MAX_BATCH: usize = 256;
/// A group's writer task ends after this long without requests (groups come and go with the
/// clients that name them).
const IDLE: Duration = Duration::from_secs(60);

struct Pending {
    op: Op,
    reply: oneshot::Sender<Outcome>,
}

/// One writer task per active group; requests queue to it.
pub struct Batcher {
    store: Store,
    groups: Mutex<HashMap<String, mpsc::UnboundedSender<Pending>>>,
}

impl Batcher {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            groups: Mutex::new(HashMap::new()),
        })
    }

    /// Queues `op` for `group` and waits for its batch's answer.
    pub async fn submit(self: &Arc<Self>, group: &str, op: Op) -> Outcome {
        loop {
            let (tx, rx) = oneshot::channel();
            let pending = Pending {
                op: op.clone(),
                reply: tx,
            };
            let queue = self.queue(group);
            if queue.send(pending).is_ok() {
                if let Ok(outcome) = rx.await {
                    return outcome;
                }
            }
            // The writer went idle and ended just as the request came: start another and
            // queue again (nothing was applied: the op never reached a batch).
            let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            if groups.get(group).is_some_and(|q| q.same_channel(&queue)) {
                groups.remove(group);
            }
        }
    }

    fn queue(self: &Arc<Self>, group: &str) -> mpsc::UnboundedSender<Pending> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = groups.get(group).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        groups.insert(group.to_string(), tx.clone());
        tokio::spawn(writer(self.clone(), group.to_string(), rx));
        tx
    }
}

/// Takes whatever has queued up since the last batch was written, writes it as one batch,
/// answers each request, repeats.
async fn writer(b: Arc<Batcher>, group: String, mut rx: mpsc::UnboundedReceiver<Pending>) {
    loop {
        let first = match tokio::time::timeout(IDLE, rx.recv()).await {
            Ok(Some(p)) => p,
            _ => {
                // Closing first, so that a request racing with this exit fails to send and
                // starts a new writer rather than waiting on this one.
                rx.close();
                while let Ok(p) = rx.try_recv() {
                    drop(p); // its submitter sees the dropped reply and queues again
                }
                return;
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let ops: Vec<Op> = batch.iter().map(|p| p.op.clone()).collect();
        let (res, attempts) = b.store.update(&group, &ops).await;
        // The attempts are the batch's: counted once, with its first request.
        let mut counted = Some(attempts);
        for (i, p) in batch.into_iter().enumerate() {
            let r = match &res {
                Ok((sem, changes)) => op_result(&group, sem, changes[i]),
                Err(e) => Err(e.clone_for_batch()),
            };
            let _ = p.reply.send((r, counted.take().unwrap_or_default()));
        }
    }
}
