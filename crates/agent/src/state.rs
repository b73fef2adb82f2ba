//! What the agent must remember across a reboot, in `<sysroot>/ostree/cairn/agent.json`: that it
//! rebooted into an update (and from what, in which boot), which commits failed here, and whether
//! it holds a FleetLock slot. Replaced atomically, like the health state beside it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::AgentError;

const FILE: &str = "agent.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    #[serde(default)]
    pub phase: Phase,
    /// Commits whose boot failed on this node (rolled back): never staged again; a newer commit
    /// on the ref is.
    #[serde(default)]
    pub bad: Vec<String>,
    /// A slot is held after a good boot and must still be given back (the servers were down).
    #[serde(default)]
    pub release_pending: bool,
    /// A slot is held on purpose after a rollback: the rollout stops until an operator runs
    /// `cairn fleetlock release`.
    #[serde(default)]
    pub slot_kept: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum Phase {
    #[default]
    Idle,
    /// The reboot into `to` was asked for in boot `boot_id`; the next boot checks it.
    #[serde(rename_all = "camelCase")]
    Rebooting {
        from: String,
        to: String,
        boot_id: String,
        /// Set when this reboot goes back to `to` after `rollback_of` failed its health check.
        rollback_of: Option<String>,
    },
}

fn path(sysroot: &Path) -> PathBuf {
    cairn_ostree::deploy::state_dir(sysroot).join(FILE)
}

impl AgentState {
    pub fn load(sysroot: &Path) -> Result<Self, AgentError> {
        let p = path(sysroot);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| AgentError::State {
                what: format!("reading {}", p.display()),
                why: format!(
                    "{e}; delete the file to reset the agent (a held slot is then not released)"
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(AgentError::Io(format!("reading {}", p.display()), e)),
        }
    }

    /// Temp file, fsync, rename, fsync of the directory: a power cut leaves the old or the new.
    pub fn save(&self, sysroot: &Path) -> Result<(), AgentError> {
        let p = path(sysroot);
        let mut text = serde_json::to_vec_pretty(self).expect("state serializes");
        text.push(b'\n');
        cairn_common::fsutil::write_atomic(&p, &text)
            .map_err(|e| AgentError::Io(format!("writing {}", p.display()), e))
    }
}

/// This boot's id: the kernel's on a running host (`/`). A sysroot in a directory has no boots,
/// so there every agent process stands for one boot (a fresh id per process): that is how tests
/// and image builds simulate the boot after a reboot.
pub fn boot_id(sysroot: &Path) -> String {
    if sysroot == Path::new("/") {
        if let Ok(id) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
            return id.trim().to_string();
        }
    }
    format!(
        "simulated-{}-{:016x}",
        std::process::id(),
        fastrand::u64(..)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_a_missing_file_is_idle() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(AgentState::load(dir.path()).unwrap(), AgentState::default());
        let st = AgentState {
            phase: Phase::Rebooting {
                from: "a".into(),
                to: "b".into(),
                boot_id: "x".into(),
                rollback_of: None,
            },
            bad: vec!["c".into()],
            release_pending: false,
            slot_kept: true,
        };
        st.save(dir.path()).unwrap();
        assert_eq!(AgentState::load(dir.path()).unwrap(), st);
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.contains("\"name\": \"rebooting\""), "{text}");
    }

    #[test]
    fn simulated_boot_ids_differ_per_call() {
        let p = Path::new("/var/tmp/not-a-live-root");
        assert_ne!(boot_id(p), boot_id(p));
    }
}
