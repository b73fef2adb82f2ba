//! Parsing sysctl.d text and checking settings: key syntax, known keys, value kinds, conflicts.

use std::path::{Path, PathBuf};

use super::known::{self, Kind};
use super::{OwnedPreset, Setting, Source, SysctlError};

/// Parses sysctl.d(5) text into a preset named `name`.
pub(super) fn parse(name: &str, path: &Path, text: &str) -> Result<OwnedPreset, SysctlError> {
    let mut preset = OwnedPreset {
        name: name.to_string(),
        reason: String::new(),
        source: Source::File(path.to_path_buf()),
        settings: Vec::new(),
        modules: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = || format!("{}:{}", path.display(), i + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#').or_else(|| line.strip_prefix(';')) {
            let comment = comment.trim();
            if let Some(mods) = comment.strip_prefix("cairn-modules:") {
                for m in mods.split_whitespace() {
                    if !m
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        return Err(SysctlError::BadModule {
                            at: at(),
                            module: m.to_string(),
                        });
                    }
                    preset.modules.push(m.to_string());
                }
            } else if preset.reason.is_empty() && preset.settings.is_empty() && !comment.is_empty()
            {
                preset.reason = comment.to_string();
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(SysctlError::Syntax {
                at: at(),
                line: raw.to_string(),
                why: "expected `key = value`".into(),
            });
        };
        let (key, value) = (key.trim(), value.trim());
        if value.is_empty() {
            return Err(SysctlError::Syntax {
                at: at(),
                line: raw.to_string(),
                why: "empty value".into(),
            });
        }
        preset.settings.push(Setting {
            key: key.to_string(),
            value: value.to_string(),
            line: Some(i + 1),
        });
    }
    if preset.reason.is_empty() {
        preset.reason = format!("user preset from {}", path.display());
    }
    Ok(preset)
}

/// The /proc/sys path components of a key: sysctl.d(5) says that when the first separator is a
/// slash, dots are literal (VLAN interfaces like `eth0.100`); otherwise dots and slashes swap.
pub fn components(key: &str) -> Vec<String> {
    let key = key.strip_prefix('-').unwrap_or(key);
    let first_sep = key.find(['.', '/']);
    let slash_form = first_sep.is_some_and(|i| key.as_bytes().get(i) == Some(&b'/'));
    if slash_form {
        key.split('/').map(str::to_string).collect()
    } else {
        key.split('.').map(|c| c.replace('/', ".")).collect()
    }
}

/// Checks settings against cairn's shipped key list and, when given, a live `/proc/sys`.
#[derive(Debug, Clone)]
pub struct Validator {
    /// `/proc/sys` (or a stand-in in tests); `None`: the shipped list only.
    pub proc_sys: Option<PathBuf>,
}

impl Validator {
    /// The shipped list plus this host's `/proc/sys` when it exists.
    pub fn host() -> Validator {
        let p = Path::new("/proc/sys");
        Validator {
            proc_sys: p.is_dir().then(|| p.to_path_buf()),
        }
    }

    /// The shipped list only (builds for another kernel, hermetic tests).
    pub fn shipped_only() -> Validator {
        Validator { proc_sys: None }
    }

    /// Checks every setting of every preset, then that no two presets disagree on a key.
    pub fn check_all(&self, presets: &[OwnedPreset]) -> Result<(), SysctlError> {
        let mut seen: Vec<(Vec<String>, &OwnedPreset, &Setting)> = Vec::new();
        for p in presets {
            for m in &p.modules {
                if m.is_empty()
                    || !m
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
                {
                    return Err(SysctlError::BadModule {
                        at: p.describe(None),
                        module: m.clone(),
                    });
                }
            }
            for s in &p.settings {
                self.check(p, s)?;
                let comps = components(&s.key);
                if let Some((_, other, os)) = seen.iter().find(|(c, _, _)| *c == comps) {
                    if os.value.split_whitespace().ne(s.value.split_whitespace()) {
                        return Err(SysctlError::Conflict {
                            key: comps.join("."),
                            first: other.name.clone(),
                            first_value: os.value.clone(),
                            second: p.name.clone(),
                            second_value: s.value.clone(),
                        });
                    }
                } else {
                    seen.push((comps, p, s));
                }
            }
        }
        Ok(())
    }

    /// Checks one setting: key syntax, that the key exists, and the value's kind.
    pub fn check(&self, preset: &OwnedPreset, s: &Setting) -> Result<(), SysctlError> {
        let at = preset.describe(s.line);
        let bad = |why: &str| SysctlError::BadKey {
            at: at.clone(),
            key: s.key.clone(),
            why: why.into(),
        };
        let comps = components(&s.key);
        if comps.len() < 2 {
            return Err(bad(
                "a key has at least two components, like `vm.swappiness`",
            ));
        }
        for c in &comps {
            if c.is_empty() {
                return Err(bad("empty component (doubled or trailing separator)"));
            }
            if c.contains(['*', '?', '[']) {
                return Err(bad(
                    "globs are not supported in presets; name the key exactly",
                ));
            }
            if !c
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.:@+".contains(ch))
            {
                return Err(bad(
                    "only letters, digits and `_-.:@+` may appear in a component",
                ));
            }
        }
        let shipped = known::lookup(&comps.join("."));
        let proc_path = self.proc_sys.as_ref().map(|p| p.join(comps.join("/")));
        if let Some(pp) = &proc_path {
            if pp.is_dir() {
                return Err(bad("this is a directory of keys, not a key"));
            }
        }
        let in_proc = proc_path.as_ref().is_some_and(|p| p.is_file());
        let kind = match (shipped, in_proc) {
            (Some(k), _) => k,
            (None, true) => proc_path
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|cur| kind_of(&cur))
                .unwrap_or(Kind::Text),
            (None, false) => {
                return Err(SysctlError::UnknownKey {
                    at,
                    key: s.key.clone(),
                    proc: match &self.proc_sys {
                        Some(p) => format!(" and absent from {}", p.display()),
                        None => String::new(),
                    },
                    suggestion: cairn_common::suggest::closest(&comps.join("."), known::all())
                        .map(str::to_string),
                })
            }
        };
        let ok = match kind {
            Kind::Int => is_int(&s.value),
            Kind::Ints => s.value.split_whitespace().all(is_int),
            Kind::Text => true,
        };
        if !ok {
            return Err(SysctlError::BadValue {
                at,
                key: s.key.clone(),
                value: s.value.clone(),
                expected: if kind == Kind::Int {
                    "an integer"
                } else {
                    "integers separated by spaces"
                },
            });
        }
        Ok(())
    }
}

fn is_int(v: &str) -> bool {
    let digits = v.strip_prefix('-').unwrap_or(v);
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

/// A key whose current value is numbers takes numbers.
fn kind_of(current: &str) -> Kind {
    let words: Vec<&str> = current.split_whitespace().collect();
    match words.as_slice() {
        [] => Kind::Text,
        [one] if is_int(one) => Kind::Int,
        _ if words.iter().all(|w| is_int(w)) => Kind::Ints,
        _ => Kind::Text,
    }
}
