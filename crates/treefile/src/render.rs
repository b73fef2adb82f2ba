//! From a merged layer to a `Treefile`: substitution, cross-key checks, external files, the
//! flattened JSON, and the lowering for rpm-ostree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value as J};

use super::cairn::{self, GeneratedFile};
use super::error::{Diagnostic, TreefileError};
use super::load::Loader;
use super::schema::{self, Field, Kind, Layer, Ty, KEYS};
use super::subst::{self, SubstError};
use super::{Backend, Treefile, VarValue};
use cairn_yaml::{Loc, Node, Value};

/// The directory (next to a treefile written by `--for rpm-ostree --output-dir`) holding the
/// files cairn generates for `add-files`.
pub const GENERATED_DIR: &str = "cairn-generated";

fn subst_node(
    node: &mut Node,
    key: &str,
    vars: &IndexMap<String, VarValue>,
    errors: &mut Vec<TreefileError>,
) {
    let Value::String(s) = &node.value else {
        return;
    };
    match subst::substitute(s, vars) {
        Ok(v) => node.value = Value::String(v),
        Err(SubstError::Undefined(name)) => errors.push(TreefileError::UndefinedVariable {
            loc: node.loc.clone(),
            name,
            key: key.to_string(),
            known: vars.keys().cloned().collect(),
        }),
        Err(SubstError::Unterminated) => errors.push(TreefileError::Invalid {
            loc: node.loc.clone(),
            msg: format!("unterminated `${{` in `{key}` (write `${{name}}`)"),
        }),
    }
}

/// `${var}` in the keys rpm-ostree substitutes: ref, automatic-version-prefix,
/// mutate-os-release, platform-module, rojig's strings, and string values of metadata and
/// add-commit-metadata.
fn substitute_layer(
    layer: &mut Layer,
    vars: &IndexMap<String, VarValue>,
    errors: &mut Vec<TreefileError>,
) {
    for spec in KEYS.iter().filter(|s| s.subst) {
        match layer.get_mut(spec.name) {
            Some(Field::Scalar(n)) if n.as_map().is_some() => {
                if let Value::Map(entries) = &mut n.value {
                    for (k, v) in entries.iter_mut() {
                        if matches!(k.name.as_str(), "name" | "summary" | "description") {
                            subst_node(v, &format!("{}.{}", spec.name, k.name), vars, errors);
                        }
                    }
                }
            }
            Some(Field::Scalar(n)) => subst_node(n, spec.name, vars, errors),
            Some(Field::Map(m)) => {
                for (k, (_, v)) in m.iter_mut() {
                    subst_node(v, &format!("{}.{k}", spec.name), vars, errors);
                }
            }
            _ => {}
        }
    }
}

fn field_json(spec_kind: Option<Kind>, f: &Field) -> J {
    match f {
        Field::Scalar(n) => match (spec_kind, &n.value) {
            // `edition: 2024` unquoted renders as rpm-ostree's string form.
            (Some(Kind::Scalar(Ty::Enum(_))), Value::Int(i)) => J::String(i.to_string()),
            _ => n.to_json(),
        },
        Field::Array(items) => J::Array(items.iter().map(Node::to_json).collect()),
        Field::Map(m) => J::Object(
            m.iter()
                .map(|(k, (_, v))| (k.clone(), v.to_json()))
                .collect(),
        ),
        Field::Set(s) => J::Array(s.keys().cloned().map(J::String).collect()),
        Field::Section(l) => J::Object(
            l.iter()
                .map(|(k, f)| (k.to_string(), field_json(None, f)))
                .collect(),
        ),
    }
}

/// `repo-packages`: entries split like `packages`; a package named by a later entry leaves the
/// earlier ones (rpm-ostree's override rule); entries left empty are dropped.
fn repo_packages_json(items: &[Node], errors: &mut Vec<TreefileError>) -> J {
    let mut parsed: Vec<(String, BTreeSet<String>)> = Vec::new();
    for it in items {
        let repo = it.get("repo").and_then(|n| n.as_str()).unwrap_or_default();
        let mut set = BTreeSet::new();
        for p in it
            .get("packages")
            .and_then(|n| n.as_seq())
            .unwrap_or_default()
        {
            match schema::split_packages(p.as_str().unwrap_or_default()) {
                Ok(v) => set.extend(v),
                Err(msg) => errors.push(TreefileError::Package {
                    loc: p.loc.clone(),
                    msg,
                }),
            }
        }
        parsed.push((repo.to_string(), set));
    }
    let mut seen = BTreeSet::new();
    for (_, set) in parsed.iter_mut().rev() {
        set.retain(|p| seen.insert(p.clone()));
    }
    J::Array(
        parsed
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(repo, s)| serde_json::json!({"repo": repo, "packages": s}))
            .collect(),
    )
}

fn resolve(declared_in: &Loc, name: &str) -> PathBuf {
    let base = declared_in.file.parent().unwrap_or(Path::new(""));
    let p = base.join(name);
    std::path::absolute(&p).unwrap_or(p)
}

fn first_loc(layer: &Layer) -> Option<Loc> {
    layer.values().find_map(|f| match f {
        Field::Scalar(n) => Some(n.loc.clone()),
        Field::Array(v) => v.first().map(|n| n.loc.clone()),
        Field::Map(m) => m.values().next().map(|(l, _)| l.clone()),
        Field::Set(s) => s.values().next().cloned(),
        Field::Section(l) => first_loc(l),
    })
}

fn external(path: PathBuf, loc: &Loc, what: &str, warnings: &mut Vec<Diagnostic>) -> PathBuf {
    if !path.is_file() {
        warnings.push(Diagnostic::warning(
            loc.clone(),
            format!(
                "{what} {} does not exist; compose will fail without it",
                path.display()
            ),
            &[],
        ));
    }
    path
}

pub(crate) fn finish(
    path: &Path,
    mut layer: Layer,
    loader: Loader<'_>,
    errors: &mut Vec<TreefileError>,
    warnings: &mut Vec<Diagnostic>,
) -> Treefile {
    let vars: IndexMap<String, VarValue> = loader
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    substitute_layer(&mut layer, &vars, errors);

    let packages: Vec<String> = match layer.get("packages") {
        Some(Field::Set(s)) => s.keys().cloned().collect(),
        _ => Vec::new(),
    };
    if let (Some(Field::Set(pk)), Some(Field::Array(ex))) =
        (layer.get("packages"), layer.get("exclude-packages"))
    {
        for e in ex {
            if let Some(ploc) = e.as_str().and_then(|n| pk.get(n)) {
                errors.push(TreefileError::Invalid {
                    loc: e.loc.clone(),
                    msg: format!(
                        "`{}` is excluded but also requested in packages at {ploc}; remove one",
                        e.as_str().unwrap_or_default()
                    ),
                });
            }
        }
    }

    let mut add_files = Vec::new();
    if let Some(Field::Array(items)) = layer.get("add-files") {
        for it in items {
            let pair = it.as_seq().unwrap_or_default();
            if let [src, dest] = pair {
                let p = resolve(&src.loc, src.as_str().unwrap_or_default());
                let p = external(p, &src.loc, "add-files source", warnings);
                add_files.push((p, dest.as_str().unwrap_or_default().to_string()));
            }
        }
    }
    let mut postprocess_scripts = Vec::new();
    if let Some(Field::Scalar(n)) = layer.get("postprocess-script") {
        let p = resolve(&n.loc, n.as_str().unwrap_or_default());
        postprocess_scripts.push(external(p, &n.loc, "postprocess-script", warnings));
    }
    let check_file = |key: &str, warnings: &mut Vec<Diagnostic>| -> Option<PathBuf> {
        let Some(Field::Scalar(n)) = layer.get(key) else {
            return None;
        };
        let f = n.get("filename")?;
        let p = resolve(&f.loc, f.as_str()?);
        Some(external(p, &f.loc, &format!("{key} file"), warnings))
    };
    let passwd_file = check_file("check-passwd", warnings);
    let group_file = check_file("check-groups", warnings);

    let (section, section_loc) = match layer.get("cairn") {
        Some(Field::Section(s)) => (Some(s), first_loc(s)),
        _ => (None, None),
    };
    let cairn = cairn::from_layer(section, section_loc.as_ref(), &packages, errors, warnings);

    if !layer.contains_key("ref") {
        warnings.push(Diagnostic::warning(
            Loc::file(path),
            "no `ref`: fine for a fragment meant to be included, but compose needs one",
            &[],
        ));
    }
    let mut json = Map::new();
    for (key, f) in &layer {
        let spec = KEYS.iter().find(|s| s.name == *key);
        let v = match (key, f) {
            (&"repo-packages", Field::Array(items)) => repo_packages_json(items, errors),
            _ => field_json(spec.map(|s| s.kind), f),
        };
        json.insert(key.to_string(), v);
    }
    // rpm-ostree always prints these two: the arch it composed for and the package list.
    json.insert("basearch".into(), J::String(loader.arch.clone()));
    if !json.contains_key("packages") {
        json.insert("packages".into(), J::Array(Vec::new()));
    }
    let order = |k: &str| KEYS.iter().position(|s| s.name == k).unwrap_or(usize::MAX);
    let mut entries: Vec<(String, J)> = json.into_iter().collect();
    entries.sort_by_key(|(k, _)| order(k));
    let json: Map<String, J> = entries.into_iter().collect();

    Treefile {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        arch: loader.arch,
        json,
        packages,
        cairn,
        add_files,
        postprocess_scripts,
        passwd_file,
        group_file,
        files: loader.files,
        variables: vars,
        warnings: Vec::new(),
    }
}

/// A treefile lowered for `rpm-ostree compose tree`: the `cairn` key gone, cairn's settings as
/// standard keys, external paths absolute so the JSON works from any directory.
#[derive(Debug, Clone)]
pub struct RpmOstreeTreefile {
    pub json: Map<String, J>,
    /// Files the JSON's `add-files` expects under `GENERATED_DIR/` beside it:
    /// (source name relative to the treefile, file).
    pub generated: Vec<(String, GeneratedFile)>,
    /// What happened to cairn keys rpm-ostree has no equivalent for, one line each.
    pub notes: Vec<String>,
}

impl RpmOstreeTreefile {
    /// Writes `treefile.json` and the generated files into `dir`; returns the treefile's path.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir.join(GENERATED_DIR))?;
        for (name, f) in &self.generated {
            std::fs::write(dir.join(name), &f.content)?;
        }
        let path = dir.join("treefile.json");
        let mut text = serde_json::to_string_pretty(&self.json).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(&path, text)?;
        Ok(path)
    }
}

impl Treefile {
    /// Lowers the `cairn` section to keys rpm-ostree understands. See docs/treefile.md.
    pub fn for_rpm_ostree(&self) -> Result<RpmOstreeTreefile, TreefileError> {
        let mut json = self.json.clone();
        json.remove("cairn");
        let mut notes = Vec::new();

        // rpm-ostree resolves add-files sources next to the treefile; the flattened file lives
        // elsewhere, so every source becomes absolute.
        let mut add: Vec<J> = self
            .add_files
            .iter()
            .map(|(src, dest)| serde_json::json!([src.display().to_string(), dest]))
            .collect();
        let mut generated = Vec::new();
        for f in self.cairn.sysctl_files() {
            if self.add_files.iter().any(|(_, d)| d == &f.dest) {
                return Err(TreefileError::Invalid {
                    loc: Loc::file(&self.path),
                    msg: format!(
                        "add-files already writes {}, which cairn generates for the sysctl settings",
                        f.dest
                    ),
                });
            }
            let base = f.dest.rsplit('/').next().unwrap_or("file");
            let dir = if f.dest.contains("/modules-load.d/") {
                "modules-load"
            } else {
                "sysctl"
            };
            let name = format!("{GENERATED_DIR}/{dir}-{base}");
            add.push(serde_json::json!([name, f.dest]));
            generated.push((name, f));
        }
        if !add.is_empty() {
            json.insert("add-files".into(), J::Array(add));
        }
        if let Some(p) = self.postprocess_scripts.first() {
            json.insert(
                "postprocess-script".into(),
                J::String(p.display().to_string()),
            );
        }
        for (key, file) in [
            ("check-passwd", &self.passwd_file),
            ("check-groups", &self.group_file),
        ] {
            if let (Some(f), Some(J::Object(o))) = (file, json.get_mut(key)) {
                o.insert("filename".into(), J::String(f.display().to_string()));
            }
        }

        let c = &self.cairn;
        if !generated.is_empty() {
            notes.push(format!(
                "cairn.sysctl-presets / cairn.sysctl: lowered to {} add-files entries under {GENERATED_DIR}/",
                generated.len()
            ));
        }
        if !c.bootable && !json.contains_key("container") {
            json.insert("container".into(), J::Bool(true));
            notes.push("cairn.bootable false: lowered to `container: true` (no kernel or initramfs handling)".into());
        }
        match c.backend {
            Backend::Auto | Backend::RpmOstree => {}
            other => notes.push(format!(
                "cairn.backend {}: dropped; rpm-ostree always installs rpm packages from `repos`",
                other.as_str()
            )),
        }
        if c.mmdebstrap.is_some() {
            notes.push("cairn.mmdebstrap: dropped (no rpm-ostree equivalent)".into());
        }
        if c.rootfs.is_some() {
            notes.push("cairn.rootfs: dropped (rpm-ostree composes from packages only)".into());
        }
        Ok(RpmOstreeTreefile {
            json,
            generated,
            notes,
        })
    }
}
