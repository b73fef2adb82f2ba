//! The `cairn` binary: the command tree, exit statuses and error reporting. Each command family
//! has a module here for its flags and printing; the work happens in the domain crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent;
mod args;
mod compose;
mod container;
mod deploy;
mod fleet;
mod health;
mod image;
mod install;
mod kickstart;
mod output;
mod packer;
mod repo;
mod serve;
mod snapshot;
mod sysctl;
mod treefile;

use output::{err, out};

/// cairn: build, ship and run immutable OSTree-based hosts.
///
/// The path: package repositories are snapshotted (`snapshot`, `lockfile`), a treefile is composed
/// into an OSTree commit (`compose`, `commit`, `repo`), installed on bare metal by kickstart over
/// PXE (`kickstart`, `serve`) or baked into VM images (`packer`, `image`), and updated atomically
/// A/B with rollback (`deploy`, `upgrade`, `rollback`, `status`), one reboot slot at a time
/// across a fleet (`agent`, `fleetlock`).
#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command understands.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Print only errors and the final result; no progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render, check and diff treefiles (rpm-ostree compatible).
    #[command(subcommand)]
    Treefile(treefile::Cmd),
    #[command(flatten)]
    Repo(repo::Cmd),
    /// Compose a treefile into an OSTree commit (real packages: mmdebstrap, dnf, rpm-ostree).
    Compose(Box<compose::ComposeArgs>),
    /// Snapshot a treefile's packages as a static repository that composes can use offline.
    Snapshot(Box<snapshot::SnapshotArgs>),
    /// Lockfiles (rpm-ostree's format): diff two of them.
    #[command(subcommand)]
    Lockfile(snapshot::LockfileCmd),
    /// Bare metal: check an inventory and render kickstarts and PXE/GRUB/iPXE configs.
    #[command(subcommand)]
    Kickstart(kickstart::Cmd),
    /// Serve kickstarts, boot configs and the OSTree repo to PXE clients over HTTP.
    Serve(serve::Args),
    /// Host commands: deploy, upgrade, finalize, rollback, status, kargs, pin, unpin, cleanup.
    #[command(flatten)]
    Host(deploy::HostCmd),
    /// Sysctl presets: list, show, apply to a deployment.
    #[command(subcommand)]
    Sysctl(sysctl::Cmd),
    /// Health checks with automatic rollback after repeated failed boots.
    #[command(subcommand)]
    Health(health::Cmd),
    /// Generate Packer (HCL2) templates for VM images: ISO + kickstart, cairn disk image, OpenStack.
    #[command(subcommand)]
    Packer(packer::Cmd),
    /// Build bootable disk images (raw, qcow2, vhd) from an OSTree commit, without a VM.
    #[command(subcommand)]
    Image(image::Cmd),
    /// Install a machine's disk from a kickstart (file or cairn serve URL): the anaconda role.
    Install(Box<install::Args>),
    /// The update agent: stage, take a reboot slot or wait for a window, drain, reboot, check.
    Agent(agent::AgentArgs),
    /// Fleet rollouts: the FleetLock reboot-lock server (etcd-backed) and its node side.
    #[command(subcommand)]
    Fleetlock(fleet::Cmd),
    /// OSTree commits as OCI container images (ostree-native format): export, import.
    #[command(subcommand)]
    Container(container::Cmd),
}

/// Exit status a command asks for on success (e.g. 77 for "nothing changed" where documented).
pub type Status = u8;

/// Domains never print; what they have to say arrives here. `listening on` is output (scripts
/// read it on stdout), everything else is a note for the operator on stderr.
fn print_notice(n: &cairn_common::notice::Notice) {
    if n.is_output() {
        out!("{n}");
    } else {
        err!("{n}");
    }
}

fn main() -> ExitCode {
    cairn_common::notice::set_sink(print_notice);
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) if code == 0 && output::STDOUT_LOST.load(std::sync::atomic::Ordering::Relaxed) => {
            err!("error: writing to stdout failed; output was lost (the command itself completed)");
            ExitCode::from(1)
        }
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            err!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Treefile(cmd) => treefile::run(cmd, &cli.global),
        Command::Repo(cmd) => repo::run(cmd, &cli.global),
        Command::Compose(args) => compose::run(*args, &cli.global),
        Command::Snapshot(args) => snapshot::run(*args, &cli.global),
        Command::Lockfile(cmd) => snapshot::lockfile_run(cmd),
        Command::Kickstart(cmd) => kickstart::run(cmd, &cli.global),
        Command::Serve(args) => serve::run(args, &cli.global),
        Command::Host(cmd) => deploy::run(cmd, &cli.global),
        Command::Sysctl(cmd) => sysctl::run(cmd, &cli.global),
        Command::Health(cmd) => health::run(cmd, &cli.global),
        Command::Packer(cmd) => packer::run(cmd, &cli.global),
        Command::Image(cmd) => image::run(cmd, &cli.global),
        Command::Install(args) => install::run(*args, &cli.global),
        Command::Agent(args) => agent::run(args),
        Command::Fleetlock(cmd) => fleet::run(cmd, &cli.global),
        Command::Container(cmd) => container::run(cmd),
    }
}
