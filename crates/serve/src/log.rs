//! The server's logs, its output: the access log (one JSON line per request, buffered, flushed a
//! few times a second so logging never bounds throughput), the build-event log (append-only JSON
//! lines, fsynced per event, because "host X was built" must survive a crash of the server) and
//! the lifecycle lines (loaded, reload, shutdown). Each goes to its file or to stderr.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::ServeError;

/// The access log's destination, shared by the workers. Each worker formats lines into its own
/// buffer ([`LocalLog`]) and takes this lock only to hand over a whole buffer, a few times a
/// second: logging every request costs no lock and no syscall per request.
pub struct AccessLog {
    sink: Mutex<Box<dyn Write + Send>>,
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
            sink: Mutex::new(sink),
        })
    }

    /// Writes whole lines in one `write_all` (one `write(2)` on an `O_APPEND` file for buffers
    /// of this size), so lines from different workers never interleave.
    fn write(&self, buf: &[u8]) {
        let mut w = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        let _ = w.write_all(buf);
        let _ = w.flush();
    }
}

/// One worker's access-log buffer (workers are single-threaded, hence `RefCell`).
pub struct LocalLog {
    shared: Arc<AccessLog>,
    buf: RefCell<Vec<u8>>,
}

/// What one access-log line says about a request.
pub struct Access<'a> {
    pub remote: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub us: u128,
}

/// Past this, a buffer is handed over at once rather than at the next tick.
const LOCAL_LOG_LIMIT: usize = 64 * 1024;

impl LocalLog {
    pub fn new(shared: Arc<AccessLog>) -> LocalLog {
        LocalLog {
            shared,
            buf: RefCell::new(Vec::with_capacity(LOCAL_LOG_LIMIT + 1024)),
        }
    }

    /// Appends one JSON line: `{"ts","remote","method","path","status","bytes","us"}`. Query
    /// strings are never logged: they carry build tokens.
    pub fn record(&self, a: &Access<'_>) {
        let full = {
            let mut b = self.buf.borrow_mut();
            b.extend_from_slice(br#"{"ts":""#);
            write_ts(&mut b);
            b.extend_from_slice(br#"","remote":""#);
            b.extend_from_slice(a.remote.as_bytes());
            b.extend_from_slice(br#"","method":""#);
            b.extend_from_slice(a.method.as_bytes());
            b.extend_from_slice(br#"","path":"#);
            json_str(&mut b, a.path);
            let _ = write!(b, r#","status":{},"bytes":"#, a.status);
            match a.bytes {
                Some(n) => {
                    let _ = write!(b, "{n}");
                }
                None => b.extend_from_slice(b"null"),
            }
            let _ = writeln!(b, r#","us":{}}}"#, a.us);
            b.len() >= LOCAL_LOG_LIMIT
        };
        if full {
            self.flush();
        }
    }

    pub fn flush(&self) {
        let mut b = self.buf.borrow_mut();
        if !b.is_empty() {
            self.shared.write(&b);
            b.clear();
        }
    }
}

/// A JSON string literal; paths rarely need escaping, so the common case is one copy.
fn json_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|c| c >= 0x20 && c != b'"' && c != b'\\' && c < 0x7f)
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
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
                to_stderr(line.as_bytes());
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

/// One line of the server's lifecycle log (loaded, reload, shutdown, a worker that could not
/// start): always stderr, where a supervisor (systemd, a test) collects it.
pub fn lifecycle(event: &serde_json::Value) {
    let mut line = event.to_string();
    line.push('\n');
    to_stderr(line.as_bytes());
}

/// Whole lines in one write, so they never interleave with other threads' lines; a closed stderr
/// must not take the server down.
fn to_stderr(line: &[u8]) {
    let _ = std::io::stderr().lock().write_all(line);
}

/// An RFC 3339 UTC timestamp with milliseconds.
pub fn now() -> String {
    let mut b = Vec::with_capacity(24);
    write_ts(&mut b);
    String::from_utf8(b).unwrap_or_default()
}

fn write_ts(out: &mut Vec<u8>) {
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
        out.extend_from_slice(c.1.as_bytes());
        let _ = write!(out, ".{:03}Z", t.timestamp_subsec_millis());
    })
}
