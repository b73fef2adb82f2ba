//! `cairn treefile ...`

use std::path::PathBuf;

use clap::Subcommand;

use super::{Global, Status};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print the flattened, substituted treefile as JSON.
    Render {
        /// The treefile (YAML or JSON).
        file: PathBuf,
    },
}

pub fn run(cmd: Cmd, _global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Render { file } => {
            let src = std::fs::read_to_string(&file)?;
            let node = crate::yaml::parse(&src, &file)?;
            super::print_json(&node.to_json())?;
            Ok(0)
        }
    }
}
