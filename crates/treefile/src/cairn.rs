//! The `cairn:` section: cairn's own keys, typed, and their lowering to standard rpm-ostree keys.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{Diagnostic, TreefileError};
use super::schema::{Field, Layer};
use cairn_yaml::{Loc, Node, Value};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// Compose picks what the treefile and host allow.
    #[default]
    Auto,
    RpmOstree,
    Dnf,
    Mmdebstrap,
    Rootfs,
}

impl Backend {
    pub fn parse(s: &str) -> Option<Backend> {
        Some(match s {
            "auto" => Backend::Auto,
            "rpm-ostree" => Backend::RpmOstree,
            "dnf" => Backend::Dnf,
            "mmdebstrap" => Backend::Mmdebstrap,
            "rootfs" => Backend::Rootfs,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::RpmOstree => "rpm-ostree",
            Backend::Dnf => "dnf",
            Backend::Mmdebstrap => "mmdebstrap",
            Backend::Rootfs => "rootfs",
        }
    }
}

impl cairn_common::named::Named for Backend {
    const ALL: &'static [Self] = &[
        Self::Auto,
        Self::RpmOstree,
        Self::Dnf,
        Self::Mmdebstrap,
        Self::Rootfs,
    ];
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Debian/Ubuntu bootstrap settings (mmdebstrap(1)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mmdebstrap {
    pub suite: String,
    pub mirror: String,
    pub components: Vec<String>,
    pub variant: String,
}

impl Default for Mmdebstrap {
    fn default() -> Self {
        Mmdebstrap {
            suite: "bookworm".into(),
            mirror: "http://deb.debian.org/debian".into(),
            components: vec!["main".into()],
            variant: "minbase".into(),
        }
    }
}

/// An existing root filesystem: a directory or a tarball.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rootfs {
    /// Absolute; resolved relative to the file that declared it.
    pub path: PathBuf,
}

/// The typed `cairn:` section (defaults when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct CairnSection {
    pub backend: Backend,
    /// Explicit `bootable`, else whether `packages` names a kernel.
    pub bootable: bool,
    /// Built-in preset names (validated against `cairn_sysctl`), sorted.
    pub sysctl_presets: Vec<String>,
    /// Inline settings, in the author's order.
    pub sysctl: Vec<(String, String)>,
    /// Set when the section has `mmdebstrap:` or the backend is mmdebstrap (then with defaults).
    pub mmdebstrap: Option<Mmdebstrap>,
    pub rootfs: Option<Rootfs>,
}

/// A file cairn generates into the tree (sysctl.d, modules-load.d).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratedFile {
    /// Absolute destination in the tree, e.g. `/usr/lib/sysctl.d/60-cairn-elasticsearch.conf`.
    pub dest: String,
    pub content: String,
}

/// Whether a package name is a kernel (Fedora/CentOS or Debian naming).
pub fn is_kernel_package(name: &str) -> bool {
    matches!(
        name,
        "kernel" | "kernel-core" | "kernel-rt" | "kernel-rt-core"
    ) || (name.starts_with("linux-image-") && !name.ends_with("-dbg"))
}

impl CairnSection {
    /// The sysctl.d and modules-load.d files the presets and inline settings produce. Presets are
    /// `60-cairn-<name>.conf`; inline settings `61-cairn-treefile.conf`, so they override presets
    /// (systemd-sysctl applies files in lexical order, the later value winning).
    pub fn sysctl_files(&self) -> Vec<GeneratedFile> {
        use cairn_sysctl::{self as sysctl, OwnedPreset};
        let mut presets: Vec<OwnedPreset> = self
            .sysctl_presets
            .iter()
            .filter_map(|name| sysctl::find(name))
            .map(OwnedPreset::from)
            .collect();
        if !self.sysctl.is_empty() {
            presets.push(OwnedPreset::inline("treefile", &self.sysctl));
        }
        sysctl::render_owned(&presets)
            .into_iter()
            .map(|(rel, content)| GeneratedFile {
                dest: format!("/usr/lib/{}", rel.display()),
                content,
            })
            .collect()
    }
}

fn scalar<'a>(l: &'a Layer, key: &str) -> Option<&'a Node> {
    match l.get(key) {
        Some(Field::Scalar(n)) => Some(n),
        _ => None,
    }
}

fn section<'a>(l: &'a Layer, key: &str) -> Option<&'a Layer> {
    match l.get(key) {
        Some(Field::Section(s)) => Some(s),
        _ => None,
    }
}

fn relative_to_declaring_file(n: &Node, p: &str) -> PathBuf {
    let base = n.loc.file.parent().unwrap_or(Path::new(""));
    let joined = base.join(p);
    std::path::absolute(&joined).unwrap_or(joined)
}

fn sysctl_key_ok(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with('.')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '*'))
}

/// Types and validates the merged section. `packages` decides the `bootable` default.
pub(crate) fn from_layer(
    layer: Option<&Layer>,
    section_loc: Option<&Loc>,
    packages: &[String],
    errors: &mut Vec<TreefileError>,
    warnings: &mut Vec<Diagnostic>,
) -> CairnSection {
    let has_kernel = packages.iter().any(|p| is_kernel_package(p));
    let empty = Layer::new();
    let l = layer.unwrap_or(&empty);
    let backend_node = scalar(l, "backend");
    let backend = backend_node
        .and_then(|n| n.as_str())
        .and_then(Backend::parse)
        .unwrap_or_default();
    let bootable = match scalar(l, "bootable").map(|n| &n.value) {
        Some(Value::Bool(b)) => {
            if *b && !has_kernel {
                if let Some(n) = scalar(l, "bootable") {
                    warnings.push(Diagnostic::warning(
                        n.loc.clone(),
                        "`cairn.bootable` is true but `packages` names no kernel (kernel, linux-image-*); compose will fail unless a dependency brings one",
                        &[],
                    ));
                }
            }
            *b
        }
        _ => has_kernel,
    };

    let mut sysctl_presets = Vec::new();
    if let Some(Field::Set(set)) = l.get("sysctl-presets") {
        for (name, loc) in set {
            if cairn_sysctl::find(name).is_some() {
                sysctl_presets.push(name.clone());
            } else {
                let names: Vec<&str> = cairn_sysctl::builtin().iter().map(|p| p.name).collect();
                // A typo, or a prefix of a preset's name (`kubernetes` for `kubernetes-node`).
                let near = names
                    .iter()
                    .map(|n| {
                        let d = if n.starts_with(name.as_str()) {
                            0
                        } else {
                            cairn_common::suggest::edit_distance(name, n)
                        };
                        (d, *n)
                    })
                    .filter(|(d, _)| *d <= 3)
                    .min_by_key(|(d, _)| *d)
                    .map(|(_, n)| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                errors.push(TreefileError::Invalid {
                    loc: loc.clone(),
                    msg: format!(
                        "unknown sysctl preset `{name}`{near}; built-in presets: {}",
                        names.join(", ")
                    ),
                });
            }
        }
    }

    let mut sysctl = Vec::new();
    if let Some(Field::Map(m)) = l.get("sysctl") {
        for (k, (kloc, v)) in m {
            if !sysctl_key_ok(k) {
                errors.push(TreefileError::Invalid {
                    loc: kloc.clone(),
                    msg: format!("`{k}` is not a sysctl name (e.g. vm.swappiness)"),
                });
                continue;
            }
            let val = match &v.value {
                Value::String(s) => s.clone(),
                other => Node {
                    value: other.clone(),
                    loc: v.loc.clone(),
                }
                .to_json()
                .to_string(),
            };
            sysctl.push((k.clone(), val));
        }
    }

    let mmdebstrap = match section(l, "mmdebstrap") {
        Some(m) => {
            let mut d = Mmdebstrap::default();
            if let Some(s) = scalar(m, "suite").and_then(|n| n.as_str()) {
                d.suite = s.to_string();
            }
            if let Some(s) = scalar(m, "mirror").and_then(|n| n.as_str()) {
                d.mirror = s.to_string();
            }
            if let Some(s) = scalar(m, "variant").and_then(|n| n.as_str()) {
                d.variant = s.to_string();
            }
            if let Some(c) = scalar(m, "components").and_then(|n| n.as_seq()) {
                d.components = c
                    .iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect();
            }
            if !matches!(backend, Backend::Mmdebstrap | Backend::Auto) {
                if let Some(loc) = section_loc {
                    warnings.push(Diagnostic::warning(
                        loc.clone(),
                        format!(
                            "`cairn.mmdebstrap` is ignored with backend {}",
                            backend.as_str()
                        ),
                        &[],
                    ));
                }
            }
            Some(d)
        }
        None if backend == Backend::Mmdebstrap => Some(Mmdebstrap::default()),
        None => None,
    };

    let rootfs = section(l, "rootfs").and_then(|r| {
        let n = scalar(r, "path")?;
        Some(Rootfs {
            path: relative_to_declaring_file(n, n.as_str().unwrap_or_default()),
        })
    });
    if backend == Backend::Rootfs && rootfs.is_none() {
        let loc = backend_node
            .map(|n| n.loc.clone())
            .or_else(|| section_loc.cloned());
        if let Some(loc) = loc {
            errors.push(TreefileError::Invalid {
                loc,
                msg: "backend rootfs needs `cairn.rootfs.path` (a directory or a tarball)".into(),
            });
        }
    }
    if let (Some(r), Some(sec)) = (&rootfs, section(l, "rootfs")) {
        if !r.path.exists() {
            if let Some(n) = scalar(sec, "path") {
                warnings.push(Diagnostic::warning(
                    n.loc.clone(),
                    format!(
                        "`cairn.rootfs.path` {} does not exist (yet)",
                        r.path.display()
                    ),
                    &[],
                ));
            }
        }
    }

    CairnSection {
        backend,
        bootable,
        sysctl_presets,
        sysctl,
        mmdebstrap,
        rootfs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_detection() {
        assert!(is_kernel_package("kernel"));
        assert!(is_kernel_package("linux-image-amd64"));
        assert!(!is_kernel_package("kernel-headers"));
        assert!(!is_kernel_package("linux-image-amd64-dbg"));
    }

    #[test]
    fn sysctl_files_per_preset_and_inline() {
        let c = CairnSection {
            sysctl_presets: vec!["kubernetes-node".into()],
            sysctl: vec![("vm.swappiness".into(), "10".into())],
            ..Default::default()
        };
        let files = c.sysctl_files();
        let dests: Vec<&str> = files.iter().map(|f| f.dest.as_str()).collect();
        assert_eq!(
            dests,
            [
                "/usr/lib/sysctl.d/60-cairn-kubernetes-node.conf",
                "/usr/lib/modules-load.d/cairn-kubernetes-node.conf",
                "/usr/lib/sysctl.d/61-cairn-treefile.conf"
            ]
        );
        assert!(files[0].content.contains("net.ipv4.ip_forward = 1\n"));
        assert!(files[1].content.contains("br_netfilter\n"));
        assert!(files[2].content.ends_with("vm.swappiness = 10\n"));
    }
}
