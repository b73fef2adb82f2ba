//! apt's package indexes (`Packages` files) as apt used them during an install: which .deb
//! (file, size, sha256) each installed (name, version, architecture) came from.
//!
//! apt refuses a .deb whose hash differs from its index entry, so the index's SHA256 of an
//! installed version is the digest of the file that was installed.

use std::collections::BTreeMap;
use std::path::Path;

use super::BackendError;

/// One `Packages` stanza, kept verbatim (a snapshot's index reuses it as is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Path relative to the mirror root (`pool/main/b/bash/bash_5.2.15-2+b13_amd64.deb`).
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    pub text: String,
}

/// Every stanza of every `*_Packages` file in an apt lists directory.
#[derive(Debug, Default)]
pub struct Index {
    /// (name, version, arch) -> stanza.
    by_build: BTreeMap<(String, String, String), Stanza>,
}

impl Index {
    /// Reads `*_Packages` files (uncompressed, as apt stores them) in `lists`.
    pub fn read(lists: &Path) -> Result<Index, BackendError> {
        let mut idx = Index::default();
        let rd = std::fs::read_dir(lists)
            .map_err(BackendError::io(format!("reading {}", lists.display())))?;
        let mut files: Vec<_> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with("_Packages"))
            })
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(BackendError::io(format!("reading {}", f.display())))?;
            idx.add(&text);
        }
        Ok(idx)
    }

    /// Adds the stanzas of one `Packages` text (the first index to list a build wins, as in apt).
    pub fn add(&mut self, text: &str) {
        for raw in text.split("\n\n") {
            if let Some(s) = parse_stanza(raw) {
                let key = (s.name.clone(), s.version.clone(), s.arch.clone());
                self.by_build.entry(key).or_insert(s);
            }
        }
    }

    pub fn get(&self, name: &str, version: &str, arch: &str) -> Option<&Stanza> {
        self.by_build
            .get(&(name.to_string(), version.to_string(), arch.to_string()))
            // `Architecture: all` packages are installed under the host's arch name by nothing,
            // but dpkg records `all`; try both.
            .or_else(|| {
                self.by_build
                    .get(&(name.to_string(), version.to_string(), "all".to_string()))
            })
    }

    /// Every build of `name` the indexes list, as `VERSION.ARCH`.
    pub fn builds_of(&self, name: &str) -> Vec<String> {
        self.by_build
            .range((name.to_string(), String::new(), String::new())..)
            .take_while(|((n, _, _), _)| n == name)
            .map(|((_, v, a), _)| format!("{v}.{a}"))
            .collect()
    }
}

fn parse_stanza(raw: &str) -> Option<Stanza> {
    let raw = raw.trim_matches('\n');
    let mut f: BTreeMap<&str, &str> = BTreeMap::new();
    for line in raw.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            f.entry(k).or_insert(v.trim());
        }
    }
    Some(Stanza {
        name: f.get("Package")?.to_string(),
        version: f.get("Version")?.to_string(),
        arch: f.get("Architecture")?.to_string(),
        filename: f.get("Filename")?.to_string(),
        sha256: f.get("SHA256")?.to_lowercase(),
        size: f.get("Size")?.parse().ok()?,
        text: format!("{raw}\n"),
    })
}

/// The file name apt gives a downloaded .deb in its archive cache (`:` in epochs as `%3a`).
pub fn archive_file_name(name: &str, version: &str, arch: &str) -> String {
    format!("{name}_{}_{arch}.deb", version.replace(':', "%3a"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKGS: &str = "Package: bash\nVersion: 5.2.15-2+b2\nInstalled-Size: 7000\nArchitecture: amd64\nDescription: shell\n multi-line\nFilename: pool/main/b/bash/bash_5.2.15-2+b2_amd64.deb\nSize: 1491080\nSHA256: ABCDEF\n\nPackage: bash\nVersion: 5.2.15-2+b7\nArchitecture: amd64\nFilename: pool/main/b/bash/bash_5.2.15-2+b7_amd64.deb\nSize: 1\nSHA256: 01\n\nPackage: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\nFilename: pool/main/t/tzdata/tzdata_2024a-0+deb12u1_all.deb\nSize: 2\nSHA256: 02\n";

    #[test]
    fn finds_builds_and_digests() {
        let mut i = Index::default();
        i.add(PKGS);
        let s = i.get("bash", "5.2.15-2+b2", "amd64").unwrap();
        assert_eq!(s.sha256, "abcdef");
        assert_eq!(s.size, 1491080);
        assert!(s.text.starts_with("Package: bash\n") && s.text.contains(" multi-line\n"));
        assert_eq!(
            i.builds_of("bash"),
            ["5.2.15-2+b2.amd64", "5.2.15-2+b7.amd64"]
        );
        assert!(i.get("tzdata", "2024a-0+deb12u1", "all").is_some());
        assert!(i.get("bash", "9", "amd64").is_none());
        assert_eq!(
            archive_file_name("bsdutils", "1:2.38.1-5", "amd64"),
            "bsdutils_1%3a2.38.1-5_amd64.deb"
        );
    }
}
