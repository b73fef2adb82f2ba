//! Packer profiles: the structured data a template is generated from.
//!
//! A profile is a small YAML file (`packer/profiles/*.yaml` ships the built-ins, compiled in so the
//! binary works outside a checkout). Every key is checked; mistakes are reported as
//! `file:line:col` with the list of accepted keys.

use std::path::{Path, PathBuf};

use cairn_common::named::Named;
use cairn_common::suggest::hint;
use cairn_yaml::{self as yaml, Loc, Node, Value};

use super::PackerError;

/// Which template a profile renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Template 1: boot an installer ISO, kickstart from Packer's HTTP server, qcow2 out.
    QemuIso,
    /// Template 2: boot a cairn-built disk image once, qcow2 (and vhd) out.
    QemuDisk,
    /// Template 4: boot a Glance image on an OpenStack cloud and snapshot it.
    Openstack,
}

impl Named for Kind {
    const ALL: &'static [Kind] = &[Kind::QemuIso, Kind::QemuDisk, Kind::Openstack];

    fn name(self) -> &'static str {
        match self {
            Kind::QemuIso => "qemu-iso",
            Kind::QemuDisk => "qemu-disk",
            Kind::Openstack => "openstack",
        }
    }
}

/// A post-processing step after a qemu build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Post {
    /// Fixed-size VHD (Azure): virtual size rounded up to 1 MiB, `qemu-img convert -O vpc`.
    Vhd,
    /// Packer's checksum post-processor (sha256) over the build artifact.
    Checksum,
    /// Packer's manifest post-processor (`packer-manifest.json` in the output directory).
    Manifest,
}

impl Named for Post {
    const ALL: &'static [Post] = &[Post::Vhd, Post::Checksum, Post::Manifest];

    fn name(self) -> &'static str {
        match self {
            Post::Vhd => "vhd",
            Post::Checksum => "checksum",
            Post::Manifest => "manifest",
        }
    }
}

/// QEMU's accelerator: KVM where `/dev/kvm` exists, TCG (software emulation) elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Kvm,
    Tcg,
}

impl Named for Accelerator {
    const ALL: &'static [Accelerator] = &[Accelerator::Kvm, Accelerator::Tcg];

    fn name(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        }
    }
}

/// What the generated kickstart installs (template 1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KickstartSpec {
    pub osname: String,
    /// OSTree repository URL as the installer sees it (QEMU user networking: host is 10.0.2.2).
    pub url: String,
    pub ostree_ref: String,
    pub remote: String,
    /// Where the installed machine pulls upgrades from (default: `url`).
    pub upgrade_url: Option<String>,
    pub kargs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpenstackSpec {
    pub source_image_name: String,
    pub flavor: String,
    pub image_name: String,
    pub networks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profile {
    pub name: String,
    /// Where it came from: `builtin:NAME` or the file path.
    pub origin: String,
    pub kind: Kind,
    pub description: String,
    pub vm_name: String,
    pub efi: bool,
    pub iso_url: String,
    pub iso_checksum: String,
    /// Template 2: the cairn-built image to start from.
    pub base_image: String,
    pub base_image_checksum: String,
    pub disk_size_mib: u64,
    pub memory_mib: u64,
    pub cpus: u64,
    pub accelerator: Accelerator,
    pub output_directory: String,
    pub boot_wait: String,
    pub boot_command: Vec<String>,
    pub shutdown_timeout: String,
    pub ovmf_firmware: String,
    pub kickstart: Option<KickstartSpec>,
    pub openstack: Option<OpenstackSpec>,
    pub post_processors: Vec<Post>,
}

/// The built-in profiles, as shipped in `packer/profiles/`.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "qemu-iso",
        include_str!("../../../packer/profiles/qemu-iso.yaml"),
    ),
    (
        "qemu-iso-efi",
        include_str!("../../../packer/profiles/qemu-iso-efi.yaml"),
    ),
    (
        "qemu-disk",
        include_str!("../../../packer/profiles/qemu-disk.yaml"),
    ),
    (
        "openstack",
        include_str!("../../../packer/profiles/openstack.yaml"),
    ),
];

/// Loads a built-in profile by name, or a profile file when `name_or_path` names a file.
pub fn load(name_or_path: &str) -> Result<Profile, PackerError> {
    if let Some((name, src)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        let path = PathBuf::from(format!("packer/profiles/{name}.yaml"));
        return parse(src, &path, name, &format!("builtin:{name}"));
    }
    let path = Path::new(name_or_path);
    if path.is_file() {
        let src = std::fs::read_to_string(path).map_err(|e| PackerError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("profile")
            .to_owned();
        return parse(&src, path, &name, &path.display().to_string());
    }
    Err(PackerError::UnknownProfile {
        name: name_or_path.to_owned(),
        builtins: BUILTIN
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

const TOP_KEYS: &[&str] = &[
    "kind",
    "description",
    "vm-name",
    "efi",
    "iso-url",
    "iso-checksum",
    "base-image",
    "base-image-checksum",
    "disk-size-mib",
    "memory-mib",
    "cpus",
    "accelerator",
    "output-directory",
    "boot-wait",
    "boot-command",
    "shutdown-timeout",
    "ovmf-firmware",
    "kickstart",
    "openstack",
    "post-processors",
];

fn bad(loc: &Loc, msg: impl Into<String>) -> PackerError {
    PackerError::Profile {
        loc: loc.clone(),
        msg: msg.into(),
    }
}

fn check_keys(node: &Node, allowed: &[&str]) -> Result<(), PackerError> {
    let map = node.as_map().ok_or_else(|| {
        bad(
            &node.loc,
            format!("expected a mapping, found a {}", node.type_name()),
        )
    })?;
    for (k, _) in map {
        if !allowed.contains(&k.name.as_str()) {
            return Err(bad(
                &k.loc,
                format!(
                    "unknown key `{}`; accepted keys: {}",
                    k.name,
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn str_of(node: &Node, key: &str, default: &str) -> Result<String, PackerError> {
    match node.get(key) {
        None => Ok(default.to_owned()),
        Some(n) => n.as_str().map(str::to_owned).ok_or_else(|| {
            bad(
                &n.loc,
                format!("`{key}` must be a string, found a {}", n.type_name()),
            )
        }),
    }
}

fn u64_of(node: &Node, key: &str, default: u64) -> Result<u64, PackerError> {
    match node.get(key) {
        None => Ok(default),
        Some(n) => match n.value {
            Value::Int(i) if i > 0 => Ok(i as u64),
            _ => Err(bad(&n.loc, format!("`{key}` must be a positive integer"))),
        },
    }
}

fn bool_of(node: &Node, key: &str) -> Result<bool, PackerError> {
    match node.get(key) {
        None => Ok(false),
        Some(n) => match n.value {
            Value::Bool(b) => Ok(b),
            _ => Err(bad(&n.loc, format!("`{key}` must be true or false"))),
        },
    }
}

fn strs_of(node: &Node, key: &str) -> Result<Vec<String>, PackerError> {
    match node.get(key) {
        None => Ok(Vec::new()),
        Some(n) => {
            let seq = n
                .as_seq()
                .ok_or_else(|| bad(&n.loc, format!("`{key}` must be a list of strings")))?;
            seq.iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad(&i.loc, format!("`{key}` entries must be strings")))
                })
                .collect()
        }
    }
}

fn required(node: &Node, key: &str) -> Result<String, PackerError> {
    let v = str_of(node, key, "")?;
    if v.is_empty() {
        return Err(bad(&node.loc, format!("missing required key `{key}`")));
    }
    Ok(v)
}

/// A value of a closed set at `n`, or an error naming the set and the nearest name.
fn named<T: Named>(n: &Node, what: &str) -> Result<T, PackerError> {
    let s = n.as_str();
    s.and_then(T::from_name).ok_or_else(|| {
        let hint = s.map_or_else(String::new, |s| hint(s, T::ALL.iter().map(|v| v.name())));
        bad(&n.loc, format!("{what} must be {}{hint}", T::names()))
    })
}

/// Parses profile text read from `path`.
pub fn parse(src: &str, path: &Path, name: &str, origin: &str) -> Result<Profile, PackerError> {
    let root = yaml::parse(src, path)?;
    check_keys(&root, TOP_KEYS)?;
    let kind_node = root.get("kind").ok_or_else(|| {
        bad(
            &root.loc,
            format!("missing required key `kind` ({})", Kind::names()),
        )
    })?;
    let kind: Kind = named(kind_node, "`kind`")?;
    let kickstart = root.get("kickstart").map(kickstart_spec).transpose()?;
    if kind == Kind::QemuIso && kickstart.is_none() {
        return Err(bad(
            &root.loc,
            "a qemu-iso profile needs a `kickstart:` section (osname, url, ref)",
        ));
    }
    let openstack = root.get("openstack").map(openstack_spec).transpose()?;
    if kind == Kind::Openstack && openstack.is_none() {
        return Err(bad(
            &root.loc,
            "an openstack profile needs an `openstack:` section (source-image-name, flavor, image-name)",
        ));
    }
    let post_processors = match root.get("post-processors") {
        Some(pp) => post_processors(pp, kind)?,
        None => Vec::new(),
    };
    let accelerator = match root.get("accelerator") {
        Some(n) => named(n, "`accelerator`")?,
        None => Accelerator::Kvm,
    };
    let vm_name = str_of(&root, "vm-name", &format!("cairn-{name}"))?;
    Ok(Profile {
        name: name.to_owned(),
        origin: origin.to_owned(),
        kind,
        description: str_of(&root, "description", "")?,
        output_directory: str_of(&root, "output-directory", &format!("output-{vm_name}"))?,
        vm_name,
        efi: bool_of(&root, "efi")?,
        iso_url: str_of(&root, "iso-url", "")?,
        iso_checksum: str_of(&root, "iso-checksum", "none")?,
        base_image: str_of(&root, "base-image", "")?,
        base_image_checksum: str_of(&root, "base-image-checksum", "none")?,
        disk_size_mib: u64_of(&root, "disk-size-mib", 10240)?,
        memory_mib: u64_of(&root, "memory-mib", 2048)?,
        cpus: u64_of(&root, "cpus", 2)?,
        accelerator,
        boot_wait: str_of(&root, "boot-wait", "10s")?,
        boot_command: strs_of(&root, "boot-command")?,
        shutdown_timeout: str_of(&root, "shutdown-timeout", "30m")?,
        ovmf_firmware: str_of(&root, "ovmf-firmware", "/usr/share/ovmf/OVMF.fd")?,
        kickstart,
        openstack,
        post_processors,
    })
}

fn kickstart_spec(ks: &Node) -> Result<KickstartSpec, PackerError> {
    check_keys(
        ks,
        &["osname", "url", "upgrade-url", "ref", "remote", "kargs"],
    )?;
    Ok(KickstartSpec {
        osname: required(ks, "osname")?,
        url: required(ks, "url")?,
        ostree_ref: required(ks, "ref")?,
        remote: str_of(ks, "remote", "cairn")?,
        upgrade_url: ks
            .get("upgrade-url")
            .map(|_| str_of(ks, "upgrade-url", ""))
            .transpose()?,
        kargs: strs_of(ks, "kargs")?,
    })
}

fn openstack_spec(os: &Node) -> Result<OpenstackSpec, PackerError> {
    check_keys(
        os,
        &["source-image-name", "flavor", "image-name", "networks"],
    )?;
    Ok(OpenstackSpec {
        source_image_name: required(os, "source-image-name")?,
        flavor: required(os, "flavor")?,
        image_name: required(os, "image-name")?,
        networks: strs_of(os, "networks")?,
    })
}

fn post_processors(pp: &Node, kind: Kind) -> Result<Vec<Post>, PackerError> {
    let seq = pp
        .as_seq()
        .ok_or_else(|| bad(&pp.loc, "`post-processors` must be a list"))?;
    let mut out = Vec::new();
    for item in seq {
        let p: Post = named(item, "post-processors")?;
        if kind == Kind::Openstack && p == Post::Vhd {
            return Err(bad(
                &item.loc,
                "the vhd post-processor needs a local qcow2 artifact; an openstack build leaves its image in Glance",
            ));
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for (name, _) in BUILTIN {
            let p = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(p.name, *name);
        }
    }

    #[test]
    fn unknown_keys_report_file_line_col() {
        let src = "kind: qemu-disk\nbase-image: a.qcow2\ndisk_size: 3\n";
        let e = parse(src, Path::new("p.yaml"), "p", "p.yaml").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("p.yaml:3:1: unknown key `disk_size`"),
            "{msg}"
        );
        assert!(msg.contains("disk-size-mib"), "{msg}");
    }

    #[test]
    fn closed_sets_name_their_values_and_the_nearest() {
        let e = parse("kind: qemu-dsk\n", Path::new("p.yaml"), "p", "p").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml:1:7: `kind` must be qemu-iso, qemu-disk or openstack (did you mean `qemu-disk`?)"
        );
        let src = "kind: qemu-disk\naccelerator: xen\n";
        let e = parse(src, Path::new("p.yaml"), "p", "p").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml:2:14: `accelerator` must be kvm or tcg"
        );
        let src = "kind: qemu-disk\npost-processors: [checksum, manifset]\n";
        let e = parse(src, Path::new("p.yaml"), "p", "p").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml:2:29: post-processors must be vhd, checksum or manifest (did you mean `manifest`?)"
        );
        let p = parse(
            "kind: qemu-disk\naccelerator: tcg\n",
            Path::new("p.yaml"),
            "p",
            "p",
        )
        .unwrap();
        assert_eq!(p.accelerator, Accelerator::Tcg);
    }

    #[test]
    fn iso_profile_needs_a_kickstart() {
        let e = parse("kind: qemu-iso\n", Path::new("p.yaml"), "p", "p").unwrap_err();
        assert!(e.to_string().contains("kickstart"), "{e}");
    }
}
