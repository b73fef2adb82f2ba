//! Commit-to-commit diff by walking dirtree objects: unchanged subtrees (same checksum) are
//! skipped without being read, so a diff costs what changed, not the tree size.

use std::collections::BTreeMap;

use serde::Serialize;

use ostree::glib::Variant;

use super::packages::{self, PackageDiff, PACKAGES_KEY};
use super::{variant, Ctx, Repo, RepoError};

/// Paths relative to the tree root, with a leading `/`; directories end in `/`. An added or
/// removed directory is listed once (not each file under it), like `ostree diff`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Content or metadata (mode, owner, xattrs) changed; a directory here changed its own
    /// metadata.
    pub modified: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeDiff {
    pub api_version: &'static str,
    pub from: String,
    pub to: String,
    pub files: FileDiff,
    /// Present when both commits carry a `cairn.packages` manifest.
    pub packages: Option<PackageDiff>,
}

struct Dir {
    files: BTreeMap<String, String>,
    dirs: BTreeMap<String, (String, String)>,
}

impl Repo {
    /// Files (and packages, when both commits have manifests) changed from `a` to `b`.
    pub fn diff(&self, a: &str, b: &str) -> Result<TreeDiff, RepoError> {
        let ca = self.require(a)?;
        let cb = self.require(b)?;
        let ta = self.root_tree(&ca)?;
        let tb = self.root_tree(&cb)?;
        let mut files = FileDiff::default();
        if ta.1 != tb.1 {
            files.modified.push("/".into());
        }
        if ta.0 != tb.0 {
            self.walk("/", &ta.0, &tb.0, &mut files)?;
        }
        files.added.sort();
        files.removed.sort();
        files.modified.sort();
        let packages = match (self.packages(&ca)?, self.packages(&cb)?) {
            (Some(pa), Some(pb)) => Some(packages::diff_packages(&pa, &pb)),
            _ => None,
        };
        Ok(TreeDiff {
            api_version: cairn_common::API_VERSION,
            from: ca,
            to: cb,
            files,
            packages,
        })
    }

    /// The package manifest of a commit, if it has one.
    pub fn packages(&self, rev: &str) -> Result<Option<Vec<packages::Package>>, RepoError> {
        let checksum = self.require(rev)?;
        let (commit, _) = self
            .inner
            .load_commit(&checksum)
            .ctx(|| format!("loading commit {checksum}"))?;
        let Some(text) = variant::lookup_str(&commit.child_value(0), PACKAGES_KEY) else {
            return Ok(None);
        };
        packages::parse_packages(&text)
            .map(Some)
            .map_err(|reason| RepoError::BadPackages { checksum, reason })
    }

    fn load_dir(&self, checksum: &str) -> Result<Dir, RepoError> {
        let v = self
            .inner
            .load_variant(ostree::ObjectType::DirTree, checksum)
            .ctx(|| format!("loading dirtree {checksum}"))?;
        let csum = |v: Variant| ostree::checksum_from_bytes_v(&v).to_string();
        let name = |v: &Variant| v.child_value(0).str().unwrap_or_default().to_string();
        Ok(Dir {
            files: v
                .child_value(0)
                .iter()
                .map(|f| (name(&f), csum(f.child_value(1))))
                .collect(),
            dirs: v
                .child_value(1)
                .iter()
                .map(|d| (name(&d), (csum(d.child_value(1)), csum(d.child_value(2)))))
                .collect(),
        })
    }

    fn walk(&self, prefix: &str, a: &str, b: &str, out: &mut FileDiff) -> Result<(), RepoError> {
        let (da, db) = (self.load_dir(a)?, self.load_dir(b)?);
        for (name, ca) in &da.files {
            match db.files.get(name) {
                None => out.removed.push(format!("{prefix}{name}")),
                Some(cb) if cb != ca => out.modified.push(format!("{prefix}{name}")),
                Some(_) => {}
            }
        }
        for name in db.files.keys().filter(|n| !da.files.contains_key(*n)) {
            out.added.push(format!("{prefix}{name}"));
        }
        for (name, (ta, ma)) in &da.dirs {
            let path = format!("{prefix}{name}/");
            match db.dirs.get(name) {
                None => out.removed.push(path),
                Some((tb, mb)) => {
                    if ma != mb {
                        out.modified.push(path.clone());
                    }
                    if ta != tb {
                        self.walk(&path, ta, tb, out)?;
                    }
                }
            }
        }
        for name in db.dirs.keys().filter(|n| !da.dirs.contains_key(*n)) {
            out.added.push(format!("{prefix}{name}/"));
        }
        Ok(())
    }
}
