//! The agent's state machine. One [`Agent::step`] is one pass: finish the reboot it asked for in
//! an earlier boot (health check, hooks, slot), then look for an update, stage it, and reboot
//! when the strategy allows. The clock, the reboot and the event sink are injected, so windows
//! can be tested at any hour and tests can "reboot" a sysroot in a directory.

use std::time::Duration;

use cairn_fleet::Client;
use cairn_ostree::deploy::{self, Host, UpgradeOptions, UpgradeOutcome};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::{AgentConfig, Strategy};
use crate::hooks::run_hook;
use crate::state::{AgentState, Phase};
use crate::AgentError;

/// Where the agent gets the time and how it waits.
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// One line of the agent's event stream.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// RFC 3339 with microseconds, from the agent's clock.
    pub time: String,
    /// The FleetLock id (or the node name when the strategy is not fleetlock).
    pub node: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    Started {
        strategy: String,
        sysroot: String,
    },
    /// The boot after a reboot the agent asked for: what booted, what was expected.
    Booted {
        deployment: String,
        expected: String,
    },
    #[serde(rename_all = "camelCase")]
    HealthChecked {
        deployment: String,
        passed: bool,
        failed_boots: u32,
        rolled_back_to: Option<String>,
    },
    Hook {
        phase: String,
        command: String,
        ok: bool,
        error: Option<String>,
    },
    /// FleetLock `pre-reboot` succeeded: this node holds a slot.
    SlotTaken,
    /// FleetLock `steady-state` succeeded; `requested` is when it was sent (the slot was held
    /// at least until then: what a check of the slot count must use).
    SlotReleased {
        requested: String,
    },
    /// After a rollback the slot is kept: the rollout halts until an operator releases it.
    SlotKept {
        bad: String,
    },
    UpToDate {
        checksum: String,
    },
    /// The ref's newest commit failed here before; waiting for a newer one.
    SkippedBad {
        checksum: String,
    },
    Staged {
        checksum: String,
        deployment: String,
    },
    #[serde(rename_all = "camelCase")]
    WaitingForWindow {
        next_open: Option<String>,
    },
    WaitingForSlot {
        reason: String,
    },
    Finalized {
        from: String,
        to: String,
    },
    Rebooting {
        to: String,
    },
    Error {
        during: String,
        error: String,
    },
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The reboot was asked for: the process should end (the host goes down).
    Rebooting,
    /// Nothing new.
    UpToDate,
    /// An update is staged and waits for a slot, a window, or a retry after an error.
    Waiting,
    /// This node holds its slot after a rollback and has nothing newer to try.
    Halted,
}

/// One node's agent: its config, identity and injected effects.
pub struct Agent<'a> {
    pub config: &'a AgentConfig,
    pub clock: &'a dyn Clock,
    /// Asks for the reboot into the given checksum (see `hooks::reboot`).
    pub reboot: &'a dyn Fn(&str) -> Result<(), AgentError>,
    pub emit: &'a dyn Fn(&Event),
    /// This boot's id (see `state::boot_id`).
    pub boot_id: String,
    /// FleetLock id.
    pub node_id: String,
    /// `{node}` in hooks.
    pub node_name: String,
}

/// `<checksum>` of `<checksum>.<serial>`.
fn checksum_of(id: &str) -> String {
    id.split('.').next().unwrap_or(id).to_string()
}

/// The pause before the next pass: the interval plus up to `jitter` (`r` in [0, 1)), so a fleet
/// started together does not poll in lockstep.
pub fn next_delay(interval: Duration, jitter: Duration, r: f64) -> Duration {
    interval + jitter.mul_f64(r.clamp(0.0, 1.0))
}

impl Agent<'_> {
    fn host(&self) -> Host {
        Host {
            sysroot: self.config.sysroot.clone(),
            os: self.config.os.clone(),
        }
    }

    fn time(&self) -> String {
        self.clock
            .now()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    fn say(&self, kind: EventKind) {
        (self.emit)(&Event {
            time: self.time(),
            node: self.node_id.clone(),
            kind,
        });
    }

    fn error(&self, during: &str, e: &dyn std::fmt::Display) {
        self.say(EventKind::Error {
            during: during.into(),
            error: e.to_string(),
        });
    }

    fn client(&self) -> Result<Option<Client>, AgentError> {
        match &self.config.strategy {
            Strategy::FleetLock { servers } => Ok(Some(Client::new(
                servers.clone(),
                &self.node_id,
                &self.config.group,
            )?)),
            _ => Ok(None),
        }
    }

    pub fn started(&self) {
        self.say(EventKind::Started {
            strategy: self.config.strategy.name().into(),
            sysroot: self.config.sysroot.display().to_string(),
        });
    }

    /// One pass (see the module comment).
    pub fn step(&self) -> Result<Outcome, AgentError> {
        let sysroot = &self.config.sysroot;
        let mut st = AgentState::load(sysroot)?;
        if let Phase::Rebooting { boot_id, to, .. } = &st.phase {
            if *boot_id == self.boot_id {
                // Still the boot that asked for the reboot: it did not happen (yet); ask again.
                let to = to.clone();
                return Ok(self.do_reboot(&to));
            }
            if let Some(o) = self.after_boot(&mut st)? {
                return Ok(o);
            }
        }
        if st.release_pending {
            self.release(&mut st)?;
        }
        self.update(&mut st)
    }

    fn do_reboot(&self, to: &str) -> Outcome {
        self.say(EventKind::Rebooting { to: to.into() });
        match (self.reboot)(to) {
            Ok(()) => Outcome::Rebooting,
            Err(e) => {
                self.error("reboot", &e);
                Outcome::Waiting
            }
        }
    }

    fn run_hooks(&self, phase: &str, hooks: &[Vec<String>]) -> bool {
        for h in hooks {
            let r = run_hook(h, &self.node_name, self.config.hooks.timeout);
            self.say(EventKind::Hook {
                phase: phase.into(),
                command: h.join(" "),
                ok: r.is_ok(),
                error: r.as_ref().err().map(|e| e.to_string()),
            });
            if r.is_err() {
                return false;
            }
        }
        true
    }

    /// The first pass after a boot the agent asked for. `Some` when it reboots again (a failed
    /// boot to retry, or the rollback).
    fn after_boot(&self, st: &mut AgentState) -> Result<Option<Outcome>, AgentError> {
        let Phase::Rebooting {
            from,
            to,
            rollback_of,
            ..
        } = st.phase.clone()
        else {
            return Ok(None);
        };
        let fleet = self.client()?.is_some();
        let report = deploy::health_check(&self.host(), &self.config.health)?;
        self.say(EventKind::Booted {
            deployment: report.deployment.clone(),
            expected: to.clone(),
        });
        self.say(EventKind::HealthChecked {
            deployment: report.deployment.clone(),
            passed: report.passed,
            failed_boots: report.failed_boots,
            rolled_back_to: report.rolled_back_to.clone(),
        });
        let booted = checksum_of(&report.deployment);
        let keep_slot = |st: &mut AgentState, bad: String| -> Result<(), AgentError> {
            if !st.bad.contains(&bad) {
                st.bad.push(bad.clone());
            }
            st.phase = Phase::Idle;
            st.slot_kept = fleet;
            st.save(&self.config.sysroot)?;
            self.say(EventKind::SlotKept { bad });
            Ok(())
        };
        if report.passed {
            // Hook failures are reported; the node runs and its slot is still given back.
            self.run_hooks("post-boot", &self.config.hooks.post_boot);
            if booted == to && rollback_of.is_none() {
                st.phase = Phase::Idle;
                st.release_pending = fleet;
                st.slot_kept = false;
                st.save(&self.config.sysroot)?;
            } else {
                // Back on the old deployment after a failed update (or the boot loader chose
                // another one): the update is bad here.
                keep_slot(st, rollback_of.unwrap_or(to))?;
            }
            return Ok(None);
        }
        match (report.rolled_back_to, rollback_of) {
            (Some(prev), None) => {
                st.bad.push(to.clone());
                st.phase = Phase::Rebooting {
                    from: to.clone(),
                    to: checksum_of(&prev),
                    boot_id: self.boot_id.clone(),
                    rollback_of: Some(to),
                };
                st.save(&self.config.sysroot)?;
                let Phase::Rebooting { to, .. } = &st.phase else {
                    unreachable!()
                };
                Ok(Some(self.do_reboot(to)))
            }
            (None, None) => {
                // A failed boot below the limit: boot it again; the next check counts again.
                st.phase = Phase::Rebooting {
                    from,
                    to: to.clone(),
                    boot_id: self.boot_id.clone(),
                    rollback_of: None,
                };
                st.save(&self.config.sysroot)?;
                Ok(Some(self.do_reboot(&to)))
            }
            // The deployment rolled back to fails too: no more reboots from the agent.
            (_, Some(bad)) => {
                keep_slot(st, bad)?;
                Ok(None)
            }
        }
    }

    fn release(&self, st: &mut AgentState) -> Result<(), AgentError> {
        let Some(client) = self.client()? else {
            st.release_pending = false;
            return st.save(&self.config.sysroot);
        };
        let requested = self.time();
        match client.steady_state() {
            Ok(()) => {
                st.release_pending = false;
                st.save(&self.config.sysroot)?;
                self.say(EventKind::SlotReleased { requested });
            }
            // Kept pending: every pass tries again.
            Err(e) => self.error("steady-state", &e),
        }
        Ok(())
    }

    /// The staged update to reboot into, staging the ref's newest commit first if needed;
    /// `Err(outcome)` when there is none.
    fn staged_update(&self, st: &AgentState) -> Result<Result<String, Outcome>, AgentError> {
        let host = self.host();
        let idle = if st.slot_kept {
            Outcome::Halted
        } else {
            Outcome::UpToDate
        };
        if let Some(s) = deploy::status(&host)?.staged {
            if !st.bad.contains(&s.checksum) {
                return Ok(Ok(s.checksum));
            }
        }
        if let Some(image) = deploy::tracked_image(&host)? {
            self.pull_image(&host, &image, st)?;
        }
        let check = UpgradeOptions {
            check: true,
            ..Default::default()
        };
        match deploy::upgrade(&host, check)? {
            UpgradeOutcome::NoUpdate { checksum } => {
                self.say(EventKind::UpToDate { checksum });
                return Ok(Err(idle));
            }
            UpgradeOutcome::Available { to, .. } if st.bad.contains(&to) => {
                self.say(EventKind::SkippedBad { checksum: to });
                return Ok(Err(idle));
            }
            _ => {}
        }
        let stage = UpgradeOptions {
            stage: true,
            ..Default::default()
        };
        match deploy::upgrade(&host, stage)? {
            UpgradeOutcome::Deployed { to, deployment, .. }
            | UpgradeOutcome::AlreadyStaged {
                checksum: to,
                deployment,
                ..
            } => {
                self.say(EventKind::Staged {
                    checksum: to.clone(),
                    deployment,
                });
                Ok(Ok(to))
            }
            _ => Ok(Err(idle)),
        }
    }

    /// A host following a container image: pull the tag's commit into the sysroot repository
    /// (only its changed layers), unless it is one the host already has or a known bad one;
    /// the ref check that follows then sees it like any new commit.
    fn pull_image(&self, host: &Host, image: &str, st: &AgentState) -> Result<(), AgentError> {
        let image: cairn_container::OstreeImageRef = image.parse()?;
        let newest = cairn_container::host::remote_commit(&image)?.commit;
        let have = deploy::status(host)?
            .deployments
            .iter()
            .any(|d| d.checksum == newest);
        if !have && !st.bad.contains(&newest) {
            cairn_container::host::pull(&host.sysroot, &image)?;
        }
        Ok(())
    }

    /// Look for an update; when one is staged and the strategy allows, drain, finalize, reboot.
    fn update(&self, st: &mut AgentState) -> Result<Outcome, AgentError> {
        let to = match self.staged_update(st)? {
            Ok(to) => to,
            Err(outcome) => return Ok(outcome),
        };
        let client = self.client()?;
        match (&self.config.strategy, &client) {
            (Strategy::Periodic(p), _) => {
                let now = self.clock.now();
                if !p.contains(now) {
                    self.say(EventKind::WaitingForWindow {
                        next_open: p
                            .next_open(now)
                            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                    });
                    return Ok(Outcome::Waiting);
                }
            }
            (Strategy::FleetLock { .. }, Some(c)) => match c.pre_reboot() {
                Ok(()) => self.say(EventKind::SlotTaken),
                Err(e) => {
                    self.say(EventKind::WaitingForSlot {
                        reason: e.to_string(),
                    });
                    return Ok(Outcome::Waiting);
                }
            },
            _ => {}
        }
        // Without a reboot the slot goes back (unless it is kept after a rollback).
        let abandon = |st: &mut AgentState| -> Result<Outcome, AgentError> {
            if client.is_some() && !st.slot_kept {
                st.release_pending = true;
                self.release(st)?;
            }
            Ok(Outcome::Waiting)
        };
        if !self.run_hooks("pre-reboot", &self.config.hooks.pre_reboot) {
            return abandon(st);
        }
        let fin = match deploy::finalize(&self.host()) {
            Ok(f) => f,
            Err(e) => {
                self.error("finalize", &e);
                return abandon(st);
            }
        };
        st.phase = Phase::Rebooting {
            from: checksum_of(&fin.from),
            to: to.clone(),
            boot_id: self.boot_id.clone(),
            rollback_of: None,
        };
        st.save(&self.config.sysroot)?;
        self.say(EventKind::Finalized {
            from: fin.from,
            to: fin.deployment,
        });
        Ok(self.do_reboot(&to))
    }
}

/// The long-running agent: a pass, then a pause of interval plus jitter, until a pass asks for
/// the reboot (returned: the host is going down) or, with `once`, after one pass. Errors of a pass
/// are events; the next pass tries again.
pub fn run(agent: &Agent, once: bool) -> Outcome {
    agent.started();
    loop {
        let outcome = match agent.step() {
            Ok(o) => o,
            Err(e) => {
                agent.error("pass", &e);
                Outcome::Waiting
            }
        };
        if once || outcome == Outcome::Rebooting {
            return outcome;
        }
        let c = agent.config;
        agent
            .clock
            .sleep(next_delay(c.interval, c.jitter, fastrand::f64()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_adds_up_to_its_length() {
        let (i, j) = (Duration::from_secs(300), Duration::from_secs(60));
        assert_eq!(next_delay(i, j, 0.0), i);
        assert_eq!(next_delay(i, j, 0.5), Duration::from_secs(330));
        assert!(next_delay(i, j, 0.999) < Duration::from_secs(360));
        assert_eq!(next_delay(i, j, 7.0), Duration::from_secs(360));
    }

    #[test]
    fn checksums_of_deployment_ids() {
        assert_eq!(checksum_of("abc.0"), "abc");
        assert_eq!(checksum_of("abc"), "abc");
    }
}
