//! cairn's integration tests: real libostree repos and sysroots, real tools as oracles.
//! One binary; each domain is a module.

mod agent;
mod cli;
mod commit;
mod common;
mod compose;
mod container;
mod deploy;
mod fleet;
mod fuzz;
mod hostile;
mod image;
mod install;
mod kickstart;
mod lockfile;
mod packer;
mod pxe;
mod repo;
mod serve;
mod signing;
mod snapshot;
mod sysctl;
mod treefile;
