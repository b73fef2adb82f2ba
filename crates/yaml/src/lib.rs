//! YAML and JSON documents as trees whose every node knows its line and column.
//!
//! Treefiles and inventories must report errors as `file:line:col`, long after parsing, so the
//! loader keeps a position on every node instead of deserializing straight into structs. JSON is
//! read through the same YAML 1.2 parser (JSON is a subset of it), which gives JSON positions too.
//!
//! Owns parsing and positions only, no schema; it does not link libostree.

// User data (files, requests) must never panic the program: no unwrap/expect/indexing outside
// tests; clippy (-D warnings in CI) enforces it, and a provably safe site says why with #[allow].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node came from: file, 1-based line and 1-based column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Loc {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub col: usize,
}

impl Loc {
    /// A location for a whole file, when no finer position exists (e.g. the file is missing).
    pub fn file(path: &Path) -> Loc {
        Loc {
            file: Arc::new(path.to_path_buf()),
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    /// Keys are always strings in the documents cairn reads; order is the author's.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Loc,
}

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{loc}: {msg}")]
    Syntax { loc: Loc, msg: String },
    #[error("{0}: the document is empty")]
    Empty(Loc),
    #[error("{loc}: duplicate key `{key}` (first defined at line {first_line})")]
    DuplicateKey {
        loc: Loc,
        key: String,
        first_line: usize,
    },
    #[error("{loc}: mapping keys must be scalars")]
    ComplexKey { loc: Loc },
    #[error("{0}: multiple documents in one file are not supported")]
    MultiDoc(Loc),
}

impl YamlError {
    pub fn loc(&self) -> &Loc {
        match self {
            YamlError::Syntax { loc, .. }
            | YamlError::DuplicateKey { loc, .. }
            | YamlError::ComplexKey { loc } => loc,
            YamlError::Empty(l) | YamlError::MultiDoc(l) => l,
        }
    }
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::String(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node; `None` for other node kinds.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    /// The plain JSON value, positions dropped.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(J::Number)
                .unwrap_or(J::Null),
            Value::String(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses `src` (YAML or JSON text) that was read from `file`.
pub fn parse(src: &str, file: &Path) -> Result<Node, YamlError> {
    let file = Arc::new(file.to_path_buf());
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: Vec::new(),
        docs: Vec::new(),
        error: None,
    };
    let mut parser = Parser::new_from_str(src);
    parser
        .load(&mut builder, true)
        .map_err(|e| YamlError::Syntax {
            loc: loc_of(&file, e.marker()),
            msg: e.info().to_string(),
        })?;
    if let Some(e) = builder.error {
        return Err(e);
    }
    let mut docs = builder.docs.into_iter();
    match (docs.next(), docs.next()) {
        (None, _) => Err(YamlError::Empty(Loc::file(&file))),
        (Some(doc), None) => Ok(doc),
        (Some(_), Some(second)) => Err(YamlError::MultiDoc(second.loc)),
    }
}

fn loc_of(file: &Arc<PathBuf>, m: &Marker) -> Loc {
    Loc {
        file: file.clone(),
        line: m.line(),
        // yaml-rust2 reports 0-based columns; editors and compilers count from 1.
        col: m.col() + 1,
    }
}

enum Frame {
    Seq(Node),
    Map {
        node: Node,
        pending_key: Option<Key>,
    },
}

struct Builder {
    file: Arc<PathBuf>,
    stack: Vec<(Frame, usize)>,
    anchors: Vec<(usize, Node)>,
    docs: Vec<Node>,
    error: Option<YamlError>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        if self.error.is_some() {
            return;
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some((Frame::Seq(seq), _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some((
                Frame::Map {
                    node: map,
                    pending_key,
                },
                _,
            )) => match pending_key.take() {
                None => {
                    let name = match &node.value {
                        Value::String(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => "null".to_string(),
                        Value::Seq(_) | Value::Map(_) => {
                            self.error = Some(YamlError::ComplexKey { loc: node.loc });
                            return;
                        }
                    };
                    if let Value::Map(entries) = &map.value {
                        if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                            self.error = Some(YamlError::DuplicateKey {
                                loc: node.loc.clone(),
                                key: name,
                                first_line: first.loc.line,
                            });
                            return;
                        }
                    }
                    *pending_key = Some(Key {
                        name,
                        loc: node.loc,
                    });
                }
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                }
            },
        }
    }

    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.push((anchor, node.clone()));
        }
        self.push_value(node);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let loc = loc_of(&self.file, &mark);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let value = if style == TScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Value::String(text)
                };
                self.finish(Node { value, loc }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Frame::Seq(Node {
                    value: Value::Seq(Vec::new()),
                    loc,
                }),
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Frame::Map {
                    node: Node {
                        value: Value::Map(Vec::new()),
                        loc,
                    },
                    pending_key: None,
                },
                anchor,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((frame, anchor)) = self.stack.pop() {
                    let node = match frame {
                        Frame::Seq(n) => n,
                        Frame::Map { node, .. } => node,
                    };
                    self.finish(node, anchor);
                }
            }
            Event::Alias(id) => {
                let found = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone());
                match found {
                    Some(mut n) => {
                        n.loc = loc;
                        self.push_value(n);
                    }
                    None => {
                        self.error.get_or_insert(YamlError::Syntax {
                            loc,
                            msg: "alias to an unknown anchor".into(),
                        });
                    }
                }
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// YAML 1.2 core-schema resolution of a plain (unquoted) scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Value::Int(i);
        }
    }
    // Only decimal-looking text becomes a float: "1.2.3" or "inf-ish" words stay strings.
    let looks_numeric = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && text.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, YamlError> {
        parse(s, Path::new("t.yaml"))
    }

    #[test]
    fn positions_are_one_based() {
        let n = p("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        let b = n.get("b").unwrap();
        let items = b.as_seq().unwrap();
        assert_eq!((items[0].loc.line, items[0].loc.col), (3, 5));
        assert_eq!(items[1].value, Value::String("y".into()));
        assert_eq!(n.get("a").unwrap().value, Value::Int(1));
    }

    #[test]
    fn json_parses_with_positions() {
        let n = parse(
            "{\n  \"ref\": \"a/b\",\n  \"x\": [1, true]\n}",
            Path::new("t.json"),
        )
        .unwrap();
        let r = n.get("ref").unwrap();
        assert_eq!(r.as_str(), Some("a/b"));
        assert_eq!(r.loc.line, 2);
        assert_eq!(
            n.to_json(),
            serde_json::json!({"ref": "a/b", "x": [1, true]})
        );
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let n = p("a: '1'\nb: \"true\"\nc: 1.2.3\nd: 0.5\n").unwrap();
        assert_eq!(n.get("a").unwrap().value, Value::String("1".into()));
        assert_eq!(n.get("b").unwrap().value, Value::String("true".into()));
        assert_eq!(n.get("c").unwrap().value, Value::String("1.2.3".into()));
        assert_eq!(n.get("d").unwrap().value, Value::Float(0.5));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = p("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            matches!(e, YamlError::DuplicateKey { first_line: 1, .. }),
            "{e}"
        );
        assert_eq!(e.loc().line, 3);
    }

    #[test]
    fn syntax_errors_carry_position() {
        let e = p("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(matches!(e, YamlError::Syntax { .. }));
        assert!(e.loc().line >= 1);
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
    }

    #[test]
    fn aliases_copy_anchored_nodes() {
        let n = p("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(n.get("b").unwrap().to_json(), serde_json::json!([1, 2]));
    }
}
