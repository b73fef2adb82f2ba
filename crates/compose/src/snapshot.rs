//! Repository snapshots: exactly the packages of one resolution, as a static package
//! repository any apt or dnf can use (and `cairn compose --snapshot` composes from, offline).
//!
//! Layout of a snapshot directory:
//! - apt: `pool/...` (the mirror's own paths), `dists/SUITE/COMPONENT/binary-ARCH/Packages`
//!   (the mirror's stanzas, verbatim) and `dists/SUITE/Release` listing their sha256;
//! - RPM: `Packages/*.rpm` and `repodata/` from `createrepo_c`;
//! - both: `cairn.lock.json` (the lockfile of the resolution) and `cairn-snapshot.json`.
//!
//! The snapshot's digest is the sha256 of its top index (`Release` or `repomd.xml`): that file
//! lists the digests of the package indexes, which list the digest of every package, so one
//! hash names the whole content. Nothing is signed: composes trust the snapshot by digest and
//! check every package against the lockfile.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::backend::debindex::Stanza;
use super::lockfile::{self, Lockfile};

pub const INFO_FILE: &str = "cairn-snapshot.json";
pub const LOCK_FILE: &str = "cairn.lock.json";

/// `cairn-snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// `mmdebstrap` (an apt repository) or `dnf` (an RPM repository).
    pub backend: String,
    /// Seconds since 1970: when the snapshot was taken (or `SOURCE_DATE_EPOCH` then). Composes
    /// from the snapshot use it as their `SOURCE_DATE_EPOCH` unless one is set.
    pub timestamp: u64,
    /// `sha256:HEX` of `index`.
    pub digest: String,
    /// The top index, relative to the snapshot root.
    pub index: String,
    pub packages: usize,
    /// apt only: what mmdebstrap needs to use the repository.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub suite: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub components: Vec<String>,
    pub arch: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
    #[error("snapshot {location}: {reason}")]
    Invalid { location: String, reason: String },
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{tool} failed: {output}")]
    Tool { tool: String, output: String },
    #[error(transparent)]
    Lockfile(#[from] lockfile::LockfileError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SnapshotError {
    let what = what.into();
    move |error| SnapshotError::Io { what, error }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// One package going into an apt snapshot: its index stanza and where its .deb is now.
pub struct DebFile<'a> {
    pub stanza: &'a Stanza,
    pub file: PathBuf,
}

/// What an apt snapshot is for.
pub struct AptTarget<'a> {
    pub suite: &'a str,
    pub components: &'a [String],
    pub arch: &'a str,
    pub timestamp: u64,
}

/// Writes an apt repository of `debs` into `out`; every .deb is checked against its index
/// digest while copied. Returns the snapshot's info (also written to `out`).
pub fn write_apt(
    out: &Path,
    debs: &[DebFile],
    t: &AptTarget,
    lock: &Lockfile,
) -> Result<SnapshotInfo, SnapshotError> {
    let first = t.components.first().map(String::as_str).unwrap_or("main");
    let mut by_component: BTreeMap<String, Vec<&Stanza>> = BTreeMap::new();
    for d in debs {
        let dest = out.join(&d.stanza.filename);
        copy_checked(&d.file, &dest, &d.stanza.sha256)?;
        // pool/COMPONENT/...: the component the mirror filed the package under.
        let comp = d
            .stanza
            .filename
            .split('/')
            .nth(1)
            .filter(|c| t.components.iter().any(|x| x == c))
            .unwrap_or(first);
        by_component
            .entry(comp.to_string())
            .or_default()
            .push(d.stanza);
    }
    let dists = out.join("dists").join(t.suite);
    let mut hashes = Vec::new();
    for comp in t.components {
        let mut stanzas = by_component.remove(comp).unwrap_or_default();
        stanzas.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        let text: String = stanzas.iter().map(|s| format!("{}\n", s.text)).collect();
        let rel = format!("{comp}/binary-{}/Packages", t.arch);
        write_file(&dists.join(&rel), text.as_bytes())?;
        hashes.push((sha256_hex(text.as_bytes()), text.len(), rel));
    }
    let release = release_text(t, &hashes);
    write_file(&dists.join("Release"), release.as_bytes())?;
    let info = SnapshotInfo {
        backend: "mmdebstrap".into(),
        timestamp: t.timestamp,
        digest: format!("sha256:{}", sha256_hex(release.as_bytes())),
        index: format!("dists/{}/Release", t.suite),
        packages: debs.len(),
        suite: Some(t.suite.to_string()),
        components: t.components.to_vec(),
        arch: t.arch.to_string(),
    };
    finish(out, &info, lock)?;
    Ok(info)
}

fn release_text(t: &AptTarget, hashes: &[(String, usize, String)]) -> String {
    let date = chrono::DateTime::from_timestamp(t.timestamp as i64, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S UTC");
    let mut s = format!(
        "Origin: cairn snapshot\nLabel: cairn snapshot\nSuite: {suite}\nCodename: {suite}\nDate: {date}\n\
         Architectures: {arch}\nComponents: {comps}\nDescription: packages of one cairn compose\nSHA256:\n",
        suite = t.suite,
        arch = t.arch,
        comps = t.components.join(" ")
    );
    for (h, len, rel) in hashes {
        s.push_str(&format!(" {h} {len:>16} {rel}\n"));
    }
    s
}

/// Writes an RPM repository of `rpms` (package files) into `out` with `createrepo_c`.
pub fn write_rpm(
    out: &Path,
    rpms: &[PathBuf],
    arch: &str,
    timestamp: u64,
    lock: &Lockfile,
) -> Result<SnapshotInfo, SnapshotError> {
    let pkgdir = out.join("Packages");
    std::fs::create_dir_all(&pkgdir).map_err(io(format!("creating {}", pkgdir.display())))?;
    for r in rpms {
        let name = r.file_name().expect("an rpm file name");
        let dest = pkgdir.join(name);
        std::fs::copy(r, &dest).map_err(io(format!("copying {}", r.display())))?;
    }
    let out_s = out.display().to_string();
    let o = Command::new("createrepo_c")
        .args(["-q", "--revision", &timestamp.to_string()])
        .arg("--set-timestamp-to-revision")
        .arg(&out_s)
        .output()
        .map_err(io("running createrepo_c (Debian package createrepo-c)"))?;
    if !o.status.success() {
        return Err(SnapshotError::Tool {
            tool: "createrepo_c".into(),
            output: String::from_utf8_lossy(&o.stderr).into_owned(),
        });
    }
    let index = "repodata/repomd.xml";
    let bytes = std::fs::read(out.join(index)).map_err(io(format!("reading {index}")))?;
    let info = SnapshotInfo {
        backend: "dnf".into(),
        timestamp,
        digest: format!("sha256:{}", sha256_hex(&bytes)),
        index: index.into(),
        packages: rpms.len(),
        suite: None,
        components: Vec::new(),
        arch: arch.to_string(),
    };
    finish(out, &info, lock)?;
    Ok(info)
}

fn finish(out: &Path, info: &SnapshotInfo, lock: &Lockfile) -> Result<(), SnapshotError> {
    lockfile::write(lock, &out.join(LOCK_FILE))?;
    let mut text = serde_json::to_string_pretty(info).expect("info serializes");
    text.push('\n');
    write_file(&out.join(INFO_FILE), text.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
    }
    std::fs::write(path, bytes).map_err(io(format!("writing {}", path.display())))
}

/// Copies `from` to `to` unless `to` already has the content; fails when the bytes do not hash
/// to `sha256` (a corrupt cache entry must not become part of a snapshot).
fn copy_checked(from: &Path, to: &Path, sha256: &str) -> Result<(), SnapshotError> {
    if to.is_file() && sha256_file(to).ok().as_deref() == Some(sha256) {
        return Ok(());
    }
    let got = sha256_file(from).map_err(io(format!("reading {}", from.display())))?;
    if got != sha256 {
        return Err(SnapshotError::Invalid {
            location: from.display().to_string(),
            reason: format!("sha256 is {got}, the index says {sha256}"),
        });
    }
    if let Some(p) = to.parent() {
        std::fs::create_dir_all(p).map_err(io(format!("creating {}", p.display())))?;
    }
    std::fs::copy(from, to).map_err(io(format!("copying {}", from.display())))?;
    Ok(())
}

/// Where a snapshot is: a directory, or the http(s) URL of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    Url(String),
}

impl Location {
    pub fn parse(s: &str) -> Location {
        if s.starts_with("http://") || s.starts_with("https://") {
            Location::Url(s.trim_end_matches('/').to_string())
        } else {
            Location::Dir(std::path::absolute(s).unwrap_or_else(|_| PathBuf::from(s)))
        }
    }

    /// The URL package managers use: `file:///abs/dir` or the http(s) URL.
    pub fn url(&self) -> String {
        match self {
            Location::Dir(d) => format!("file://{}", d.display()),
            Location::Url(u) => u.clone(),
        }
    }

    /// The URL apt uses: `copy://` for a directory, so apt copies each .deb into the chroot's
    /// archive (mmdebstrap cannot read `file://` paths from inside the chroot).
    pub fn apt_url(&self) -> String {
        match self {
            Location::Dir(d) => format!("copy://{}", d.display()),
            Location::Url(u) => u.clone(),
        }
    }

    fn read(&self, rel: &str) -> Result<Vec<u8>, SnapshotError> {
        match self {
            Location::Dir(d) => {
                let p = d.join(rel);
                std::fs::read(&p).map_err(io(format!("reading {}", p.display())))
            }
            Location::Url(u) => fetch(&format!("{u}/{rel}")),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Url(u) => f.write_str(u),
        }
    }
}

/// GET with curl: the one HTTP client every host has, and no TLS stack compiled into cairn.
fn fetch(url: &str) -> Result<Vec<u8>, SnapshotError> {
    let o = Command::new("curl")
        .args(["-fsSL", "--retry", "2", url])
        .output()
        .map_err(|e| SnapshotError::Fetch {
            url: url.into(),
            reason: format!("running curl: {e}"),
        })?;
    if !o.status.success() {
        return Err(SnapshotError::Fetch {
            url: url.into(),
            reason: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        });
    }
    Ok(o.stdout)
}

/// A snapshot opened for a compose: its info, its lockfile, and the digest recomputed from
/// the index it serves now.
#[derive(Debug, Clone)]
pub struct Opened {
    pub location: Location,
    pub info: SnapshotInfo,
    pub lock: Lockfile,
}

/// Opens a snapshot and checks that its index still hashes to the digest it was written with.
pub fn open(location: Location) -> Result<Opened, SnapshotError> {
    let invalid = |reason: String| SnapshotError::Invalid {
        location: location.to_string(),
        reason,
    };
    let info: SnapshotInfo = serde_json::from_slice(&location.read(INFO_FILE)?)
        .map_err(|e| invalid(format!("{INFO_FILE}: {e} (made by `cairn snapshot`?)")))?;
    let index = location.read(&info.index)?;
    let digest = format!("sha256:{}", sha256_hex(&index));
    if digest != info.digest {
        return Err(invalid(format!(
            "{} hashes to {digest}, but {INFO_FILE} says {}: the snapshot changed after it was written",
            info.index, info.digest
        )));
    }
    let lock = lockfile::parse(&String::from_utf8_lossy(&location.read(LOCK_FILE)?))
        .map_err(|e| invalid(format!("{LOCK_FILE}: {e}")))?;
    Ok(Opened {
        location,
        info,
        lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::debindex::Index;

    #[test]
    fn apt_snapshot_round_trips_and_detects_changes() {
        let d = tempfile::tempdir().unwrap();
        let deb = d.path().join("hello_1.0_all.deb");
        std::fs::write(&deb, b"not really a deb").unwrap();
        let sha = sha256_file(&deb).unwrap();
        let mut idx = Index::default();
        idx.add(&format!(
            "Package: hello\nVersion: 1.0\nArchitecture: all\nPriority: required\nFilename: pool/main/h/hello/hello_1.0_all.deb\nSize: 16\nSHA256: {sha}\n"
        ));
        let stanza = idx.get("hello", "1.0", "all").unwrap();
        let out = d.path().join("snap");
        let comps = vec!["main".to_string()];
        let t = AptTarget {
            suite: "bookworm",
            components: &comps,
            arch: "amd64",
            timestamp: 1_700_000_000,
        };
        let lock = Lockfile {
            metadata: Default::default(),
            packages: Default::default(),
        };
        let info = write_apt(
            &out,
            &[DebFile {
                stanza,
                file: deb.clone(),
            }],
            &t,
            &lock,
        )
        .unwrap();
        assert!(out.join("pool/main/h/hello/hello_1.0_all.deb").is_file());
        let release = std::fs::read_to_string(out.join("dists/bookworm/Release")).unwrap();
        assert!(
            release.contains("Date: Tue, 14 Nov 2023 22:13:20 UTC"),
            "{release}"
        );
        assert!(release.contains(" main/binary-amd64/Packages\n"));
        let packages =
            std::fs::read_to_string(out.join("dists/bookworm/main/binary-amd64/Packages")).unwrap();
        assert!(packages.contains("Priority: required"));
        let opened = open(Location::parse(out.to_str().unwrap())).unwrap();
        assert_eq!(opened.info, info);
        assert!(opened.location.url().starts_with("file:///"));
        // A second write is byte-identical (same digest).
        let again = write_apt(&out, &[DebFile { stanza, file: deb }], &t, &lock).unwrap();
        assert_eq!(again.digest, info.digest);
        std::fs::write(out.join("dists/bookworm/Release"), "tampered").unwrap();
        let e = open(Location::Dir(out)).unwrap_err().to_string();
        assert!(e.contains("changed after it was written"), "{e}");
    }
}
