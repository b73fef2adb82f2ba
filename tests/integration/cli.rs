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

/// A full disk loses output: the command must say so and not exit 0, and must not panic (101).
#[test]
fn lost_stdout_is_an_error_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = cairn()
        .args(["sysctl", "list"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("writing to stdout failed"),
        "{}",
        stderr(&o)
    );
}

/// A reader that leaves early (`| head`) is normal for a filter: quiet, and the real status.
#[test]
fn closed_pipe_is_quiet() {
    // The read end is closed before cairn starts, so its first write gets EPIPE for certain.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = cairn()
        .args(["treefile", "render"])
        .arg(project_root().join("treefiles/k8s-node.yaml"))
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
