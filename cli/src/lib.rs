//! cairn: treefile -> OSTree commit -> kickstart/PXE and images -> A/B deploy.
//!
//! One module per domain; each is usable without the CLI. The `cli` module only parses flags,
//! calls into the domains and prints.

pub mod cli;
pub mod compose;
pub mod deploy;
pub mod failpoint;
pub mod image;
pub mod kickstart;
pub mod packer;
pub mod repo;
pub mod serve;
pub mod suggest;
pub mod sysctl;
pub mod treefile;
pub mod yaml;
