//! `cairn container`: export commits as ostree-native OCI images and import them back.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::Json;
use crate::output::{out, print_doc};
use crate::Status;
use cairn_container::{ExportOptions, ImageRef, ImportOptions, SigVerify};
use cairn_ostree::repo::Repo;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Write a commit as an ostree-native container image (bootc/rpm-ostree compatible).
    #[command(after_help = "Examples:\n  \
        cairn container export os/x86_64/stable --repo repo --to oci:/srv/images/os:42\n  \
        cairn container export os/x86_64/stable --repo repo --to docker://registry.example/os:42 \\\n      \
        --previous docker://registry.example/os:41\n\n\
        The first layer holds the commit's objects (sysroot/ostree/repo); the next ones hold its\n\
        files chunked by package (from the rpm or dpkg database in the commit), at most\n\
        --max-layers in all. With --previous, packages stay in the layers they were in, so an\n\
        upgrade downloads only the layers of packages that changed. Registries are reached\n\
        through skopeo and the host's containers configuration (registries.conf, auth.json).")]
    Export(ExportArgs),
    /// Import the commit of an ostree-native container image into a repository (same checksum).
    #[command(
        after_help = "IMAGE as skopeo spells it: oci:DIR[:TAG], oci-archive:FILE[:TAG],\n\
        docker://HOST/NAME:TAG.\n\nExample:\n  \
        cairn container import oci:/srv/images/os:42 --repo repo --ref os/x86_64/stable"
    )]
    Import(ImportArgs),
    /// Show an image's commit, labels and layers (with their packages); fetches no layer.
    Inspect {
        /// oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/NAME:TAG.
        image: String,
        #[command(flatten)]
        out: Json,
    },
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Ref or commit to export.
    rev: String,
    /// The OSTree repository holding it.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Destination: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/NAME:TAG.
    #[arg(long, value_name = "IMAGE")]
    to: String,
    /// The previous build's image, to keep packages in the same layers.
    #[arg(long, value_name = "IMAGE")]
    previous: Option<String>,
    /// Layers in all, the ostree layer included.
    #[arg(long, value_name = "N", default_value_t = cairn_container::DEFAULT_MAX_LAYERS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    max_layers: u16,
    #[command(flatten)]
    out: Json,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/NAME:TAG.
    image: String,
    /// The OSTree repository to import into.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Ref to point at the imported commit.
    #[arg(long = "ref", value_name = "REF")]
    refname: Option<String>,
    /// Require the commit to be signed with a key of this remote of the repository.
    #[arg(long, value_name = "REMOTE")]
    verify_remote: Option<String>,
    #[command(flatten)]
    out: Json,
}

pub fn run(cmd: Cmd) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Export(a) => export(a),
        Cmd::Import(a) => import(a),
        Cmd::Inspect { image, out } => inspect(&image, out),
    }
}

fn export(a: ExportArgs) -> anyhow::Result<Status> {
    let repo = Repo::open(&a.repo)?;
    let dest: ImageRef = a.to.parse()?;
    let opts = ExportOptions {
        max_layers: usize::from(a.max_layers),
        previous: a.previous.as_deref().map(str::parse).transpose()?,
    };
    let res = cairn_container::export(&repo, &a.rev, &dest, &opts)?;
    if a.out.json {
        print_doc("ContainerExport", &res)?;
        return Ok(0);
    }
    out!(
        "exported {} to {} ({}, {} layers)",
        res.commit,
        res.image,
        res.manifest_digest,
        res.layers.len()
    );
    if !res.chunked_by_package {
        out!("  no package database in the commit: all content is in the ostree layer");
    }
    for (i, l) in res.layers.iter().enumerate() {
        let what = if l.kind == "ostree" {
            "ostree commit + unpackaged files".to_string()
        } else {
            l.packages.join(",")
        };
        out!(
            "  layer {i}: {} {} bytes, {} objects: {what}",
            l.digest,
            l.size,
            l.objects
        );
    }
    Ok(0)
}

fn import(a: ImportArgs) -> anyhow::Result<Status> {
    let repo = Repo::open(&a.repo)?;
    let image: ImageRef = a.image.parse()?;
    let opts = ImportOptions {
        refname: a.refname,
        sigverify: a
            .verify_remote
            .map_or(SigVerify::Unverified, SigVerify::Remote),
    };
    let res = cairn_container::import(&repo, &image, &opts)?;
    if a.out.json {
        print_doc("ContainerImport", &res)?;
        return Ok(0);
    }
    let to = res
        .refname
        .as_deref()
        .map(|r| format!(" as {r}"))
        .unwrap_or_default();
    out!(
        "imported {}{to} from {} ({} layers, {} objects written, {} already present)",
        res.commit,
        res.image,
        res.layers,
        res.objects_written,
        res.objects_present
    );
    Ok(0)
}

fn inspect(image: &str, o: Json) -> anyhow::Result<Status> {
    let info = cairn_container::inspect(&image.parse()?)?;
    if o.json {
        print_doc("ContainerImage", &info)?;
        return Ok(0);
    }
    out!(
        "{}: commit {}, {} layers",
        info.image,
        info.commit
            .as_deref()
            .unwrap_or("(none: not an ostree image)"),
        info.layers.len()
    );
    for (k, v) in &info.labels {
        out!("  label {k}={v}");
    }
    for (i, l) in info.layers.iter().enumerate() {
        let what = if l.packages.is_empty() {
            "-".to_string()
        } else {
            l.packages.join(",")
        };
        out!("  layer {i}: {} {} bytes: {what}", l.digest, l.size);
    }
    Ok(0)
}
