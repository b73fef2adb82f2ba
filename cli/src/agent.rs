//! `cairn agent` (the long-running update agent) and the one-shots that share its state machine:
//! `cairn upgrade --reboot [--fleetlock URL]` and `cairn finalize --reboot`. Events are printed as
//! one JSON line each on stdout.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::output::{err, out};
use crate::Status;
use cairn_agent::{Agent, AgentConfig, Clock, Event, Outcome, Strategy, SystemClock};

/// Exit statuses of one pass (`agent --once`, `upgrade --reboot`).
pub const EXIT_WAITING: Status = 75;
pub const EXIT_HALTED: Status = 76;
pub const EXIT_NOTHING_NEW: Status = crate::deploy::EXIT_NOTHING_NEW;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Runs until a pass asks for a reboot (then exits 0 as the host goes \
    down). Each boot, it first finishes the reboot it asked for: health check; pass: post-boot \
    hooks and FleetLock steady-state; failure: the automatic rollback, a reboot into it, and the \
    slot is kept (the rollout halts until `cairn fleetlock release`). Then it looks for an update \
    on a cadence with jitter, stages it, and when the strategy allows (immediate, a FleetLock \
    slot, or a maintenance window) runs the pre-reboot hooks, finalizes and reboots.\n\n\
    Prints one JSON event per line on stdout (docs/fleet.md lists them).\n\n\
    Exit status with --once: 0 reboot asked for, 77 nothing new, 75 waiting (for a slot, a \
    window, or a retry after an error), 76 halted (slot kept after a rollback), 1 an error."
)]
pub struct AgentArgs {
    /// Config file (docs/fleet.md).
    #[arg(long, value_name = "FILE", default_value = cairn_agent::config::DEFAULT_PATH)]
    config: PathBuf,
    /// One pass, then exit (for timers, scripts and tests).
    #[arg(long)]
    once: bool,
    /// Pretend the time is TIME (RFC 3339) for the maintenance-window decision and event times:
    /// to try a `periodic` config outside its window.
    #[arg(long, value_name = "TIME")]
    now: Option<DateTime<Utc>>,
}

/// A clock stopped at one instant (waits still take real time).
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

fn print_event(e: &Event) {
    if let Ok(line) = serde_json::to_string(e) {
        out!("{line}");
    }
}

/// The FleetLock id: configured, else from /etc/machine-id (required for fleetlock only; the
/// other strategies name the node by its host name in events).
fn node_id(cfg: &AgentConfig, name: &str) -> anyhow::Result<String> {
    if let Some(id) = &cfg.id {
        return Ok(id.clone());
    }
    match (cairn_fleet::node_id(), &cfg.strategy) {
        (Ok(id), _) => Ok(id),
        (Err(e), Strategy::FleetLock { .. }) => Err(e.into()),
        (Err(_), _) => Ok(name.to_string()),
    }
}

/// Runs the agent over `cfg` (long-running, or one pass) and maps the last outcome to a status.
pub fn run_config(
    cfg: &AgentConfig,
    once: bool,
    now: Option<DateTime<Utc>>,
) -> anyhow::Result<Status> {
    let name = cfg.node_name.clone().unwrap_or_else(cairn_agent::hostname);
    let node_id = node_id(cfg, &name)?;
    let argv = cairn_agent::reboot_command(cfg.reboot_command.as_deref());
    let reboot = |to: &str| cairn_agent::reboot(&argv, to);
    let fixed = now.map(FixedClock);
    let clock: &dyn Clock = match &fixed {
        Some(f) => f,
        None => &SystemClock,
    };
    let agent = Agent {
        config: cfg,
        clock,
        reboot: &reboot,
        emit: &print_event,
        boot_id: cairn_agent::boot_id(&cfg.sysroot),
        node_id,
        node_name: name,
    };
    Ok(match cairn_agent::run(&agent, once) {
        Outcome::Rebooting => 0,
        Outcome::UpToDate => EXIT_NOTHING_NEW,
        Outcome::Waiting => EXIT_WAITING,
        Outcome::Halted => EXIT_HALTED,
    })
}

pub fn run(a: AgentArgs) -> anyhow::Result<Status> {
    let cfg = AgentConfig::load(&a.config)?;
    run_config(&cfg, a.once, a.now)
}

/// `cairn finalize --reboot`: the reboot after a finalize, through the agent's reboot command.
pub fn reboot_now(to: &str) -> anyhow::Result<()> {
    let argv = cairn_agent::reboot_command(None);
    err!("rebooting: {}", argv.join(" "));
    cairn_agent::reboot(&argv, to)?;
    Ok(())
}
