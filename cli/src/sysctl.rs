//! `cairn sysctl list|show|apply`: flags and printing; presets are `cairn_sysctl`, writing
//! them into a deployment is `cairn_ostree::deploy`.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use serde::Serialize;

use crate::args::Json;
use crate::deploy::HostArgs;
use crate::output::{out, print_doc};
use crate::{Global, Status};
use cairn_ostree::deploy;
use cairn_sysctl as sysctl;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List presets (built-in, and user presets from --preset-dir) with their reasons.
    List {
        /// Directory of user presets (sysctl.d files; the file name is the preset name).
        #[arg(long, value_name = "DIR")]
        preset_dir: Option<PathBuf>,
        #[command(flatten)]
        out: Json,
    },
    /// Show a preset's settings and the files it becomes.
    Show {
        /// Preset name.
        preset: String,
        /// Directory of user presets.
        #[arg(long, value_name = "DIR")]
        preset_dir: Option<PathBuf>,
        #[command(flatten)]
        out: Json,
    },
    /// Write presets into the default deployment's /etc/sysctl.d; on `/` also `sysctl --system`.
    #[command(
        after_help = "Files are named /etc/sysctl.d/60-cairn-<preset>.conf (and\n\
        /etc/modules-load.d/cairn-<preset>.conf for kernel modules). They survive upgrades\n\
        through the /etc 3-way merge. See docs/sysctl.md for precedence over /usr/lib/sysctl.d."
    )]
    Apply {
        #[command(flatten)]
        host: HostArgs,
        /// Presets to apply.
        #[arg(required = true)]
        presets: Vec<String>,
        /// Directory of user presets.
        #[arg(long, value_name = "DIR")]
        preset_dir: Option<PathBuf>,
        #[command(flatten)]
        out: Json,
    },
}

/// `show --json`: the preset and the files it becomes, as `show` prints them.
#[derive(Serialize)]
struct ShowOut<'a> {
    preset: &'a sysctl::OwnedPreset,
    files: Vec<FileOut>,
}

#[derive(Serialize)]
struct FileOut {
    path: PathBuf,
    content: String,
}

pub fn run(cmd: Cmd, _global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::List { preset_dir, out } => list(preset_dir.as_deref(), out),
        Cmd::Show {
            preset,
            preset_dir,
            out,
        } => show(preset, preset_dir.as_deref(), out),
        Cmd::Apply {
            host,
            presets,
            preset_dir,
            out,
        } => apply(&host, &presets, preset_dir.as_deref(), out),
    }
}

fn list(preset_dir: Option<&Path>, o: Json) -> anyhow::Result<Status> {
    let all = sysctl::available(preset_dir)?;
    if o.json {
        print_doc("SysctlPresetList", &serde_json::json!({ "presets": all }))?;
    } else {
        let w = all.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &all {
            out!("{:w$}  {}", p.name, p.reason);
        }
    }
    Ok(0)
}

fn show(preset: String, preset_dir: Option<&Path>, o: Json) -> anyhow::Result<Status> {
    let p = sysctl::resolve(&[preset], preset_dir, &sysctl::Validator::host())?;
    let files = sysctl::render_owned(&p);
    if o.json {
        let body = ShowOut {
            preset: &p[0],
            files: files
                .into_iter()
                .map(|(path, content)| FileOut { path, content })
                .collect(),
        };
        print_doc("SysctlPreset", &body)?;
        return Ok(0);
    }
    for (path, content) in files {
        out!("# {{/usr/lib,/etc}}/{}", path.display());
        out!("{}", content.strip_suffix('\n').unwrap_or(&content));
    }
    Ok(0)
}

fn apply(
    host: &HostArgs,
    presets: &[String],
    preset_dir: Option<&Path>,
    o: Json,
) -> anyhow::Result<Status> {
    let p = sysctl::resolve(presets, preset_dir, &sysctl::Validator::host())?;
    let res = deploy::apply_presets(&host.host(), &p)?;
    if o.json {
        print_doc("SysctlApplyResult", &res)?;
        return Ok(0);
    }
    for d in &res.deployments {
        for f in &res.files {
            out!("wrote {} in {d}", f.display());
        }
    }
    if res.applied_now {
        out!("applied with sysctl --system");
    } else {
        out!("takes effect when the deployment boots");
    }
    Ok(0)
}
