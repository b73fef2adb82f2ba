//! The `cairn:` section: cairn's own keys, typed, and their lowering to standard rpm-ostree keys.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::error::{Diagnostic, TreefileError};
use super::schema::{Field, Layer};
use super::validate::invalid;
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
    let empty = Layer::new();
    let l = layer.unwrap_or(&empty);
    let backend_node = scalar(l, "backend");
    let backend = backend_node
        .and_then(|n| n.as_str())
        .and_then(Backend::parse)
        .unwrap_or_default();
    let bootable = bootable(l, packages, warnings);
    let sysctl_presets = sysctl_presets(l, errors);
    let sysctl = sysctl_settings(l, errors);
    let mmdebstrap = mmdebstrap(l, backend, section_loc, warnings);
    let rootfs = rootfs(l, warnings);
    if backend == Backend::Rootfs && rootfs.is_none() {
        let loc = backend_node
            .map(|n| n.loc.clone())
            .or_else(|| section_loc.cloned());
        if let Some(loc) = loc {
            errors.push(invalid(
                &loc,
                "backend rootfs needs `cairn.rootfs.path` (a directory or a tarball)",
            ));
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

/// Explicit `bootable`, else whether `packages` names a kernel; warns when it is set true without one.
fn bootable(l: &Layer, packages: &[String], warnings: &mut Vec<Diagnostic>) -> bool {
    let has_kernel = packages.iter().any(|p| is_kernel_package(p));
    let Some(n) = scalar(l, "bootable") else {
        return has_kernel;
    };
    let Value::Bool(b) = n.value else {
        return has_kernel;
    };
    if b && !has_kernel {
        warnings.push(Diagnostic::warning(
            n.loc.clone(),
            "`cairn.bootable` is true but `packages` names no kernel (kernel, linux-image-*); compose will fail unless a dependency brings one",
            &[],
        ));
    }
    b
}

/// The preset names, each checked against the built-ins where it was written.
fn sysctl_presets(l: &Layer, errors: &mut Vec<TreefileError>) -> Vec<String> {
    let Some(Field::Set(set)) = l.get("sysctl-presets") else {
        return Vec::new();
    };
    let mut presets = Vec::new();
    for (name, loc) in set {
        match cairn_sysctl::find_builtin(name) {
            Ok(_) => presets.push(name.clone()),
            Err(e) => errors.push(invalid(loc, e.to_string())),
        }
    }
    presets
}

/// Inline `sysctl` settings with their values as text, in the author's order.
fn sysctl_settings(l: &Layer, errors: &mut Vec<TreefileError>) -> Vec<(String, String)> {
    let Some(Field::Map(m)) = l.get("sysctl") else {
        return Vec::new();
    };
    let mut sysctl = Vec::new();
    for (k, (kloc, v)) in m {
        if !sysctl_key_ok(k) {
            errors.push(invalid(
                kloc,
                format!("`{k}` is not a sysctl name (e.g. vm.swappiness)"),
            ));
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
    sysctl
}

/// The `mmdebstrap` settings over their defaults; present when the section or the backend asks.
fn mmdebstrap(
    l: &Layer,
    backend: Backend,
    section_loc: Option<&Loc>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<Mmdebstrap> {
    let Some(m) = section(l, "mmdebstrap") else {
        return (backend == Backend::Mmdebstrap).then(Mmdebstrap::default);
    };
    let mut d = Mmdebstrap::default();
    let text = |key: &str| scalar(m, key).and_then(|n| n.as_str()).map(String::from);
    if let Some(s) = text("suite") {
        d.suite = s;
    }
    if let Some(s) = text("mirror") {
        d.mirror = s;
    }
    if let Some(s) = text("variant") {
        d.variant = s;
    }
    if let Some(c) = scalar(m, "components").and_then(|n| n.as_seq()) {
        d.components = c
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect();
    }
    if let (false, Some(loc)) = (
        matches!(backend, Backend::Mmdebstrap | Backend::Auto),
        section_loc,
    ) {
        warnings.push(Diagnostic::warning(
            loc.clone(),
            format!(
                "`cairn.mmdebstrap` is ignored with backend {}",
                backend.as_str()
            ),
            &[],
        ));
    }
    Some(d)
}

/// `rootfs.path`, absolute; a path that does not exist yet is only a warning (it may be built
/// before the compose runs).
fn rootfs(l: &Layer, warnings: &mut Vec<Diagnostic>) -> Option<Rootfs> {
    let n = section(l, "rootfs").and_then(|r| scalar(r, "path"))?;
    let path = relative_to_declaring_file(n, n.as_str().unwrap_or_default());
    if !path.exists() {
        warnings.push(Diagnostic::warning(
            n.loc.clone(),
            format!(
                "`cairn.rootfs.path` {} does not exist (yet)",
                path.display()
            ),
            &[],
        ));
    }
    Some(Rootfs { path })
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
