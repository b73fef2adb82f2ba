//! `cairn sysctl list | show | apply`.

use std::path::PathBuf;

use clap::Subcommand;

use super::deploy::HostArgs;
use super::{print_json, Global, Status};
use cairn_ostree::deploy;
use cairn_sysctl as sysctl;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// List presets (built-in, and user presets from --preset-dir) with their reasons.
    List {
        /// Directory of user presets (sysctl.d files; the file name is the preset name).
        #[arg(long, value_name = "DIR")]
        preset_dir: Option<PathBuf>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a preset's settings and the files it becomes.
    Show {
        /// Preset name.
        preset: String,
        /// Directory of user presets.
        #[arg(long, value_name = "DIR")]
        preset_dir: Option<PathBuf>,
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
    },
}

pub fn run(cmd: Cmd, _global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::List { preset_dir, json } => {
            let all = sysctl::available(preset_dir.as_deref())?;
            if json {
                print_json(
                    &serde_json::json!({"apiVersion": "cairn/v1", "kind": "SysctlPresetList", "presets": all}),
                )?;
            } else {
                let w = all.iter().map(|p| p.name.len()).max().unwrap_or(0);
                for p in &all {
                    super::out!("{:w$}  {}", p.name, p.reason);
                }
            }
            Ok(0)
        }
        Cmd::Show { preset, preset_dir } => {
            let p = sysctl::resolve(&[preset], preset_dir.as_deref(), &sysctl::Validator::host())?;
            for (path, content) in sysctl::render_owned(&p) {
                super::out!("# {{/usr/lib,/etc}}/{}", path.display());
                print!("{content}");
            }
            Ok(0)
        }
        Cmd::Apply {
            host,
            presets,
            preset_dir,
        } => {
            let p = sysctl::resolve(&presets, preset_dir.as_deref(), &sysctl::Validator::host())?;
            let out = deploy::apply_presets(&host.host(), &p)?;
            for d in &out.deployments {
                for f in &out.files {
                    super::out!("wrote {} in {d}", f.display());
                }
            }
            if out.applied_now {
                super::out!("applied with sysctl --system");
            } else {
                super::out!("takes effect when the deployment boots");
            }
            Ok(0)
        }
    }
}
