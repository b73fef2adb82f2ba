//! The one crate that links libostree. `repo` owns OSTree repositories (commit, pull, diff,
//! static deltas, prune, GPG signing); `deploy` owns sysroots (A/B deploy, upgrade, rollback,
//! kernel arguments, pins, health). glib and ostree types stay inside: callers pass paths,
//! refs, checksums and plain data.

pub mod deploy;
pub mod repo;
