//! Include resolution: `include`, `arch-include`, `conditional-include`, `variables`, and
//! `packages-$basearch`, following rpm-ostree's order of evaluation.
//!
//! Per file: its keys are validated; its variables fold into the shared variable map (a variable
//! already defined by an including file, or by `--var`, wins); then its includes are gathered:
//! `include`, then `arch-include[basearch]`, then each `conditional-include` whose conditions
//! hold (an inline treefile is merged at once); then every included file is loaded and merged
//! into this one, in order (see schema.rs for the merge rules).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use indexmap::IndexMap;

use super::cond::{self, EvalError, VarValue};
use super::error::{Diagnostic, TreefileError};
use super::schema::{self, Field, KeySpec, Layer, Lookup, KEYS};
use super::source::Source;
use super::validate::{invalid, type_err, UnknownKeyHandler};
use cairn_common::suggest::did_you_mean;
use cairn_yaml::{Key, Loc, Node, Value};

/// rpm-ostree's limit: a file at depth 50 may not include further.
pub const MAX_INCLUDE_DEPTH: usize = 50;

/// A variable and where it was defined (`None`: built in or from the command line).
#[derive(Debug, Clone)]
pub(crate) struct Var {
    pub value: VarValue,
}

pub(crate) struct Loader<'s> {
    source: &'s dyn Source,
    pub arch: String,
    pub vars: IndexMap<String, Var>,
    /// (dev, ino) -> where the file was first included.
    seen: HashMap<(u64, u64), Loc>,
    /// Files being loaded right now, outermost first, for cycle messages.
    stack: Vec<((u64, u64), String)>,
    pub files: Vec<PathBuf>,
    pub errors: Vec<TreefileError>,
    pub warnings: Vec<Diagnostic>,
    /// Include entries leading to the file being processed, outermost first.
    trail: Vec<Loc>,
}

/// The directives of one file, kept apart from its mergeable keys.
#[derive(Default)]
struct Directives {
    include: Vec<Node>,
    arch_include: Option<Node>,
    conditional_include: Option<Node>,
    variables: Option<Node>,
}

impl Directives {
    fn is_empty(&self) -> bool {
        self.include.is_empty()
            && self.arch_include.is_none()
            && self.conditional_include.is_none()
            && self.variables.is_none()
    }
}

/// One file's keys as they are read: the mergeable layer, the directives, and the package set
/// that `packages`, `bootstrap-packages` and `packages-$basearch` build together.
#[derive(Default)]
struct FileKeys {
    layer: Layer,
    dirs: Directives,
    /// Canonical key -> the spelling first used, to refuse `gpg_key` next to `gpg-key`.
    first_spelling: HashMap<&'static str, String>,
    packages: BTreeMap<String, Loc>,
    have_packages: bool,
}

impl FileKeys {
    /// Adds package entries; an entry two lists name keeps its first position.
    fn add_packages(&mut self, set: BTreeMap<String, Loc>) {
        for (k, l) in set {
            self.packages.entry(k).or_insert(l);
        }
    }
}

/// A key a table does not know: an error in YAML, a warning in JSON, because real JSON treefiles
/// carry keys rpm-ostree ignores (`comment`, `osname`).
fn unknown_key(
    table: &'static [KeySpec],
    key: &Key,
    json: bool,
    trail: &[Loc],
    warnings: &mut Vec<Diagnostic>,
    errors: &mut Vec<TreefileError>,
) {
    let suggestion = schema::suggest(table, &key.name);
    if json {
        warnings.push(Diagnostic::warning(
            key.loc.clone(),
            format!(
                "unknown key `{}` ignored{}",
                key.name,
                did_you_mean(suggestion.as_deref())
            ),
            trail,
        ));
    } else {
        errors.push(TreefileError::UnknownKey {
            loc: key.loc.clone(),
            key: key.name.clone(),
            suggestion,
        });
    }
}

/// A path without `./` components, for messages.
fn display_path(p: &Path) -> PathBuf {
    p.components().filter(|c| *c != Component::CurDir).collect()
}

impl<'s> Loader<'s> {
    pub fn new(source: &'s dyn Source, arch: String, vars: IndexMap<String, Var>) -> Loader<'s> {
        Loader {
            source,
            arch,
            vars,
            seen: HashMap::new(),
            stack: Vec::new(),
            files: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            trail: Vec::new(),
        }
    }

    fn error(&mut self, e: TreefileError) {
        self.errors.push(e.within(&self.trail));
    }

    fn warn(&mut self, loc: Loc, msg: String) {
        self.warnings
            .push(Diagnostic::warning(loc, msg, &self.trail));
    }

    /// Loads `path` and everything it includes. `site` is the include entry naming it.
    pub fn load_file(&mut self, path: &Path, site: Option<&Node>, depth: usize) -> Option<Layer> {
        let shown = display_path(path);
        let site_loc = site
            .map(|n| n.loc.clone())
            .unwrap_or_else(|| Loc::file(&shown));
        let id = match self.source.identify(path) {
            Ok(id) => id,
            Err(e) => {
                let err = match (site, e.kind()) {
                    (Some(n), std::io::ErrorKind::NotFound) => TreefileError::MissingInclude {
                        loc: site_loc,
                        name: n.as_str().unwrap_or_default().to_string(),
                        path: shown,
                    },
                    _ => TreefileError::Read {
                        loc: site_loc,
                        path: shown,
                        source: e,
                    },
                };
                self.error(err);
                return None;
            }
        };
        if let Some(pos) = self.stack.iter().position(|(i, _)| *i == id) {
            let mut chain: Vec<String> = self
                .stack
                .iter()
                .skip(pos)
                .map(|(_, n)| n.clone())
                .collect();
            chain.push(shown.display().to_string());
            self.error(TreefileError::Cycle {
                loc: site_loc,
                chain: chain.join(" -> "),
            });
            return None;
        }
        if let Some(first) = self.seen.get(&id) {
            let first = first.clone();
            self.error(TreefileError::DuplicateInclude {
                loc: site_loc,
                name: shown.display().to_string(),
                first,
            });
            return None;
        }
        self.seen.insert(id, site_loc.clone());
        let src = match self.source.read(path) {
            Ok(s) => s,
            Err(e) => {
                self.error(TreefileError::Read {
                    loc: site_loc,
                    path: shown,
                    source: e,
                });
                return None;
            }
        };
        let canonical = self.source.canonical(path);
        self.files.push(canonical);

        // From here on, positions are inside the included file: errors carry the include site.
        let pushed = site.is_some();
        if pushed {
            self.trail.push(site_loc);
        }
        let layer = self.parse_and_process(path, &shown, &src, id, depth);
        if pushed {
            self.trail.pop();
        }
        layer
    }

    fn parse_and_process(
        &mut self,
        path: &Path,
        shown: &Path,
        src: &str,
        id: (u64, u64),
        depth: usize,
    ) -> Option<Layer> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "ks" {
            self.error(invalid(
                &Loc::file(shown),
                "kickstart (.ks) treefiles are not supported; write YAML or JSON",
            ));
            return None;
        }
        // rpm-ostree decides by extension: .yaml/.yml are YAML (strict), anything else JSON.
        let json = !matches!(ext, "yaml" | "yml");
        let root = match cairn_yaml::parse(src, shown) {
            Ok(n) => n,
            // A YAML file holding only comments is an empty treefile to rpm-ostree (serde_yaml
            // gives every field unset); early-2024 Fedora CoreOS manifests include such files.
            Err(cairn_yaml::YamlError::Empty(loc)) if !json => cairn_yaml::Node {
                value: cairn_yaml::Value::Map(Vec::new()),
                loc,
            },
            Err(e) => {
                self.error(e.into());
                return None;
            }
        };
        if root.as_map().is_none() {
            self.error(invalid(
                &root.loc,
                format!(
                    "a treefile must be a mapping of keys, found {}",
                    root.type_name()
                ),
            ));
            return None;
        }
        self.stack.push((id, shown.display().to_string()));
        let layer = self.process(&root, path, json, depth);
        self.stack.pop();
        Some(layer)
    }

    /// Validates `root`'s keys into a layer, collecting directives apart.
    fn keys_to_layer(&mut self, root: &Node, json: bool) -> (Layer, Directives) {
        let mut keys = FileKeys::default();
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut arch_warnings = Vec::new();
        let trail = self.trail.clone();
        let mut unknown =
            |table: &'static [KeySpec], key: &Key, errors: &mut Vec<TreefileError>| {
                unknown_key(table, key, json, &trail, &mut warnings, errors);
            };
        for (key, val) in root.as_map().unwrap_or_default() {
            match schema::lookup(KEYS, &key.name) {
                Lookup::Known(spec) => {
                    self.known_key(spec, key, val, &mut keys, &mut errors, &mut unknown);
                }
                Lookup::ArchPackages(arch) => {
                    arch_warnings.extend(self.arch_packages(
                        &arch,
                        key,
                        val,
                        &mut keys,
                        &mut errors,
                    ));
                }
                Lookup::Unknown => unknown(KEYS, key, &mut errors),
            }
        }
        let FileKeys {
            mut layer,
            dirs,
            packages,
            have_packages,
            ..
        } = keys;
        if have_packages {
            layer.insert("packages", Field::Set(packages));
        }
        schema::sort_layer(&mut layer);
        for e in errors {
            self.error(e);
        }
        self.warnings.extend(warnings);
        self.warnings.extend(arch_warnings);
        (layer, dirs)
    }

    /// One key of the schema table: a directive, a package list, or a mergeable field.
    fn known_key(
        &self,
        spec: &'static KeySpec,
        key: &Key,
        val: &Node,
        keys: &mut FileKeys,
        errors: &mut Vec<TreefileError>,
        unknown: &mut UnknownKeyHandler<'_>,
    ) {
        if let Some(prev) = keys.first_spelling.insert(spec.name, key.name.clone()) {
            errors.push(invalid(
                &key.loc,
                format!(
                    "`{}` and `{prev}` are two spellings of the same key; keep one",
                    key.name
                ),
            ));
            return;
        }
        match spec.name {
            "include" => match include_list("include", val) {
                Ok(v) => keys.dirs.include = v,
                Err(e) => errors.push(e),
            },
            "arch-include" => keys.dirs.arch_include = Some(val.clone()),
            "conditional-include" => keys.dirs.conditional_include = Some(val.clone()),
            "variables" => keys.dirs.variables = Some(val.clone()),
            "packages" | "bootstrap-packages" => {
                keys.have_packages = true;
                match val.as_seq() {
                    Some(items) => {
                        if let Ok(s) = schema::set_field(&key.name, items, true, errors) {
                            keys.add_packages(s);
                        }
                    }
                    None => errors.push(type_err(&key.name, val, "a list")),
                }
            }
            _ => {
                if spec.name == "basearch" {
                    self.check_basearch(val, errors);
                }
                if let Some(f) = schema::to_field(spec, &key.name, val, errors, unknown) {
                    keys.layer.insert(spec.name, f);
                }
            }
        }
    }

    fn check_basearch(&self, val: &Node, errors: &mut Vec<TreefileError>) {
        match val.as_str() {
            Some(b) if b != self.arch => errors.push(invalid(&val.loc, format!(
                    "basearch `{b}` differs from the target architecture `{}`; cross-composes are not supported",
                    self.arch
                ))),
            _ => {}
        }
    }

    /// `packages-$arch`: its packages count only for the target architecture; an architecture
    /// nobody knows is the warning returned (it would never apply).
    fn arch_packages(
        &self,
        arch: &str,
        key: &Key,
        val: &Node,
        keys: &mut FileKeys,
        errors: &mut Vec<TreefileError>,
    ) -> Option<Diagnostic> {
        let Some(items) = val.as_seq() else {
            errors.push(type_err(&key.name, val, "a list of strings"));
            return None;
        };
        let warning = (!super::KNOWN_ARCHES.contains(&arch)).then(|| {
            let hint = did_you_mean(schema::suggest(KEYS, &key.name).as_deref());
            Diagnostic::warning(
                key.loc.clone(),
                format!(
                    "`{}` names no known architecture, so it never applies{hint}",
                    key.name
                ),
                &self.trail,
            )
        });
        // Checked for every architecture: a mistake should not wait for a compose on that one.
        if let Ok(s) = schema::set_field(&key.name, items, true, errors) {
            if arch == self.arch {
                keys.have_packages = true;
                keys.add_packages(s);
            }
        }
        warning
    }

    fn process(&mut self, root: &Node, path: &Path, json: bool, depth: usize) -> Layer {
        let (mut layer, dirs) = self.keys_to_layer(root, json);

        if let Some(vars) = &dirs.variables {
            self.fold_variables(vars);
        }
        if let Some(Field::Scalar(rv)) = layer.get("releasever") {
            let value = match &rv.value {
                Value::Int(i) => Some(VarValue::Number(*i)),
                Value::String(s) => Some(VarValue::String(s.clone())),
                _ => None,
            };
            if let Some(value) = value {
                self.vars
                    .entry("releasever".into())
                    .or_insert(Var { value });
            }
        }

        let mut includes = dirs.include;
        if let Some(ai) = &dirs.arch_include {
            includes.extend(self.arch_includes(ai));
        }
        if let Some(ci) = &dirs.conditional_include {
            for inc in self.conditional_includes(ci, json) {
                match inc {
                    CondInclude::Files(f) => includes.extend(f),
                    CondInclude::Inline(l) => schema::merge(&mut layer, l),
                }
            }
        }

        let dir = path.parent().unwrap_or(Path::new(""));
        for inc in includes {
            if depth >= MAX_INCLUDE_DEPTH {
                self.error(TreefileError::Depth {
                    loc: inc.loc.clone(),
                    limit: MAX_INCLUDE_DEPTH,
                });
                break;
            }
            let name = inc.as_str().unwrap_or_default();
            let child_path = dir.join(name);
            if let Some(child) = self.load_file(&child_path, Some(&inc), depth + 1) {
                schema::merge(&mut layer, child);
            }
        }
        layer
    }

    fn fold_variables(&mut self, vars: &Node) {
        let Some(entries) = vars.as_map() else {
            self.error(type_err(
                "variables",
                vars,
                "a mapping of names to booleans, integers or strings",
            ));
            return;
        };
        for (k, v) in entries {
            if matches!(k.name.as_str(), "basearch" | "releasever") {
                self.error(invalid(
                    &k.loc,
                    format!(
                        "`{}` is a reserved variable ({})",
                        k.name,
                        if k.name == "basearch" {
                            "set from --arch"
                        } else {
                            "set from the `releasever` key"
                        }
                    ),
                ));
                continue;
            }
            if !valid_var_name(&k.name) {
                self.error(invalid(
                    &k.loc,
                    format!(
                        "variable name `{}` may only contain letters, digits and `_`",
                        k.name
                    ),
                ));
                continue;
            }
            let value = match &v.value {
                Value::Bool(b) => VarValue::Bool(*b),
                Value::Int(i) => VarValue::Number(*i),
                Value::String(s) => VarValue::String(s.clone()),
                _ => {
                    self.error(type_err(
                        &format!("variables.{}", k.name),
                        v,
                        "a boolean, an integer or a string",
                    ));
                    continue;
                }
            };
            // The including file (or --var) already defined it: that definition wins.
            self.vars.entry(k.name.clone()).or_insert(Var { value });
        }
    }

    fn arch_includes(&mut self, ai: &Node) -> Vec<Node> {
        let Some(entries) = ai.as_map() else {
            self.error(type_err(
                "arch-include",
                ai,
                "a mapping of architectures to includes",
            ));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            match include_list(&format!("arch-include.{}", k.name), v) {
                Ok(list) if k.name == self.arch => out.extend(list),
                Ok(_) => {}
                Err(e) => self.error(e),
            }
            if !super::KNOWN_ARCHES.contains(&k.name.as_str()) {
                self.warn(
                    k.loc.clone(),
                    format!(
                        "arch-include: `{}` is not a known architecture, so it never applies",
                        k.name
                    ),
                );
            }
        }
        out
    }

    fn conditional_includes(&mut self, ci: &Node, json: bool) -> Vec<CondInclude> {
        const EXPECTED: &str = "a list of {if, include} mappings";
        let Some(items) = ci.as_seq() else {
            self.error(type_err("conditional-include", ci, EXPECTED));
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            if item.as_map().is_none() {
                self.error(type_err("conditional-include", item, EXPECTED));
                continue;
            }
            out.extend(self.conditional_include(item, json));
        }
        out
    }

    /// One `{if, include}` entry: what it includes when its conditions hold.
    fn conditional_include(&mut self, item: &Node, json: bool) -> Option<CondInclude> {
        let mut cond_node = None;
        let mut inc_node = None;
        for (k, v) in item.as_map().unwrap_or_default() {
            match k.name.as_str() {
                "if" => cond_node = Some(v),
                "include" => inc_node = Some(v),
                other => self.error(TreefileError::UnknownKey {
                    loc: k.loc.clone(),
                    key: format!("conditional-include.{other}"),
                    suggestion: cairn_common::suggest::closest(other, ["if", "include"])
                        .map(str::to_string),
                }),
            }
        }
        let (Some(cond_node), Some(inc_node)) = (cond_node, inc_node) else {
            self.error(invalid(
                &item.loc,
                "a conditional-include entry needs both `if` and `include`",
            ));
            return None;
        };
        // Every condition is evaluated, even after one is false, so type errors always show.
        let conds: Vec<&Node> = match &cond_node.value {
            Value::Seq(v) => v.iter().collect(),
            _ => vec![cond_node],
        };
        let mut all = true;
        let mut failed = false;
        for c in conds {
            match self.eval_condition(c) {
                Some(b) => all &= b,
                None => failed = true,
            }
        }
        if failed || !all {
            return None;
        }
        if inc_node.as_map().is_none() {
            return match include_list("conditional-include.include", inc_node) {
                Ok(v) => Some(CondInclude::Files(v)),
                Err(e) => {
                    self.error(e);
                    None
                }
            };
        }
        let (inline, dirs) = self.keys_to_layer(inc_node, json);
        if !dirs.is_empty() {
            self.error(invalid(&inc_node.loc, "an inline treefile in conditional-include cannot use include, arch-include, conditional-include or variables; put them in a file and include that"));
        }
        Some(CondInclude::Inline(inline))
    }

    fn eval_condition(&mut self, node: &Node) -> Option<bool> {
        let Some(text) = node.as_str() else {
            self.error(type_err(
                "conditional-include.if",
                node,
                "a condition string such as `releasever >= 41`, or a list of them",
            ));
            return None;
        };
        let c = match cond::parse(text) {
            Ok(c) => c,
            Err(msg) => {
                self.error(TreefileError::Condition {
                    loc: node.loc.clone(),
                    cond: text.to_string(),
                    msg,
                });
                return None;
            }
        };
        match cond::eval(&c, |name| self.vars.get(name).map(|v| v.value.clone())) {
            Ok(b) => Some(b),
            Err(EvalError::Undefined) => {
                let known: Vec<String> = self.vars.keys().cloned().collect();
                self.error(TreefileError::UndefinedVariable {
                    loc: node.loc.clone(),
                    name: c.var.clone(),
                    key: "conditional-include.if".into(),
                    known,
                });
                None
            }
            Err(EvalError::TypeMismatch {
                var_type,
                value_type,
            }) => {
                self.error(TreefileError::ConditionType {
                    loc: node.loc.clone(),
                    cond: text.to_string(),
                    var: c.var.clone(),
                    var_type,
                    value_type,
                });
                None
            }
            Err(EvalError::NotNumbers(t)) => {
                self.error(TreefileError::Condition {
                    loc: node.loc.clone(),
                    cond: text.to_string(),
                    msg: format!("<, <=, > and >= compare numbers; `{}` is a {t}", c.var),
                });
                None
            }
        }
    }
}

enum CondInclude {
    Files(Vec<Node>),
    Inline(Layer),
}

pub(crate) fn valid_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `include`-shaped values: one file name or a list of them.
fn include_list(key: &str, node: &Node) -> Result<Vec<Node>, TreefileError> {
    let expected = "a file name or a list of file names";
    match &node.value {
        Value::String(_) => Ok(vec![node.clone()]),
        Value::Seq(items) => match items.iter().find(|it| it.as_str().is_none()) {
            Some(bad) => Err(type_err(key, bad, expected)),
            None => Ok(items.clone()),
        },
        _ => Err(type_err(key, node, expected)),
    }
}
