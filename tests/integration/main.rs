//! cairn's integration tests: real libostree repos and sysroots, real tools as oracles.
//! One binary; each domain is a module.

mod agent;
mod cli;
mod commit;
mod common;
mod compose;
mod deploy;
mod fleet;
mod image;
mod kickstart;
mod lockfile;
mod packer;
mod repo;
mod serve;
mod signing;
mod snapshot;
mod sysctl;
mod treefile;
