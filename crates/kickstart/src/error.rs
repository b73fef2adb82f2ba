//! Errors of the kickstart domain: inventory problems carry their `file:line:col`.

use std::path::PathBuf;

use cairn_yaml::{Loc, YamlError};

/// One problem found in an inventory, at the position of the node that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub loc: Loc,
    /// A stable identifier scripts can match on (e.g. `duplicate-mac`, `unknown-key`).
    pub code: &'static str,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.loc, self.message)
    }
}

impl serde::Serialize for Diagnostic {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("file", &self.loc.file.display().to_string())?;
        m.serialize_entry("line", &self.loc.line)?;
        m.serialize_entry("col", &self.loc.col)?;
        m.serialize_entry("code", self.code)?;
        m.serialize_entry("message", &self.message)?;
        m.end()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KickstartError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// Every problem in the inventory, not just the first: fixing them one run at a time is slow.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("template {name}: {msg}")]
    Template { name: String, msg: String },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: exists and is not a cairn render directory (no .cairn-render marker); refusing to replace it. Remove it or choose another --out", path.display())]
    OutNotOurs { path: PathBuf },
}

fn join_lines(d: &[Diagnostic]) -> String {
    let mut s = format!(
        "{} problem{} in the inventory:",
        d.len(),
        if d.len() == 1 { "" } else { "s" }
    );
    for x in d {
        s.push_str("\n  ");
        s.push_str(&x.to_string());
    }
    s
}

impl KickstartError {
    /// The diagnostics behind an error: all of them for an invalid inventory, one for a YAML error.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            KickstartError::Invalid(d) => d.clone(),
            KickstartError::Yaml(e) => vec![Diagnostic {
                loc: e.loc().clone(),
                code: "yaml",
                message: match e {
                    YamlError::Syntax { msg, .. } => msg.clone(),
                    other => other
                        .to_string()
                        .split_once(": ")
                        .map(|(_, m)| m.to_string())
                        .unwrap_or_else(|| other.to_string()),
                },
            }],
            KickstartError::Read { path, source } => vec![Diagnostic {
                loc: Loc::file(path),
                code: "read",
                message: source.to_string(),
            }],
            other => vec![Diagnostic {
                loc: Loc::file(std::path::Path::new("-")),
                code: "other",
                message: other.to_string(),
            }],
        }
    }
}
