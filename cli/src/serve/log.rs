//! Two logs: the access log (one JSON line per request, buffered, flushed a few times a second so
//! logging never bounds throughput) and the build-event log (append-only JSON lines, fsynced per
//! event, because "host X was built" must survive a crash of the server).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use super::ServeError;

pub struct AccessLog {
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
}

impl AccessLog {
    /// To `path` (appended), or to stderr.
    pub fn open(path: Option<&Path>) -> Result<AccessLog, ServeError> {
        let sink: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| ServeError::Io(p.to_path_buf(), e))?,
            ),
            None => Box::new(std::io::stderr()),
        };
        Ok(AccessLog {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, sink)),
        })
    }

    pub fn line(&self, line: &str) {
        let mut w = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = w.write_all(line.as_bytes());
        let _ = w.write_all(b"\n");
    }

    pub fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

pub struct EventLog {
    file: Option<Mutex<File>>,
}

impl EventLog {
    pub fn open(path: Option<&Path>) -> Result<EventLog, ServeError> {
        let file = match path {
            None => None,
            Some(p) => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| ServeError::Io(p.to_path_buf(), e))?,
            )),
        };
        Ok(EventLog { file })
    }

    /// Appends one event and fsyncs it; without a log file the event goes to stderr.
    pub fn append(&self, event: &serde_json::Value) -> std::io::Result<()> {
        let mut line = event.to_string();
        line.push('\n');
        match &self.file {
            None => {
                eprint!("{line}");
                Ok(())
            }
            Some(f) => {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                // One write of a whole line on an O_APPEND fd: concurrent writers never interleave.
                f.write_all(line.as_bytes())?;
                f.sync_data()
            }
        }
    }
}

/// An RFC 3339 UTC timestamp with milliseconds.
pub fn now() -> String {
    // Per-request cost matters at 100k req/s: format the date part once per second per thread.
    thread_local! {
        static CACHE: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let t = chrono::Utc::now();
    let secs = t.timestamp();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            *c = (secs, t.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        format!("{}.{:03}Z", c.1, t.timestamp_subsec_millis())
    })
}
