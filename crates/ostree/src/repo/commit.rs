//! `commit_tree`: a directory -> one OSTree commit, atomically, inside a libostree transaction.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ostree::glib::{prelude::*, Variant};
use serde_json::Value;

pub use super::content::CommitProgress;
use super::{content, failpoint, scan, variant, Ctx, Repo, RepoError, NO_CANCEL};

/// Which commit the new one names as its parent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Parent {
    /// The ref's current commit, if the ref exists (history chains on its own).
    #[default]
    Auto,
    /// No parent: a new root of history.
    None,
    /// An explicit commit (checksum or ref), which must exist in the repo.
    Commit(String),
}

impl std::str::FromStr for Parent {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Parent::Auto,
            "none" => Parent::None,
            other => Parent::Commit(other.to_string()),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The ref to point at the new commit (e.g. `exampleos/x86_64/stable`).
    pub refname: String,
    pub subject: Option<String>,
    /// Stored as the standard `version` metadata key (what `ostree admin status` shows).
    pub version: Option<String>,
    /// Extra metadata: strings -> `s`, integers -> `t`/`x`, bools -> `b`, arrays/objects ->
    /// JSON text in an `s`.
    pub metadata: Vec<(String, Value)>,
    pub parent: Parent,
    /// Commit time (seconds since the epoch); else `SOURCE_DATE_EPOCH`, else now.
    pub timestamp: Option<u64>,
    /// GPG key id to sign with (libostree's gpgme signer).
    pub gpg_key: Option<String>,
    /// GnuPG home holding the secret key; default `$GNUPGHOME` / `~/.gnupg`.
    pub gpg_homedir: Option<PathBuf>,
    /// Store the tree's real owners and modes (setuid bits, non-root owners) instead of
    /// canonical permissions (uid/gid 0, mode & 0755). Canonical is the default: reproducible
    /// whoever builds, and what `ostree commit --canonical-permissions` writes.
    pub keep_permissions: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitResult {
    pub checksum: String,
    pub refname: String,
    pub parent: Option<String>,
    pub version: Option<String>,
    pub timestamp: u64,
    /// The root tree is identical to the parent's (nothing in the files changed).
    pub content_unchanged: bool,
    /// Regular files and symlinks in the tree.
    pub files: u64,
    /// Content objects the repo did not have yet (0 when recommitting an unchanged tree).
    pub objects_written: u64,
}

/// The commit time: explicit, else `SOURCE_DATE_EPOCH` (reproducible builds), else now.
pub fn resolve_timestamp(explicit: Option<u64>) -> Result<u64, RepoError> {
    if let Some(t) = explicit {
        return Ok(t);
    }
    if let Ok(s) = std::env::var("SOURCE_DATE_EPOCH") {
        let s = s.trim();
        if !s.is_empty() {
            return s.parse::<u64>().map_err(|_| {
                RepoError::BadInput(format!(
                    "SOURCE_DATE_EPOCH=`{s}` is not a number of seconds since 1970-01-01"
                ))
            });
        }
    }
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

impl Repo {
    /// Commits the directory `rootfs` and moves `opts.refname` to it.
    ///
    /// Everything (objects, the commit, its signature, the ref) is written in one libostree
    /// transaction: on any error, or if the process dies, the repo keeps its previous state
    /// (staged objects stay in `tmp/` and are cleaned up by libostree later).
    pub fn commit_tree(
        &self,
        rootfs: &Path,
        opts: &CommitOptions,
    ) -> Result<CommitResult, RepoError> {
        self.commit_tree_with_progress(rootfs, opts, &mut |_| {})
    }

    /// `e` with "committing TREE into REPO" in front, unless it is about the tree's files only.
    fn naming_repo(&self, e: RepoError, rootfs: &Path) -> RepoError {
        let at = format!(
            "committing {} into {}",
            rootfs.display(),
            self.path.display()
        );
        match e {
            RepoError::Ostree { what, source } => RepoError::Ostree {
                what: format!("{at}: {what}"),
                source,
            },
            RepoError::Io { what, source } => RepoError::Io {
                what: format!("{at}: {what}"),
                source,
            },
            other => other,
        }
    }

    /// [`Repo::commit_tree`], reporting files and bytes hashed as it goes (from the calling
    /// thread, about ten times a second, and once at the end).
    pub fn commit_tree_with_progress(
        &self,
        rootfs: &Path,
        opts: &CommitOptions,
        progress: &mut dyn FnMut(&CommitProgress),
    ) -> Result<CommitResult, RepoError> {
        let repo = &self.inner;
        check_rootfs(rootfs)?;
        ostree::validate_rev(&opts.refname).map_err(|e| {
            RepoError::BadInput(format!(
                "`{}`: invalid ref name: {}",
                opts.refname,
                e.message()
            ))
        })?;
        if let Some(key) = &opts.gpg_key {
            super::sign::check_gpg_available(key)?;
        }
        let timestamp = resolve_timestamp(opts.timestamp)?;
        let parent = match &opts.parent {
            Parent::Auto => self.resolve(&opts.refname)?,
            Parent::None => None,
            Parent::Commit(c) => Some(self.require(c)?),
        };
        let metadata = build_metadata(opts)?;

        let canonical = !opts.keep_permissions || repo.mode() == ostree::RepoMode::BareUserOnly;
        let tree = scan::scan(rootfs, canonical)?;

        let txn = repo
            .auto_transaction(NO_CANCEL)
            .ctx(|| format!("{}: starting a transaction", self.path.display()))?;
        // libostree reads no xattrs with canonical permissions or `core.disable-xattrs`.
        let xattrs = content::Xattrs(!canonical && !self.xattrs_disabled());
        // A full disk is the repository's, not the tree's: errors name both.
        let into = |e| self.naming_repo(e, rootfs);
        let written =
            content::write_files(repo, &tree.files, tree.bytes, xattrs, progress).map_err(into)?;
        let mtree = self
            .build_mtree(&tree, &written.checksums, xattrs)
            .map_err(into)?;
        let root = repo
            .write_mtree(&mtree, NO_CANCEL)
            .ctx(|| format!("committing {}: writing the root tree", rootfs.display()))
            .map_err(into)?;
        let root = root
            .downcast::<ostree::RepoFile>()
            .map_err(|_| RepoError::BadInput("libostree returned a non-repo root".into()))?;
        let checksum = repo
            .write_commit_with_time(
                parent.as_deref(),
                opts.subject.as_deref(),
                None,
                Some(&metadata),
                &root,
                timestamp,
                NO_CANCEL,
            )
            .ctx(|| format!("committing {}: writing the commit object", rootfs.display()))
            .map_err(into)?
            .to_string();
        if let Some(key) = &opts.gpg_key {
            super::sign::gpg_sign(self, &checksum, key, opts.gpg_homedir.as_deref())?;
        }
        let content_unchanged = match &parent {
            Some(p) => self.root_tree(p).ok() == Some(root_tree_of(&root)),
            None => false,
        };
        repo.transaction_set_ref(None, &opts.refname, Some(&checksum));
        cairn_common::failpoint::hit(failpoint::COMMIT_BEFORE_REF)?;
        txn.commit(NO_CANCEL)
            .ctx(|| format!("{}: committing the transaction", self.path.display()))?;
        self.publish_summary(opts)?;
        Ok(CommitResult {
            checksum,
            refname: opts.refname.clone(),
            parent,
            version: opts.version.clone(),
            timestamp,
            content_unchanged,
            files: tree.files.len() as u64,
            objects_written: written.objects_written,
        })
    }

    /// A signed commit is published for verifying clients: its summary is signed too, or
    /// remotes with gpg-verify-summary=true could not pull it.
    fn publish_summary(&self, opts: &CommitOptions) -> Result<(), RepoError> {
        match &opts.gpg_key {
            Some(key) => self.update_summary_signed(key, opts.gpg_homedir.as_deref()),
            None => self.update_summary(),
        }
    }

    fn xattrs_disabled(&self) -> bool {
        self.inner
            .config()
            .boolean("core", "disable-xattrs")
            .unwrap_or(false)
    }

    /// The directory structure with every file's checksum; dirmeta objects written here, the
    /// dirtrees by `write_mtree` (libostree's serialisation and sort order).
    fn build_mtree(
        &self,
        tree: &scan::Scan,
        checksums: &[String],
        xattrs: content::Xattrs,
    ) -> Result<ostree::MutableTree, RepoError> {
        let mut metas: HashMap<Vec<u8>, String> = HashMap::new();
        let mut dir_meta = Vec::with_capacity(tree.dirs.len());
        for d in &tree.dirs {
            let rel = d.path.strip_prefix(&tree.dirs[0].path).unwrap_or(&d.path);
            let rel = format!("/{}", rel.display());
            let x = if xattrs.0 {
                content::dir_xattrs(&d.path, &rel)?
            } else {
                content::empty_xattrs()
            };
            let v = content::dirmeta(&d.meta, &x);
            let key = v.data().to_vec();
            if let Some(c) = metas.get(&key) {
                dir_meta.push(c.clone());
                continue;
            }
            let c = self
                .inner
                .write_metadata(ostree::ObjectType::DirMeta, None, &v, NO_CANCEL)
                .ctx(|| format!("{rel}: writing its directory metadata"))?
                .to_string();
            metas.insert(key, c.clone());
            dir_meta.push(c);
        }
        let root = ostree::MutableTree::new();
        fill_mtree(tree, 0, &root, checksums, &dir_meta)?;
        Ok(root)
    }

    /// (dirtree, dirmeta) checksums of a commit's root.
    pub(crate) fn root_tree(&self, checksum: &str) -> Result<(String, String), RepoError> {
        let (commit, _) = self
            .inner
            .load_commit(checksum)
            .ctx(|| format!("loading commit {checksum}"))?;
        Ok((
            ostree::checksum_from_bytes_v(&commit.child_value(6)).to_string(),
            ostree::checksum_from_bytes_v(&commit.child_value(7)).to_string(),
        ))
    }
}

fn root_tree_of(root: &ostree::RepoFile) -> (String, String) {
    (
        root.tree_get_contents_checksum()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        root.tree_get_metadata_checksum()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    )
}

fn fill_mtree(
    tree: &scan::Scan,
    dir: usize,
    mtree: &ostree::MutableTree,
    checksums: &[String],
    dir_meta: &[String],
) -> Result<(), RepoError> {
    let d = &tree.dirs[dir];
    mtree.set_metadata_checksum(&dir_meta[dir]);
    for (name, f) in &d.files {
        mtree
            .replace_file(name, &checksums[*f])
            .ctx(|| format!("{}: adding to the tree", tree.files[*f].rel))?;
    }
    for (name, sub) in &d.dirs {
        let child = mtree
            .ensure_dir(name)
            .ctx(|| format!("{}: adding to the tree", tree.dirs[*sub].path.display()))?;
        fill_mtree(tree, *sub, &child, checksums, dir_meta)?;
    }
    Ok(())
}

/// Paths (relative to `rootfs`, leading `/`) of entries OSTree cannot store.
pub(super) fn find_special_files(rootfs: &Path) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    walkdir::WalkDir::new(rootfs)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let t = e.file_type();
            t.is_block_device() || t.is_char_device() || t.is_fifo() || t.is_socket()
        })
        .map(|e| {
            let rel = e.path().strip_prefix(rootfs).unwrap_or(e.path());
            format!("/{}", rel.display())
        })
        .collect()
}

fn check_rootfs(rootfs: &Path) -> Result<(), RepoError> {
    match std::fs::metadata(rootfs) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(RepoError::RootfsMissing(rootfs.to_path_buf()))
        }
        Err(source) => Err(RepoError::Io {
            what: format!("{}: cannot read rootfs", rootfs.display()),
            source,
        }),
        Ok(m) if !m.is_dir() => Err(RepoError::RootfsNotDir(rootfs.to_path_buf())),
        Ok(_) => Ok(()),
    }
}

fn build_metadata(opts: &CommitOptions) -> Result<Variant, RepoError> {
    let mut entries = BTreeMap::new();
    for (k, v) in &opts.metadata {
        if k.is_empty() {
            return Err(RepoError::BadInput("metadata key must not be empty".into()));
        }
        entries.insert(k.clone(), variant::json_to_variant(v));
    }
    if let Some(version) = &opts.version {
        if let Some(Value::String(other)) = opts
            .metadata
            .iter()
            .find(|(k, _)| k == "version")
            .map(|(_, v)| v)
        {
            if other != version {
                return Err(RepoError::BadInput(format!(
                    "version given twice: --version {version} and metadata version={other}"
                )));
            }
        }
        entries.insert("version".into(), version.to_variant());
    }
    // Like `ostree commit`: bind the commit to its ref so a server cannot replay it under
    // another branch (pull checks this binding).
    entries.insert(
        "ostree.ref-binding".into(),
        vec![opts.refname.clone()].to_variant(),
    );
    Ok(variant::metadata_dict(&entries))
}
