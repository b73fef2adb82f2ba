//! Validation of single values against their kind in the schema table, into `Field`s that keep
//! every position (errors found after merging still point at the right file:line:col).

use indexmap::IndexMap;
use std::collections::BTreeMap;

use super::error::TreefileError;
use super::schema::{lookup, Field, Item, KeySpec, Kind, Layer, Lookup, Ty};
use cairn_common::suggest::hint;
use cairn_yaml::{Key, Loc, Node, Value};

pub(crate) fn type_err(key: &str, node: &Node, expected: &str) -> TreefileError {
    TreefileError::Type {
        loc: node.loc.clone(),
        key: key.to_string(),
        expected: expected.to_string(),
        found: node.type_name(),
    }
}

pub(crate) fn invalid(loc: &Loc, msg: impl Into<String>) -> TreefileError {
    TreefileError::Invalid {
        loc: loc.clone(),
        msg: msg.into(),
    }
}

/// Checks one value against its type. `key` is the dotted key for messages.
pub(crate) fn check_ty(ty: Ty, key: &str, node: &Node) -> Result<(), TreefileError> {
    match ty {
        Ty::Str => node
            .as_str()
            .map(|_| ())
            .ok_or_else(|| type_err(key, node, "a string")),
        Ty::Bool => match node.value {
            Value::Bool(_) => Ok(()),
            _ => Err(type_err(key, node, "true or false")),
        },
        Ty::UInt => match node.value {
            Value::Int(i) if i >= 0 => Ok(()),
            _ => Err(type_err(key, node, "a non-negative integer")),
        },
        Ty::StrOrUInt => match node.value {
            Value::String(_) => Ok(()),
            Value::Int(i) if i >= 0 => Ok(()),
            _ => Err(type_err(key, node, "a string or a non-negative integer")),
        },
        Ty::Enum(values) => {
            let s = match &node.value {
                Value::String(s) => s.clone(),
                // `edition: 2024` written unquoted.
                Value::Int(i) => i.to_string(),
                _ => {
                    return Err(type_err(
                        key,
                        node,
                        &format!("one of {}", values.join(", ")),
                    ))
                }
            };
            if values.contains(&s.as_str()) {
                Ok(())
            } else {
                Err(invalid(
                    &node.loc,
                    format!(
                        "`{key}` must be one of {}, found `{s}`{}",
                        values.join(", "),
                        hint(&s, values.iter().copied())
                    ),
                ))
            }
        }
        Ty::StrList => {
            let items = node
                .as_seq()
                .ok_or_else(|| type_err(key, node, "a list of strings"))?;
            for it in items {
                if it.as_str().is_none() {
                    return Err(type_err(key, it, "a list of strings"));
                }
            }
            Ok(())
        }
        Ty::CheckFile => check_passwd_spec(key, node),
        Ty::Rojig => check_record(&ROJIG, key, node),
        Ty::Any => Ok(()),
        Ty::SysctlValue => match &node.value {
            Value::String(s) if !s.contains('\n') => Ok(()),
            Value::Int(_) | Value::Float(_) => Ok(()),
            _ => Err(type_err(key, node, "a single-line string or a number")),
        },
    }
}

fn check_passwd_spec(key: &str, node: &Node) -> Result<(), TreefileError> {
    node.as_map()
        .ok_or_else(|| type_err(key, node, "a mapping with `type`"))?;
    let ty = node.get("type").ok_or_else(|| {
        invalid(
            &node.loc,
            format!("`{key}` needs `type` (none, previous, file or data)"),
        )
    })?;
    let t = ty
        .as_str()
        .ok_or_else(|| type_err(&format!("{key}.type"), ty, "a string"))?;
    let allowed: &[&str] = match t {
        "none" | "previous" => &["type"],
        "file" => &["type", "filename"],
        "data" => &["type", "entries"],
        other => {
            return Err(invalid(
                &ty.loc,
                format!("`{key}.type` must be none, previous, file or data, found `{other}`"),
            ))
        }
    };
    for (k, _) in node.as_map().unwrap_or_default() {
        if !allowed.contains(&k.name.as_str()) {
            return Err(TreefileError::UnknownKey {
                loc: k.loc.clone(),
                key: format!("{key}.{}", k.name),
                suggestion: None,
            });
        }
    }
    match t {
        "file" => {
            let f = node.get("filename").ok_or_else(|| {
                invalid(&node.loc, format!("`{key}` of type file needs `filename`"))
            })?;
            check_ty(Ty::Str, &format!("{key}.filename"), f)
        }
        "data" => {
            let e = node.get("entries").ok_or_else(|| {
                invalid(&node.loc, format!("`{key}` of type data needs `entries`"))
            })?;
            e.as_map()
                .map(|_| ())
                .ok_or_else(|| type_err(&format!("{key}.entries"), e, "a mapping"))
        }
        _ => Ok(()),
    }
}

/// rpm-ostree's rule: add-files may only write where OSTree manages content.
fn add_files_dest_ok(dest: &str) -> bool {
    let p = dest.trim_start_matches('/');
    (p.starts_with("usr/") && !p.starts_with("usr/local/"))
        || ["etc/", "bin/", "sbin/", "lib/", "lib64/"]
            .iter()
            .any(|pre| p.starts_with(pre))
}

fn check_item(item: Item, key: &str, node: &Node) -> Result<(), TreefileError> {
    match item {
        Item::Str => check_ty(Ty::Str, key, node),
        Item::AddFile => {
            let Some([_, to]) = node
                .as_seq()
                .filter(|s| s.iter().all(|n| n.as_str().is_some()))
            else {
                return Err(type_err(key, node, "a list of [source, destination] pairs"));
            };
            let dest = to.as_str().unwrap_or_default();
            if !add_files_dest_ok(dest) {
                return Err(invalid(
                    &to.loc,
                    format!(
                        "add-files destination `{dest}` is outside what OSTree manages; use a path under /usr (not /usr/local) or /etc"
                    ),
                ));
            }
            Ok(())
        }
        Item::PackageRegexes => {
            let ok = node
                .as_seq()
                .is_some_and(|s| s.len() >= 2 && s.iter().all(|n| n.as_str().is_some()));
            if ok {
                Ok(())
            } else {
                Err(type_err(key, node, "a list of [package, regex, ...] lists"))
            }
        }
        Item::RepoPackages => check_record(&REPO_PACKAGES, key, node),
    }
}

/// A mapping of typed fields, some required (`rojig`, `repo-packages` entries).
struct Record {
    /// What the value must be, for the type error.
    what: &'static str,
    fields: &'static [(&'static str, Ty)],
    required: &'static [&'static str],
    /// `needs` or `entries need`: how the missing-field message reads.
    needs: &'static str,
}

const ROJIG: Record = Record {
    what: "a mapping",
    fields: &[
        ("name", Ty::Str),
        ("summary", Ty::Str),
        ("license", Ty::Str),
        ("description", Ty::Str),
    ],
    required: &["name", "summary", "license"],
    needs: "needs",
};

const REPO_PACKAGES: Record = Record {
    what: "a list of {repo, packages} mappings",
    fields: &[("repo", Ty::Str), ("packages", Ty::StrList)],
    required: &["repo", "packages"],
    needs: "entries need",
};

fn check_record(r: &Record, key: &str, node: &Node) -> Result<(), TreefileError> {
    let map = node.as_map().ok_or_else(|| type_err(key, node, r.what))?;
    for (k, v) in map {
        let Some((_, ty)) = r.fields.iter().find(|(name, _)| *name == k.name) else {
            return Err(TreefileError::UnknownKey {
                loc: k.loc.clone(),
                key: format!("{key}.{}", k.name),
                suggestion: None,
            });
        };
        check_ty(*ty, &format!("{key}.{}", k.name), v)?;
    }
    match r.required.iter().find(|req| node.get(req).is_none()) {
        Some(req) => Err(invalid(&node.loc, format!("`{key}` {} `{req}`", r.needs))),
        None => Ok(()),
    }
}

/// Splits one package entry on whitespace, except inside 'single quotes' (version queries such
/// as `'podman >= 4.1'`). The quotes are not part of the result.
pub(crate) fn split_packages(entry: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = entry;
    while let Some(start) = rest.find('\'') {
        out.extend(rest[..start].split_whitespace().map(String::from));
        let after = &rest[start + 1..];
        let end = after
            .find('\'')
            .ok_or_else(|| format!("missing closing quote in `{entry}`"))?;
        let quoted = after[..end].trim();
        if quoted.is_empty() {
            return Err(format!("empty quoted package in `{entry}`"));
        }
        out.push(quoted.to_string());
        rest = &after[end + 1..];
    }
    out.extend(rest.split_whitespace().map(String::from));
    Ok(out)
}

/// Called for a key a section's table does not know (YAML: error, JSON: warning).
pub(crate) type UnknownKeyHandler<'a> =
    dyn FnMut(&'static [KeySpec], &Key, &mut Vec<TreefileError>) + 'a;

/// Validates `node` as the value of `spec` and turns it into a `Field`. Independent problems
/// inside one value (e.g. several bad package entries) are all reported.
pub(crate) fn to_field(
    spec: &'static KeySpec,
    key: &str,
    node: &Node,
    errors: &mut Vec<TreefileError>,
    unknown: &mut UnknownKeyHandler<'_>,
) -> Option<Field> {
    let res = match spec.kind {
        Kind::Scalar(ty) => check_ty(ty, key, node).map(|_| Field::Scalar(node.clone())),
        Kind::Array(item) => match node.as_seq() {
            None => Err(type_err(key, node, "a list")),
            Some(items) => {
                let before = errors.len();
                for it in items {
                    if let Err(e) = check_item(item, key, it) {
                        errors.push(e);
                    }
                }
                if errors.len() > before {
                    return None;
                }
                Ok(Field::Array(items.to_vec()))
            }
        },
        Kind::Map(ty) => match node.as_map() {
            None => Err(type_err(key, node, "a mapping")),
            Some(entries) => {
                let mut m = IndexMap::new();
                let before = errors.len();
                for (k, v) in entries {
                    match check_ty(ty, &format!("{key}.{}", k.name), v) {
                        Ok(()) => {
                            m.insert(k.name.clone(), (k.loc.clone(), v.clone()));
                        }
                        Err(e) => errors.push(e),
                    }
                }
                if errors.len() > before {
                    return None;
                }
                Ok(Field::Map(m))
            }
        },
        Kind::Set { split } => match node.as_seq() {
            None => Err(type_err(key, node, "a list")),
            Some(items) => set_field(key, items, split, errors).map(Field::Set),
        },
        Kind::Section(table) => match node.as_map() {
            None => Err(type_err(key, node, "a mapping")),
            Some(entries) => {
                let mut layer = Layer::new();
                for (k, v) in entries {
                    let sub = format!("{key}.{}", k.name);
                    match lookup(table, &k.name) {
                        Lookup::Known(spec) => {
                            if let Some(f) = to_field(spec, &sub, v, errors, unknown) {
                                layer.insert(spec.name, f);
                            }
                        }
                        _ => unknown(table, k, errors),
                    }
                }
                Ok(Field::Section(layer))
            }
        },
        Kind::Directive => unreachable!("directives are handled by the loader"),
    };
    match res {
        Ok(f) => Some(f),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

pub(crate) fn set_field(
    key: &str,
    items: &[Node],
    split: bool,
    errors: &mut Vec<TreefileError>,
) -> Result<BTreeMap<String, Loc>, TreefileError> {
    let mut set = BTreeMap::new();
    for it in items {
        let Some(s) = it.as_str() else {
            errors.push(TreefileError::Package {
                loc: it.loc.clone(),
                msg: format!(
                    "`{key}` entries must be strings, found {} (quote it: \"{}\")",
                    it.type_name(),
                    it.to_json()
                ),
            });
            continue;
        };
        let names = if split {
            match split_packages(s) {
                Ok(n) => n,
                Err(msg) => {
                    errors.push(TreefileError::Package {
                        loc: it.loc.clone(),
                        msg,
                    });
                    continue;
                }
            }
        } else {
            vec![s.trim().to_string()]
        };
        if names.is_empty() || names.iter().any(|n| n.is_empty()) {
            errors.push(TreefileError::Package {
                loc: it.loc.clone(),
                msg: format!("empty entry in `{key}`"),
            });
            continue;
        }
        for n in names {
            set.entry(n).or_insert_with(|| it.loc.clone());
        }
    }
    // Bad entries were reported one by one; the good ones stay so later checks still run.
    Ok(set)
}
