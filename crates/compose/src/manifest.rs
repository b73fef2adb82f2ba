//! The package manifest of a tree (commit metadata `cairn.packages`) and its SPDX 2.3 SBOM.

use std::path::Path;
use std::process::Command;

use super::backend::PackageDb;

/// One installed package. Debian packages carry their full version in `version` (no split).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Package {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub epoch: Option<String>,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub release: Option<String>,
    pub arch: String,
}

impl Package {
    /// `[epoch:]version[-release]`, the one string humans compare.
    pub fn evr(&self) -> String {
        let mut s = String::new();
        if let Some(e) = &self.epoch {
            s.push_str(e);
            s.push(':');
        }
        s.push_str(&self.version);
        if let Some(r) = &self.release {
            s.push('-');
            s.push_str(r);
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("rpm -qa failed: {0}")]
    Rpm(String),
}

/// The packages installed in `rootfs`, sorted by name (then arch).
pub fn read(rootfs: &Path, db: PackageDb) -> Result<Vec<Package>, ManifestError> {
    let mut pkgs = match db {
        PackageDb::Dpkg => {
            let p = rootfs.join("var/lib/dpkg/status");
            let text = std::fs::read_to_string(&p).map_err(|error| ManifestError::Io {
                path: p.display().to_string(),
                error,
            })?;
            parse_dpkg_status(&text)
        }
        PackageDb::Rpm { dbpath } => read_rpmdb(rootfs, dbpath)?,
        PackageDb::None => Vec::new(),
    };
    pkgs.sort();
    Ok(pkgs)
}

/// Installed packages from a dpkg status file.
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Architecture: ") {
                arch = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (true, Some(n), Some(v)) = (installed, name, version) {
            out.push(Package {
                name: n.to_string(),
                epoch: None,
                version: v.to_string(),
                release: None,
                arch: arch.unwrap_or("all").to_string(),
            });
        }
    }
    out
}

fn read_rpmdb(rootfs: &Path, dbpath: &str) -> Result<Vec<Package>, ManifestError> {
    let out = Command::new("rpm")
        .arg("-qa")
        .arg("--root")
        .arg(rootfs)
        .arg("--dbpath")
        .arg(dbpath)
        .arg("--qf")
        .arg("%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n")
        .output()
        .map_err(|error| ManifestError::Io {
            path: "rpm".into(),
            error,
        })?;
    if !out.status.success() {
        return Err(ManifestError::Rpm(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(parse_rpm_qa(&String::from_utf8_lossy(&out.stdout)))
}

/// Lines of `NAME\tEPOCH\tVERSION\tRELEASE\tARCH` (EPOCH `(none)` when unset); gpg-pubkey
/// pseudo-packages are not software and are left out.
pub fn parse_rpm_qa(text: &str) -> Vec<Package> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() != 5 || f[0] == "gpg-pubkey" {
                return None;
            }
            let epoch = (f[1] != "(none)" && !f[1].is_empty()).then(|| f[1].to_string());
            Some(Package {
                name: f[0].into(),
                epoch,
                version: f[2].into(),
                release: Some(f[3].into()),
                arch: f[4].into(),
            })
        })
        .collect()
}

/// The manifest JSON text stored as `cairn.packages`.
pub fn to_metadata_json(pkgs: &[Package]) -> String {
    serde_json::to_string(pkgs).expect("packages serialize")
}

/// What the SBOM is about.
#[derive(Debug, Clone)]
pub struct SbomSubject<'a> {
    /// e.g. the ref, `debian/12/x86_64/minimal`.
    pub name: &'a str,
    pub version: Option<&'a str>,
    /// Input hash or commit: makes the namespace unique per build.
    pub unique: &'a str,
    pub db: PackageDb,
    /// `debian`, `fedora`...: the purl namespace (os-release ID).
    pub distro: &'a str,
    pub created: chrono::DateTime<chrono::Utc>,
    /// `sha256:...` of the `cairn snapshot` the packages came from.
    pub snapshot: Option<&'a str>,
}

/// An SPDX 2.3 JSON document: the tree as one package that CONTAINS every installed package.
pub fn sbom(pkgs: &[Package], s: &SbomSubject) -> serde_json::Value {
    use serde_json::json;
    let root_id = "SPDXRef-OperatingSystem";
    let mut packages = vec![json!({
        "SPDXID": root_id,
        "name": s.name,
        "versionInfo": s.version.unwrap_or("unversioned"),
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    })];
    if let Some(d) = s.snapshot {
        packages[0]["sourceInfo"] = json!(format!("packages from cairn snapshot {d}"));
    }
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": root_id,
    })];
    for (i, p) in pkgs.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}-{}", i, spdx_id_safe(&p.name));
        packages.push(json!({
            "SPDXID": id,
            "name": p.name,
            "versionInfo": p.evr(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(p, s.db, s.distro),
            }],
        }));
        relationships.push(json!({
            "spdxElementId": root_id,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": s.name,
        "documentNamespace": format!("https://cairn.invalid/spdx/{}/{}", spdx_id_safe(s.name), s.unique),
        "creationInfo": {
            "created": s.created.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "creators": [format!("Tool: cairn-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": [root_id],
        "packages": packages,
        "relationships": relationships,
    })
}

/// SPDX ids allow letters, digits, `.` and `-` only.
fn spdx_id_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn purl_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || ".-_~".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Package URL per the purl spec's deb/rpm types.
pub fn purl(p: &Package, db: PackageDb, distro: &str) -> String {
    let ty = match db {
        PackageDb::Rpm { .. } => "rpm",
        _ => "deb",
    };
    let version = match ty {
        // rpm purls carry the epoch as a qualifier, not in the version.
        "rpm" => match &p.release {
            Some(r) => format!("{}-{}", p.version, r),
            None => p.version.clone(),
        },
        _ => p.version.clone(),
    };
    let mut s = format!(
        "pkg:{ty}/{}/{}@{}?arch={}",
        purl_escape(&distro.to_lowercase()),
        purl_escape(&p.name),
        purl_escape(&version),
        purl_escape(&p.arch)
    );
    if let (Some(e), "rpm") = (&p.epoch, ty) {
        s.push_str(&format!("&epoch={}", purl_escape(e)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: base-files\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nVersion: 12.4+deb12u5\n\nPackage: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\nPackage: libc6\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n continued line\n";

    #[test]
    fn dpkg_status_installed_only() {
        let p = parse_dpkg_status(STATUS);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].name, "libc6");
        assert_eq!(p[1].version, "2.36-9+deb12u4");
        assert_eq!(p[1].arch, "amd64");
        let j: serde_json::Value = serde_json::from_str(&to_metadata_json(&p)).unwrap();
        assert_eq!(
            j[0],
            serde_json::json!({"name": "base-files", "version": "12.4+deb12u5", "arch": "amd64"})
        );
    }

    #[test]
    fn rpm_qa_lines() {
        let p = parse_rpm_qa("bash\t(none)\t5.2\t1.fc40\tx86_64\ngpg-pubkey\t(none)\tabc\t1\t(none)\nshadow\t2\t4.1\t3\tx86_64\n");
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].evr(), "2:4.1-3");
        assert_eq!(
            purl(&p[1], PackageDb::Rpm { dbpath: "/x" }, "fedora"),
            "pkg:rpm/fedora/shadow@4.1-3?arch=x86_64&epoch=2"
        );
    }

    #[test]
    fn sbom_is_spdx_23() {
        let p = parse_dpkg_status(STATUS);
        let s = SbomSubject {
            name: "debian/12/x86_64",
            version: Some("12.1"),
            unique: "abc",
            db: PackageDb::Dpkg,
            distro: "debian",
            created: chrono::Utc::now(),
            snapshot: Some("sha256:00"),
        };
        let doc = sbom(&p, &s);
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["dataLicense"], "CC0-1.0");
        assert_eq!(doc["packages"].as_array().unwrap().len(), 3);
        assert_eq!(
            doc["packages"][0]["sourceInfo"],
            "packages from cairn snapshot sha256:00"
        );
        assert_eq!(
            doc["packages"][2]["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
        );
        let rels = doc["relationships"].as_array().unwrap();
        assert!(rels.iter().any(|r| r["relationshipType"] == "DESCRIBES"));
        assert_eq!(rels.len(), 3);
    }
}
