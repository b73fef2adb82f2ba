//! What a finished package phase resolved: every installed package with the digest of the file
//! it came from, and where that file is (for lockfiles and snapshots).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::backend::debindex::{self, Index, Stanza};
use super::lockfile::Resolved;
use super::manifest::Package;
use super::snapshot::sha256_file;

/// One installed package and its source.
#[derive(Debug, Clone)]
pub struct Source {
    pub resolved: Resolved,
    /// Debian: the index stanza apt installed it from.
    pub stanza: Option<Stanza>,
    /// The package file, when it is on this machine (apt's archive cache, a `file://` repo or
    /// snapshot, dnf's cache).
    pub file: Option<PathBuf>,
}

/// A Debian resolution: digests from the indexes apt used (`lists`), files from the archive
/// cache or a local snapshot (`roots`: directories the index's `Filename` is relative to).
pub fn debian(
    installed: &[Package],
    index: &Index,
    archive: &Path,
    roots: &[PathBuf],
) -> Vec<Source> {
    installed
        .iter()
        .map(|p| {
            let stanza = index.get(&p.name, &p.version, &p.arch).cloned();
            let file = stanza.as_ref().and_then(|s| {
                let cached =
                    archive.join(debindex::archive_file_name(&p.name, &p.version, &s.arch));
                std::iter::once(cached)
                    .chain(roots.iter().map(|r| r.join(&s.filename)))
                    .find(|f| f.is_file())
            });
            Source {
                resolved: Resolved {
                    name: p.name.clone(),
                    evra: format!("{}.{}", p.version, p.arch),
                    digest: stanza.as_ref().map(|s| format!("sha256:{}", s.sha256)),
                },
                stanza,
                file,
            }
        })
        .collect()
}

/// An RPM resolution: digests are the sha256 of the package files (what rpm-ostree's
/// lockfiles record: the repodata checksum of the package).
pub fn rpm(installed: &[Package], files: &BTreeMap<String, PathBuf>) -> Vec<Source> {
    installed
        .iter()
        .map(|p| {
            let name = format!(
                "{}-{}-{}.{}.rpm",
                p.name,
                p.version,
                p.release.as_deref().unwrap_or(""),
                p.arch
            );
            let file = files.get(&name).cloned();
            let digest = file
                .as_deref()
                .and_then(|f| sha256_file(f).ok())
                .map(|h| format!("sha256:{h}"));
            Source {
                resolved: Resolved {
                    name: p.name.clone(),
                    evra: format!("{}.{}", p.evr(), p.arch),
                    digest,
                },
                stanza: None,
                file,
            }
        })
        .collect()
}

/// The `name-[epoch:]version-release.arch` dnf spec of a locked RPM.
pub fn rpm_spec(name: &str, evra: &str) -> String {
    format!("{name}-{evra}")
}

/// apt preferences pinning every locked Debian package to its version (priority 1001 wins
/// over any candidate, downgrades included).
pub fn apt_pins(locked: &BTreeMap<String, super::lockfile::Locked>) -> String {
    let mut s = String::from("# cairn: versions from the compose's lockfiles\n");
    for (name, l) in locked {
        let version = l.evra.rsplit_once('.').map(|(v, _)| v).unwrap_or(&l.evra);
        s.push_str(&format!(
            "\nPackage: {name}\nPin: version {version}\nPin-Priority: 1001\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_and_rpm_sources() {
        let d = tempfile::tempdir().unwrap();
        let mut idx = Index::default();
        idx.add("Package: bsdutils\nVersion: 1:2.38.1-5\nArchitecture: amd64\nFilename: pool/main/u/util-linux/bsdutils_2.38.1-5_amd64.deb\nSize: 1\nSHA256: aa\n");
        std::fs::write(d.path().join("bsdutils_1%3a2.38.1-5_amd64.deb"), "x").unwrap();
        let p = Package {
            name: "bsdutils".into(),
            epoch: None,
            version: "1:2.38.1-5".into(),
            release: None,
            arch: "amd64".into(),
        };
        let s = &debian(std::slice::from_ref(&p), &idx, d.path(), &[])[0];
        assert_eq!(s.resolved.evra, "1:2.38.1-5.amd64");
        assert_eq!(s.resolved.digest.as_deref(), Some("sha256:aa"));
        assert!(s.file.is_some());

        std::fs::write(d.path().join("hello-2.0-1.noarch.rpm"), "rpm").unwrap();
        let files = BTreeMap::from([(
            "hello-2.0-1.noarch.rpm".to_string(),
            d.path().join("hello-2.0-1.noarch.rpm"),
        )]);
        let r = Package {
            name: "hello".into(),
            epoch: Some("3".into()),
            version: "2.0".into(),
            release: Some("1".into()),
            arch: "noarch".into(),
        };
        let s = &rpm(&[r], &files)[0];
        assert_eq!(s.resolved.evra, "3:2.0-1.noarch");
        assert_eq!(
            s.resolved.digest.as_deref().unwrap(),
            format!("sha256:{}", crate::snapshot::sha256_hex(b"rpm"))
        );
        let pins = apt_pins(&BTreeMap::from([(
            "bsdutils".to_string(),
            super::super::lockfile::Locked {
                evra: "1:2.38.1-5.amd64".into(),
                digest: None,
            },
        )]));
        assert!(pins.contains("Package: bsdutils\nPin: version 1:2.38.1-5\nPin-Priority: 1001\n"));
    }
}
