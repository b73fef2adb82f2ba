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

/// `{before}{value}{after}` when there is a value, else nothing: the optional parts of a summary
/// line (` (version 2)`, ` by Build key`).
pub(crate) fn suffix(before: &str, value: Option<&str>, after: &str) -> String {
    value
        .map(|v| format!("{before}{v}{after}"))
        .unwrap_or_default()
}

/// Prints `body` as one `--json` document: `{"apiVersion": API_VERSION, "kind": KIND, ...}` with
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
                match doc.get(&k) {
                    // A report that still names its own version or kind may repeat ours, but a
                    // field of its own under those names would be silently replaced: refuse.
                    Some(ours) => anyhow::ensure!(
                        *ours == v,
                        "internal error: the {kind} document's field `{k}` ({v}) clashes with \
                         the JSON envelope's"
                    ),
                    None => {
                        doc.insert(k, v);
                    }
                }
            }
        }
        other => {
            doc.insert("items".into(), other);
        }
    }
    Ok(serde_json::Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::envelope;
    use serde_json::json;

    #[test]
    fn object_fields_follow_version_and_kind() {
        let doc = envelope("Thing", &json!({"a": 1, "b": [2]})).unwrap();
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"apiVersion":"cairn/v1","kind":"Thing","a":1,"b":[2]}"#
        );
    }

    #[test]
    fn other_bodies_go_under_items() {
        let doc = envelope("Things", &vec!["x", "y"]).unwrap();
        assert_eq!(
            doc,
            json!({"apiVersion": "cairn/v1", "kind": "Things", "items": ["x", "y"]})
        );
    }

    #[test]
    fn a_clashing_field_is_an_error_not_lost() {
        let e = envelope("PackerRender", &json!({"kind": "qemu-iso"})).unwrap_err();
        assert!(e.to_string().contains("`kind`"), "{e}");
        // Repeating the envelope's own values is harmless.
        let doc = envelope("X", &json!({"apiVersion": "cairn/v1", "kind": "X", "n": 1})).unwrap();
        assert_eq!(doc["n"], 1);
    }
}
