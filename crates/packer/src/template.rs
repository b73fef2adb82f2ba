//! Profile -> HCL2 template (as [`hcl::Body`] data) plus the files it refers to.

use super::hcl::{BinOp, Block, Body, Expr, Part, TypeExpr};
use super::profile::{Accelerator, Kind, Post, Profile};
use cairn_common::named::Named;

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

impl Var {
    fn check(mut self, rule: (Expr, String)) -> Var {
        self.validations.push(rule);
        self
    }
}

/// A string variable that must not be empty.
fn required_str(name: &'static str, value: &str, description: &str) -> Var {
    var(name, TypeExpr::String, Expr::str(value), description).check(non_empty(name))
}

/// A checksum variable: `none`, `file:URL` or `ALGO:HEX`.
fn checksum(name: &'static str, value: &str, description: &str) -> Var {
    var(name, TypeExpr::String, Expr::str(value), description).check(checksum_rule(name))
}

/// A whole-number variable of at least `min`.
fn number(name: &'static str, value: u64, min: i64, description: &str) -> Var {
    var(name, TypeExpr::Number, Expr::Int(value as i64), description)
        .check(positive_integer(name, min))
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
    match p.kind {
        Kind::QemuIso => [
            required_str(
                "iso_url",
                &p.iso_url,
                "Installer ISO (URL or local path) that runs the kickstart in http/ks.cfg.",
            ),
            checksum(
                "iso_checksum",
                &p.iso_checksum,
                "Checksum of the ISO: sha256:HEX, file:URL-of-SUMS-file, or none.",
            ),
        ]
        .into_iter()
        .chain(qemu_variables(p))
        .collect(),
        Kind::QemuDisk => [
            required_str(
                "base_image",
                &p.base_image,
                "The cairn-built disk image (qcow2 or raw) the build starts from.",
            ),
            checksum(
                "base_image_checksum",
                &p.base_image_checksum,
                "Checksum of the base image: sha256:HEX or none.",
            ),
        ]
        .into_iter()
        .chain(qemu_variables(p))
        .collect(),
        Kind::Openstack => openstack_variables(p),
    }
}

fn openstack_variables(p: &Profile) -> Vec<Var> {
    let os = p.openstack.as_ref().expect("openstack profile has a spec");
    vec![
        required_str(
            "source_image_name",
            &os.source_image_name,
            "Glance image to boot (e.g. a cairn qcow2 uploaded with `openstack image create`).",
        ),
        required_str("flavor", &os.flavor, "Nova flavor of the build server."),
        required_str(
            "image_name",
            &os.image_name,
            "Name of the resulting Glance image.",
        ),
        var(
            "networks",
            TypeExpr::ListOfString,
            Expr::list_of_str(os.networks.iter().cloned()),
            "Neutron network UUIDs to attach (empty: the project's default).",
        ),
    ]
}

/// The variables both qemu templates declare after their image inputs.
fn qemu_variables(p: &Profile) -> Vec<Var> {
    let accelerators = || Accelerator::ALL.iter().map(|a| a.name());
    let mut vars = vec![
        number(
            "disk_size",
            p.disk_size_mib,
            if p.kind == Kind::QemuIso { 2048 } else { 1 },
            if p.kind == Kind::QemuDisk {
                "Virtual disk size in MiB; must equal the base image's virtual size, or Packer resizes the copy."
            } else {
                "Virtual disk size in MiB."
            },
        ),
        required_str(
            "output_directory",
            &p.output_directory,
            "Directory for the artifacts; Packer refuses to start when it already exists.",
        ),
        required_str(
            "vm_name",
            &p.vm_name,
            "Artifact base name: VM_NAME.qcow2 (and VM_NAME.vhd).",
        ),
        var(
            "accelerator",
            TypeExpr::String,
            Expr::str(p.accelerator.name()),
            "QEMU accelerator: kvm where /dev/kvm exists, tcg (software emulation, slow) elsewhere.",
        )
        .check((
            Expr::call(
                "contains",
                vec![
                    Expr::list_of_str(accelerators()),
                    Expr::var("accelerator"),
                ],
            ),
            format!("The accelerator variable must be {}.", Accelerator::names()),
        )),
        number("memory", p.memory_mib, 256, "Guest memory in MiB."),
        number("cpus", p.cpus, 1, "Guest vCPUs."),
        var(
            "shutdown_timeout",
            TypeExpr::String,
            Expr::str(&p.shutdown_timeout),
            "How long Packer waits for the guest to power itself off (communicator = \"none\").",
        ),
    ];
    if p.efi {
        vars.push(required_str(
            "ovmf_firmware",
            &p.ovmf_firmware,
            "UEFI firmware image for QEMU's -bios (Debian: /usr/share/ovmf/OVMF.fd from package ovmf).",
        ));
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
