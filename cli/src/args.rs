//! Argument types shared by every command family: one parser for closed name sets, one for
//! `KEY=VALUE` and the one `--json` flag, so every command spells and rejects values the same way.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

use cairn_common::kv::{self, KvError};
use cairn_common::named::Named;

/// A clap value parser for a domain's [`Named`] enum: `--help` lists the names, a wrong one is
/// refused with them.
pub fn named<T: Named + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        T::ALL
            .iter()
            .map(|v| PossibleValue::new(v.name()).aliases(v.aliases())),
    )
    .map(|s| T::from_name(&s).expect("clap accepted only listed names"))
}

/// `KEY=VALUE` (`--add-metadata` and friends); the value may be empty.
pub fn key_value(s: &str) -> Result<(String, String), KvError> {
    kv::split_owned(s, "KEY=VALUE")
}

/// `--json` of every command with a result a script may want. One flag so help says the same
/// thing everywhere; what it prints is `output::print_doc`'s envelope.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Json {
    /// Print the result as one JSON document: `apiVersion`, `kind`, then the result's fields
    /// (docs/json.md).
    #[arg(long)]
    pub json: bool,
}
