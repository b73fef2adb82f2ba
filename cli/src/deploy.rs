//! Host commands: `deploy`, `upgrade`, `rollback`, `status`, `kargs`, `pin`, `unpin`, `cleanup`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{print_json, Global, Status};
use cairn_ostree::deploy::{self, Host, KargEdits, Remote, UpgradeOptions, UpgradeOutcome};

/// Exit status of `upgrade` when there is nothing new (and of `upgrade --check` with no update).
pub const EXIT_NOTHING_NEW: Status = 77;

/// Which sysroot and OS a host command acts on.
#[derive(Debug, Clone, Args)]
pub struct HostArgs {
    /// Root of the sysroot: `/` for this host, or a directory holding ostree/ and boot/.
    #[arg(long, value_name = "DIR", default_value = "/", env = "CAIRN_SYSROOT")]
    pub sysroot: PathBuf,
    /// OS (stateroot) name; default: the booted one, else the default deployment's.
    #[arg(long, value_name = "NAME")]
    pub os: Option<String>,
}

impl HostArgs {
    pub fn host(&self) -> Host {
        Host {
            sysroot: self.sysroot.clone(),
            os: self.os.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum HostCmd {
    /// Deploy a ref or commit as the new default (A/B: the current one stays as rollback).
    #[command(after_help = "Examples:\n  \
        cairn deploy --os fedora --remote origin --url http://repo.example/ostree fedora/x86_64/stable \\\n      \
        --karg root=/dev/vda3 --sysctl-preset kubernetes-node\n  \
        cairn deploy --sysroot /mnt/sysroot --os debian local/bookworm --dry-run\n\n\
        The /etc of the current default is merged 3-way into the new deployment, and its kernel\n\
        arguments are inherited (each --karg replaces the argument of the same key). A first\n\
        deploy into an empty directory initializes it as a sysroot (pass --karg root=... then).")]
    Deploy {
        #[command(flatten)]
        host: HostArgs,
        /// A ref (`stable`, `REMOTE:REF`) or a 64-hex commit checksum.
        rev: String,
        /// Remote to pull REV from first (with --url: added to the sysroot repository when
        /// missing). Without --remote, REV must already be in the sysroot repository.
        #[arg(long, value_name = "NAME")]
        remote: Option<String>,
        /// URL of the remote: file://, http:// or https://.
        #[arg(long, value_name = "URL", requires = "remote")]
        url: Option<String>,
        /// Verify GPG signatures when adding the remote (import keys beforehand).
        #[arg(long)]
        gpg_verify: bool,
        /// Kernel argument KEY=VALUE, replacing the inherited one with that key (repeatable).
        #[arg(long = "karg", value_name = "K=V")]
        kargs: Vec<String>,
        /// Sysctl preset to write into the new deployment's /etc/sysctl.d (repeatable).
        #[arg(long = "sysctl-preset", value_name = "PRESET")]
        presets: Vec<String>,
        /// Directory of user presets (sysctl.d files; the file name is the preset name).
        #[arg(long, value_name = "DIR")]
        preset_dir: Option<PathBuf>,
        /// Validate and print the plan; change nothing (no pull, no deployment).
        #[arg(long)]
        dry_run: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pull the ref the default deployment tracks and deploy it if it changed.
    #[command(
        after_help = "Exit status: 0 when an update was deployed (or, with --check, is available;\n\
        with --download-only, was downloaded); 77 when the default deployment already runs the\n\
        newest commit of its ref; 1 on errors. On a booted host the update is staged (finalized\n\
        at shutdown); on a sysroot in a directory it is deployed directly."
    )]
    Upgrade {
        #[command(flatten)]
        host: HostArgs,
        /// Only check whether an update exists (fetches commit metadata only).
        #[arg(long, conflicts_with = "download_only")]
        check: bool,
        /// Download the update but do not deploy it.
        #[arg(long)]
        download_only: bool,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the previous deployment the default again (nothing is deleted).
    #[command(
        after_help = "On a booted host with a pending update, the booted deployment becomes the\n\
        default again; otherwise the deployment after the booted one does. On a sysroot that is\n\
        not booted, the deployment after the default does."
    )]
    Rollback {
        #[command(flatten)]
        host: HostArgs,
    },
    /// Show deployments: booted, default, rollback, pinned, versions, origins, kernel arguments.
    Status {
        #[command(flatten)]
        host: HostArgs,
        /// Versioned JSON (`apiVersion: cairn/v1`, `kind: HostStatus`) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Edit kernel arguments: deploys the default's commit again with the edited list.
    #[command(
        after_help = "Edits apply in the order --delete, --replace, --append. The previous\n\
        deployment keeps the old arguments, so `cairn rollback` undoes a bad edit.\n\
        Without edits, prints the default deployment's arguments.\n\nExample:\n  \
        cairn kargs --replace console=ttyS0,115200 --append mitigations=off --delete quiet"
    )]
    Kargs {
        #[command(flatten)]
        host: HostArgs,
        /// Append KEY[=VALUE] (repeatable keys like console= may appear several times).
        #[arg(long, value_name = "K=V")]
        append: Vec<String>,
        /// Delete KEY (every occurrence) or the exact KEY=VALUE.
        #[arg(long, value_name = "K[=V]")]
        delete: Vec<String>,
        /// Replace every KEY... with KEY=VALUE (appended when absent).
        #[arg(long, value_name = "K=V")]
        replace: Vec<String>,
    },
    /// Pin a deployment so cleanup and new deploys never remove it.
    Pin {
        #[command(flatten)]
        host: HostArgs,
        /// Deployment index, as `cairn status` shows it.
        index: usize,
    },
    /// Unpin a deployment.
    Unpin {
        #[command(flatten)]
        host: HostArgs,
        /// Deployment index, as `cairn status` shows it.
        index: usize,
    },
    /// Remove old deployments beyond --keep and unreferenced repository objects.
    #[command(
        after_help = "The default, booted, rollback and pinned deployments are always kept."
    )]
    Cleanup {
        #[command(flatten)]
        host: HostArgs,
        /// Keep at most N deployments of the OS (besides protected ones); default: keep all.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
    },
}

fn say(global: &Global, msg: impl std::fmt::Display) {
    if !global.quiet {
        super::err!("{msg}");
    }
}

pub fn run(cmd: HostCmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        HostCmd::Deploy {
            host,
            rev,
            remote,
            url,
            gpg_verify,
            kargs,
            presets,
            preset_dir,
            dry_run,
            json,
        } => {
            let remote = remote.map(|name| Remote {
                name,
                url,
                gpg_verify,
            });
            let opts = deploy::DeployOptions {
                rev,
                remote,
                kargs,
                presets,
                preset_dir,
                dry_run,
            };
            say(
                global,
                format!("deploying {} into {}", opts.rev, host.sysroot.display()),
            );
            let out = deploy::deploy(&host.host(), &opts)?;
            if json {
                print_json(&out)?;
            } else if out.dry_run {
                super::out!(
                    "dry run: would deploy {} ({}) for {}",
                    out.origin,
                    out.checksum.as_deref().unwrap_or("resolved after pull"),
                    out.osname
                );
                if let Some(m) = &out.merge {
                    super::out!("  merging /etc and kernel arguments from {m}");
                } else if out.initialized {
                    super::out!("  initializing a new sysroot");
                }
                if let Some(k) = &out.kargs {
                    super::out!("  kernel arguments: {}", k.join(" "));
                }
                for f in &out.files {
                    super::out!("  would write {}", f.display());
                }
            } else {
                super::out!(
                    "deployed {} {} for {} as the new default",
                    out.deployment.as_deref().unwrap_or("?"),
                    out.version
                        .as_deref()
                        .map(|v| format!("(version {v})"))
                        .unwrap_or_default(),
                    out.osname
                );
                for f in &out.files {
                    super::out!("  wrote {}", f.display());
                }
            }
            Ok(0)
        }
        HostCmd::Upgrade {
            host,
            check,
            download_only,
            json,
        } => {
            let out = deploy::upgrade(
                &host.host(),
                UpgradeOptions {
                    check,
                    download_only,
                },
            )?;
            if json {
                print_json(&out)?;
            }
            let v = |v: &Option<String>| {
                v.as_deref()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default()
            };
            match &out {
                UpgradeOutcome::NoUpdate { checksum } => {
                    if !json {
                        super::out!("no update: the default deployment already runs {checksum}");
                    }
                    Ok(EXIT_NOTHING_NEW)
                }
                UpgradeOutcome::Available { from, to, version } => {
                    if !json {
                        super::out!("update available: {from} -> {to}{}", v(version));
                    }
                    Ok(0)
                }
                UpgradeOutcome::Downloaded { to, version, .. } => {
                    if !json {
                        super::out!("downloaded {to}{}; `cairn upgrade` deploys it", v(version));
                    }
                    Ok(0)
                }
                UpgradeOutcome::Deployed {
                    to,
                    version,
                    deployment,
                    staged,
                    ..
                } => {
                    if !json {
                        let how = if *staged {
                            "staged (finalized at shutdown)"
                        } else {
                            "deployed"
                        };
                        super::out!("{how} {to}{} as {deployment}; reboot to use it", v(version));
                    }
                    Ok(0)
                }
            }
        }
        HostCmd::Rollback { host } => {
            let out = deploy::rollback(&host.host())?;
            super::out!(
                "rollback: {} is the default again (was {}); reboot to use it",
                out.to,
                out.from
            );
            Ok(0)
        }
        HostCmd::Status { host, json } => {
            let st = deploy::status(&host.host())?;
            if json {
                print_json(&st)?;
                return Ok(0);
            }
            if st.deployments.is_empty() {
                super::out!("no deployments in {}", st.sysroot.display());
            }
            for d in &st.deployments {
                let mut flags = Vec::new();
                for (on, name) in [
                    (d.booted, "booted"),
                    (d.default, "default"),
                    (d.rollback, "rollback"),
                    (d.pinned, "pinned"),
                    (d.staged, "staged"),
                ] {
                    if on {
                        flags.push(name);
                    }
                }
                super::out!(
                    "{} {}: {} {} [{}]",
                    if d.booted { '*' } else { ' ' },
                    d.index,
                    d.osname,
                    d.id,
                    flags.join(", ")
                );
                if let Some(v) = &d.version {
                    super::out!("     version: {v}");
                }
                if let Some(o) = &d.origin {
                    super::out!("     origin:  {o}");
                }
                super::out!("     kargs:   {}", d.kargs.join(" "));
                if d.failed_boots > 0 {
                    super::out!("     health:  {} failed boot(s)", d.failed_boots);
                }
            }
            for e in st.health.events.iter().rev().take(5).rev() {
                let to = e
                    .rolled_back_to
                    .as_deref()
                    .map(|t| format!(" -> {t}"))
                    .unwrap_or_default();
                super::out!(
                    "health {} {:?} {} (failed boots {}){to}",
                    e.time,
                    e.kind,
                    e.deployment,
                    e.failed_boots
                );
            }
            Ok(0)
        }
        HostCmd::Kargs {
            host,
            append,
            delete,
            replace,
        } => {
            let edits = KargEdits {
                delete,
                replace,
                append,
            };
            if edits.is_empty() {
                let st = deploy::status(&host.host())?;
                let d = st
                    .deployments
                    .first()
                    .ok_or_else(|| anyhow::anyhow!("no deployments"))?;
                super::out!("{}", d.kargs.join(" "));
                return Ok(0);
            }
            let out = deploy::edit_kargs(&host.host(), &edits)?;
            match &out.deployment {
                Some(id) => super::out!(
                    "deployed {id} with kernel arguments: {}",
                    out.after.join(" ")
                ),
                None => super::out!("kernel arguments unchanged: {}", out.after.join(" ")),
            }
            Ok(0)
        }
        HostCmd::Pin { host, index } => {
            let id = deploy::set_pinned(&host.host(), index, true)?;
            super::out!("pinned deployment {index} ({id})");
            Ok(0)
        }
        HostCmd::Unpin { host, index } => {
            let id = deploy::set_pinned(&host.host(), index, false)?;
            super::out!("unpinned deployment {index} ({id})");
            Ok(0)
        }
        HostCmd::Cleanup { host, keep } => {
            let out = deploy::cleanup(&host.host(), keep)?;
            for r in &out.removed {
                super::out!("removed {r}");
            }
            say(
                global,
                format!("cleanup done: {} deployment(s) kept", out.kept.len()),
            );
            Ok(0)
        }
    }
}
