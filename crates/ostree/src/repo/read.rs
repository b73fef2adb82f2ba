//! Reading single files and directory listings out of a commit, without checking it out (the PXE
//! artifacts need a kernel and a few modules from a tree of thousands of files).

use std::io::Read;

use ostree::gio;
use ostree::gio::prelude::*;

use super::{Ctx, Repo, RepoError, NO_CANCEL};

impl Repo {
    fn commit_path(&self, rev: &str, path: &str) -> Result<gio::File, RepoError> {
        let checksum = self.require(rev)?;
        let (root, _) = self
            .inner
            .read_commit(&checksum, NO_CANCEL)
            .ctx(|| format!("reading commit {checksum}"))?;
        Ok(root.resolve_relative_path(path.trim_start_matches('/')))
    }

    /// The names in directory `path` of commit `rev` (symlinks not followed), sorted; `None`
    /// when the commit has no such directory.
    pub fn list_dir(&self, rev: &str, path: &str) -> Result<Option<Vec<String>>, RepoError> {
        let dir = self.commit_path(rev, path)?;
        let kind = dir.query_file_type(gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS, NO_CANCEL);
        if kind != gio::FileType::Directory {
            return Ok(None);
        }
        let entries = dir
            .enumerate_children(
                "standard::name",
                gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
                NO_CANCEL,
            )
            .ctx(|| format!("{rev}: listing {path}"))?;
        let mut names = Vec::new();
        while let Some(info) = entries
            .next_file(NO_CANCEL)
            .ctx(|| format!("{rev}: listing {path}"))?
        {
            names.push(info.name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(Some(names))
    }

    /// The content of regular file `path` in commit `rev`; `None` when there is no such file.
    pub fn read_file(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let file = self.commit_path(rev, path)?;
        let kind = file.query_file_type(gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS, NO_CANCEL);
        if kind != gio::FileType::Regular {
            return Ok(None);
        }
        // GFile::read on an OstreeRepoFile hands back a plain GInputStream, which gio's typed
        // binding rejects; the content object is loaded by checksum instead.
        let Ok(rf) = file.downcast::<ostree::RepoFile>() else {
            return Ok(None);
        };
        rf.ensure_resolved()
            .ctx(|| format!("{rev}: resolving {path}"))?;
        let (stream, _, _) = self
            .inner
            .load_file(&rf.checksum(), NO_CANCEL)
            .ctx(|| format!("{rev}: opening {path}"))?;
        let Some(stream) = stream else {
            return Ok(None);
        };
        let mut data = Vec::new();
        stream
            .into_read()
            .read_to_end(&mut data)
            .map_err(|source| RepoError::Io {
                what: format!("{rev}: reading {path}"),
                source,
            })?;
        Ok(Some(data))
    }
}
