//! Treefiles: rpm-ostree compatible YAML/JSON with includes, conditionals and variables.
//!
//! Semantics of record are rpm-ostree's (docs/treefile.md, rust/src/treefile.rs): see
//! `schema` for the key table and merge rules, `load` for include resolution and `docs/treefile.md`
//! in this repository for the user guide. cairn differs on purpose in three places, all stricter:
//! an undefined `${var}` is an error, positions are kept on every value, and inline treefiles in
//! `conditional-include` may not include further.
//!
//! Owns reading, merging, validating, rendering and diffing treefiles; composing them is
//! cairn_compose's. It does not link libostree.

// User data (files, requests) must never panic the program: no unwrap/expect/indexing outside
// tests; clippy (-D warnings in CI) enforces it, and a provably safe site says why with #[allow].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

mod cairn;
mod cond;
mod diff;
mod error;
mod load;
mod render;
mod schema;
mod source;
mod subst;
mod validate;

pub use cairn::{is_kernel_package, Backend, CairnSection, GeneratedFile, Mmdebstrap, Rootfs};
pub use cond::VarValue;
pub use diff::{diff, KeyChange, TreefileDiff};
pub use error::{Diagnostic, Severity, TreefileError};
pub use load::MAX_INCLUDE_DEPTH;
pub use render::{RpmOstreeTreefile, GENERATED_DIR};
pub use source::{Disk, MemFiles, Source};

/// rpm-ostree base architectures cairn accepts for `--arch` and `packages-$basearch`.
pub const KNOWN_ARCHES: &[&str] = &[
    "x86_64", "aarch64", "s390x", "ppc64le", "ppc64", "armhfp", "i686", "riscv64",
];

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// rpm-ostree basearch (x86_64, aarch64, s390x, ppc64le); `None` = the host's.
    pub arch: Option<String>,
    /// `--var NAME=VALUE` overrides, VALUE read as a YAML scalar (`false` is a boolean, `41` a
    /// number, anything else a string). They win over every treefile's `variables`.
    pub vars: Vec<(String, String)>,
}

/// A loaded treefile: includes resolved, merged, substituted and validated.
#[derive(Debug, Clone)]
pub struct Treefile {
    /// The entry file, absolute.
    pub path: PathBuf,
    /// The basearch used.
    pub arch: String,
    /// Flattened and substituted, rpm-ostree key names; include directives and `variables`
    /// removed; `packages` sorted; the `cairn` section kept (merged).
    pub json: serde_json::Map<String, serde_json::Value>,
    /// The final package set: sorted, split, `packages-$basearch` applied.
    pub packages: Vec<String>,
    pub cairn: CairnSection,
    /// (absolute source, destination in the tree), sources resolved relative to the file that
    /// declared each entry.
    pub add_files: Vec<(PathBuf, String)>,
    /// `postprocess-script`, absolute (zero or one entry: the key is first-one-wins).
    pub postprocess_scripts: Vec<PathBuf>,
    /// `check-passwd` / `check-groups` of type file, absolute.
    pub passwd_file: Option<PathBuf>,
    pub group_file: Option<PathBuf>,
    /// Every treefile read, in order, canonical paths (compose hashes them).
    pub files: Vec<PathBuf>,
    /// The final variables, `basearch` and `releasever` included.
    pub variables: IndexMap<String, VarValue>,
    /// Warnings found while loading (unknown JSON keys, missing external files...). Callers
    /// should print them; the library prints nothing.
    pub warnings: Vec<Diagnostic>,
}

/// The basearch of the machine cairn runs on, in rpm-ostree's spelling.
pub fn host_arch() -> String {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le".into(),
        "powerpc64" => "ppc64".into(),
        "arm" => "armhfp".into(),
        "x86" => "i686".into(),
        a => a.into(),
    }
}

/// Parses a `--var` value as a YAML scalar: booleans and integers keep their type.
pub fn parse_var_value(v: &str) -> VarValue {
    match cairn_yaml::parse(v, Path::new("--var")).map(|n| n.value) {
        Ok(cairn_yaml::Value::Bool(b)) => VarValue::Bool(b),
        Ok(cairn_yaml::Value::Int(i)) => VarValue::Number(i),
        Ok(cairn_yaml::Value::String(s)) => VarValue::String(s),
        _ => VarValue::String(v.to_string()),
    }
}

/// Splits `NAME=VALUE` (what `--var` takes).
pub fn parse_var_arg(arg: &str) -> Result<(String, String), TreefileError> {
    let bad = |msg: &str| TreefileError::BadVar {
        arg: arg.to_string(),
        msg: msg.to_string(),
    };
    let (k, v) = cairn_common::kv::split(arg, "NAME=VALUE")
        .map_err(|e| bad(&format!("expected {}, e.g. --var prod=true", e.shape)))?;
    if !load::valid_var_name(k) {
        return Err(bad("the name may only contain letters, digits and `_`"));
    }
    Ok((k.to_string(), v.to_string()))
}

fn initial_vars(
    arch: &str,
    opts: &LoadOptions,
) -> Result<IndexMap<String, load::Var>, TreefileError> {
    let mut vars = IndexMap::new();
    for (k, v) in &opts.vars {
        let arg = format!("{k}={v}");
        if !load::valid_var_name(k) {
            return Err(TreefileError::BadVar {
                arg,
                msg: "the name may only contain letters, digits and `_`".into(),
            });
        }
        match k.as_str() {
            "basearch" => {
                return Err(TreefileError::BadVar {
                    arg,
                    msg: "basearch is reserved; use --arch".into(),
                })
            }
            "releasever" => {
                return Err(TreefileError::BadVar {
                    arg,
                    msg: "releasever is reserved; it comes from the `releasever` key (set it in a treefile that includes this one)".into(),
                })
            }
            _ => {}
        }
        vars.insert(
            k.clone(),
            load::Var {
                value: parse_var_value(v),
            },
        );
    }
    vars.insert(
        "basearch".into(),
        load::Var {
            value: VarValue::String(arch.to_string()),
        },
    );
    Ok(vars)
}

/// Loads, merges and validates the treefile at `path`; every diagnostic so far in `Err`, warnings
/// in `Treefile::warnings`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Treefile, TreefileError> {
    load_from(&Disk, path, opts)
}

/// [`load`], reading the entry file and its includes from `source` (e.g. [`MemFiles`]).
pub fn load_from(
    source: &dyn Source,
    path: &Path,
    opts: &LoadOptions,
) -> Result<Treefile, TreefileError> {
    let (tf, errors, _) = load_all(source, path, opts);
    match tf {
        Some(tf) if errors.is_empty() => Ok(tf),
        _ => Err(TreefileError::from_list(errors)),
    }
}

/// Everything `cairn treefile check` reports for one entry file: errors and warnings.
pub fn check(path: &Path, opts: &LoadOptions) -> Vec<Diagnostic> {
    let (_, errors, warnings) = load_all(&Disk, path, opts);
    let mut out: Vec<Diagnostic> = errors.iter().flat_map(|e| e.diagnostics()).collect();
    out.extend(warnings);
    out
}

fn load_all(
    source: &dyn Source,
    path: &Path,
    opts: &LoadOptions,
) -> (Option<Treefile>, Vec<TreefileError>, Vec<Diagnostic>) {
    let arch = opts.arch.clone().unwrap_or_else(host_arch);
    if !KNOWN_ARCHES.contains(&arch.as_str()) {
        return (None, vec![TreefileError::Arch { arch }], Vec::new());
    }
    let vars = match initial_vars(&arch, opts) {
        Ok(v) => v,
        Err(e) => return (None, vec![e], Vec::new()),
    };
    let mut loader = load::Loader::new(source, arch, vars);
    let layer = loader.load_file(path, None, 0);
    let Some(layer) = layer else {
        return (None, loader.errors, loader.warnings);
    };
    let mut errors = std::mem::take(&mut loader.errors);
    let mut warnings = std::mem::take(&mut loader.warnings);
    let mut tf = render::finish(path, layer, loader, &mut errors, &mut warnings);
    tf.warnings = warnings.clone();
    (Some(tf), errors, warnings)
}
