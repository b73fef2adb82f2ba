//! The OSTree repository layer: everything cairn stores goes through libostree here.
//!
//! Other domains hold a [`Repo`] and call typed functions; glib types stay inside this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_common::named::Named;
use ostree::gio;
use ostree::glib;

mod commit;
mod content;
mod delta;
mod diff;
pub mod failpoint;
mod info;
mod objects;
mod packages;
mod prune;
mod read;
mod scan;
mod sign;
mod variant;
mod verify;

pub use commit::{CommitOptions, CommitProgress, CommitResult, Parent};
pub use delta::DeltaInfo;
pub use diff::{FileDiff, TreeDiff};
pub use info::{CommitInfo, LogEntry, Signature};
pub use objects::{ContentKind, ContentMeta, DirMeta, DirTree, MetaKind, ObjectWriter, SubDir};
pub use packages::{diff_packages, parse_packages, Package, PackageChange, PackageDiff};
pub use prune::PruneResult;
pub use sign::{sign_types, SignType};
pub use verify::{VerifyOptions, VerifyReport};

/// On-disk repository modes cairn creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compressed objects, servable over plain HTTP (what build servers publish).
    Archive,
    /// Uncompressed objects with ownership in xattrs; works without root.
    BareUser,
    /// Uncompressed objects with real ownership (needs root); what a host sysroot uses.
    Bare,
}

impl Mode {
    fn to_ostree(self) -> ostree::RepoMode {
        match self {
            Mode::Archive => ostree::RepoMode::Archive,
            Mode::BareUser => ostree::RepoMode::BareUser,
            Mode::Bare => ostree::RepoMode::Bare,
        }
    }
}

/// Names as `ostree init --mode` spells them.
impl Named for Mode {
    const ALL: &'static [Self] = &[Mode::Archive, Mode::BareUser, Mode::Bare];

    fn name(self) -> &'static str {
        match self {
            Mode::Archive => "archive",
            Mode::BareUser => "bare-user",
            Mode::Bare => "bare",
        }
    }

    /// `archive-z2`: ostree's older name for `archive`, still accepted by `ostree init`.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Mode::Archive => &["archive-z2"],
            _ => &[],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}: not an OSTree repository (create one with `cairn repo init {} --mode archive`)", path.display(), path.display())]
    NotARepo {
        path: PathBuf,
        #[source]
        source: crate::LibostreeError,
    },
    #[error("{}: cannot create repository", path.display())]
    Init {
        path: PathBuf,
        #[source]
        source: crate::LibostreeError,
    },
    #[error("{}: rootfs does not exist", .0.display())]
    RootfsMissing(PathBuf),
    #[error("{}: rootfs is not a directory", .0.display())]
    RootfsNotDir(PathBuf),
    #[error("`{rev}`: no such ref or commit in {}", repo.display())]
    UnknownRev { rev: String, repo: PathBuf },
    #[error(
        "{} contains {} special file(s) OSTree cannot store (device nodes, sockets, FIFOs): {}; \
         remove them from the tree (at boot /dev is a devtmpfs, so images never need them)",
        rootfs.display(), paths.len(), paths.join(", ")
    )]
    SpecialFiles { rootfs: PathBuf, paths: Vec<String> },
    #[error("{what}")]
    Ostree {
        what: String,
        #[source]
        source: crate::LibostreeError,
    },
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("commit {checksum}: bad `cairn.packages` metadata: {reason}")]
    BadPackages { checksum: String, reason: String },
    #[error(transparent)]
    Failpoint(#[from] cairn_common::failpoint::Triggered),
}

/// Adds "what we were doing" to libostree errors.
pub(crate) trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, RepoError>;
}

impl<T> Ctx<T> for Result<T, glib::Error> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, RepoError> {
        self.map_err(|e| RepoError::Ostree {
            what: what(),
            source: crate::LibostreeError::from_glib(&e),
        })
    }
}

const NO_CANCEL: Option<&gio::Cancellable> = None;

/// An open OSTree repository.
pub struct Repo {
    inner: ostree::Repo,
    path: PathBuf,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("path", &self.path).finish()
    }
}

impl Repo {
    /// Creates a repository at `path` (the directory may exist and be empty) and opens it.
    pub fn init(path: &Path, mode: Mode) -> Result<Repo, RepoError> {
        if path.join("config").exists() && path.join("objects").is_dir() {
            return Err(RepoError::BadInput(format!(
                "{}: a repository already exists here",
                path.display()
            )));
        }
        std::fs::create_dir_all(path).map_err(|source| RepoError::Io {
            what: format!("{}: cannot create directory", path.display()),
            source,
        })?;
        let repo = ostree::Repo::new_for_path(path);
        repo.create(mode.to_ostree(), NO_CANCEL)
            .map_err(|e| RepoError::Init {
                path: path.to_path_buf(),
                source: crate::LibostreeError::from_glib(&e),
            })?;
        Repo::open(path)
    }

    /// Opens an existing repository.
    pub fn open(path: &Path) -> Result<Repo, RepoError> {
        let repo = ostree::Repo::new_for_path(path);
        crate::route_library_output();
        repo.open(NO_CANCEL).map_err(|e| RepoError::NotARepo {
            path: path.to_path_buf(),
            source: crate::LibostreeError::from_glib(&e),
        })?;
        Ok(Repo {
            inner: repo,
            path: path.to_path_buf(),
        })
    }

    /// The repository's path as given to `open`/`init`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The repository's mode.
    pub fn mode(&self) -> Mode {
        match self.inner.mode() {
            ostree::RepoMode::Archive => Mode::Archive,
            ostree::RepoMode::Bare => Mode::Bare,
            _ => Mode::BareUser,
        }
    }

    /// Resolves a ref name or a (full or unique abbreviated) checksum, with optional `^`
    /// suffixes for parents (`os/stable^^`); `None` when absent.
    pub fn resolve(&self, rev: &str) -> Result<Option<String>, RepoError> {
        // `^` is walked here: libostree 2022.7 dereferences NULL when asked for `REF^` with
        // allow_noent and REF missing.
        let base = rev.trim_end_matches('^');
        let ups = rev.len() - base.len();
        if base.is_empty() {
            return Ok(None);
        }
        let mut cur = match self.inner.resolve_rev(base, true) {
            Ok(found) => found.map(|s| s.to_string()),
            // A malformed rev (e.g. "foo bar") names nothing in the repo.
            Err(_) if ostree::validate_rev(base).is_err() && !crate::is_checksum(base) => None,
            Err(e) => return Err(e).ctx(|| format!("resolving `{rev}`")),
        };
        for _ in 0..ups {
            let Some(c) = cur else { break };
            let commit = self
                .inner
                .load_variant_if_exists(ostree::ObjectType::Commit, &c)
                .ctx(|| format!("loading commit {c}"))?;
            cur = commit.and_then(|v| ostree::commit_get_parent(&v).map(|s| s.to_string()));
        }
        Ok(cur)
    }

    /// Like [`Repo::resolve`] but a missing rev is an error naming it.
    pub fn require(&self, rev: &str) -> Result<String, RepoError> {
        self.resolve(rev)?.ok_or_else(|| RepoError::UnknownRev {
            rev: rev.to_string(),
            repo: self.path.clone(),
        })
    }

    /// Local refs (name -> checksum), sorted by name.
    pub fn refs(&self) -> Result<BTreeMap<String, String>, RepoError> {
        let refs = self
            .inner
            .list_refs(None, NO_CANCEL)
            .ctx(|| format!("{}: listing refs", self.path.display()))?;
        Ok(refs.into_iter().collect())
    }

    /// Regenerates the summary file; needed after every ref change, or `ostree pull` does not
    /// see new refs ("No such branch") and static deltas.
    pub fn update_summary(&self) -> Result<(), RepoError> {
        self.inner
            .regenerate_summary(None, NO_CANCEL)
            .ctx(|| format!("{}: regenerating the summary", self.path.display()))
    }
}
