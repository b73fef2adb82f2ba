//! The update agent (`cairn agent`, and the one-shot `cairn upgrade --reboot`), in the spirit of
//! Zincati: check the tracked ref on a cadence with jitter, stage what is new, wait for the
//! strategy's go (at once, a FleetLock slot, or a maintenance window), run the pre-reboot hooks
//! (drain), finalize, reboot; after the boot run the health check, and on a pass the post-boot
//! hooks (uncordon) and give the slot back; on a failure the health check's automatic rollback
//! happens and the slot is kept, so a bad release stops the rollout after at most `slots` nodes.
//!
//! The state machine is plain functions over an injected clock, reboot action and event sink
//! ([`Agent`]); the sysroot work is `cairn_ostree::deploy`'s, the lock protocol `cairn_fleet`'s.

pub mod config;
mod hooks;
mod machine;
mod state;
pub mod window;

pub use config::{AgentConfig, Hooks, Strategy};
pub use hooks::{hostname, reboot, reboot_command};
pub use machine::{next_delay, run, Agent, Clock, Event, EventKind, Outcome, SystemClock};
pub use state::{boot_id, AgentState, Phase};

impl From<cairn_container::ContainerError> for AgentError {
    fn from(e: cairn_container::ContainerError) -> Self {
        AgentError::Container(Box::new(e))
    }
}

/// Every failure of the agent domain.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{what}: {why}")]
    State { what: String, why: String },
    #[error(transparent)]
    Deploy(#[from] cairn_ostree::deploy::DeployError),
    #[error(transparent)]
    Fleet(#[from] cairn_fleet::FleetError),
    /// Boxed: image pull errors are large and rare.
    #[error(transparent)]
    Container(Box<cairn_container::ContainerError>),
    #[error("{what} failed: {why}")]
    Command { what: String, why: String },
}
