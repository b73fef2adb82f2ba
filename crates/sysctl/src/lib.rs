//! Sysctl presets: named sets of kernel tunables that workloads need, each with its reason.
//!
//! The same presets serve the image layer (`/usr/lib/sysctl.d`, written at compose time) and the
//! host layer (`/etc/sysctl.d`, written into a deployment): [`render`] returns paths relative to
//! the configuration root, the caller joins them under `usr/lib` or `etc`.
//!
//! Precedence (systemd-sysctl, sysctl.d(5)): a file in `/etc/sysctl.d` masks the file of the same
//! name in `/run/sysctl.d`, `/usr/local/lib/sysctl.d` and `/usr/lib/sysctl.d`; the surviving files
//! are then read in lexical order of their names, whatever their directory, and for each key the
//! last assignment wins. cairn writes `60-cairn-<preset>.conf`: after distribution defaults
//! (`50-*.conf`), before the conventional local override `99-sysctl.conf` (`/etc/sysctl.conf`).
//!
//! Owns the presets, their validation and the one check of a preset name ([`unknown_preset`]);
//! writing the files into a tree or a deployment is the caller's. It does not link libostree.

// User data (files, requests) must never panic the program: no unwrap/expect/indexing outside
// tests; clippy (-D warnings in CI) enforces it, and a provably safe site says why with #[allow].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod builtin;
pub mod known;
mod validate;

use std::path::{Path, PathBuf};

use cairn_common::suggest::did_you_mean;

pub use validate::Validator;

/// One built-in preset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Preset {
    pub name: &'static str,
    /// One line: why a node operator wants this.
    pub reason: &'static str,
    pub settings: &'static [(&'static str, &'static str)],
    /// Kernel modules the settings depend on (written to modules-load.d).
    pub modules: &'static [&'static str],
}

/// All built-in presets, in a stable order.
pub fn builtin() -> &'static [Preset] {
    builtin::BUILTIN
}

/// A built-in preset by name.
pub fn find(name: &str) -> Option<&'static Preset> {
    builtin::BUILTIN.iter().find(|p| p.name == name)
}

/// A built-in preset by name, or the [`unknown_preset`] error naming the built-ins.
pub fn find_builtin(name: &str) -> Result<&'static Preset, SysctlError> {
    find(name).ok_or_else(|| unknown_preset(name, builtin::BUILTIN.iter().map(|p| p.name)))
}

/// The error for a preset name that is not among `known`. Every place that takes preset names
/// (treefile, inventory, deploy, `cairn sysctl`) refuses an unknown one through here, so the
/// suggestion and the wording are the same everywhere; callers add only their position.
pub fn unknown_preset<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> SysctlError {
    let mut known: Vec<&str> = known.into_iter().collect();
    known.sort_unstable();
    // A typo, or the start of a preset's name (`kubernetes` for `kubernetes-node`), which is too
    // many edits away for a typo yet plainly meant.
    let suggestion = known
        .iter()
        .find(|k| !name.is_empty() && k.starts_with(name))
        .copied()
        .or_else(|| cairn_common::suggest::closest(name, known.iter().copied()));
    SysctlError::UnknownPreset {
        name: name.to_string(),
        suggestion: suggestion.map(str::to_string),
        known: known.join(", "),
    }
}

/// Where a preset came from; errors name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum Source {
    Builtin,
    /// A user file in sysctl.d syntax.
    File(PathBuf),
    /// Settings given inline (e.g. a treefile's `cairn.sysctl` map).
    Inline,
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    /// As written (dots or slashes; a leading `-` means "ignore failure to set", as in sysctl.d).
    pub key: String,
    pub value: String,
    /// 1-based line in the source file, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// A preset with owned data: built-in, loaded from a file, or made inline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OwnedPreset {
    pub name: String,
    pub reason: String,
    pub source: Source,
    pub settings: Vec<Setting>,
    pub modules: Vec<String>,
}

impl From<&Preset> for OwnedPreset {
    fn from(p: &Preset) -> Self {
        OwnedPreset {
            name: p.name.to_string(),
            reason: p.reason.to_string(),
            source: Source::Builtin,
            settings: p
                .settings
                .iter()
                .map(|(k, v)| Setting {
                    key: k.to_string(),
                    value: v.to_string(),
                    line: None,
                })
                .collect(),
            modules: p.modules.iter().map(|m| m.to_string()).collect(),
        }
    }
}

impl OwnedPreset {
    /// A preset from inline `key -> value` pairs (a treefile's `cairn.sysctl` map).
    pub fn inline(name: &str, settings: &[(String, String)]) -> OwnedPreset {
        OwnedPreset {
            name: name.to_string(),
            reason: "inline settings".to_string(),
            source: Source::Inline,
            settings: settings
                .iter()
                .map(|(k, v)| Setting {
                    key: k.clone(),
                    value: v.clone(),
                    line: None,
                })
                .collect(),
            modules: Vec::new(),
        }
    }

    /// "built-in preset `x`" or "preset `x` (/dir/x.conf:3)": where an error points.
    pub fn describe(&self, line: Option<usize>) -> String {
        match (&self.source, line) {
            (Source::Builtin, _) => format!("built-in preset `{}`", self.name),
            (Source::Inline, _) => format!("inline preset `{}`", self.name),
            (Source::File(p), Some(l)) => format!("preset `{}` ({}:{l})", self.name, p.display()),
            (Source::File(p), None) => format!("preset `{}` ({})", self.name, p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error(
        "unknown sysctl preset `{name}`{}; known presets: {known}",
        did_you_mean(suggestion.as_deref())
    )]
    UnknownPreset {
        name: String,
        suggestion: Option<String>,
        /// The names that would have been accepted, comma-separated.
        known: String,
    },
    #[error("{at}: malformed line `{line}`: {why}")]
    Syntax {
        at: String,
        line: String,
        why: String,
    },
    #[error("{at}: invalid key `{key}`: {why}")]
    BadKey {
        at: String,
        key: String,
        why: String,
    },
    #[error(
        "{at}: unknown key `{key}`{}; it is not in cairn's list of known keys{proc}",
        did_you_mean(suggestion.as_deref())
    )]
    UnknownKey {
        at: String,
        key: String,
        proc: String,
        suggestion: Option<String>,
    },
    #[error("{at}: `{key}` takes {expected}, got `{value}`")]
    BadValue {
        at: String,
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{at}: invalid module name `{module}` (letters, digits, `_` and `-` only)")]
    BadModule { at: String, module: String },
    #[error(
        "presets `{first}` and `{second}` both set `{key}`, to `{first_value}` and \
         `{second_value}`; drop one of them or make them agree"
    )]
    Conflict {
        key: String,
        first: String,
        first_value: String,
        second: String,
        second_value: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Loads one user preset from a file in sysctl.d syntax; the preset is named after the file
/// (without `.conf`). The first comment line is its reason; a `# cairn-modules: a b` comment lists
/// kernel modules for modules-load.d.
pub fn load_file(path: &Path) -> Result<OwnedPreset, SysctlError> {
    let text = std::fs::read_to_string(path).map_err(|source| SysctlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let name = stem.strip_suffix(".conf").unwrap_or(stem).to_string();
    validate::parse(&name, path, &text)
}

/// A preset named `name` from sysctl.d text; `path` only names positions in errors.
pub fn parse_preset(name: &str, path: &Path, text: &str) -> Result<OwnedPreset, SysctlError> {
    validate::parse(name, path, text)
}

/// All user presets in `dir` (`*.conf` files and extension-less files), sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<OwnedPreset>, SysctlError> {
    let io = |source| SysctlError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_file()
            && !name.starts_with('.')
            && (name.ends_with(".conf") || !name.contains('.'))
        {
            out.push(load_file(&path)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every preset visible with `preset_dir`: user presets first shadow built-ins of the same name.
pub fn available(preset_dir: Option<&Path>) -> Result<Vec<OwnedPreset>, SysctlError> {
    let user = match preset_dir {
        Some(d) => load_dir(d)?,
        None => Vec::new(),
    };
    let mut all: Vec<OwnedPreset> = builtin()
        .iter()
        .filter(|b| !user.iter().any(|u| u.name == b.name))
        .map(OwnedPreset::from)
        .collect();
    all.extend(user);
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Looks up `names` (user presets from `preset_dir` win over built-ins), then validates each
/// setting with `validator` and the set as a whole (no key set to two values).
pub fn resolve(
    names: &[String],
    preset_dir: Option<&Path>,
    validator: &Validator,
) -> Result<Vec<OwnedPreset>, SysctlError> {
    let all = available(preset_dir)?;
    let mut chosen = Vec::new();
    for name in names {
        let p = all
            .iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| unknown_preset(name, all.iter().map(|p| p.name.as_str())))?;
        if !chosen.iter().any(|c: &OwnedPreset| c.name == p.name) {
            chosen.push(p.clone());
        }
    }
    validator.check_all(&chosen)?;
    Ok(chosen)
}

/// File name of a preset's sysctl.d file, relative to the configuration root.
pub fn sysctl_file(name: &str) -> PathBuf {
    PathBuf::from(format!("sysctl.d/60-cairn-{name}.conf"))
}

/// File name for inline settings (a treefile's `cairn.sysctl`): numbered after every preset file,
/// so systemd-sysctl applies them last and they override presets key by key.
pub fn inline_file(name: &str) -> PathBuf {
    PathBuf::from(format!("sysctl.d/61-cairn-{name}.conf"))
}

/// File name of a preset's modules-load.d file, relative to the configuration root.
pub fn modules_file(name: &str) -> PathBuf {
    PathBuf::from(format!("modules-load.d/cairn-{name}.conf"))
}

/// The files presets become: `(path relative to the config root, content)`. Join the path under
/// `usr/lib` (image layer) or `etc` (host layer). Validate first ([`resolve`] or
/// [`Validator::check_all`]); rendering does not.
pub fn render_owned(presets: &[OwnedPreset]) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for p in presets {
        let mut s = format!(
            "# cairn sysctl preset `{}`: {}\n# Generated by cairn; change the preset, not this file.\n",
            p.name, p.reason
        );
        for set in &p.settings {
            s.push_str(&format!("{} = {}\n", set.key, set.value));
        }
        let path = match p.source {
            Source::Inline => inline_file(&p.name),
            _ => sysctl_file(&p.name),
        };
        files.push((path, s));
        if !p.modules.is_empty() {
            let mut m = format!("# Kernel modules for cairn sysctl preset `{}`.\n", p.name);
            for module in &p.modules {
                m.push_str(module);
                m.push('\n');
            }
            files.push((modules_file(&p.name), m));
        }
    }
    files
}

/// [`render_owned`] for built-in presets (compose's entry point).
pub fn render(presets: &[&Preset]) -> Vec<(PathBuf, String)> {
    let owned: Vec<OwnedPreset> = presets.iter().map(|p| OwnedPreset::from(*p)).collect();
    render_owned(&owned)
}

#[cfg(test)]
mod tests;
