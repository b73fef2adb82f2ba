//! The deploy domain's errors: each says what failed, on which sysroot or deployment, and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "{0} is not an OSTree sysroot (no ostree/repo inside); pass --sysroot with a deployed \
         root, or an empty directory to `cairn deploy` to create one"
    )]
    NotASysroot(PathBuf),
    #[error("{0} does not exist")]
    NoSuchDir(PathBuf),
    #[error("no deployments for os `{os}` in {sysroot}; run `cairn deploy` first")]
    NoDeployments { os: String, sysroot: PathBuf },
    #[error("which OS? the sysroot has no deployment to infer it from; pass --os NAME")]
    NeedOsName,
    #[error(
        "`{rev}` is neither a ref nor a commit in the sysroot repository{hint}; \
         `ostree refs --repo=<sysroot>/ostree/repo` lists what is there"
    )]
    UnknownRev { rev: String, hint: String },
    #[error("`{rev}` is neither a ref nor a commit in {repo}")]
    NotInRepo { rev: String, repo: PathBuf },
    #[error("invalid kernel argument `{arg}`: {why}")]
    BadKarg { arg: String, why: String },
    #[error("kernel argument `{0}` is not set on the default deployment")]
    KargNotFound(String),
    #[error("refusing to write an empty kernel command line (it would drop root= and ostree=)")]
    EmptyKargs,
    #[error("no deployment with index {index}; there are {count} (see `cairn status`)")]
    BadIndex { index: usize, count: usize },
    #[error("no previous deployment of `{0}` to roll back to")]
    NoRollbackTarget(String),
    #[error("remote `{name}` already exists with URL {existing}, not {wanted}")]
    RemoteMismatch {
        name: String,
        existing: String,
        wanted: String,
    },
    #[error("remote `{0}` is not configured in the sysroot repository; pass --url to add it")]
    UnknownRemote(String),
    #[error("unsupported URL `{0}`: use file://, http:// or https://")]
    BadUrl(String),
    #[error("the default deployment tracks commit {0}, not a ref: nothing to upgrade from")]
    NotTrackingRef(String),
    #[error("deployment {0} is staged; it can only be pinned once it is finalized")]
    PinStaged(usize),
    #[error("no staged deployment of `{0}` to finalize; `cairn upgrade --stage` stages one")]
    NothingStaged(String),
    #[error("--keep must be at least 1 (the default deployment is always kept)")]
    KeepZero,
    #[error(transparent)]
    Failpoint(#[from] cairn_common::failpoint::Triggered),
    #[error(transparent)]
    Sysctl(#[from] cairn_sysctl::SysctlError),
    // The cause is the `source`, which error reports print after `what`: naming it in the
    // message too would print it twice.
    #[error("{what}")]
    Ostree {
        what: String,
        source: crate::LibostreeError,
    },
    #[error("{what}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {why}")]
    State { what: String, why: String },
}

/// Adds "what was being done" to libostree and I/O errors.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, DeployError>;
}

impl<T> Context<T> for Result<T, ostree::glib::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, DeployError> {
        self.map_err(|e| DeployError::Ostree {
            what: what(),
            source: crate::LibostreeError::from_glib(&e),
        })
    }
}

impl<T> Context<T> for Result<T, std::io::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, DeployError> {
        self.map_err(|source| DeployError::Io {
            what: what(),
            source,
        })
    }
}
