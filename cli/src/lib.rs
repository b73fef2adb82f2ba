//! cairn: treefile -> OSTree commit -> kickstart/PXE and images -> A/B deploy.
//!
//! One module per domain; each is usable without the CLI. The `cli` module only parses flags,
//! calls into the domains and prints.

pub mod cli;
pub mod image;
pub mod packer;
pub mod sysctl;
pub mod treefile;
pub mod yaml;
