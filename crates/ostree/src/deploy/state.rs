//! cairn's own state on the sysroot (`<sysroot>/ostree/cairn/`): the boot counter, the health
//! event log and the deployment staged on a sysroot that is not booted. Small JSON files, replaced
//! atomically so a power cut leaves the old or the new file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{Context, DeployError};

const COUNTER: &str = "boot-counter.json";
const EVENTS: &str = "health-events.json";
const STAGED: &str = "staged.json";
/// Older events are dropped so the log cannot grow without bound on a flapping host.
const MAX_EVENTS: usize = 100;

/// [`cairn_common::fsutil::write_atomic`] with deploy's error.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DeployError> {
    cairn_common::fsutil::write_atomic(path, bytes).ctx(|| format!("writing {}", path.display()))
}

/// Failed boots of one deployment, reset by a passing check or a new deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootCounter {
    /// `<checksum>.<deployserial>` of the deployment being counted.
    pub deployment: String,
    pub osname: String,
    /// Consecutive boots whose required checks failed.
    pub failed_boots: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check: Option<CheckRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    pub time: String,
    pub passed: bool,
    /// Required checks that failed.
    pub failed: Vec<String>,
    /// Wanted checks that failed (warnings only).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Required checks failed on a boot; the counter went up.
    CheckFailed,
    /// The counter reached the limit and the previous deployment became the default.
    RolledBack,
    /// The counter reached the limit but there was nothing to roll back to.
    NoRollbackTarget,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthEvent {
    pub time: String,
    pub kind: EventKind,
    pub osname: String,
    /// `<checksum>.<deployserial>` that failed.
    pub deployment: String,
    pub failed_boots: u32,
    pub failed: Vec<String>,
    /// `<checksum>.<deployserial>` that became the default (for `rolled-back`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
}

/// A deployment written next to the default by `cairn upgrade --stage` on a sysroot that is not
/// booted, waiting for `cairn finalize` (libostree can only stage on a booted host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StagedRecord {
    /// `<checksum>.<deployserial>`.
    pub deployment: String,
    pub osname: String,
    pub time: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File<T> {
    api_version: String,
    #[serde(flatten)]
    body: T,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Events {
    events: Vec<HealthEvent>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, DeployError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<File<T>>(&bytes)
            .map(|f| Some(f.body))
            .map_err(|e| DeployError::State {
                what: format!("reading {}", path.display()),
                why: format!("{e}; delete the file to reset cairn's health state"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
    }
}

fn write_json<T: Serialize>(path: &Path, body: T) -> Result<(), DeployError> {
    let file = File {
        api_version: cairn_common::API_VERSION.to_string(),
        body,
    };
    let mut text = serde_json::to_vec_pretty(&file).expect("state serializes");
    text.push(b'\n');
    write_atomic(path, &text)
}

/// The state files of one sysroot.
#[derive(Debug, Clone)]
pub struct State {
    pub dir: PathBuf,
}

impl State {
    pub fn counter(&self) -> Result<Option<BootCounter>, DeployError> {
        read_json(&self.dir.join(COUNTER))
    }

    pub fn set_counter(&self, c: &BootCounter) -> Result<(), DeployError> {
        write_json(&self.dir.join(COUNTER), c)
    }

    pub fn events(&self) -> Result<Vec<HealthEvent>, DeployError> {
        Ok(read_json::<Events>(&self.dir.join(EVENTS))?
            .unwrap_or_default()
            .events)
    }

    pub fn staged(&self) -> Result<Option<StagedRecord>, DeployError> {
        read_json(&self.dir.join(STAGED))
    }

    /// Records the staged deployment, or forgets it (`None`).
    pub fn set_staged(&self, rec: Option<&StagedRecord>) -> Result<(), DeployError> {
        let path = self.dir.join(STAGED);
        match rec {
            Some(r) => write_json(&path, r),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).ctx(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            },
        }
    }

    pub fn record(&self, event: HealthEvent) -> Result<(), DeployError> {
        let mut events = self.events()?;
        events.push(event);
        let excess = events.len().saturating_sub(MAX_EVENTS);
        events.drain(..excess);
        write_json(&self.dir.join(EVENTS), Events { events })
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
