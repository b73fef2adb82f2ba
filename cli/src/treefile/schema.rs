//! The treefile schema as data: every known key, its kind, and therefore its merge rule.
//!
//! rpm-ostree's semantics (rust/src/treefile.rs `treefile_merge`): scalars and objects are
//! first-one-wins (the including file wins), arrays concatenate with the included file's entries
//! first, maps merge per key with the including file winning, sets (packages, ignored users and
//! groups) are unions. cairn keeps that table here, once, so a key's kind decides both how it is
//! validated and how it merges.

use indexmap::IndexMap;
use std::collections::BTreeMap;

use super::error::TreefileError;
use crate::yaml::{Key, Loc, Node, Value};

/// The type of a single value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Bool,
    UInt,
    StrOrUInt,
    Enum(&'static [&'static str]),
    /// A list of strings that merges as one value (e.g. `container-cmd`).
    StrList,
    /// `check-passwd` / `check-groups`: `{type: none|previous|file|data, ...}`.
    CheckFile,
    Rojig,
    /// Any JSON value (metadata).
    Any,
    /// A sysctl value: string or number, rendered as a string.
    SysctlValue,
}

/// The shape of an array element.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item {
    Str,
    /// `add-files`: `[source, destination]`.
    AddFile,
    /// `remove-from-packages`: `[package, regex, ...]`.
    PackageRegexes,
    /// `repo-packages`: `{repo: NAME, packages: [...]}`.
    RepoPackages,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// First one wins.
    Scalar(Ty),
    /// Included entries first, then the including file's.
    Array(Item),
    /// Per-key union; the including file wins a key both define.
    Map(Ty),
    /// Union, sorted. `split`: entries split on whitespace unless 'single-quoted' (packages).
    Set { split: bool },
    /// A nested table whose keys merge by their own kinds (the `cairn:` section).
    Section(&'static [KeySpec]),
    /// Consumed by the loader: `include`, `arch-include`, `conditional-include`, `variables`.
    Directive,
}

#[derive(Debug)]
pub(crate) struct KeySpec {
    pub name: &'static str,
    /// The legacy underscore spelling rpm-ostree still accepts.
    pub alias: Option<&'static str>,
    pub kind: Kind,
    /// `${var}` substitution applies (rpm-ostree's `substitute_vars` list).
    pub subst: bool,
}

const fn k(name: &'static str, kind: Kind) -> KeySpec {
    KeySpec {
        name,
        alias: None,
        kind,
        subst: false,
    }
}
const fn ka(name: &'static str, alias: &'static str, kind: Kind) -> KeySpec {
    KeySpec {
        name,
        alias: Some(alias),
        kind,
        subst: false,
    }
}
const fn ks(name: &'static str, kind: Kind) -> KeySpec {
    KeySpec {
        name,
        alias: None,
        kind,
        subst: true,
    }
}

use Kind::*;

/// rpm-ostree's treefile keys, in the order rendered output lists them.
pub(crate) static KEYS: &[KeySpec] = &[
    k("edition", Scalar(Ty::Enum(&["2014", "2024"]))),
    ks("ref", Scalar(Ty::Str)),
    k("basearch", Scalar(Ty::Str)),
    k("releasever", Scalar(Ty::StrOrUInt)),
    k("include", Directive),
    k("arch-include", Directive),
    k("conditional-include", Directive),
    k("variables", Directive),
    KeySpec {
        name: "automatic-version-prefix",
        alias: Some("automatic_version_prefix"),
        kind: Scalar(Ty::Str),
        subst: true,
    },
    k("automatic-version-suffix", Scalar(Ty::Str)),
    ks("mutate-os-release", Scalar(Ty::Str)),
    ks("metadata", Map(Ty::Any)),
    ks("add-commit-metadata", Map(Ty::Any)),
    ks("rojig", Scalar(Ty::Rojig)),
    ka("gpg-key", "gpg_key", Scalar(Ty::Str)),
    k("repos", Array(Item::Str)),
    k("lockfile-repos", Array(Item::Str)),
    k("repovars", Map(Ty::Str)),
    k(
        "repo-metadata",
        Scalar(Ty::Enum(&["inline", "detached", "disabled"])),
    ),
    k("packages", Set { split: true }),
    ka(
        "bootstrap-packages",
        "bootstrap_packages",
        Set { split: true },
    ),
    k("repo-packages", Array(Item::RepoPackages)),
    k("exclude-packages", Array(Item::Str)),
    ks("platform-module", Scalar(Ty::Str)),
    k("ostree-layers", Array(Item::Str)),
    k("ostree-override-layers", Array(Item::Str)),
    k("container", Scalar(Ty::Bool)),
    k("recommends", Scalar(Ty::Bool)),
    k("documentation", Scalar(Ty::Bool)),
    k("install-langs", Array(Item::Str)),
    k("initramfs-args", Array(Item::Str)),
    k("readonly-executables", Scalar(Ty::Bool)),
    k("selinux", Scalar(Ty::Bool)),
    k("selinux-label-version", Scalar(Ty::UInt)),
    k("ignore-devices", Scalar(Ty::Bool)),
    k("ima", Scalar(Ty::Bool)),
    ka(
        "boot-location",
        "boot_location",
        Scalar(Ty::Enum(&["new", "modules", "kernel-install"])),
    ),
    k("tmp-is-dir", Scalar(Ty::Bool)),
    k(
        "opt-usrlocal",
        Scalar(Ty::Enum(&["var", "root", "stateoverlay", "state-overlay"])),
    ),
    k("units", Array(Item::Str)),
    ka("default-target", "default_target", Scalar(Ty::Str)),
    k("machineid-compat", Scalar(Ty::Bool)),
    k(
        "rpmdb",
        Scalar(Ty::Enum(&[
            "bdb", "b-d-b", "sqlite", "ndb", "target", "host",
        ])),
    ),
    k("rpmdb-normalize", Scalar(Ty::Bool)),
    k("etc-group-members", Array(Item::Str)),
    k("preserve-passwd", Scalar(Ty::Bool)),
    k("check-passwd", Scalar(Ty::CheckFile)),
    k("check-groups", Scalar(Ty::CheckFile)),
    k("ignore-removed-users", Set { split: false }),
    k("ignore-removed-groups", Set { split: false }),
    k("postprocess-script", Scalar(Ty::Str)),
    k("postprocess", Array(Item::Str)),
    k("add-files", Array(Item::AddFile)),
    k("remove-files", Array(Item::Str)),
    k("remove-from-packages", Array(Item::PackageRegexes)),
    k("container-cmd", Scalar(Ty::StrList)),
    k("cliwrap", Scalar(Ty::Bool)),
    k("cliwrap-binaries", Array(Item::Str)),
    k("cairn", Section(CAIRN_KEYS)),
];

pub(crate) const BACKENDS: &[&str] = &["auto", "rpm-ostree", "dnf", "mmdebstrap", "rootfs"];
/// mmdebstrap(1) `--variant` values.
pub(crate) const DEB_VARIANTS: &[&str] = &[
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
];

pub(crate) static CAIRN_KEYS: &[KeySpec] = &[
    k("backend", Scalar(Ty::Enum(BACKENDS))),
    k("bootable", Scalar(Ty::Bool)),
    k("sysctl-presets", Set { split: false }),
    k("sysctl", Map(Ty::SysctlValue)),
    k("mmdebstrap", Section(MMDEBSTRAP_KEYS)),
    k("rootfs", Section(ROOTFS_KEYS)),
];

static MMDEBSTRAP_KEYS: &[KeySpec] = &[
    k("suite", Scalar(Ty::Str)),
    k("mirror", Scalar(Ty::Str)),
    k("components", Scalar(Ty::StrList)),
    k("variant", Scalar(Ty::Enum(DEB_VARIANTS))),
];

static ROOTFS_KEYS: &[KeySpec] = &[k("path", Scalar(Ty::Str))];

/// A validated value with its positions, in the form its merge rule needs.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Scalar(Node),
    Array(Vec<Node>),
    /// key -> (key position, value)
    Map(IndexMap<String, (Loc, Node)>),
    /// entry -> where it was written
    Set(BTreeMap<String, Loc>),
    Section(Layer),
}

/// One treefile's (or a merged stack's) keys, canonical names.
pub(crate) type Layer = IndexMap<&'static str, Field>;

pub(crate) enum Lookup {
    Known(&'static KeySpec),
    /// `packages-$arch`, with the arch suffix.
    ArchPackages(String),
    Unknown,
}

pub(crate) fn lookup(table: &'static [KeySpec], key: &str) -> Lookup {
    for spec in table {
        if spec.name == key {
            return Lookup::Known(spec);
        }
        if spec.alias == Some(key) {
            return Lookup::Known(spec);
        }
    }
    if std::ptr::eq(table, KEYS) {
        if let Some(arch) = key.strip_prefix("packages-") {
            return Lookup::ArchPackages(arch.to_string());
        }
    }
    Lookup::Unknown
}

/// The nearest known key by edit distance, if it is near enough to be a plausible typo.
pub(crate) fn suggest(table: &'static [KeySpec], key: &str) -> Option<String> {
    let mut candidates: Vec<String> = table.iter().map(|s| s.name.to_string()).collect();
    if std::ptr::eq(table, KEYS) {
        candidates.extend(super::KNOWN_ARCHES.iter().map(|a| format!("packages-{a}")));
    }
    let limit = (key.chars().count() / 3).clamp(1, 4);
    candidates
        .into_iter()
        .map(|c| (edit_distance(key, &c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars; `_` and `-` count as the same letter (legacy spellings).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| {
        if c == '_' {
            '-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn type_err(key: &str, node: &Node, expected: &str) -> TreefileError {
    TreefileError::Type {
        loc: node.loc.clone(),
        key: key.to_string(),
        expected: expected.to_string(),
        found: node.type_name(),
    }
}

fn invalid(loc: &Loc, msg: impl Into<String>) -> TreefileError {
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
                    format!("`{key}` must be one of {}, found `{s}`", values.join(", ")),
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
        Ty::Rojig => {
            let map = node
                .as_map()
                .ok_or_else(|| type_err(key, node, "a mapping"))?;
            for (k, v) in map {
                match k.name.as_str() {
                    "name" | "summary" | "license" | "description" => {
                        check_ty(Ty::Str, &format!("{key}.{}", k.name), v)?
                    }
                    other => {
                        return Err(TreefileError::UnknownKey {
                            loc: k.loc.clone(),
                            key: format!("{key}.{other}"),
                            suggestion: None,
                        })
                    }
                }
            }
            for req in ["name", "summary", "license"] {
                if node.get(req).is_none() {
                    return Err(invalid(&node.loc, format!("`{key}` needs `{req}`")));
                }
            }
            Ok(())
        }
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
            let pair = node
                .as_seq()
                .filter(|s| s.len() == 2 && s.iter().all(|n| n.as_str().is_some()))
                .ok_or_else(|| type_err(key, node, "a list of [source, destination] pairs"))?;
            let dest = pair[1].as_str().unwrap_or_default();
            if !add_files_dest_ok(dest) {
                return Err(invalid(
                    &pair[1].loc,
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
        Item::RepoPackages => {
            let map = node
                .as_map()
                .ok_or_else(|| type_err(key, node, "a list of {repo, packages} mappings"))?;
            for (k, v) in map {
                match k.name.as_str() {
                    "repo" => check_ty(Ty::Str, &format!("{key}.repo"), v)?,
                    "packages" => check_ty(Ty::StrList, &format!("{key}.packages"), v)?,
                    other => {
                        return Err(TreefileError::UnknownKey {
                            loc: k.loc.clone(),
                            key: format!("{key}.{other}"),
                            suggestion: None,
                        })
                    }
                }
            }
            for req in ["repo", "packages"] {
                if node.get(req).is_none() {
                    return Err(invalid(&node.loc, format!("`{key}` entries need `{req}`")));
                }
            }
            Ok(())
        }
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
    let before = errors.len();
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
    let _ = before;
    Ok(set)
}

// ---- merge rules: `dest` is the including file, `src` the included one ----

/// Scalars and objects: the first one (the including file's) wins.
fn merge_scalar(_dest: &mut Node, _src: Node) {}

/// Arrays: the included file's entries first, then the including file's.
fn merge_array(dest: &mut Vec<Node>, mut src: Vec<Node>) {
    src.append(dest);
    *dest = src;
}

/// Maps: union; where both define a key, the including file's value wins. Included keys first.
fn merge_map(dest: &mut IndexMap<String, (Loc, Node)>, mut src: IndexMap<String, (Loc, Node)>) {
    for (k, v) in dest.drain(..) {
        src.insert(k, v);
    }
    *dest = src;
}

/// Sets: union; an entry both define keeps the including file's position.
fn merge_set(dest: &mut BTreeMap<String, Loc>, src: BTreeMap<String, Loc>) {
    for (k, v) in src {
        dest.entry(k).or_insert(v);
    }
}

/// Merges an included layer into the including one, key by key, by each key's kind.
pub(crate) fn merge(dest: &mut Layer, src: Layer) {
    for (key, sf) in src {
        match dest.get_mut(key) {
            None => {
                dest.insert(key, sf);
            }
            Some(df) => match (df, sf) {
                (Field::Scalar(d), Field::Scalar(s)) => merge_scalar(d, s),
                (Field::Array(d), Field::Array(s)) => merge_array(d, s),
                (Field::Map(d), Field::Map(s)) => merge_map(d, s),
                (Field::Set(d), Field::Set(s)) => merge_set(d, s),
                (Field::Section(d), Field::Section(s)) => merge(d, s),
                // Same key, same table entry: kinds always agree.
                _ => unreachable!("kind mismatch for {key}"),
            },
        }
    }
    // Keep the table's order so rendering is stable whatever the include order was.
    sort_layer(dest);
}

fn table_index(key: &str) -> usize {
    KEYS.iter()
        .chain(CAIRN_KEYS)
        .chain(MMDEBSTRAP_KEYS)
        .chain(ROOTFS_KEYS)
        .position(|s| s.name == key)
        .unwrap_or(usize::MAX)
}

pub(crate) fn sort_layer(layer: &mut Layer) {
    layer.sort_by(|a, _, b, _| table_index(a).cmp(&table_index(b)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn node(src: &str) -> Node {
        crate::yaml::parse(src, Path::new("t.yaml")).unwrap()
    }

    fn layer(src: &str) -> Layer {
        let n = node(src);
        let mut errors = Vec::new();
        let mut l = Layer::new();
        for (k, v) in n.as_map().unwrap() {
            if let Lookup::Known(spec) = lookup(KEYS, &k.name) {
                let f = to_field(spec, &k.name, v, &mut errors, &mut |_, _, _| {}).unwrap();
                l.insert(spec.name, f);
            }
        }
        assert!(errors.is_empty(), "{errors:?}");
        l
    }

    fn json(l: &Layer, key: &str) -> serde_json::Value {
        match &l[key] {
            Field::Scalar(n) => n.to_json(),
            Field::Array(v) => v.iter().map(Node::to_json).collect(),
            Field::Map(m) => m
                .iter()
                .map(|(k, (_, v))| (k.clone(), v.to_json()))
                .collect(),
            Field::Set(s) => s.keys().cloned().collect(),
            Field::Section(_) => unreachable!(),
        }
    }

    #[test]
    fn scalar_including_file_wins() {
        let mut d = layer("ref: a/b\n");
        merge(&mut d, layer("ref: c/d\nselinux: false\n"));
        assert_eq!(json(&d, "ref"), "a/b");
        assert_eq!(json(&d, "selinux"), false);
    }

    #[test]
    fn arrays_concatenate_included_first() {
        let mut d = layer("postprocess: [own]\n");
        merge(&mut d, layer("postprocess: [base1, base2]\n"));
        assert_eq!(
            json(&d, "postprocess"),
            serde_json::json!(["base1", "base2", "own"])
        );
    }

    #[test]
    fn maps_merge_including_wins_per_key() {
        let mut d = layer("add-commit-metadata: {a: own, c: 3}\n");
        merge(&mut d, layer("add-commit-metadata: {a: base, b: 2}\n"));
        assert_eq!(
            json(&d, "add-commit-metadata"),
            serde_json::json!({"a": "own", "b": 2, "c": 3})
        );
    }

    #[test]
    fn packages_are_a_set() {
        let mut d = layer("packages: [b a, c]\n");
        merge(&mut d, layer("packages: [a, d]\n"));
        assert_eq!(
            json(&d, "packages"),
            serde_json::json!(["a", "b", "c", "d"])
        );
    }

    #[test]
    fn sections_merge_per_key() {
        let n = node("cairn: {backend: mmdebstrap, mmdebstrap: {suite: bookworm}}\n");
        let s = node("cairn: {backend: dnf, bootable: false, mmdebstrap: {suite: trixie, variant: minbase}}\n");
        let mk = |n: &Node| {
            let mut e = Vec::new();
            let (k, v) = &n.as_map().unwrap()[0];
            let Lookup::Known(spec) = lookup(KEYS, &k.name) else {
                panic!()
            };
            let mut l = Layer::new();
            l.insert(
                spec.name,
                to_field(spec, "cairn", v, &mut e, &mut |_, _, _| {}).unwrap(),
            );
            l
        };
        let mut d = mk(&n);
        merge(&mut d, mk(&s));
        let Field::Section(c) = &d["cairn"] else {
            panic!()
        };
        assert_eq!(json(c, "backend"), "mmdebstrap");
        assert_eq!(json(c, "bootable"), false);
        let Field::Section(m) = &c["mmdebstrap"] else {
            panic!()
        };
        assert_eq!(json(m, "suite"), "bookworm");
        assert_eq!(json(m, "variant"), "minbase");
    }

    #[test]
    fn package_entries_split_unless_quoted() {
        assert_eq!(split_packages("a  b\tc").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split_packages("corge 'quuz >= 1.0' x").unwrap(),
            ["corge", "quuz >= 1.0", "x"]
        );
        assert!(split_packages("a 'b")
            .unwrap_err()
            .contains("closing quote"));
    }

    #[test]
    fn suggestions_use_edit_distance() {
        assert_eq!(suggest(KEYS, "packges").as_deref(), Some("packages"));
        assert_eq!(
            suggest(KEYS, "ostree_layers").as_deref(),
            Some("ostree-layers")
        );
        assert_eq!(
            suggest(KEYS, "packages-x86-64").as_deref(),
            Some("packages-x86_64")
        );
        assert_eq!(
            suggest(CAIRN_KEYS, "sysctl-preset").as_deref(),
            Some("sysctl-presets")
        );
        assert_eq!(suggest(KEYS, "zzzzzzzz"), None);
    }

    #[test]
    fn add_files_destinations_are_checked() {
        let n = node("add-files: [[a, /usr/local/bin/a]]\n");
        let mut e = Vec::new();
        let Lookup::Known(spec) = lookup(KEYS, "add-files") else {
            panic!()
        };
        assert!(to_field(
            spec,
            "add-files",
            n.get("add-files").unwrap(),
            &mut e,
            &mut |_, _, _| {}
        )
        .is_none());
        assert!(e[0].to_string().starts_with("t.yaml:1:17:"), "{}", e[0]);
    }
}
