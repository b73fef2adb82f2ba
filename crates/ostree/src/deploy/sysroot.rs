//! The one place that opens libostree sysroots: a guard owning a loaded (optionally locked)
//! `ostree::Sysroot`, unlocked on drop, so an early `?` can never leave the lock held.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use cairn_common::notice::{self, Notice};
use ostree::gio;

use super::error::{Context, DeployError};

/// How to open a sysroot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    /// Read only: load, no lock.
    Read,
    /// Take the sysroot lock (waits for another writer, with a notice saying so).
    Lock,
    /// Lock; an empty or missing directory is initialized as a new sysroot first.
    LockCreate,
}

/// A loaded libostree sysroot; locked when opened with [`Open::Lock`]/[`Open::LockCreate`].
pub(crate) struct SysrootGuard {
    pub(super) sysroot: ostree::Sysroot,
    path: PathBuf,
    locked: bool,
}

impl std::fmt::Debug for SysrootGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysrootGuard")
            .field("path", &self.path)
            .field("locked", &self.locked)
            .finish()
    }
}

/// True for `/` (the running host), where libostree must use its own mount namespace to write.
pub(crate) fn is_live(path: &Path) -> bool {
    path == Path::new("/")
}

impl SysrootGuard {
    pub fn open(path: &Path, how: Open) -> Result<SysrootGuard, DeployError> {
        crate::route_library_output();
        let path = &std::path::absolute(path).ctx(|| format!("resolving {}", path.display()))?;
        let has_repo = path.join("ostree/repo").is_dir();
        if !has_repo {
            let empty = match std::fs::read_dir(path) {
                Ok(mut it) => it.next().is_none(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if how != Open::LockCreate {
                        return Err(DeployError::NoSuchDir(path.to_path_buf()));
                    }
                    std::fs::create_dir_all(path).ctx(|| format!("creating {}", path.display()))?;
                    true
                }
                Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
            };
            if !(empty && how == Open::LockCreate) {
                return Err(DeployError::NotASysroot(path.to_path_buf()));
            }
        }
        let sysroot = if is_live(path) {
            ostree::Sysroot::new_default()
        } else {
            ostree::Sysroot::new(Some(&gio::File::for_path(path)))
        };
        if is_live(path) && how != Open::Read {
            sysroot
                .initialize_with_mount_namespace(gio::Cancellable::NONE)
                .ctx(|| "setting up a mount namespace to write /sysroot".into())?;
        }
        if !has_repo {
            // The lock file lives in ostree/, so a new sysroot is laid out before locking.
            sysroot
                .ensure_initialized(gio::Cancellable::NONE)
                .ctx(|| format!("initializing a sysroot in {}", path.display()))?;
        }
        let mut guard = SysrootGuard {
            sysroot,
            path: path.to_path_buf(),
            locked: false,
        };
        if how != Open::Read {
            if !guard
                .sysroot
                .try_lock()
                .ctx(|| format!("locking {}", path.display()))?
            {
                notice::emit(Notice::WaitingForLock {
                    path: path.to_path_buf(),
                });
                guard
                    .sysroot
                    .lock()
                    .ctx(|| format!("locking {}", path.display()))?;
            }
            guard.locked = true;
        }
        guard.reload()?;
        Ok(guard)
    }

    /// Re-reads deployments and boot configuration after a write.
    pub fn reload(&mut self) -> Result<(), DeployError> {
        self.sysroot
            .load(gio::Cancellable::NONE)
            .ctx(|| format!("loading sysroot {}", self.path.display()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Absolute path of a deployment's root directory.
    pub fn deployment_dir(&self, d: &ostree::Deployment) -> PathBuf {
        self.path.join(self.sysroot.deployment_dirpath(d).as_str())
    }

    /// The sysroot's state dir for cairn (boot counter, health events).
    pub fn state_dir(&self) -> PathBuf {
        super::state_dir(&self.path)
    }
}

impl Deref for SysrootGuard {
    type Target = ostree::Sysroot;
    fn deref(&self) -> &ostree::Sysroot {
        &self.sysroot
    }
}

impl Drop for SysrootGuard {
    fn drop(&mut self) {
        if self.locked {
            self.sysroot.unlock();
        }
    }
}
