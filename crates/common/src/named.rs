//! Closed sets of names (image formats, repository modes, compose backends, boot protocols):
//! one trait, so the command line, files and JSON all accept and print the same spellings.

/// An enum whose every value has one lowercase name.
pub trait Named: Sized + Copy + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];

    fn name(self) -> &'static str;

    /// Other accepted spellings (legacy names), never printed.
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name() == s || v.aliases().contains(&s))
    }

    /// The names, for error messages: `a, b or c`.
    fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            Some((last, _)) => (*last).to_owned(),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Named;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Abc {
        A,
        B,
        C,
    }

    impl Named for Abc {
        const ALL: &'static [Self] = &[Abc::A, Abc::B, Abc::C];
        fn name(self) -> &'static str {
            match self {
                Abc::A => "a",
                Abc::B => "b",
                Abc::C => "c",
            }
        }
    }

    #[test]
    fn round_trips_and_lists() {
        for v in Abc::ALL {
            assert_eq!(Abc::from_name(v.name()), Some(*v));
        }
        assert_eq!(Abc::from_name("d"), None);
        assert_eq!(Abc::names(), "a, b or c");
    }
}
