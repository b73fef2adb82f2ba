//! Fleet rollouts: the FleetLock reboot-lock server (`cairn fleetlock`), the client the update
//! agent uses to take and give back a reboot slot, and the node id both sides agree on.
//!
//! The lock state is airlock's: one etcd v3 key per group, changed only by compare-and-set on the
//! key's version, so any number of servers (cairn's or airlock) can share one etcd and none keeps
//! state of its own.

mod batch;
mod client;
mod metrics;
mod node_id;
mod protocol;
mod server;
mod store;

pub use client::Client;
pub use node_id::{node_id, node_id_from_machine_id, CAIRN_APP_ID};
pub use protocol::{semaphore_key, valid_group, Semaphore, KEY_PREFIX};
pub use server::{bind, serve, Bound, Event, ServeOptions};
pub use store::{release, status, GroupStatus, Released, StoreOptions};

/// Every failure of the fleet domain.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?} (last error: {1})")]
    EtcdTimeout(std::time::Duration, String),
    #[error("gave up after {0:?}: lost {1} compare-and-set races for the group's key")]
    Contention(std::time::Duration, u64),
    #[error("{key}: not a FleetLock semaphore: {reason}")]
    BadSemaphore { key: String, reason: String },
    #[error("group {group:?}: all {slots} reboot slots are taken (holders: {holders})")]
    Full {
        group: String,
        slots: u64,
        holders: String,
    },
    #[error("invalid group {0:?}: a group matches ^[a-zA-Z0-9.-]+$")]
    BadGroup(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("no etcd endpoint given")]
    NoEndpoints,
    #[error("{0}")]
    BadUrl(String),
    /// A lock server's definite answer (a full semaphore, a bad request).
    #[error("{server}: {status} {kind}: {value}")]
    Refused {
        server: String,
        status: u16,
        kind: String,
        value: String,
    },
    /// Every lock server failed (down, timed out, 5xx) in every round.
    #[error("no lock server answered: {0}")]
    Unreachable(String),
}

impl FleetError {
    /// The same failure for every request of a batch. Only the batch-wide failures of a store
    /// update occur here, and they are plain data; anything else keeps its message.
    pub(crate) fn clone_for_batch(&self) -> Self {
        match self {
            Self::EtcdTimeout(d, s) => Self::EtcdTimeout(*d, s.clone()),
            Self::Contention(d, n) => Self::Contention(*d, *n),
            Self::BadSemaphore { key, reason } => Self::BadSemaphore {
                key: key.clone(),
                reason: reason.clone(),
            },
            other => Self::EtcdTimeout(std::time::Duration::ZERO, other.to_string()),
        }
    }
}
