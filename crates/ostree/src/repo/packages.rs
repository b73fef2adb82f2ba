//! Package manifests (`cairn.packages` commit metadata) and their diff.
//!
//! The manifest is JSON text: `[{"name","epoch"?,"version","release"?,"arch"}]` sorted by name.
//! Debian packages carry the whole Debian version in `version` and no epoch/release.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The commit metadata key compose writes the manifest under.
pub const PACKAGES_KEY: &str = "cairn.packages";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_epoch"
    )]
    pub epoch: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub arch: String,
}

impl Package {
    /// `[epoch:]version[-release]`, rpm style; an epoch of 0 is omitted as rpm does.
    pub fn evr(&self) -> String {
        let mut s = String::new();
        if let Some(e) = self.epoch.as_deref().filter(|e| !e.is_empty() && *e != "0") {
            s.push_str(e);
            s.push(':');
        }
        s.push_str(&self.version);
        if let Some(r) = self.release.as_deref().filter(|r| !r.is_empty()) {
            s.push('-');
            s.push_str(r);
        }
        s
    }
}

// rpm tooling writes epochs as numbers, others as strings; accept both.
fn de_epoch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageDiff {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub changed: Vec<PackageChange>,
}

impl PackageDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    pub name: String,
    /// The new architecture (differs from `from_arch` only on an arch switch, e.g. noarch).
    pub arch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_arch: Option<String>,
    /// Old `[epoch:]version[-release]`.
    pub from: String,
    /// New `[epoch:]version[-release]`.
    pub to: String,
}

/// Parses the JSON text stored under `cairn.packages`.
pub fn parse_packages(json_text: &str) -> Result<Vec<Package>, String> {
    serde_json::from_str(json_text).map_err(|e| e.to_string())
}

/// What changed from `old` to `new`, each list sorted by name then arch. Packages match on
/// (name, arch); a name present once on each side under different arches is one change.
pub fn diff_packages(old: &[Package], new: &[Package]) -> PackageDiff {
    let key = |p: &Package| (p.name.clone(), p.arch.clone());
    let a: BTreeMap<_, _> = old.iter().map(|p| (key(p), p)).collect();
    let b: BTreeMap<_, _> = new.iter().map(|p| (key(p), p)).collect();
    let mut out = PackageDiff::default();
    for (k, pa) in &a {
        match b.get(k) {
            None => out.removed.push((*pa).clone()),
            Some(pb) if pa.evr() != pb.evr() => out.changed.push(PackageChange {
                name: pa.name.clone(),
                arch: pa.arch.clone(),
                from_arch: None,
                from: pa.evr(),
                to: pb.evr(),
            }),
            Some(_) => {}
        }
    }
    for (k, pb) in &b {
        if !a.contains_key(k) {
            out.added.push((*pb).clone());
        }
    }
    // Arch switches: exactly one removed and one added entry under the same name.
    let count = |v: &[Package], n: &str| v.iter().filter(|p| p.name == n).count();
    let switched: Vec<String> = out
        .removed
        .iter()
        .filter(|r| count(&out.removed, &r.name) == 1 && count(&out.added, &r.name) == 1)
        .map(|r| r.name.clone())
        .collect();
    for name in switched {
        let r = out.removed.iter().position(|p| p.name == name).unwrap();
        let a = out.added.iter().position(|p| p.name == name).unwrap();
        let (r, a) = (out.removed.remove(r), out.added.remove(a));
        out.changed.push(PackageChange {
            name,
            arch: a.arch.clone(),
            from_arch: Some(r.arch.clone()),
            from: r.evr(),
            to: a.evr(),
        });
    }
    out.changed
        .sort_by(|x, y| (&x.name, &x.arch).cmp(&(&y.name, &y.arch)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, version: &str, arch: &str) -> Package {
        Package {
            name: name.into(),
            epoch: None,
            version: version.into(),
            release: None,
            arch: arch.into(),
        }
    }

    #[test]
    fn diff_finds_added_removed_changed() {
        let old = vec![p("bash", "5.2.15-2", "amd64"), p("vim", "9.0", "amd64")];
        let new = vec![p("bash", "5.2.21-1", "amd64"), p("curl", "7.88", "amd64")];
        let d = diff_packages(&old, &new);
        assert_eq!(d.added, vec![p("curl", "7.88", "amd64")]);
        assert_eq!(d.removed, vec![p("vim", "9.0", "amd64")]);
        assert_eq!(d.changed.len(), 1);
        assert_eq!(
            (d.changed[0].from.as_str(), d.changed[0].to.as_str()),
            ("5.2.15-2", "5.2.21-1")
        );
    }

    #[test]
    fn rpm_evr_and_numeric_epoch() {
        let pk = parse_packages(
            r#"[{"name":"kernel","epoch":2,"version":"6.8","release":"1.fc40","arch":"x86_64"}]"#,
        )
        .unwrap();
        assert_eq!(pk[0].evr(), "2:6.8-1.fc40");
        let pk = parse_packages(
            r#"[{"name":"a","epoch":"0","version":"1","release":"2","arch":"noarch"}]"#,
        )
        .unwrap();
        assert_eq!(pk[0].evr(), "1-2");
    }

    #[test]
    fn arch_switch_is_a_change() {
        let d = diff_packages(&[p("x", "1", "noarch")], &[p("x", "2", "x86_64")]);
        assert!(d.added.is_empty() && d.removed.is_empty());
        assert_eq!(d.changed[0].from_arch.as_deref(), Some("noarch"));
    }

    #[test]
    fn multiarch_same_name_kept_apart() {
        let old = vec![p("libc6", "2.36", "amd64"), p("libc6", "2.36", "i386")];
        let new = vec![p("libc6", "2.37", "amd64")];
        let d = diff_packages(&old, &new);
        assert_eq!(d.removed, vec![p("libc6", "2.36", "i386")]);
        assert_eq!(d.changed[0].to, "2.37");
    }
}
