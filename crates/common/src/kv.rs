//! `KEY=VALUE`: what `--var`, `--add-metadata`, `--remote NAME=URL` and friends take. One parser,
//! so every flag accepts and refuses the same spellings with the same message.

/// A `KEY=VALUE` argument without its `=`, or with an empty key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{arg}`: expected {shape}")]
pub struct KvError {
    pub arg: String,
    /// What was expected, e.g. `KEY=VALUE` or `NAME=URL`.
    pub shape: &'static str,
}

/// Splits at the first `=`; the key must not be empty, the value may be.
pub fn split<'a>(arg: &'a str, shape: &'static str) -> Result<(&'a str, &'a str), KvError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k, v)),
        _ => Err(KvError {
            arg: arg.to_owned(),
            shape,
        }),
    }
}

/// [`split`] into owned strings, the form clap value parsers return.
pub fn split_owned(arg: &str, shape: &'static str) -> Result<(String, String), KvError> {
    split(arg, shape).map(|(k, v)| (k.to_owned(), v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_equals() {
        assert_eq!(split("a=b=c", "KEY=VALUE"), Ok(("a", "b=c")));
        assert_eq!(split("a=", "KEY=VALUE"), Ok(("a", "")));
    }

    #[test]
    fn refuses_missing_equals_and_empty_key() {
        for bad in ["a", "=b", ""] {
            let e = split(bad, "NAME=URL").unwrap_err();
            assert_eq!(e.to_string(), format!("`{bad}`: expected NAME=URL"));
        }
    }
}
