//! Lockfiles: the resolved package set of a compose, in rpm-ostree's `--ex-lockfile` format,
//! and the checks that make a compose install exactly what a lockfile names.
//!
//! The format is rpm-ostree's (`{"metadata": {"generated": RFC3339}, "packages": {NAME: {"evra":
//! ..., "digest": "sha256:..."}}}`), so `rpm-ostree compose tree --ex-lockfile` takes an RPM
//! lockfile as is. Debian lockfiles have the same shape: `evra` is `VERSION.ARCH` (the
//! architecture never contains a dot) and `digest` the sha256 of the .deb.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One lockfile, as read or written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockfile {
    #[serde(default)]
    pub metadata: LockMetadata,
    pub packages: BTreeMap<String, Locked>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockMetadata {
    /// RFC 3339 UTC; informational only (never part of the input hash).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub generated: Option<String>,
}

/// One locked package: its exact build and the digest of the package file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Locked {
    /// RPM: `[EPOCH:]VERSION-RELEASE.ARCH` (libdnf's evr, epoch 0 omitted); Debian:
    /// `VERSION.ARCH`.
    pub evra: String,
    /// `sha256:HEX` of the package file. rpm-ostree allows it to be absent; then only the
    /// version is checked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub digest: Option<String>,
}

/// One package a compose installed, with the digest of the file it came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Resolved {
    pub name: String,
    pub evra: String,
    /// `sha256:HEX`; None when the package file could not be found (then digests cannot be
    /// checked and the compose fails if a lockfile asks for one).
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockfileError {
    #[error("reading lockfile {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("lockfile {}: not a lockfile ({error}); expected {{\"packages\": {{NAME: {{\"evra\": ..., \"digest\": \"sha256:...\"}}}}}}", path.display())]
    Parse { path: PathBuf, error: String },
    #[error("writing lockfile {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the compose does not match the lockfile ({} problem{}; nothing was committed):\n{}",
        problems.len(), if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Mismatch { problems: Vec<Problem> },
}

/// What differs between a lockfile and what a compose resolved, one package at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The locked version was not installed: the repositories no longer have it.
    Version {
        name: String,
        expected: String,
        found: String,
        /// What the repositories offer for this name, when known.
        available: Vec<String>,
    },
    Digest {
        name: String,
        evra: String,
        expected: String,
        found: String,
    },
    /// `--lockfile-strict`: the resolution needs a package no lockfile names.
    Unlisted { name: String, evra: String },
    /// The package was not installed at all (strict only: a lockfile may name more than needed).
    NoDigest { name: String, evra: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Version {
                name,
                expected,
                found,
                available,
            } => {
                write!(
                    f,
                    "{name}: the lockfile wants {expected}, the compose found {found}"
                )?;
                if !available.is_empty() {
                    write!(
                        f,
                        " (the repositories have: {}; {expected} is gone: update the lockfile with --write-lockfile, or compose from a snapshot that has it)",
                        available.join(", ")
                    )?;
                }
                Ok(())
            }
            Problem::Digest {
                name,
                evra,
                expected,
                found,
            } => write!(
                f,
                "{name} {evra}: digest mismatch: the lockfile says {expected}, the package file is {found}"
            ),
            Problem::Unlisted { name, evra } => write!(
                f,
                "{name} {evra}: needed by the resolution but named in no lockfile (--lockfile-strict)"
            ),
            Problem::NoDigest { name, evra } => write!(
                f,
                "{name} {evra}: the lockfile has a digest but the package file was not found to check it"
            ),
        }
    }
}

/// Reads one lockfile.
pub fn read(path: &Path) -> Result<Lockfile, LockfileError> {
    let text = std::fs::read_to_string(path).map_err(|error| LockfileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text).map_err(|error| LockfileError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// Parses lockfile text; every entry needs `evra`, and digests must be `sha256:` + 64 hex.
pub fn parse(text: &str) -> Result<Lockfile, String> {
    let lf: Lockfile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    for (name, l) in &lf.packages {
        if let Some(d) = &l.digest {
            let hex = d.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "package `{name}`: digest `{d}` is not sha256:<64 hex digits>"
                ));
            }
        }
    }
    Ok(lf)
}

/// Reads several lockfiles; a later file's entry for a name replaces an earlier one's.
pub fn read_merged(paths: &[PathBuf]) -> Result<BTreeMap<String, Locked>, LockfileError> {
    let mut out = BTreeMap::new();
    for p in paths {
        out.extend(read(p)?.packages);
    }
    Ok(out)
}

/// The lockfile of a resolution, generated at `generated`.
pub fn from_resolution(
    resolved: &[Resolved],
    generated: chrono::DateTime<chrono::Utc>,
) -> Lockfile {
    Lockfile {
        metadata: LockMetadata {
            generated: Some(generated.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        },
        packages: resolved
            .iter()
            .map(|r| {
                (
                    r.name.clone(),
                    Locked {
                        evra: r.evra.clone(),
                        digest: r.digest.clone(),
                    },
                )
            })
            .collect(),
    }
}

/// Writes `lf` to `path` atomically: a reader never sees half a lockfile.
pub fn write(lf: &Lockfile, path: &Path) -> Result<(), LockfileError> {
    let err = |error| LockfileError::Write {
        path: path.to_path_buf(),
        error,
    };
    let mut text = serde_json::to_string_pretty(lf).expect("lockfile serializes");
    text.push('\n');
    cairn_common::fsutil::write_atomic(path, text.as_bytes()).map_err(err)
}

/// Checks a resolution against the merged lockfiles. `available` answers "which builds of this
/// package do the repositories have" for the error message. Every problem is reported, not
/// only the first.
pub fn check(
    resolved: &[Resolved],
    locked: &BTreeMap<String, Locked>,
    strict: bool,
    available: &mut dyn FnMut(&str) -> Vec<String>,
) -> Result<(), LockfileError> {
    let mut problems = Vec::new();
    for r in resolved {
        let Some(l) = locked.get(&r.name) else {
            if strict {
                problems.push(Problem::Unlisted {
                    name: r.name.clone(),
                    evra: r.evra.clone(),
                });
            }
            continue;
        };
        if l.evra != r.evra {
            problems.push(Problem::Version {
                name: r.name.clone(),
                expected: l.evra.clone(),
                found: r.evra.clone(),
                available: available(&r.name),
            });
            continue;
        }
        match (&l.digest, &r.digest) {
            (Some(want), Some(got)) if !want.eq_ignore_ascii_case(got) => {
                problems.push(Problem::Digest {
                    name: r.name.clone(),
                    evra: r.evra.clone(),
                    expected: want.clone(),
                    found: got.clone(),
                })
            }
            (Some(_), None) => problems.push(Problem::NoDigest {
                name: r.name.clone(),
                evra: r.evra.clone(),
            }),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LockfileError::Mismatch { problems })
    }
}

/// What changed between two lockfiles (`cairn lockfile diff`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockDiff {
    pub added: Vec<DiffEntry>,
    pub removed: Vec<DiffEntry>,
    /// Same name, another build (or the same build with another digest: a rebuilt package).
    pub changed: Vec<DiffChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    pub name: String,
    pub evra: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffChange {
    pub name: String,
    pub from: String,
    pub to: String,
    /// The build is the same but its file is not (a rebuilt or tampered package).
    pub digest_only: bool,
}

impl LockDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Packages added, removed and changed from `a` to `b`, by name.
pub fn diff(a: &Lockfile, b: &Lockfile) -> LockDiff {
    let mut d = LockDiff::default();
    for (name, la) in &a.packages {
        match b.packages.get(name) {
            None => d.removed.push(DiffEntry {
                name: name.clone(),
                evra: la.evra.clone(),
            }),
            Some(lb) if lb.evra != la.evra || lb.digest != la.digest => {
                d.changed.push(DiffChange {
                    name: name.clone(),
                    from: la.evra.clone(),
                    to: lb.evra.clone(),
                    digest_only: lb.evra == la.evra,
                })
            }
            Some(_) => {}
        }
    }
    for (name, lb) in &b.packages {
        if !a.packages.contains_key(name) {
            d.added.push(DiffEntry {
                name: name.clone(),
                evra: lb.evra.clone(),
            });
        }
    }
    d
}

/// The package set of merged lockfiles as one canonical text, for the input hash: the
/// `generated` time is left out, so regenerating an identical lockfile changes nothing.
pub fn canonical(locked: &BTreeMap<String, Locked>) -> String {
    locked
        .iter()
        .map(|(n, l)| format!("{n} {} {}", l.evra, l.digest.as_deref().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lf(entries: &[(&str, &str, char)]) -> Lockfile {
        Lockfile {
            metadata: LockMetadata::default(),
            packages: entries
                .iter()
                .map(|(n, e, d)| {
                    (
                        n.to_string(),
                        Locked {
                            evra: e.to_string(),
                            digest: Some(format!("sha256:{}", d.to_string().repeat(64))),
                        },
                    )
                })
                .collect(),
        }
    }

    fn resolved(l: &Lockfile) -> Vec<Resolved> {
        l.packages
            .iter()
            .map(|(n, l)| Resolved {
                name: n.clone(),
                evra: l.evra.clone(),
                digest: l.digest.clone(),
            })
            .collect()
    }

    #[test]
    fn rpm_ostree_shape_round_trips() {
        let text = r#"{"metadata":{"generated":"2024-01-02T03:04:05Z","rpmmd_repos":{"fedora":{"generated":"2024-01-01T00:00:00Z"}}},
            "packages":{"bash":{"evra":"5.2.26-3.fc40.x86_64","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},
                        "shadow-utils":{"evra":"2:4.15.1-3.fc40.x86_64"}}}"#;
        let l = parse(text).unwrap();
        assert_eq!(l.packages["shadow-utils"].evra, "2:4.15.1-3.fc40.x86_64");
        assert!(l.packages["shadow-utils"].digest.is_none());
        let back: serde_json::Value = serde_json::to_value(&l).unwrap();
        assert_eq!(back["packages"]["bash"]["evra"], "5.2.26-3.fc40.x86_64");
        assert!(
            parse(r#"{"packages":{"a":{"evra":"1.noarch","digest":"md5:x"}}}"#)
                .unwrap_err()
                .contains("`a`")
        );
        assert!(parse(r#"{"metadata":{}}"#).is_err());
    }

    #[test]
    fn check_reports_every_problem() {
        let lock = lf(&[
            ("a", "1.all", 'a'),
            ("b", "2.all", 'b'),
            ("c", "3.all", 'c'),
        ]);
        let mut got = resolved(&lock);
        assert!(check(&got, &lock.packages, true, &mut |_| vec![]).is_ok());
        got[0].digest = Some(format!("sha256:{}", "f".repeat(64)));
        got[1].evra = "2.1.all".into();
        got.push(Resolved {
            name: "extra".into(),
            evra: "9.all".into(),
            digest: None,
        });
        // Not strict: an unlisted package is fine.
        let e = check(&got, &lock.packages, false, &mut |_| vec!["2.1.all".into()]).unwrap_err();
        let LockfileError::Mismatch { problems } = &e else {
            panic!()
        };
        assert_eq!(problems.len(), 2);
        let text = e.to_string();
        assert!(
            text.contains("a 1.all: digest mismatch: the lockfile says sha256:aaaa"),
            "{text}"
        );
        assert!(text.contains("b: the lockfile wants 2.all, the compose found 2.1.all (the repositories have: 2.1.all"), "{text}");
        let e = check(&got, &lock.packages, true, &mut |_| vec![]).unwrap_err();
        assert!(e
            .to_string()
            .contains("extra 9.all: needed by the resolution but named in no lockfile"));
    }

    #[test]
    fn later_lockfiles_override_and_diff() {
        let d = tempfile::tempdir().unwrap();
        let a = lf(&[
            ("a", "1.all", 'a'),
            ("b", "2.all", 'b'),
            ("gone", "1.all", 'c'),
        ]);
        let b = lf(&[
            ("a", "1.all", 'a'),
            ("b", "3.all", 'b'),
            ("new", "1.all", 'd'),
        ]);
        write(&a, &d.path().join("a.json")).unwrap();
        write(&b, &d.path().join("b.json")).unwrap();
        let m = read_merged(&[d.path().join("a.json"), d.path().join("b.json")]).unwrap();
        assert_eq!(m["b"].evra, "3.all");
        assert!(m.contains_key("gone") && m.contains_key("new"));
        let df = diff(&a, &b);
        assert_eq!(df.added[0].name, "new");
        assert_eq!(df.removed[0].name, "gone");
        assert_eq!(
            (df.changed[0].from.as_str(), df.changed[0].to.as_str()),
            ("2.all", "3.all")
        );
        assert!(diff(&a, &a).is_empty());
        let e = read(&d.path().join("absent.json")).unwrap_err();
        assert!(e.to_string().contains("absent.json"));
    }
}
