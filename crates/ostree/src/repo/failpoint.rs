//! The repo domain's failpoints (mechanism: [`cairn_common::failpoint`]); listed so docs and tests share
//! the names.

/// Inside the commit transaction, after all objects are written and before the ref is set.
pub const COMMIT_BEFORE_REF: &str = "repo-commit-before-ref";
