//! Notices: what a domain has to tell the operator while it works, which is not its result (a
//! failpoint pausing, a wait for a lock, a library's own remarks, the address a server bound).
//!
//! Domains never print. They [`emit`] a typed [`Notice`]; the program decides where it goes by
//! installing one process-wide sink ([`set_sink`]); the `cairn` binary installs its sink first
//! thing in `main`. Without a sink notices are dropped: a library writing on its embedder's
//! stdio behind its back is exactly what "domain code does not print" forbids, and every notice
//! is advisory (none carries an error: errors are returned).

use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;

/// One thing worth telling the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A failpoint configured with `pause` stops here until the process is killed. Crash tests
    /// wait for this exact line on stderr before they SIGKILL.
    FailpointPaused { point: String, pid: u32 },
    /// Another process holds the sysroot lock; this one blocks until it is released.
    WaitingForLock { path: PathBuf },
    /// Text libostree printed itself (`g_print`, e.g. "Freed objects: ..."), one line, without
    /// its newline.
    Libostree { text: String },
    /// A step of a long operation (`cairn install`'s partitioning, pull, boot loader...).
    Progress { command: &'static str, text: String },
    /// A server is bound and accepting (`url` is `http://ADDR`; port 0 resolved).
    Listening { url: String },
}

impl Notice {
    /// True when the notice is part of the command's output, what a script reads (the address
    /// `cairn serve` bound); false for diagnostics meant for a person.
    pub fn is_output(&self) -> bool {
        matches!(self, Notice::Listening { .. })
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::FailpointPaused { point, pid } => {
                write!(f, "cairn: failpoint {point}: pausing (pid {pid})")
            }
            Notice::WaitingForLock { path } => write!(
                f,
                "waiting for another process to release the lock on {}",
                path.display()
            ),
            Notice::Libostree { text } => f.write_str(text),
            Notice::Listening { url } => write!(f, "listening on {url}"),
            Notice::Progress { command, text } => write!(f, "{command}: {text}"),
        }
    }
}

type Sink = Box<dyn Fn(&Notice) + Send + Sync>;

/// Process-wide like stderr itself: notices come from any thread (libostree's print handler,
/// server workers) and go to the one place the program chose.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Sends every later notice to `sink` (replacing any previous sink).
pub fn set_sink(sink: impl Fn(&Notice) + Send + Sync + 'static) {
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(sink));
}

/// Hands `notice` to the installed sink; dropped when there is none.
pub fn emit(notice: Notice) {
    if let Some(sink) = SINK.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        sink(&notice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn emitted_notices_reach_the_installed_sink_as_their_lines() {
        // The only test in this crate that touches the process-wide sink.
        emit(Notice::Listening {
            url: "http://dropped".into(),
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        set_sink(move |n| log.lock().unwrap().push((n.to_string(), n.is_output())));
        emit(Notice::FailpointPaused {
            point: "repo-commit-before-ref".into(),
            pid: 42,
        });
        emit(Notice::WaitingForLock {
            path: "/sysroot".into(),
        });
        emit(Notice::Listening {
            url: "http://127.0.0.1:8080".into(),
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (
                    "cairn: failpoint repo-commit-before-ref: pausing (pid 42)".to_string(),
                    false
                ),
                (
                    "waiting for another process to release the lock on /sysroot".to_string(),
                    false
                ),
                ("listening on http://127.0.0.1:8080".to_string(), true),
            ]
        );
    }
}
