//! Profile -> HCL2 template (as [`hcl::Body`] data) plus the files it refers to.

use super::hcl::{BinOp, Block, Body, Expr, Part, TypeExpr};
use super::profile::{Kind, Post, Profile};

/// A Packer input variable: its type, default, help and validation rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub name: &'static str,
    pub ty: TypeExpr,
    pub description: String,
    pub default: Expr,
    /// (condition, error message); Packer 1.6.6 requires the message to be a sentence ending in `.`.
    pub validations: Vec<(Expr, String)>,
}

fn var(name: &'static str, ty: TypeExpr, default: Expr, description: &str) -> Var {
    Var {
        name,
        ty,
        description: description.to_owned(),
        default,
        validations: Vec::new(),
    }
}

fn non_empty(name: &str) -> (Expr, String) {
    (
        Expr::bin(
            Expr::call("length", vec![Expr::var(name)]),
            BinOp::Gt,
            Expr::Int(0),
        ),
        format!("The {name} variable must not be empty."),
    )
}

fn positive_integer(name: &str, min: i64) -> (Expr, String) {
    (
        Expr::bin(
            Expr::bin(Expr::var(name), BinOp::Ge, Expr::Int(min)),
            BinOp::And,
            Expr::bin(
                Expr::call("floor", vec![Expr::var(name)]),
                BinOp::Eq,
                Expr::var(name),
            ),
        ),
        format!("The {name} variable must be a whole number, at least {min}."),
    )
}

/// `none`, `file:URL` or `ALGO:HEX`; Packer 1.6.6 has no `regex` in variable validation, so the
/// check is on the prefix before the first `:`.
fn checksum_rule(name: &str) -> (Expr, String) {
    let parts = Expr::call("split", vec![Expr::str(":"), Expr::var(name)]);
    let prefix_ok = Expr::call(
        "contains",
        vec![
            Expr::list_of_str(["md5", "sha1", "sha256", "sha512", "file"]),
            Expr::call("element", vec![parts.clone(), Expr::Int(0)]),
        ],
    );
    let has_value = Expr::bin(Expr::call("length", vec![parts]), BinOp::Ge, Expr::Int(2));
    (
        Expr::bin(
            Expr::bin(Expr::var(name), BinOp::Eq, Expr::str("none")),
            BinOp::Or,
            Expr::bin(has_value, BinOp::And, prefix_ok),
        ),
        format!("The {name} variable must be none, file:URL or md5|sha1|sha256|sha512:HEX."),
    )
}

/// The variables a profile's template declares, with the profile's values as defaults.
pub fn variables(p: &Profile) -> Vec<Var> {
    let mut vars = Vec::new();
    match p.kind {
        Kind::QemuIso => {
            let mut v = var(
                "iso_url",
                TypeExpr::String,
                Expr::str(&p.iso_url),
                "Installer ISO (URL or local path) that runs the kickstart in http/ks.cfg.",
            );
            v.validations.push(non_empty("iso_url"));
            vars.push(v);
            let mut v = var(
                "iso_checksum",
                TypeExpr::String,
                Expr::str(&p.iso_checksum),
                "Checksum of the ISO: sha256:HEX, file:URL-of-SUMS-file, or none.",
            );
            v.validations.push(checksum_rule("iso_checksum"));
            vars.push(v);
        }
        Kind::QemuDisk => {
            let mut v = var(
                "base_image",
                TypeExpr::String,
                Expr::str(&p.base_image),
                "The cairn-built disk image (qcow2 or raw) the build starts from.",
            );
            v.validations.push(non_empty("base_image"));
            vars.push(v);
            let mut v = var(
                "base_image_checksum",
                TypeExpr::String,
                Expr::str(&p.base_image_checksum),
                "Checksum of the base image: sha256:HEX or none.",
            );
            v.validations.push(checksum_rule("base_image_checksum"));
            vars.push(v);
        }
        Kind::Openstack => {
            let os = p.openstack.as_ref().expect("openstack profile has a spec");
            for (name, default, desc) in [
                (
                    "source_image_name",
                    &os.source_image_name,
                    "Glance image to boot (e.g. a cairn qcow2 uploaded with `openstack image create`).",
                ),
                ("flavor", &os.flavor, "Nova flavor of the build server."),
                ("image_name", &os.image_name, "Name of the resulting Glance image."),
            ] {
                let mut v = var(name, TypeExpr::String, Expr::str(default), desc);
                v.validations.push(non_empty(name));
                vars.push(v);
            }
            vars.push(var(
                "networks",
                TypeExpr::ListOfString,
                Expr::list_of_str(os.networks.iter().cloned()),
                "Neutron network UUIDs to attach (empty: the project's default).",
            ));
            return vars;
        }
    }
    let min_disk = if p.kind == Kind::QemuIso { 2048 } else { 1 };
    let mut v = var(
        "disk_size",
        TypeExpr::Number,
        Expr::Int(p.disk_size_mib as i64),
        if p.kind == Kind::QemuDisk {
            "Virtual disk size in MiB; must equal the base image's virtual size, or Packer resizes the copy."
        } else {
            "Virtual disk size in MiB."
        },
    );
    v.validations.push(positive_integer("disk_size", min_disk));
    vars.push(v);
    let mut v = var(
        "output_directory",
        TypeExpr::String,
        Expr::str(&p.output_directory),
        "Directory for the artifacts; Packer refuses to start when it already exists.",
    );
    v.validations.push(non_empty("output_directory"));
    vars.push(v);
    let mut v = var(
        "vm_name",
        TypeExpr::String,
        Expr::str(&p.vm_name),
        "Artifact base name: VM_NAME.qcow2 (and VM_NAME.vhd).",
    );
    v.validations.push(non_empty("vm_name"));
    vars.push(v);
    let mut v = var(
        "accelerator",
        TypeExpr::String,
        Expr::str(&p.accelerator),
        "QEMU accelerator: kvm where /dev/kvm exists, tcg (software emulation, slow) elsewhere.",
    );
    v.validations.push((
        Expr::call(
            "contains",
            vec![Expr::list_of_str(["kvm", "tcg"]), Expr::var("accelerator")],
        ),
        "The accelerator variable must be kvm or tcg.".to_owned(),
    ));
    vars.push(v);
    let mut v = var(
        "memory",
        TypeExpr::Number,
        Expr::Int(p.memory_mib as i64),
        "Guest memory in MiB.",
    );
    v.validations.push(positive_integer("memory", 256));
    vars.push(v);
    let mut v = var(
        "cpus",
        TypeExpr::Number,
        Expr::Int(p.cpus as i64),
        "Guest vCPUs.",
    );
    v.validations.push(positive_integer("cpus", 1));
    vars.push(v);
    vars.push(var(
        "shutdown_timeout",
        TypeExpr::String,
        Expr::str(&p.shutdown_timeout),
        "How long Packer waits for the guest to power itself off (communicator = \"none\").",
    ));
    if p.efi {
        let mut v = var(
            "ovmf_firmware",
            TypeExpr::String,
            Expr::str(&p.ovmf_firmware),
            "UEFI firmware image for QEMU's -bios (Debian: /usr/share/ovmf/OVMF.fd from package ovmf).",
        );
        v.validations.push(non_empty("ovmf_firmware"));
        vars.push(v);
    }
    vars
}

fn var_block(v: &Var) -> Block {
    let mut b = Body::new();
    b.attr("type", Expr::Type(v.ty))
        .attr("description", Expr::str(&v.description))
        .attr("default", v.default.clone());
    for (cond, msg) in &v.validations {
        let mut vb = Body::new();
        vb.attr("condition", cond.clone())
            .attr("error_message", Expr::str(msg));
        b.block(Block::new("validation", &[], vb));
    }
    Block::new("variable", &[v.name], b)
}

fn tmpl(parts: Vec<Part>) -> Expr {
    Expr::Template(parts)
}

fn lit(s: &str) -> Part {
    Part::Lit(s.to_owned())
}

fn interp(path: &str) -> Part {
    Part::Interp(Expr::ref_(path))
}

/// The source label every cairn template uses (`source.qemu.cairn`, `source.openstack.cairn`).
pub const SOURCE_NAME: &str = "cairn";

/// The whole template for `p`.
pub fn template(p: &Profile) -> Body {
    let mut top = Body::new();
    for v in variables(p) {
        top.block(var_block(&v));
    }

    if p.kind == Kind::Openstack {
        let mut s = Body::new();
        s.attr("source_image_name", Expr::var("source_image_name"))
            .attr("flavor", Expr::var("flavor"))
            .attr("image_name", Expr::var("image_name"))
            .attr("networks", Expr::var("networks"))
            .attr("communicator", Expr::str("none"));
        top.block(Block::new("source", &["openstack", SOURCE_NAME], s));
    } else {
        let mut locals = Body::new();
        locals.attr(
            "image",
            tmpl(vec![
                interp("var.output_directory"),
                lit("/"),
                interp("var.vm_name"),
                lit(".qcow2"),
            ]),
        );
        top.block(Block::new("locals", &[], locals));
        top.block(Block::new("source", &["qemu", SOURCE_NAME], qemu_source(p)));
    }

    let mut build = Body::new();
    let src_kind = if p.kind == Kind::Openstack {
        "openstack"
    } else {
        "qemu"
    };
    build.attr(
        "sources",
        Expr::List(vec![Expr::str(format!("source.{src_kind}.{SOURCE_NAME}"))]),
    );
    let chain = post_processors(p);
    if !chain.0.is_empty() {
        build.block(Block::new("post-processors", &[], chain));
    }
    top.block(Block::new("build", &[], build));
    top
}

fn qemu_source(p: &Profile) -> Body {
    let mut s = Body::new();
    match p.kind {
        Kind::QemuIso => {
            s.attr("iso_url", Expr::var("iso_url"))
                .attr("iso_checksum", Expr::var("iso_checksum"));
        }
        Kind::QemuDisk => {
            s.attr("iso_url", Expr::var("base_image"))
                .attr("iso_checksum", Expr::var("base_image_checksum"))
                .attr("disk_image", Expr::Bool(true))
                // A standalone copy: the artifact must not depend on the base image file.
                .attr("use_backing_file", Expr::Bool(false));
        }
        Kind::Openstack => unreachable!("openstack has no qemu source"),
    }
    s.attr("output_directory", Expr::var("output_directory"))
        .attr("vm_name", tmpl(vec![interp("var.vm_name"), lit(".qcow2")]))
        .attr("format", Expr::str("qcow2"))
        .attr("disk_size", tmpl(vec![interp("var.disk_size"), lit("M")]))
        .attr("disk_interface", Expr::str("virtio"))
        .attr("net_device", Expr::str("virtio-net"))
        .attr("accelerator", Expr::var("accelerator"))
        .attr("memory", Expr::var("memory"))
        .attr("cpus", Expr::var("cpus"))
        .attr("headless", Expr::Bool(true))
        .attr("communicator", Expr::str("none"))
        .attr("shutdown_timeout", Expr::var("shutdown_timeout"));
    if p.kind == Kind::QemuIso {
        s.attr(
            "http_directory",
            tmpl(vec![interp("path.root"), lit("/http")]),
        )
        // Packer's default binds every interface; the guest reaches 127.0.0.1 through QEMU's
        // user-mode network anyway, and nothing else should.
        .attr("http_bind_address", Expr::str("127.0.0.1"));
    }
    s.attr("boot_wait", Expr::str(&p.boot_wait)).attr(
        "boot_command",
        Expr::list_of_str(p.boot_command.iter().cloned()),
    );
    // With communicator = "none" the serial console is the only record of what the guest did.
    let mut qemuargs = vec![Expr::List(vec![
        Expr::str("-serial"),
        tmpl(vec![
            lit("file:"),
            interp("var.output_directory"),
            lit("/console.log"),
        ]),
    ])];
    if p.efi {
        qemuargs.push(Expr::List(vec![
            Expr::str("-bios"),
            Expr::var("ovmf_firmware"),
        ]));
    }
    s.attr("qemuargs", Expr::List(qemuargs));
    s
}

fn post_processors(p: &Profile) -> Body {
    let mut chain = Body::new();
    for pp in &p.post_processors {
        match pp {
            Post::Vhd => {
                let mut b = Body::new();
                b.attr(
                    "environment_vars",
                    Expr::List(vec![
                        tmpl(vec![lit("CAIRN_IMAGE="), interp("local.image")]),
                        tmpl(vec![
                            lit("CAIRN_VHD="),
                            interp("var.output_directory"),
                            lit("/"),
                            interp("var.vm_name"),
                            lit(".vhd"),
                        ]),
                    ]),
                )
                .attr(
                    "script",
                    tmpl(vec![interp("path.root"), lit("/scripts/vhd.sh")]),
                );
                chain.block(Block::new("post-processor", &["shell-local"], b));
            }
            Post::Checksum => {
                let mut b = Body::new();
                b.attr("checksum_types", Expr::list_of_str(["sha256"]))
                    .attr(
                        "output",
                        tmpl(vec![
                            interp("var.output_directory"),
                            lit("/"),
                            interp("var.vm_name"),
                            // Packer's own (Go template) placeholder, filled by the post-processor.
                            lit(".{{.ChecksumType}}"),
                        ]),
                    );
                chain.block(Block::new("post-processor", &["checksum"], b));
            }
            Post::Manifest => {
                let mut b = Body::new();
                let output = if p.kind == Kind::Openstack {
                    tmpl(vec![interp("path.root"), lit("/packer-manifest.json")])
                } else {
                    tmpl(vec![
                        interp("var.output_directory"),
                        lit("/packer-manifest.json"),
                    ])
                };
                b.attr("output", output)
                    .attr("strip_path", Expr::Bool(true));
                chain.block(Block::new("post-processor", &["manifest"], b));
            }
        }
    }
    chain
}

/// `scripts/vhd.sh`: qcow2 -> fixed VHD. Azure rejects VHDs whose virtual size is not a whole
/// number of MiB, so the size is rounded up on a raw copy first; `force_size` stops qemu-img from
/// rounding to CHS geometry, which would break that alignment again.
pub const VHD_SCRIPT: &str = r#"#!/bin/sh
# Generated by `cairn packer render`: convert the qcow2 artifact to a fixed-size VHD (Azure).
set -eu
: "${CAIRN_IMAGE:?}" "${CAIRN_VHD:?}"
mib=1048576
size=$(qemu-img info --output=json "$CAIRN_IMAGE" | sed -n 's/^ *"virtual-size": *\([0-9][0-9]*\).*/\1/p' | head -n 1)
[ -n "$size" ] || { echo "vhd.sh: cannot read the virtual size of $CAIRN_IMAGE" >&2; exit 1; }
aligned=$(( (size + mib - 1) / mib * mib ))
raw="$CAIRN_VHD.raw.tmp"
trap 'rm -f "$raw"' EXIT
qemu-img convert -f qcow2 -O raw "$CAIRN_IMAGE" "$raw"
if [ "$aligned" -ne "$size" ]; then
  qemu-img resize -f raw "$raw" "$aligned"
fi
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size "$raw" "$CAIRN_VHD"
( cd "$(dirname "$CAIRN_VHD")" && sha256sum "$(basename "$CAIRN_VHD")" > "$(basename "$CAIRN_VHD").sha256" )
echo "vhd.sh: wrote $CAIRN_VHD (virtual size $aligned bytes)"
"#;
