//! What changed between two loaded treefiles: packages added and removed, keys changed.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Treefile;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyChange {
    /// Top-level key, or `cairn.<key>` inside the cairn section.
    pub key: String,
    /// `None`: the key is absent on that side.
    pub old: Option<Value>,
    pub new: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreefileDiff {
    pub packages_added: Vec<String>,
    pub packages_removed: Vec<String>,
    pub changed: Vec<KeyChange>,
}

impl TreefileDiff {
    pub fn is_empty(&self) -> bool {
        self.packages_added.is_empty()
            && self.packages_removed.is_empty()
            && self.changed.is_empty()
    }
}

fn diff_maps(
    prefix: &str,
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    out: &mut Vec<KeyChange>,
) {
    let keys: Vec<&String> = a
        .keys()
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .collect();
    for k in keys {
        if prefix.is_empty() && k == "packages" {
            continue;
        }
        let (old, new) = (a.get(k), b.get(k));
        if old == new {
            continue;
        }
        let name = format!("{prefix}{k}");
        if let (Some(Value::Object(x)), Some(Value::Object(y)), "cairn") = (old, new, k.as_str()) {
            diff_maps(&format!("{name}."), x, y, out);
            continue;
        }
        out.push(KeyChange {
            key: name,
            old: old.cloned(),
            new: new.cloned(),
        });
    }
}

/// Compares `a` (old) with `b` (new).
pub fn diff(a: &Treefile, b: &Treefile) -> TreefileDiff {
    let pa: BTreeSet<&String> = a.packages.iter().collect();
    let pb: BTreeSet<&String> = b.packages.iter().collect();
    let mut changed = Vec::new();
    diff_maps("", &a.json, &b.json, &mut changed);
    TreefileDiff {
        packages_added: pb.difference(&pa).map(|s| s.to_string()).collect(),
        packages_removed: pa.difference(&pb).map(|s| s.to_string()).collect(),
        changed,
    }
}
