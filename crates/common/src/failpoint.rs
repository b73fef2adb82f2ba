//! Named failpoints for crash-safety tests, in the spirit of rpm-ostree's `failpoints.rs`.
//!
//! `CAIRN_FAILPOINT=NAME=ACTION[,NAME=ACTION...]` where ACTION is:
//! - `pause`: emit [`Notice::FailpointPaused`] (the `cairn` binary prints it on stderr as
//!   `cairn: failpoint NAME: pausing (pid P)`) and sleep forever, so a test can SIGKILL the
//!   process at exactly this point;
//! - `error`: fail the operation with "failpoint NAME triggered" (exercises the abort path).
//!
//! Unset (the normal case) costs one environment lookup per point.

use crate::notice::{self, Notice};

/// The error a point configured with `error` returns; domains wrap it in their own error type.
#[derive(Debug, thiserror::Error)]
#[error("failpoint {0} triggered (CAIRN_FAILPOINT)")]
pub struct Triggered(pub String);

/// Runs the action configured for `name`, if any.
pub fn hit(name: &str) -> Result<(), Triggered> {
    let Ok(spec) = std::env::var("CAIRN_FAILPOINT") else {
        return Ok(());
    };
    for item in spec.split(',') {
        let (point, action) = item.split_once('=').unwrap_or((item, "error"));
        if point.trim() != name {
            continue;
        }
        if action.trim() == "pause" {
            notice::emit(Notice::FailpointPaused {
                point: name.to_string(),
                pid: std::process::id(),
            });
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        return Err(Triggered(name.to_string()));
    }
    Ok(())
}
