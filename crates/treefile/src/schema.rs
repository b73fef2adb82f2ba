//! The treefile schema as data: every known key, its kind, and therefore its merge rule.
//!
//! rpm-ostree's semantics (rust/src/treefile.rs `treefile_merge`): scalars and objects are
//! first-one-wins (the including file wins), arrays concatenate with the included file's entries
//! first, maps merge per key with the including file winning, sets (packages, ignored users and
//! groups) are unions. cairn keeps that table here, once, so a key's kind decides both how it is
//! validated and how it merges.

use indexmap::IndexMap;
use std::collections::BTreeMap;

pub(crate) use super::validate::{set_field, split_packages, to_field};
use cairn_yaml::{Loc, Node};

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

/// The nearest known key, if it is near enough to be a plausible typo.
pub(crate) fn suggest(table: &'static [KeySpec], key: &str) -> Option<String> {
    let mut candidates: Vec<String> = table.iter().map(|s| s.name.to_string()).collect();
    if std::ptr::eq(table, KEYS) {
        candidates.extend(super::KNOWN_ARCHES.iter().map(|a| format!("packages-{a}")));
    }
    cairn_common::suggest::closest(key, candidates.iter().map(String::as_str)).map(str::to_string)
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
        cairn_yaml::parse(src, Path::new("t.yaml")).unwrap()
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

    /// `key` after the file `own` includes the file `base`.
    fn merged(own: &str, base: &str, key: &str) -> serde_json::Value {
        let mut d = layer(own);
        merge(&mut d, layer(base));
        json(&d, key)
    }

    #[test]
    fn scalar_including_file_wins() {
        assert_eq!(merged("ref: a/b\n", "ref: c/d\n", "ref"), "a/b");
        assert_eq!(
            merged("ref: a/b\n", "ref: c/d\nselinux: false\n", "selinux"),
            false
        );
    }

    #[test]
    fn arrays_concatenate_included_first() {
        assert_eq!(
            merged(
                "postprocess: [own]\n",
                "postprocess: [base1, base2]\n",
                "postprocess"
            ),
            serde_json::json!(["base1", "base2", "own"])
        );
    }

    #[test]
    fn maps_merge_including_wins_per_key() {
        assert_eq!(
            merged(
                "add-commit-metadata: {a: own, c: 3}\n",
                "add-commit-metadata: {a: base, b: 2}\n",
                "add-commit-metadata"
            ),
            serde_json::json!({"a": "own", "b": 2, "c": 3})
        );
    }

    #[test]
    fn packages_are_a_set() {
        assert_eq!(
            merged("packages: [b a, c]\n", "packages: [a, d]\n", "packages"),
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
    fn enum_values_suggest_the_nearest() {
        let n = node("cairn: {backend: mmdebstap}\n");
        let Lookup::Known(spec) = lookup(KEYS, "cairn") else {
            panic!()
        };
        let mut e = Vec::new();
        to_field(
            spec,
            "cairn",
            n.get("cairn").unwrap(),
            &mut e,
            &mut |_, _, _| {},
        );
        assert_eq!(
            e[0].to_string(),
            "t.yaml:1:18: `cairn.backend` must be one of auto, rpm-ostree, dnf, mmdebstrap, rootfs, found `mmdebstap` (did you mean `mmdebstrap`?)"
        );
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
