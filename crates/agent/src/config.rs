//! The agent's config file (`/etc/cairn/agent.toml`): parsing, defaults and validation. Every
//! error names the file and the line; unknown keys are refused (a typo must not silently turn a
//! fleetlock node into one that reboots at once).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Weekday;
use serde::Deserialize;
use toml::Spanned;

use crate::window::{self, Periodic, Window, MAX_LENGTH_MINUTES};
use crate::AgentError;

/// Where `cairn agent` reads its config by default.
pub const DEFAULT_PATH: &str = "/etc/cairn/agent.toml";

/// The validated config.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Root of the sysroot the agent updates (`/` on a host).
    pub sysroot: PathBuf,
    pub os: Option<String>,
    /// Time between update checks (and slot/window polls).
    pub interval: Duration,
    /// Up to this much is added at random to each interval.
    pub jitter: Duration,
    pub strategy: Strategy,
    /// FleetLock group.
    pub group: String,
    /// FleetLock node id; `None`: the app-specific hash of /etc/machine-id.
    pub id: Option<String>,
    /// `{node}` in hook commands; `None`: the host name.
    pub node_name: Option<String>,
    pub hooks: Hooks,
    /// argv of the reboot; `None`: `$CAIRN_REBOOT_COMMAND` (through `sh -c`) or `systemctl reboot`.
    pub reboot_command: Option<Vec<String>>,
    pub health: cairn_ostree::deploy::HealthOptions,
}

#[derive(Debug, Clone)]
pub enum Strategy {
    /// Reboot as soon as an update is staged.
    Immediate,
    /// Take a FleetLock slot first (lock server base URLs, tried in order).
    FleetLock { servers: Vec<String> },
    /// Only inside a maintenance window.
    Periodic(Periodic),
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Immediate => "immediate",
            Strategy::FleetLock { .. } => "fleetlock",
            Strategy::Periodic(_) => "periodic",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Hooks {
    /// Run in order before finalizing (after the slot is taken); any failure aborts the reboot.
    pub pre_reboot: Vec<Vec<String>>,
    /// Run in order after a boot whose health check passed.
    pub post_boot: Vec<Vec<String>>,
    pub timeout: Duration,
}

impl AgentConfig {
    /// A config for the one-shot `cairn upgrade --reboot`: no hooks, defaults elsewhere.
    pub fn one_shot(sysroot: PathBuf, os: Option<String>, strategy: Strategy) -> Self {
        AgentConfig {
            sysroot,
            os,
            interval: Duration::from_secs(300),
            jitter: Duration::from_secs(60),
            strategy,
            group: "default".into(),
            id: None,
            node_name: None,
            hooks: Hooks {
                timeout: Duration::from_secs(900),
                ..Hooks::default()
            },
            reboot_command: None,
            health: cairn_ostree::deploy::HealthOptions::default(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AgentError::Io(format!("reading {}", path.display()), e))?;
        parse(&text, path)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    identity: RawIdentity,
    updates: Spanned<RawUpdates>,
    #[serde(default)]
    hooks: RawHooks,
    #[serde(default)]
    reboot: RawReboot,
    #[serde(default)]
    health: RawHealth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    sysroot: Option<PathBuf>,
    os: Option<String>,
    interval_secs: Option<f64>,
    jitter_secs: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    group: Option<String>,
    id: Option<String>,
    node_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StrategyName {
    Immediate,
    Fleetlock,
    Periodic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpdates {
    strategy: Spanned<StrategyName>,
    fleetlock: Option<Spanned<RawFleetLock>>,
    periodic: Option<Spanned<RawPeriodic>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFleetLock {
    servers: Spanned<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeriodic {
    #[serde(default, deserialize_with = "de_tz")]
    time_zone: Option<chrono_tz::Tz>,
    #[serde(default)]
    window: Vec<RawWindow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(deserialize_with = "de_days")]
    days: Vec<Weekday>,
    #[serde(deserialize_with = "de_start")]
    start_time: chrono::NaiveTime,
    length_minutes: Spanned<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    #[serde(default)]
    pre_reboot: Vec<Spanned<Vec<String>>>,
    #[serde(default)]
    post_boot: Vec<Spanned<Vec<String>>>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReboot {
    command: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    config: Option<PathBuf>,
    max_attempts: Option<u32>,
    timeout_secs: Option<u64>,
}

fn de_tz<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<chrono_tz::Tz>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<chrono_tz::Tz>().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "unknown time zone {s:?}: use an IANA name such as \"Europe/Berlin\" or \"UTC\""
        ))
    })
}

fn de_days<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.is_empty() {
        return Err(serde::de::Error::custom("a window needs at least one day"));
    }
    names
        .iter()
        .map(|n| {
            window::parse_day(n).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown day {n:?}: use Mon, Tue, Wed, Thu, Fri, Sat, Sun"
                ))
            })
        })
        .collect()
}

fn de_start<'de, D: serde::Deserializer<'de>>(d: D) -> Result<chrono::NaiveTime, D::Error> {
    let s = String::deserialize(d)?;
    window::parse_start(&s).ok_or_else(|| {
        serde::de::Error::custom(format!("start_time {s:?} is not HH:MM (00:00 to 23:59)"))
    })
}

/// `path:LINE: msg` for a value whose span starts at byte `at`.
fn at_line(text: &str, path: &Path, at: usize, msg: impl std::fmt::Display) -> AgentError {
    let line = text[..at.min(text.len())].matches('\n').count() + 1;
    AgentError::Config(format!("{}:{line}: {msg}", path.display()))
}

fn secs(v: Option<f64>, default: f64) -> Duration {
    Duration::from_secs_f64(v.unwrap_or(default).max(0.0))
}

/// Parses and validates the text of a config file read from `path` (named in errors).
pub fn parse(text: &str, path: &Path) -> Result<AgentConfig, AgentError> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| format!(":{}", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        AgentError::Config(format!("{}{line}: {}", path.display(), e.message()))
    })?;
    let strategy = strategy(&raw.updates, text, path)?;
    let group = raw.identity.group.unwrap_or_else(|| "default".into());
    if !cairn_fleet::valid_group(&group) {
        return Err(AgentError::Config(format!(
            "{}: [identity] group {group:?} must match ^[a-zA-Z0-9.-]+$",
            path.display()
        )));
    }
    let argv = |list: Vec<Spanned<Vec<String>>>| -> Result<Vec<Vec<String>>, AgentError> {
        list.into_iter()
            .map(|c| {
                let at = c.span().start;
                let c = c.into_inner();
                if c.is_empty() || c[0].is_empty() {
                    return Err(at_line(text, path, at, "a command needs a program"));
                }
                Ok(c)
            })
            .collect()
    };
    let reboot_command = match raw.reboot.command {
        Some(c) => Some(argv(vec![c])?.remove(0)),
        None => None,
    };
    let defaults = cairn_ostree::deploy::HealthOptions::default();
    Ok(AgentConfig {
        sysroot: raw.agent.sysroot.unwrap_or_else(|| "/".into()),
        os: raw.agent.os,
        interval: secs(raw.agent.interval_secs, 300.0),
        jitter: secs(raw.agent.jitter_secs, 60.0),
        strategy,
        group,
        id: raw.identity.id,
        node_name: raw.identity.node_name,
        hooks: Hooks {
            pre_reboot: argv(raw.hooks.pre_reboot)?,
            post_boot: argv(raw.hooks.post_boot)?,
            timeout: Duration::from_secs(raw.hooks.timeout_secs.unwrap_or(900)),
        },
        reboot_command,
        health: cairn_ostree::deploy::HealthOptions {
            config: raw.health.config,
            max_attempts: raw
                .health
                .max_attempts
                .unwrap_or(defaults.max_attempts)
                .max(1),
            timeout: raw
                .health
                .timeout_secs
                .map_or(defaults.timeout, Duration::from_secs),
        },
    })
}

/// The one active strategy; the section of another strategy is refused (it would be ignored).
fn strategy(u: &Spanned<RawUpdates>, text: &str, path: &Path) -> Result<Strategy, AgentError> {
    let name = *u.get_ref().strategy.get_ref();
    let at = u.get_ref().strategy.span().start;
    let inactive = |section: &str, span: std::ops::Range<usize>| {
        at_line(
            text,
            path,
            span.start,
            format!("[updates.{section}] is set but the strategy is not {section}; remove it"),
        )
    };
    let raw = u.get_ref();
    match name {
        StrategyName::Fleetlock => {}
        _ if raw.fleetlock.is_some() => {
            return Err(inactive(
                "fleetlock",
                raw.fleetlock.as_ref().unwrap().span(),
            ))
        }
        _ => {}
    }
    match name {
        StrategyName::Periodic => {}
        _ if raw.periodic.is_some() => {
            return Err(inactive("periodic", raw.periodic.as_ref().unwrap().span()))
        }
        _ => {}
    }
    match name {
        StrategyName::Immediate => Ok(Strategy::Immediate),
        StrategyName::Fleetlock => {
            let f = raw.fleetlock.as_ref().ok_or_else(|| {
                at_line(
                    text,
                    path,
                    at,
                    "strategy fleetlock needs [updates.fleetlock] servers",
                )
            })?;
            let servers = f.get_ref().servers.get_ref().clone();
            let bad = servers.iter().find(|s| !s.starts_with("http://"));
            if servers.is_empty() || bad.is_some() {
                return Err(at_line(
                    text,
                    path,
                    f.get_ref().servers.span().start,
                    "servers: one or more http:// lock server base URLs",
                ));
            }
            Ok(Strategy::FleetLock { servers })
        }
        StrategyName::Periodic => periodic(raw, at, text, path).map(Strategy::Periodic),
    }
}

fn periodic(raw: &RawUpdates, at: usize, text: &str, path: &Path) -> Result<Periodic, AgentError> {
    let p = raw.periodic.as_ref().ok_or_else(|| {
        at_line(
            text,
            path,
            at,
            "strategy periodic needs [[updates.periodic.window]]",
        )
    })?;
    let p = p.get_ref();
    if p.window.is_empty() {
        return Err(at_line(
            text,
            path,
            at,
            "strategy periodic needs at least one [[updates.periodic.window]]",
        ));
    }
    let mut windows = Vec::new();
    for w in &p.window {
        let len = *w.length_minutes.get_ref();
        if len == 0 || len > MAX_LENGTH_MINUTES {
            return Err(at_line(
                text,
                path,
                w.length_minutes.span().start,
                format!("length_minutes must be 1 to {MAX_LENGTH_MINUTES}"),
            ));
        }
        windows.push(Window {
            days: w.days.clone(),
            start: w.start_time,
            length: chrono::Duration::minutes(i64::from(len)),
        });
    }
    Ok(Periodic {
        tz: p.time_zone.unwrap_or(chrono_tz::Tz::UTC),
        windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<AgentConfig, String> {
        parse(text, Path::new("/etc/cairn/agent.toml")).map_err(|e| e.to_string())
    }

    const FULL: &str = r#"
[agent]
interval_secs = 120
jitter_secs = 30

[identity]
group = "workers"

[updates]
strategy = "fleetlock"

[updates.fleetlock]
servers = ["http://lock-a:8080", "http://lock-b:8080"]

[hooks]
pre_reboot = [
  ["kubectl", "cordon", "{node}"],
  ["kubectl", "drain", "--ignore-daemonsets", "--delete-emptydir-data", "{node}"],
]
post_boot = [["kubectl", "uncordon", "{node}"]]
"#;

    #[test]
    fn a_full_fleetlock_config() {
        let c = parse_str(FULL).unwrap();
        assert_eq!(c.interval, Duration::from_secs(120));
        assert_eq!(c.group, "workers");
        assert_eq!(c.hooks.pre_reboot.len(), 2);
        assert_eq!(c.hooks.post_boot[0], ["kubectl", "uncordon", "{node}"]);
        match c.strategy {
            Strategy::FleetLock { servers } => assert_eq!(servers.len(), 2),
            s => panic!("{s:?}"),
        }
        assert_eq!(c.sysroot, Path::new("/"));
    }

    #[test]
    fn unknown_keys_are_refused_with_file_and_line() {
        let text = FULL.replace("jitter_secs = 30", "jiter_secs = 30");
        let e = parse_str(&text).unwrap_err();
        assert!(e.starts_with("/etc/cairn/agent.toml:4: "), "{e}");
        assert!(e.contains("jiter_secs"), "{e}");
        let e = parse_str(&FULL.replace("[hooks]", "[hooks]\ndrain = true")).unwrap_err();
        assert!(e.contains(":16: ") && e.contains("drain"), "{e}");
    }

    #[test]
    fn periodic_windows_and_their_errors() {
        let ok = r#"
[updates]
strategy = "periodic"
[updates.periodic]
time_zone = "Europe/Berlin"
[[updates.periodic.window]]
days = ["Sat", "Sun"]
start_time = "23:30"
length_minutes = 90
"#;
        let c = parse_str(ok).unwrap();
        let Strategy::Periodic(p) = c.strategy else {
            panic!()
        };
        assert_eq!(p.tz, chrono_tz::Europe::Berlin);
        assert_eq!(p.windows[0].days, [Weekday::Sat, Weekday::Sun]);
        for (from, to, line, what) in [
            ("\"23:30\"", "\"24:30\"", 8, "HH:MM"),
            ("\"Sun\"", "\"Sunday-ish\"", 7, "unknown day"),
            ("90", "0", 9, "length_minutes"),
            ("Europe/Berlin", "Mars/Olympus", 5, "unknown time zone"),
        ] {
            let e = parse_str(&ok.replace(from, to)).unwrap_err();
            assert!(e.contains(&format!(":{line}: ")) && e.contains(what), "{e}");
        }
    }

    #[test]
    fn exactly_one_strategy_and_its_section() {
        let e = parse_str("[updates]\nstrategy = \"fleetlock\"\n").unwrap_err();
        assert!(e.contains(":2: strategy fleetlock needs"), "{e}");
        let e = parse_str(&FULL.replace("\"fleetlock\"", "\"immediate\"")).unwrap_err();
        assert!(e.contains(":12: [updates.fleetlock] is set"), "{e}");
        let e = parse_str("[updates]\nstrategy = \"sometimes\"\n").unwrap_err();
        assert!(e.contains(":2: ") && e.contains("sometimes"), "{e}");
        let e = parse_str("[agent]\n").unwrap_err();
        assert!(e.contains("updates"), "{e}");
        let c = parse_str("[updates]\nstrategy = \"immediate\"\n").unwrap();
        assert!(matches!(c.strategy, Strategy::Immediate));
        let e = parse_str(&FULL.replace("http://lock-b", "https://lock-b")).unwrap_err();
        assert!(e.contains(":13: servers"), "{e}");
        let e = parse_str(&FULL.replace("\"workers\"", "\"a b\"")).unwrap_err();
        assert!(e.contains("group"), "{e}");
    }
}
