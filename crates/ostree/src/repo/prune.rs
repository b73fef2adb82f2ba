//! `prune --keep N`: per ref, keep the newest N commits of history.

use serde::Serialize;

use super::{Ctx, Repo, RepoError, NO_CANCEL};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneResult {
    pub api_version: &'static str,
    pub objects_total: i32,
    pub objects_pruned: i32,
    pub bytes_freed: u64,
}

impl Repo {
    /// Keeps, for every ref, its commit and the `keep - 1` parents before it, with the objects
    /// they reach; deletes everything else (older history, commits no ref reaches, and static
    /// deltas targeting deleted commits), then regenerates the summary.
    pub fn prune(&self, keep: u32) -> Result<PruneResult, RepoError> {
        if keep == 0 {
            return Err(RepoError::BadInput(
                "--keep must be at least 1 (the commit each ref points at)".into(),
            ));
        }
        let depth = i32::try_from(keep - 1).unwrap_or(i32::MAX);
        let (total, pruned, freed) = self
            .inner
            .prune(ostree::RepoPruneFlags::REFS_ONLY, depth, NO_CANCEL)
            .ctx(|| format!("{}: pruning", self.path.display()))?;
        self.inner
            .prune_static_deltas(None, NO_CANCEL)
            .ctx(|| format!("{}: pruning static deltas", self.path.display()))?;
        self.update_summary()?;
        Ok(PruneResult {
            api_version: cairn_common::API_VERSION,
            objects_total: total,
            objects_pruned: pruned,
            bytes_freed: freed,
        })
    }
}
