//! Commit versions from `automatic-version-prefix`, with rpm-ostree's increment rule.
//!
//! rpm-ostree (`_rpmostree_util_next_version`): with no previous version, or one that does not
//! start with the prefix, the version is the prefix itself; if the previous version equals the
//! prefix, it is `PREFIX.1`; if it is `PREFIX.N`, it is `PREFIX.N+1`. `<date:FORMAT>` in the
//! prefix is expanded (strftime, UTC) first, so a new day starts again at the bare prefix.

use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("automatic-version-prefix `{0}`: unterminated `<date:` (expected `<date:FORMAT>`)")]
    Unterminated(String),
    #[error("automatic-version-prefix `{prefix}`: invalid date format `{format}`")]
    BadFormat { prefix: String, format: String },
}

/// Expands every `<date:FORMAT>` in `prefix` at time `now`.
pub fn expand_prefix(prefix: &str, now: DateTime<Utc>) -> Result<String, VersionError> {
    use std::fmt::Write;
    let mut out = String::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("<date:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "<date:".len()..];
        let end = after
            .find('>')
            .ok_or_else(|| VersionError::Unterminated(prefix.to_string()))?;
        let format = &after[..end];
        // chrono reports invalid specifiers through fmt::Error rather than panicking on write!.
        let items: Vec<_> = chrono::format::StrftimeItems::new(format).collect();
        if items
            .iter()
            .any(|i| matches!(i, chrono::format::Item::Error))
        {
            return Err(VersionError::BadFormat {
                prefix: prefix.to_string(),
                format: format.to_string(),
            });
        }
        write!(out, "{}", now.format_with_items(items.into_iter())).map_err(|_| {
            VersionError::BadFormat {
                prefix: prefix.to_string(),
                format: format.to_string(),
            }
        })?;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The next version after `last` for an (already expanded) `prefix`.
pub fn next_version(prefix: &str, last: Option<&str>) -> String {
    let Some(last) = last.filter(|l| l.starts_with(prefix)) else {
        return prefix.to_string();
    };
    if last == prefix {
        return format!("{prefix}.1");
    }
    let Some(suffix) = last[prefix.len()..].strip_prefix('.') else {
        return prefix.to_string();
    };
    // Like strtoull: leading digits count, anything else is 0.
    let digits: String = suffix.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().unwrap_or(0);
    format!("{prefix}.{}", n + 1)
}

/// Expands `prefix` at `now` and increments from `last`.
pub fn compute(
    prefix: &str,
    last: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, VersionError> {
    Ok(next_version(&expand_prefix(prefix, now)?, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn increments_like_rpm_ostree() {
        assert_eq!(next_version("39", None), "39");
        assert_eq!(next_version("39", Some("39")), "39.1");
        assert_eq!(next_version("39", Some("39.1")), "39.2");
        assert_eq!(next_version("39", Some("39.41")), "39.42");
        assert_eq!(next_version("39", Some("38.7")), "39");
        // Same leading characters but not at a dot boundary: a new series.
        assert_eq!(next_version("39", Some("390.1")), "39");
        assert_eq!(next_version("39", Some("39.x")), "39.1");
    }

    #[test]
    fn date_prefix() {
        let now = Utc.with_ymd_and_hms(2026, 3, 7, 12, 0, 0).unwrap();
        assert_eq!(
            expand_prefix("12.<date:%Y%m%d>", now).unwrap(),
            "12.20260307"
        );
        assert_eq!(
            compute("12.<date:%Y%m%d>", Some("12.20260307.3"), now).unwrap(),
            "12.20260307.4"
        );
        assert_eq!(
            compute("12.<date:%Y%m%d>", Some("12.20260306.3"), now).unwrap(),
            "12.20260307"
        );
        assert_eq!(
            expand_prefix("<date:%Y>-<date:%m>", now).unwrap(),
            "2026-03"
        );
        assert!(matches!(
            expand_prefix("1.<date:%Y", now),
            Err(VersionError::Unterminated(_))
        ));
        assert!(matches!(
            expand_prefix("1.<date:%Q>", now),
            Err(VersionError::BadFormat { .. })
        ));
    }
}
