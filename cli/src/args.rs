//! Argument types shared by every command family: one parser for closed name sets and one for
//! `KEY=VALUE`, so every flag spells and rejects values the same way.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

use cairn_common::named::Named;

/// A clap value parser for a domain's [`Named`] enum: `--help` lists the names, a wrong one is
/// refused with them.
pub fn named<T: Named + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::ALL.iter().map(|v| PossibleValue::new(v.name())))
        .map(|s| T::from_name(&s).expect("clap accepted only listed names"))
}
