//! Packer templates (HCL2) generated from structured profiles.
//!
//! `render` writes a directory Packer can build as is: `<profile>.pkr.hcl` (variables with types,
//! descriptions and validation; one source; a post-processor chain), the files it refers to
//! (`http/ks.cfg`, `scripts/vhd.sh`) and, for `--var` overrides, `cairn.auto.pkrvars.hcl`, which
//! Packer loads by itself. Values are typed and checked here first, so a wrong value fails with a
//! clear message before Packer runs; the same rules are in the template's `validation` blocks for
//! values given to `packer build -var` later.
//!
//! Owns profiles, the HCL2 writer and the rendered directory; it runs neither Packer nor QEMU
//! (only `qemu-img info` for a base image's size) and does not link libostree.

pub mod hcl;
pub mod profile;
pub mod template;

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_common::API_VERSION;
use serde::Serialize;

pub use profile::{Kind, Post, Profile};
use template::Var;

use hcl::{Expr, TypeExpr};

#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    #[error(transparent)]
    Yaml(#[from] cairn_yaml::YamlError),
    #[error("{loc}: {msg}")]
    Profile { loc: cairn_yaml::Loc, msg: String },
    #[error("unknown profile `{name}`: not a file and not a built-in ({builtins})")]
    UnknownProfile { name: String, builtins: String },
    #[error("--var {key}: {msg}")]
    BadVar { key: String, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("base image {path}: {msg}")]
    BaseImage { path: PathBuf, msg: String },
    #[error("kickstart: {0}")]
    Kickstart(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackerError + '_ {
    move |source| PackerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `render` wrote.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    pub profile: String,
    pub origin: String,
    /// Named so it cannot be mistaken for the `kind` of the JSON document it is printed in.
    #[serde(rename = "profileKind")]
    pub kind: Kind,
    pub dir: PathBuf,
    pub template: PathBuf,
    pub files: Vec<PathBuf>,
    pub variables: Vec<VarSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VarSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// The effective value: the override if one was given, else the default (as HCL text).
    pub value: String,
    pub overridden: bool,
    pub description: String,
}

/// Parses a `--var` value for a variable of type `ty`.
fn typed_value(key: &str, ty: TypeExpr, raw: &str) -> Result<Expr, PackerError> {
    let bad = |msg: String| PackerError::BadVar {
        key: key.to_owned(),
        msg,
    };
    match ty {
        TypeExpr::String => Ok(Expr::str(raw)),
        TypeExpr::Number => raw
            .parse::<i64>()
            .map(Expr::Int)
            .map_err(|_| bad(format!("expected a whole number, got {raw:?}"))),
        TypeExpr::Bool => match raw {
            "true" => Ok(Expr::Bool(true)),
            "false" => Ok(Expr::Bool(false)),
            _ => Err(bad(format!("expected true or false, got {raw:?}"))),
        },
        TypeExpr::ListOfString => Ok(Expr::list_of_str(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()),
        )),
    }
}

/// Splits `K=V`.
pub fn parse_var(s: &str) -> Result<(String, String), PackerError> {
    cairn_common::kv::split_owned(s, "KEY=VALUE").map_err(|e| PackerError::BadVar {
        key: e.arg,
        msg: format!("expected {}", e.shape),
    })
}

/// Virtual size in bytes of a disk image, from `qemu-img info`.
pub fn virtual_size(path: &Path) -> Result<u64, PackerError> {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(path)
        .output()
        .map_err(io(Path::new("qemu-img")))?;
    if !out.status.success() {
        return Err(PackerError::BaseImage {
            path: path.to_path_buf(),
            msg: format!(
                "qemu-img info failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| PackerError::BaseImage {
            path: path.to_path_buf(),
            msg: format!("qemu-img info printed invalid JSON: {e}"),
        })?;
    v["virtual-size"]
        .as_u64()
        .ok_or_else(|| PackerError::BaseImage {
            path: path.to_path_buf(),
            msg: "qemu-img info has no virtual-size".to_owned(),
        })
}

/// Applies `--var` overrides to the profile-derived variables, type-checking each one.
fn apply_overrides(
    p: &Profile,
    vars: &mut [Var],
    overrides: &[(String, String)],
) -> Result<Vec<String>, PackerError> {
    let mut overridden = Vec::new();
    for (k, raw) in overrides {
        let v = vars
            .iter_mut()
            .find(|v| v.name == k)
            .ok_or_else(|| PackerError::BadVar {
                key: k.clone(),
                msg: format!(
                    "profile {} declares no such variable; it has: {}",
                    p.name,
                    names(vars_ro(p)).join(", ")
                ),
            })?;
        let mut value = typed_value(k, v.ty, raw)?;
        // Relative image paths would be resolved against wherever `packer build` runs.
        if k == "base_image" {
            value = Expr::str(absolute(Path::new(raw)).display().to_string());
        }
        v.default = value;
        overridden.push(k.clone());
    }
    Ok(overridden)
}

fn vars_ro(p: &Profile) -> Vec<Var> {
    template::variables(p)
}

fn names(vars: Vec<Var>) -> Vec<&'static str> {
    vars.iter().map(|v| v.name).collect()
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// For template 2: when the base image exists now, its virtual size becomes `disk_size` (unless
/// given explicitly) and must be a whole number of MiB, the unit Packer's `disk_size` takes.
fn fit_disk_size(vars: &mut [Var], explicit: &[String]) -> Result<Option<u64>, PackerError> {
    let base = vars
        .iter()
        .find(|v| v.name == "base_image")
        .and_then(|v| match &v.default {
            Expr::Str(s) => Some(PathBuf::from(s)),
            _ => None,
        });
    let Some(base) = base else { return Ok(None) };
    if !base.is_file() {
        return Ok(None);
    }
    let size = virtual_size(&base)?;
    const MIB: u64 = 1 << 20;
    if size % MIB != 0 {
        return Err(PackerError::BaseImage {
            path: base,
            msg: format!(
                "virtual size {size} is not a whole number of MiB; Packer would resize it. \
                 Round it up first: qemu-img resize IMAGE {}M",
                size.div_ceil(MIB)
            ),
        });
    }
    if !explicit.iter().any(|k| k == "disk_size") {
        if let Some(v) = vars.iter_mut().find(|v| v.name == "disk_size") {
            v.default = Expr::Int((size / MIB) as i64);
        }
    }
    if let Some(v) = vars.iter_mut().find(|v| v.name == "base_image") {
        v.default = Expr::str(absolute(&base).display().to_string());
    }
    Ok(Some(size))
}

/// The MAC QEMU gives the first NIC when none is set (Packer's qemu builder sets none); the
/// kickstart names the interface by it.
pub const QEMU_DEFAULT_MAC: &str = "52:54:00:12:34:56";

/// The kickstart template 1 serves, rendered by `cairn_kickstart` (the same template and
/// validation as bare-metal installs) for one VM host: virtio disk `vda`, DHCP on QEMU's NIC,
/// `ostreesetup` from the profile. Bare metal ends with `reboot`; here the install must end with
/// `poweroff`, the only signal Packer (communicator = "none") gets that the install is done.
pub fn kickstart(p: &Profile) -> Result<String, PackerError> {
    let ks = p
        .kickstart
        .as_ref()
        .ok_or_else(|| PackerError::Kickstart("profile has no kickstart section".into()))?;
    // JSON is YAML: serde_json quotes every value, so profile text cannot change the structure.
    let inventory = serde_json::json!({
        "api-version": API_VERSION,
        "defaults": {
            "timezone": "Etc/UTC",
            "kernel-args": ks.kargs,
            "disk": { "device": "vda", "fstype": "ext4", "vg": "cairn", "boot-size": "1GiB",
                      "root-size": "grow", "var-size": "2GiB" },
            "ostree": { "osname": ks.osname, "remote": ks.remote, "url": ks.url,
                        "upgrade-url": ks.upgrade_url.as_deref().unwrap_or(&ks.url),
                        "ref": ks.ostree_ref, "gpg": false },
        },
        "hosts": [ { "hostname": p.vm_name, "mac": QEMU_DEFAULT_MAC } ],
    });
    let src = serde_json::to_string_pretty(&inventory).expect("JSON value");
    let origin = PathBuf::from(format!("{} (profile {} kickstart)", p.origin, p.name));
    let inv = cairn_kickstart::parse(&src, &origin, &cairn_kickstart::LoadOptions::default())
        .map_err(|e| PackerError::Kickstart(e.to_string()))?;
    let docs = cairn_kickstart::Templates::load(None)
        .and_then(|t| t.render_host(&inv, &inv.hosts[0], None))
        .map_err(|e| PackerError::Kickstart(e.to_string()))?;
    let mut lines: Vec<&str> = docs.kickstart.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "reboot")
        .ok_or_else(|| {
            PackerError::Kickstart("the kickstart template has no `reboot` line".into())
        })?;
    lines[at] = "poweroff";
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

fn write(path: &Path, contents: &str, files: &mut Vec<PathBuf>) -> Result<(), PackerError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, contents).map_err(io(path))?;
    files.push(path.to_path_buf());
    Ok(())
}

/// Renders profile `p` into `dir` with `overrides` (`--var K=V`).
pub fn render(
    p: &Profile,
    dir: &Path,
    overrides: &[(String, String)],
) -> Result<Rendered, PackerError> {
    let mut vars = template::variables(p);
    let explicit = apply_overrides(p, &mut vars, overrides)?;
    if p.kind == Kind::QemuDisk {
        fit_disk_size(&mut vars, &explicit)?;
    }

    // The template declares the profile's defaults; overrides (and the fitted disk size) go to the
    // auto-loaded vars file so the template stays the profile's and the choices stay visible.
    let declared = template::variables(p);
    let body = template::template(p);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();
    let template_path = dir.join(format!("{}.pkr.hcl", p.name));
    write(
        &template_path,
        &format!(
            "# Generated by `cairn packer render --profile {}` ({}). Edit the profile, not this file.\n\n{}",
            p.name,
            p.origin,
            hcl::to_string(&body)
        ),
        &mut files,
    )?;

    let mut pkrvars = hcl::Body::new();
    for (v, d) in vars.iter().zip(&declared) {
        if v.default != d.default {
            pkrvars.attr(v.name, v.default.clone());
        }
    }
    let vars_path = dir.join("cairn.auto.pkrvars.hcl");
    if pkrvars.0.is_empty() {
        let _ = std::fs::remove_file(&vars_path);
    } else {
        write(&vars_path, &hcl::to_string(&pkrvars), &mut files)?;
    }

    if p.kind == Kind::QemuIso {
        write(&dir.join("http/ks.cfg"), &kickstart(p)?, &mut files)?;
    }
    if p.post_processors.contains(&Post::Vhd) {
        let script = dir.join("scripts/vhd.sh");
        write(&script, template::VHD_SCRIPT, &mut files)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(io(&script))?;
    }

    let variables = vars
        .iter()
        .zip(&declared)
        .map(|(v, d)| VarSummary {
            name: v.name.to_owned(),
            ty: hcl::expr_to_string(&Expr::Type(v.ty)),
            value: hcl::expr_to_string(&v.default),
            overridden: v.default != d.default,
            description: v.description.clone(),
        })
        .collect();
    Ok(Rendered {
        profile: p.name.clone(),
        origin: p.origin.clone(),
        kind: p.kind,
        dir: dir.to_path_buf(),
        template: template_path,
        files,
        variables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_typed() {
        let p = profile::load("qemu-disk").unwrap();
        let refused = |k: &str, v: &str| {
            render(&p, Path::new("/nonexistent/never"), &[(k.into(), v.into())])
                .unwrap_err()
                .to_string()
        };
        let e = refused("disk_size", "big");
        assert!(e.contains("expected a whole number"), "{e}");
        let e = refused("iso_url", "x");
        assert!(e.contains("declares no such variable"), "{e}");
    }

    #[test]
    fn kickstart_ends_with_poweroff_and_installs_the_ref() {
        let p = profile::load("qemu-iso").unwrap();
        let ks = kickstart(&p).unwrap();
        assert!(ks.lines().any(|l| l == "poweroff"), "{ks}");
        assert!(!ks.lines().any(|l| l == "reboot"), "{ks}");
        assert!(
            ks.contains("ostreesetup --osname=debian --remote=cairn"),
            "{ks}"
        );
        assert!(ks.contains("--device=52:54:00:12:34:56"), "{ks}");
    }
}
