//! Everything the command layer writes: `out!`/`err!` that survive a closed terminal, and the one
//! JSON envelope every `--json` document is printed in.

use cairn_common::API_VERSION;

/// `println!` that survives a closed stdout. A deploy or rollback has already happened when its
/// summary is printed; if the operator's terminal hung up, the command must still finish rather
/// than panic halfway through its reporting (std's `println!` panics, exit 101).
macro_rules! out {
    () => {
        $crate::output::write_out(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// `eprintln!` with the same tolerance, for progress and warnings.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use err;

/// Set when stdout failed for a reason other than the reader leaving (full disk, hung-up tty):
/// output was lost, so a command that otherwise succeeded must not exit 0 (`> file` in CI).
/// Process-wide on purpose: stdout itself is.
pub static STDOUT_LOST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        // EPIPE: `cairn status | head` read what it wanted; like any Unix filter, stay quiet.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            STDOUT_LOST.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Prints a value as pretty JSON on stdout, the one format `--json` flags emit.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints `body` as one `--json` document: `{"apiVersion": "cairn/v1", "kind": KIND, ...}` with
/// the body's fields after those two (a body that is not an object goes under `items`). Every
/// command's machine output goes through here, so all carry the same version.
pub(crate) fn print_doc<T: serde::Serialize>(kind: &str, body: &T) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(&envelope(kind, body)?)?);
    Ok(())
}

fn envelope<T: serde::Serialize>(kind: &str, body: &T) -> anyhow::Result<serde_json::Value> {
    let mut doc = serde_json::Map::new();
    doc.insert("apiVersion".into(), API_VERSION.into());
    doc.insert("kind".into(), kind.into());
    match serde_json::to_value(body)? {
        serde_json::Value::Object(fields) => {
            for (k, v) in fields {
                if k != "apiVersion" && k != "kind" {
                    doc.insert(k, v);
                }
            }
        }
        other => {
            doc.insert("items".into(), other);
        }
    }
    Ok(serde_json::Value::Object(doc))
}
