//! What every cairn domain shares and none owns: did-you-mean suggestions for unknown names,
//! named failpoints for crash tests, notices (what domains tell the operator, printed by the
//! program, never by them), and the version every `--json` document carries.

// User data (files, requests) must never panic the program: no unwrap/expect/indexing outside
// tests; clippy (-D warnings in CI) enforces it, and a provably safe site says why with #[allow].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod failpoint;
pub mod fsutil;
pub mod kv;
pub mod named;
pub mod notice;
pub mod suggest;
pub mod tool;

/// The `apiVersion` of every JSON document cairn prints (`--json`) or stores for machines.
pub const API_VERSION: &str = "cairn/v1";
