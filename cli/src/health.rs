//! `cairn health check`: the boot-side command of health-checked automatic rollback.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;

use super::deploy::HostArgs;
use crate::args::Json;
use crate::output::{err, out, print_doc};
use crate::{Global, Status};
use cairn_ostree::deploy::{self, HealthOptions};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the health checks for this boot; after N failed boots, roll back automatically.
    #[command(
        after_help = "Runs every executable in CONFIG/required.d and CONFIG/wanted.d (name order).\n\
        A required failure counts one failed boot for the booting deployment; after\n\
        --max-attempts failed boots the previous deployment becomes the default (reboot into it)\n\
        and the event is recorded (`cairn status` shows it). A pass resets the counter. Wanted\n\
        failures only warn. On a sysroot that is not booted, the default deployment is the one\n\
        booting. Run it once per boot, e.g. from a systemd unit after multi-user.target.\n\n\
        Exit status: 0 healthy, 1 a required check failed (or an error)."
    )]
    Check {
        #[command(flatten)]
        host: HostArgs,
        /// Directory with required.d/ and wanted.d/; default: <booting deployment>/etc/cairn/health.
        #[arg(long, value_name = "DIR")]
        config: Option<PathBuf>,
        /// Failed boots before rolling back.
        #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        max_attempts: u32,
        /// Seconds a check may run before it is killed (and counts as failed).
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        timeout: u64,
        #[command(flatten)]
        out: Json,
    },
}

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Check {
            host,
            config,
            max_attempts,
            timeout,
            out: o,
        } => {
            let opts = HealthOptions {
                config,
                max_attempts,
                timeout: Duration::from_secs(timeout),
            };
            let r = deploy::health_check(&host.host(), &opts)?;
            if o.json {
                print_doc("HealthReport", &r)?;
            } else {
                for c in &r.checks {
                    if !global.quiet || !c.passed {
                        let kind = if c.required { "required" } else { "wanted" };
                        let verdict = if c.passed { "ok" } else { "FAILED" };
                        err!("{kind} {}: {verdict} ({})", c.name, c.detail);
                    }
                }
                if r.passed {
                    out!("healthy: {} (boot counter reset)", r.deployment);
                } else {
                    out!(
                        "unhealthy: {} failed boot {}/{}",
                        r.deployment,
                        r.failed_boots,
                        r.max_attempts
                    );
                }
                if let Some(to) = &r.rolled_back_to {
                    out!("rolled back: {to} is the default again; reboot into it");
                }
            }
            Ok(if r.passed { 0 } else { 1 })
        }
    }
}
