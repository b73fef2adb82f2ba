//! Errors and diagnostics of the treefile engine. Every error on user input carries the position
//! it comes from; errors inside included files also carry the include sites that led there.

use std::path::PathBuf;

use cairn_common::suggest::did_you_mean;
use cairn_yaml::{Loc, YamlError};

#[derive(Debug, thiserror::Error)]
pub enum TreefileError {
    #[error("{0}")]
    Yaml(#[from] YamlError),

    #[error("{loc}: cannot read {}: {source}", path.display())]
    Read {
        loc: Loc,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{loc}: included file `{name}` does not exist (looked for {})", path.display())]
    MissingInclude {
        loc: Loc,
        name: String,
        path: PathBuf,
    },

    #[error("{loc}: include cycle: {chain}")]
    Cycle { loc: Loc, chain: String },

    #[error(
        "{loc}: `{name}` is already included (first at {first}); a file may be included only once"
    )]
    DuplicateInclude { loc: Loc, name: String, first: Loc },

    #[error("{loc}: include depth limit of {limit} reached (is there an include chain that never ends?)")]
    Depth { loc: Loc, limit: usize },

    #[error("{loc}: unknown key `{key}`{}", did_you_mean(suggestion.as_deref()))]
    UnknownKey {
        loc: Loc,
        key: String,
        suggestion: Option<String>,
    },

    #[error("{loc}: `{key}` must be {expected}, found {found}")]
    Type {
        loc: Loc,
        key: String,
        expected: String,
        found: &'static str,
    },

    #[error("{loc}: undefined variable `{name}` in `{key}`{}", known_vars(known))]
    UndefinedVariable {
        loc: Loc,
        name: String,
        key: String,
        known: Vec<String>,
    },

    #[error("{loc}: condition `{cond}` compares `{var}` (a {var_type}) with a {value_type}; both sides must have the same type")]
    ConditionType {
        loc: Loc,
        cond: String,
        var: String,
        var_type: &'static str,
        value_type: &'static str,
    },

    #[error("{loc}: invalid condition `{cond}`: {msg}")]
    Condition { loc: Loc, cond: String, msg: String },

    #[error("{loc}: invalid package entry: {msg}")]
    Package { loc: Loc, msg: String },

    #[error("{loc}: {msg}")]
    Invalid { loc: Loc, msg: String },

    #[error("invalid --var `{arg}`: {msg}")]
    BadVar { arg: String, msg: String },

    #[error("unsupported architecture `{arch}` (known: {})", crate::KNOWN_ARCHES.join(", "))]
    Arch { arch: String },

    /// An error inside an included file: `from` is the include entry that pulled the file in.
    #[error("{inner}\n  included from {from}")]
    Included {
        from: Loc,
        inner: Box<TreefileError>,
    },

    /// Several independent errors, reported together so one run shows everything to fix.
    #[error("{}", join_errors(.0))]
    Many(Vec<TreefileError>),
}

fn known_vars(known: &[String]) -> String {
    if known.is_empty() {
        "; no variables are defined (define it under `variables:` or pass --var NAME=VALUE)"
            .to_string()
    } else {
        format!(
            "; defined: {} (define it under `variables:` or pass --var NAME=VALUE)",
            known.join(", ")
        )
    }
}

fn join_errors(errs: &[TreefileError]) -> String {
    let mut s = errs
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    s.push_str(&format!("\n{} errors", errs.len()));
    s
}

impl TreefileError {
    /// The innermost position, when the error has one (command-line errors have none).
    pub fn loc(&self) -> Option<&Loc> {
        use TreefileError::*;
        match self {
            Yaml(e) => Some(e.loc()),
            Read { loc, .. }
            | MissingInclude { loc, .. }
            | Cycle { loc, .. }
            | DuplicateInclude { loc, .. }
            | Depth { loc, .. }
            | UnknownKey { loc, .. }
            | Type { loc, .. }
            | UndefinedVariable { loc, .. }
            | ConditionType { loc, .. }
            | Condition { loc, .. }
            | Package { loc, .. }
            | Invalid { loc, .. } => Some(loc),
            BadVar { .. } | Arch { .. } => None,
            Included { inner, .. } => inner.loc(),
            Many(v) => v.first().and_then(|e| e.loc()),
        }
    }

    /// Flattens into diagnostics (one per error), include trails separated out.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            TreefileError::Many(v) => v.iter().flat_map(|e| e.diagnostics()).collect(),
            TreefileError::Included { from, inner } => {
                let mut d = inner.diagnostics();
                for x in &mut d {
                    x.included_from.push(from.clone());
                }
                d
            }
            other => {
                let text = other.to_string();
                let (loc, message) = match other.loc() {
                    Some(loc) => {
                        let prefix = format!("{loc}: ");
                        let msg = text.strip_prefix(&prefix).unwrap_or(&text).to_string();
                        (Some(loc.clone()), msg)
                    }
                    None => (None, text),
                };
                vec![Diagnostic {
                    severity: Severity::Error,
                    loc,
                    message,
                    included_from: Vec::new(),
                }]
            }
        }
    }

    /// Wraps `self` in the include trail, innermost site last in `trail`.
    pub(crate) fn within(mut self, trail: &[Loc]) -> TreefileError {
        for from in trail.iter().rev() {
            self = TreefileError::Included {
                from: from.clone(),
                inner: Box::new(self),
            };
        }
        self
    }

    /// One error as is, several as `Many`.
    pub(crate) fn from_list(mut errs: Vec<TreefileError>) -> TreefileError {
        match errs.pop() {
            Some(one) if errs.is_empty() => one,
            Some(last) => {
                errs.push(last);
                TreefileError::Many(errs)
            }
            None => TreefileError::Many(errs),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a treefile: what `cairn treefile check` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// `None` for findings about the command line itself.
    pub loc: Option<Loc>,
    pub message: String,
    /// The include entries that led to the file, nearest first.
    pub included_from: Vec<Loc>,
}

impl Diagnostic {
    pub(crate) fn warning(loc: Loc, message: impl Into<String>, trail: &[Loc]) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            loc: Some(loc),
            message: message.into(),
            included_from: trail.iter().rev().cloned().collect(),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    /// `file:line:col: severity: message`, then one `included from` line per include site.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.loc {
            Some(l) => write!(f, "{l}: {sev}: {}", self.message)?,
            None => write!(f, "{sev}: {}", self.message)?,
        }
        for from in &self.included_from {
            write!(f, "\n  included from {from}")?;
        }
        Ok(())
    }
}
