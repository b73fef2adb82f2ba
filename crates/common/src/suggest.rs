//! "Did you mean …?" for every domain that refuses unknown names (treefile keys, inventory keys,
//! sysctl keys, preset names): one distance, one notion of "near enough".

/// Levenshtein distance over chars, case-insensitive, with `_` and `-` counted as the same letter
/// (rpm-ostree's legacy underscore spellings and sysctl's dash/underscore variants are not typos).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| {
        if c == '_' {
            '-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    // One row of the table at a time; `prev` is the row above, `cur` is filled left to right.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        let mut left = i + 1;
        cur.push(left);
        for ((cb, diag), up) in b.iter().zip(&prev).zip(prev.iter().skip(1)) {
            left = (diag + usize::from(ca != cb)).min(up + 1).min(left + 1);
            cur.push(left);
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The nearest candidate, if it is close enough to be a plausible typo of `word`: about one edit
/// per three letters, at least one and at most four.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 4);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `` (did you mean `x`?)`` for a suggestion, nothing without one: the one wording every domain
/// appends to a refused name.
pub fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// [`closest`] worded by [`did_you_mean`].
pub fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(closest(word, candidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_basics() {
        assert_eq!(edit_distance("packages", "packages"), 0);
        assert_eq!(edit_distance("packges", "packages"), 1);
        assert_eq!(edit_distance("ostree_layers", "ostree-layers"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn closest_respects_the_limit() {
        assert_eq!(closest("hostnme", ["hostname", "macs"]), Some("hostname"));
        assert_eq!(closest("zzz", ["hostname"]), None);
        assert_eq!(
            closest("vm.max_map_cont", ["vm.max_map_count", "vm.swappiness"]),
            Some("vm.max_map_count")
        );
    }

    #[test]
    fn hint_is_a_suffix_or_nothing() {
        assert_eq!(
            hint("packges", ["packages", "units"]),
            " (did you mean `packages`?)"
        );
        assert_eq!(hint("zzz", ["packages"]), "");
        assert_eq!(did_you_mean(None), "");
    }
}
