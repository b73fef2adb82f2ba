//! `${var}` substitution in the fields rpm-ostree substitutes.
//!
//! Unlike rpm-ostree (which leaves an unknown `${x}` in place), an undefined variable is an error:
//! a ref such as `os/${strem}/x86_64` would otherwise be committed and pulled by hosts for years.
//! `<date:...>` in `automatic-version-prefix` is not a variable; compose expands it at commit time.

use indexmap::IndexMap;

use super::cond::VarValue;

#[derive(Debug, PartialEq)]
pub(crate) enum SubstError {
    Undefined(String),
    Unterminated,
}

/// Replaces every `${name}` in `s`. A `$` not followed by `{` is kept as is.
pub(crate) fn substitute(s: &str, vars: &IndexMap<String, VarValue>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or(SubstError::Unterminated)?;
        let name = &after[..end];
        match vars.get(name) {
            Some(v) => out.push_str(&v.to_string()),
            None => return Err(SubstError::Undefined(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_keeps_dates() {
        let mut v = IndexMap::new();
        v.insert("releasever".to_string(), VarValue::Number(40));
        v.insert("basearch".to_string(), VarValue::String("x86_64".into()));
        assert_eq!(
            substitute("${releasever}.<date:%Y%m%d>.dev", &v).unwrap(),
            "40.<date:%Y%m%d>.dev"
        );
        assert_eq!(substitute("a/${basearch}/$x", &v).unwrap(), "a/x86_64/$x");
        assert_eq!(
            substitute("${stream}", &v),
            Err(SubstError::Undefined("stream".into()))
        );
        assert_eq!(substitute("${oops", &v), Err(SubstError::Unterminated));
    }
}
