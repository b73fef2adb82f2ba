//! The one crate that links libostree. `repo` owns OSTree repositories (commit, pull, diff,
//! static deltas, prune, GPG signing); `deploy` owns sysroots (A/B deploy, upgrade, rollback,
//! kernel arguments, pins, health). glib and ostree types stay inside: callers pass paths,
//! refs, checksums and plain data, and libostree's errors come out as [`LibostreeError`].

pub mod deploy;
pub mod repo;

use cairn_common::notice::{self, Notice};
use ostree::glib;

/// An error libostree (or glib under it) reported, as its message: the domain errors carry it as
/// their `source`, so callers see why without depending on glib.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LibostreeError(String);

impl LibostreeError {
    pub(crate) fn from_glib(e: &glib::Error) -> LibostreeError {
        LibostreeError(e.message().to_string())
    }
}

/// True for a full commit checksum as OSTree writes it: 64 lowercase hex digits.
pub(crate) fn is_checksum(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Sends what libostree prints itself (`g_print`: "Freed objects: ..." after a cleanup) to the
/// notice sink instead of glib's default, stdout, where it would corrupt cairn's (possibly JSON)
/// output. Called before every libostree entry point that may print; only the first call acts.
pub(crate) fn route_library_output() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        glib::set_print_handler(|text| {
            for line in text.lines().filter(|l| !l.is_empty()) {
                notice::emit(Notice::Libostree {
                    text: line.to_string(),
                });
            }
        });
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksums_are_64_lowercase_hex_digits() {
        let c = "0123456789abcdef".repeat(4);
        assert!(super::is_checksum(&c));
        assert!(!super::is_checksum(&c.to_uppercase()));
        assert!(!super::is_checksum(&c[1..]));
        assert!(!super::is_checksum(&format!("{}g", &c[1..])));
        assert!(!super::is_checksum("os/x86_64/stable"));
    }
}
