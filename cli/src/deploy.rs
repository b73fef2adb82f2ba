//! Host commands: `deploy`, `upgrade`, `finalize`, `rollback`, `status`, `kargs`, `pin`, `unpin`,
//! `cleanup`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::Json;
use crate::output::{err, out, print_doc, suffix};
use crate::{Global, Status};
use cairn_ostree::deploy::{
    self, DeployOutcome, Host, HostStatus, KargEdits, Remote, UpgradeOptions, UpgradeOutcome,
};

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
    Deploy(Box<DeployArgs>),
    /// Pull the ref the default deployment tracks and deploy it if it changed.
    #[command(
        after_help = "Exit status: 0 when an update was deployed (or, with --check, is available;\n\
        with --download-only, was downloaded); 77 when the default deployment already runs the\n\
        newest commit of its ref (with --stage: or that commit is already staged); 1 on errors.\n\
        On a booted host the update is staged (finalized at shutdown); on a sysroot in a\n\
        directory it is deployed directly. With --stage it is written but the current deployment\n\
        keeps booting (also after an unplanned reboot) until `cairn finalize`."
    )]
    Upgrade(UpgradeArgs),
    /// Make the staged deployment (`cairn upgrade --stage`) the next boot's default.
    #[command(
        after_help = "On a booted host this removes libostree's finalization lock\n\
        (/run/ostree/staged-deployment-locked): the staged deployment is written at shutdown and\n\
        boots next. On a sysroot that is not booted the staged deployment moves to the front of\n\
        the boot order. Exit status: 0 finalized, 1 nothing staged (or an error)."
    )]
    Finalize(FinalizeArgs),
    /// Make the previous deployment the default again (nothing is deleted).
    #[command(
        after_help = "On a booted host with a pending update, the booted deployment becomes the\n\
        default again; otherwise the deployment after the booted one does. On a sysroot that is\n\
        not booted, the deployment after the default does."
    )]
    Rollback {
        #[command(flatten)]
        host: HostArgs,
        #[command(flatten)]
        out: Json,
    },
    /// Show deployments: booted, default, rollback, pinned, versions, origins, kernel arguments.
    Status {
        #[command(flatten)]
        host: HostArgs,
        #[command(flatten)]
        out: Json,
    },
    /// Edit kernel arguments: deploys the default's commit again with the edited list.
    #[command(
        after_help = "Edits apply in the order --delete, --replace, --append. The previous\n\
        deployment keeps the old arguments, so `cairn rollback` undoes a bad edit.\n\
        Without edits, prints the default deployment's arguments.\n\nExample:\n  \
        cairn kargs --replace console=ttyS0,115200 --append mitigations=off --delete quiet"
    )]
    Kargs(KargsArgs),
    /// Pin a deployment so cleanup and new deploys never remove it.
    Pin(PinArgs),
    /// Unpin a deployment.
    Unpin(PinArgs),
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
        #[command(flatten)]
        out: Json,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
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
    #[command(flatten)]
    out: Json,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    host: HostArgs,
    /// Only check whether an update exists (fetches commit metadata only).
    #[arg(long, conflicts_with = "download_only")]
    check: bool,
    /// Download the update but do not deploy it.
    #[arg(long)]
    download_only: bool,
    /// Write the update but keep booting the current deployment until `cairn finalize`.
    #[arg(long, conflicts_with_all = ["check", "download_only"])]
    stage: bool,
    /// One pass of the update agent: stage, (take a slot,) finalize and reboot. Run it again
    /// after the boot: it checks health and gives the slot back first. Prints agent events.
    #[arg(long, conflicts_with_all = ["check", "download_only", "stage", "json"])]
    reboot: bool,
    /// With --reboot: take a FleetLock reboot slot from these lock servers first.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        requires = "reboot"
    )]
    fleetlock: Vec<String>,
    /// With --fleetlock: the reboot group.
    #[arg(long, default_value = "default", requires = "fleetlock")]
    group: String,
    /// With --fleetlock: the node id (default: `cairn fleetlock id`).
    #[arg(long, requires = "fleetlock")]
    id: Option<String>,
    #[command(flatten)]
    out: Json,
}

#[derive(Debug, Args)]
pub struct FinalizeArgs {
    #[command(flatten)]
    host: HostArgs,
    /// Reboot right after (`systemctl reboot`, or $CAIRN_REBOOT_COMMAND through `sh -c`).
    #[arg(long)]
    reboot: bool,
    #[command(flatten)]
    out: Json,
}

#[derive(Debug, Args)]
pub struct KargsArgs {
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
    #[command(flatten)]
    out: Json,
}

#[derive(Debug, Args)]
pub struct PinArgs {
    #[command(flatten)]
    host: HostArgs,
    /// Deployment index, as `cairn status` shows it.
    index: usize,
    #[command(flatten)]
    out: Json,
}

fn say(global: &Global, msg: impl std::fmt::Display) {
    if !global.quiet {
        err!("{msg}");
    }
}

pub fn run(cmd: HostCmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        HostCmd::Deploy(a) => deploy_cmd(*a, global),
        HostCmd::Upgrade(a) => upgrade(a),
        HostCmd::Finalize(a) => finalize(a),
        HostCmd::Rollback { host, out } => rollback(&host, out),
        HostCmd::Status { host, out } => status(&host, out),
        HostCmd::Kargs(a) => kargs(a),
        HostCmd::Pin(a) => pin(a, true),
        HostCmd::Unpin(a) => pin(a, false),
        HostCmd::Cleanup { host, keep, out } => cleanup(&host, keep, out, global),
    }
}

fn deploy_cmd(a: DeployArgs, global: &Global) -> anyhow::Result<Status> {
    if cairn_container::is_ostree_image_ref(&a.rev) {
        return deploy_image(a, global);
    }
    let opts = deploy::DeployOptions {
        rev: a.rev,
        remote: a.remote.map(|name| Remote {
            name,
            url: a.url,
            gpg_verify: a.gpg_verify,
        }),
        kargs: a.kargs,
        presets: a.presets,
        preset_dir: a.preset_dir,
        dry_run: a.dry_run,
        container_image: None,
    };
    say(
        global,
        format!("deploying {} into {}", opts.rev, a.host.sysroot.display()),
    );
    let res = deploy::deploy(&a.host.host(), &opts)?;
    print_deployed(&res, a.out.json, None)?;
    Ok(0)
}

/// `cairn deploy ostree-unverified-registry:...`: pull the image's commit into the sysroot
/// repository, then deploy it with an origin that remembers the image.
fn deploy_image(a: DeployArgs, global: &Global) -> anyhow::Result<Status> {
    if a.remote.is_some() || a.dry_run {
        anyhow::bail!(
            "{}: --remote and --dry-run apply to OSTree refs, not container images",
            a.rev
        );
    }
    let image: cairn_container::OstreeImageRef = a.rev.parse()?;
    say(global, format!("pulling {image}"));
    let pull = cairn_container::host::pull(&a.host.sysroot, &image)?;
    say(global, pull_summary(&pull));
    let opts = deploy::DeployOptions {
        rev: pull.refname.clone(),
        kargs: a.kargs,
        presets: a.presets,
        preset_dir: a.preset_dir,
        container_image: Some(image.to_string()),
        ..Default::default()
    };
    let res = deploy::deploy(&a.host.host(), &opts)?;
    print_deployed(&res, a.out.json, Some(&pull))?;
    Ok(0)
}

fn pull_summary(p: &cairn_container::host::PullReport) -> String {
    format!(
        "pulled {} ({} of {} layers fetched, {} bytes)",
        p.commit, p.layers_fetched, p.layers, p.bytes_fetched
    )
}

/// A result document with the image pull's report under `pull` (container hosts only).
fn with_pull<T: serde::Serialize>(
    body: &T,
    pull: Option<&cairn_container::host::PullReport>,
) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(body)?;
    if let (Some(p), Some(obj)) = (pull, v.as_object_mut()) {
        obj.insert("pull".into(), serde_json::to_value(p)?);
    }
    Ok(v)
}

fn print_deployed(
    res: &DeployOutcome,
    json: bool,
    pull: Option<&cairn_container::host::PullReport>,
) -> anyhow::Result<()> {
    if json {
        print_doc("DeployResult", &with_pull(res, pull)?)?;
    } else if res.dry_run {
        print_deploy_plan(res);
    } else {
        out!(
            "deployed {}{} for {} as the new default",
            res.deployment.as_deref().unwrap_or("?"),
            version_note(&res.version),
            res.osname
        );
        for f in &res.files {
            out!("  wrote {}", f.display());
        }
    }
    Ok(())
}

fn print_deploy_plan(res: &DeployOutcome) {
    out!(
        "dry run: would deploy {} ({}) for {}",
        res.origin,
        res.checksum.as_deref().unwrap_or("resolved after pull"),
        res.osname
    );
    if let Some(m) = &res.merge {
        out!("  merging /etc and kernel arguments from {m}");
    } else if res.initialized {
        out!("  initializing a new sysroot");
    }
    if let Some(k) = &res.kargs {
        out!("  kernel arguments: {}", k.join(" "));
    }
    for f in &res.files {
        out!("  would write {}", f.display());
    }
}

fn upgrade(a: UpgradeArgs) -> anyhow::Result<Status> {
    if a.reboot {
        let strategy = if a.fleetlock.is_empty() {
            cairn_agent::Strategy::Immediate
        } else {
            cairn_agent::Strategy::FleetLock {
                servers: a.fleetlock,
            }
        };
        let mut cfg = cairn_agent::AgentConfig::one_shot(a.host.sysroot, a.host.os, strategy);
        cfg.group = a.group;
        cfg.id = a.id;
        return crate::agent::run_config(&cfg, true, None);
    }
    let host = a.host.host();
    let mut pull = None;
    if let Some(image) = deploy::tracked_image(&host)? {
        let image: cairn_container::OstreeImageRef = image.parse()?;
        if a.check {
            return check_image(&host, &image, a.out.json);
        }
        let p = cairn_container::host::pull(&host.sysroot, &image)?;
        err!("{}", pull_summary(&p));
        pull = Some(p);
    }
    let res = deploy::upgrade(
        &host,
        UpgradeOptions {
            check: a.check,
            download_only: a.download_only,
            stage: a.stage,
        },
    )?;
    if a.out.json {
        print_doc("UpgradeResult", &with_pull(&res, pull.as_ref())?)?;
    } else {
        out!("{}", upgrade_summary(&res));
    }
    Ok(match res {
        UpgradeOutcome::NoUpdate { .. } | UpgradeOutcome::AlreadyStaged { .. } => EXIT_NOTHING_NEW,
        _ => 0,
    })
}

/// `upgrade --check` for a host following an image: compare the image's `ostree.commit` label
/// with the default deployment, fetching no layers.
fn check_image(
    host: &Host,
    image: &cairn_container::OstreeImageRef,
    json: bool,
) -> anyhow::Result<Status> {
    let newest = cairn_container::host::remote_commit(image)?;
    let st = deploy::status(host)?;
    let from = st
        .deployments
        .iter()
        .find(|d| d.default && host.os.as_deref().is_none_or(|o| o == d.osname))
        .map(|d| d.checksum.clone())
        .ok_or_else(|| anyhow::anyhow!("no default deployment in {}", host.sysroot.display()))?;
    let res = if newest.commit == from {
        UpgradeOutcome::NoUpdate { checksum: from }
    } else {
        UpgradeOutcome::Available {
            from,
            to: newest.commit,
            version: newest.version,
        }
    };
    if json {
        print_doc("UpgradeResult", &res)?;
    } else {
        out!("{}", upgrade_summary(&res));
    }
    Ok(match res {
        UpgradeOutcome::NoUpdate { .. } => EXIT_NOTHING_NEW,
        _ => 0,
    })
}

fn finalize(a: FinalizeArgs) -> anyhow::Result<Status> {
    let res = deploy::finalize(&a.host.host())?;
    if a.out.json {
        print_doc("FinalizeResult", &res)?;
    } else {
        let when = match res.mechanism {
            deploy::Mechanism::Libostree => "written at shutdown; boots next",
            deploy::Mechanism::Cairn => "is the default now",
        };
        out!("finalized {} ({when})", res.deployment);
    }
    if a.reboot {
        crate::agent::reboot_now(&res.checksum)?;
    }
    Ok(0)
}

/// ` (version V)` when the commit has a version, for summary lines.
fn version_note(v: &Option<String>) -> String {
    suffix(" (version ", v.as_deref(), ")")
}

fn upgrade_summary(res: &UpgradeOutcome) -> String {
    let v = version_note;
    match res {
        UpgradeOutcome::NoUpdate { checksum } => {
            format!("no update: the default deployment already runs {checksum}")
        }
        UpgradeOutcome::Available { from, to, version } => {
            format!("update available: {from} -> {to}{}", v(version))
        }
        UpgradeOutcome::Downloaded { to, version, .. } => {
            format!("downloaded {to}{}; `cairn upgrade` deploys it", v(version))
        }
        UpgradeOutcome::Deployed {
            to,
            version,
            deployment,
            staged,
            locked,
            ..
        } => {
            let (how, next) = match (staged, locked) {
                (_, true) => (
                    "staged",
                    "`cairn finalize` makes it the next boot's default",
                ),
                (true, false) => ("staged (finalized at shutdown)", "reboot to use it"),
                (false, false) => ("deployed", "reboot to use it"),
            };
            format!("{how} {to}{} as {deployment}; {next}", v(version))
        }
        UpgradeOutcome::AlreadyStaged {
            checksum,
            version,
            deployment,
        } => format!(
            "already staged: {checksum}{} as {deployment}; `cairn finalize` makes it the default",
            v(version)
        ),
    }
}

fn rollback(host: &HostArgs, o: Json) -> anyhow::Result<Status> {
    let res = deploy::rollback(&host.host())?;
    if o.json {
        print_doc("RollbackResult", &res)?;
    } else {
        out!(
            "rollback: {} is the default again (was {}); reboot to use it",
            res.to,
            res.from
        );
    }
    Ok(0)
}

fn status(host: &HostArgs, o: Json) -> anyhow::Result<Status> {
    let st = deploy::status(&host.host())?;
    if o.json {
        print_doc("HostStatus", &st)?;
    } else {
        print_status(&st);
    }
    Ok(0)
}

fn print_status(st: &HostStatus) {
    if st.deployments.is_empty() {
        out!("no deployments in {}", st.sysroot.display());
    }
    for d in &st.deployments {
        let flags: Vec<&str> = [
            (d.booted, "booted"),
            (d.default, "default"),
            (d.rollback, "rollback"),
            (d.pinned, "pinned"),
            (d.staged, "staged"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let mark = if d.booted { '*' } else { ' ' };
        out!(
            "{mark} {}: {} {} [{}]",
            d.index,
            d.osname,
            d.id,
            flags.join(", ")
        );
        if let Some(v) = &d.version {
            out!("     version: {v}");
        }
        if let Some(o) = &d.origin {
            out!("     origin:  {o}");
        }
        out!("     kargs:   {}", d.kargs.join(" "));
        if d.failed_boots > 0 {
            out!("     health:  {} failed boot(s)", d.failed_boots);
        }
    }
    for e in st.health.events.iter().rev().take(5).rev() {
        let to = suffix(" -> ", e.rolled_back_to.as_deref(), "");
        out!(
            "health {} {:?} {} (failed boots {}){to}",
            e.time,
            e.kind,
            e.deployment,
            e.failed_boots
        );
    }
}

fn kargs(a: KargsArgs) -> anyhow::Result<Status> {
    let edits = KargEdits {
        delete: a.delete,
        replace: a.replace,
        append: a.append,
    };
    let res = if edits.is_empty() {
        // Printing is an edit that changes nothing: the same document, no new deployment.
        let st = deploy::status(&a.host.host())?;
        let d = st
            .deployments
            .first()
            .ok_or_else(|| anyhow::anyhow!("no deployments"))?;
        deploy::KargsOutcome {
            before: d.kargs.clone(),
            after: d.kargs.clone(),
            deployment: None,
        }
    } else {
        deploy::edit_kargs(&a.host.host(), &edits)?
    };
    if a.out.json {
        print_doc("KargsResult", &res)?;
        return Ok(0);
    }
    match &res.deployment {
        Some(id) => out!(
            "deployed {id} with kernel arguments: {}",
            res.after.join(" ")
        ),
        None if edits.is_empty() => out!("{}", res.after.join(" ")),
        None => out!("kernel arguments unchanged: {}", res.after.join(" ")),
    }
    Ok(0)
}

fn pin(a: PinArgs, pinned: bool) -> anyhow::Result<Status> {
    let id = deploy::set_pinned(&a.host.host(), a.index, pinned)?;
    if a.out.json {
        let body = serde_json::json!({ "index": a.index, "deployment": id, "pinned": pinned });
        print_doc("PinResult", &body)?;
    } else {
        let verb = if pinned { "pinned" } else { "unpinned" };
        out!("{verb} deployment {} ({id})", a.index);
    }
    Ok(0)
}

fn cleanup(
    host: &HostArgs,
    keep: Option<usize>,
    o: Json,
    global: &Global,
) -> anyhow::Result<Status> {
    let res = deploy::cleanup(&host.host(), keep)?;
    if o.json {
        print_doc("CleanupResult", &res)?;
    } else {
        for r in &res.removed {
            out!("removed {r}");
        }
    }
    say(
        global,
        format!("cleanup done: {} deployment(s) kept", res.kept.len()),
    );
    Ok(0)
}
