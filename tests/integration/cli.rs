//! The CLI surface itself: help that teaches, errors that exit non-zero.

use crate::common::*;

#[test]
fn help_lists_command_families() {
    let o = run_cairn(["--help"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("treefile"), "{out}");
}

#[test]
fn unknown_command_fails() {
    let o = run_cairn(["no-such-command"]);
    assert!(!o.status.success());
}
