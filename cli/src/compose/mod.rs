//! Compose: treefile -> root filesystem (a package backend) -> postprocess -> OSTree commit.
//! `cairn compose`

pub mod backend;
pub mod inputs;
pub mod manifest;
pub mod postprocess;
pub mod version;
