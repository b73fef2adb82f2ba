//! The input hash: one sha256 over everything that decides a compose's result.
//!
//! Covered: the canonical flattened treefile JSON (keys sorted, so formatting and key order
//! do not matter), the sorted package set, the backend's inputs (suite, mirror, variant, arch,
//! repo ids...) and the bytes of every file the tree takes content from (add-files sources,
//! postprocess scripts, .repo files, a rootfs tarball). Not covered: what the mirrors serve
//! today, which is what `--force-nocache` is for. Each part is length-prefixed and tagged, so
//! moving bytes between parts changes the hash.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Bumped when the hash's composition changes, so old commits never match new rules.
const SCHEME: &str = "cairn-input-hash-v2";

#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// File paths are hashed relative to this directory (the treefile's), so the same checkout
    /// in another place, on another machine, hashes the same.
    pub base: Option<PathBuf>,
    pub treefile: serde_json::Value,
    pub packages: Vec<String>,
    /// (name, value) pairs describing the backend: e.g. ("backend","mmdebstrap"), ("suite",..).
    pub backend: Vec<(String, String)>,
    /// Files whose content matters, by the path used in the treefile.
    pub files: Vec<PathBuf>,
    /// Directories whose whole content matters (a rootfs directory source).
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
#[error("hashing input {path}: {error}")]
pub struct InputError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Keys sorted recursively; the one canonical text of a JSON value.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn canon(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<_> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), canon(&m[k]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(canon).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&canon(v)).expect("JSON serializes")
}

fn part(h: &mut Sha256, tag: &str, bytes: &[u8]) {
    h.update(tag.as_bytes());
    h.update([0]);
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// Hex sha256 of `inputs`.
pub fn hash(inputs: &Inputs) -> Result<String, InputError> {
    let mut h = Sha256::new();
    part(&mut h, "scheme", SCHEME.as_bytes());
    part(
        &mut h,
        "treefile",
        canonical_json(&inputs.treefile).as_bytes(),
    );
    let mut pkgs = inputs.packages.clone();
    pkgs.sort();
    pkgs.dedup();
    part(&mut h, "packages", pkgs.join("\n").as_bytes());
    let mut backend = inputs.backend.clone();
    backend.sort();
    for (k, v) in &backend {
        part(&mut h, "backend", format!("{k}={v}").as_bytes());
    }
    let mut files = inputs.files.clone();
    files.sort();
    files.dedup();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|error| InputError {
            path: f.clone(),
            error,
        })?;
        let named = inputs
            .base
            .as_deref()
            .and_then(|b| f.strip_prefix(b).ok())
            .unwrap_or(f);
        part(&mut h, "file", named.to_string_lossy().as_bytes());
        part(&mut h, "content", &bytes);
    }
    for d in &inputs.dirs {
        hash_dir(&mut h, d)?;
    }
    Ok(hex::encode(h.finalize()))
}

/// Paths, modes, owners, symlink targets and file bytes of a directory, in sorted order.
fn hash_dir(h: &mut Sha256, dir: &Path) -> Result<(), InputError> {
    use std::os::unix::fs::MetadataExt;
    part(h, "dir", dir.to_string_lossy().as_bytes());
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.map_err(|e| InputError {
            path: dir.to_path_buf(),
            error: e.into(),
        })?;
        let p = e.path();
        let rel = p.strip_prefix(dir).unwrap_or(p);
        let m = e.metadata().map_err(|e| InputError {
            path: p.to_path_buf(),
            error: e.into(),
        })?;
        part(
            h,
            "entry",
            format!("{} {:o} {}:{}", rel.display(), m.mode(), m.uid(), m.gid()).as_bytes(),
        );
        if m.file_type().is_symlink() {
            let t = std::fs::read_link(p).map_err(|error| InputError {
                path: p.to_path_buf(),
                error,
            })?;
            part(h, "link", t.to_string_lossy().as_bytes());
        } else if m.is_file() {
            let bytes = std::fs::read(p).map_err(|error| InputError {
                path: p.to_path_buf(),
                error,
            })?;
            part(h, "content", &bytes);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base(dir: &Path) -> Inputs {
        std::fs::write(dir.join("a.sh"), "echo a").unwrap();
        Inputs {
            treefile: json!({"ref": "x", "packages": ["b", "a"]}),
            packages: vec!["b".into(), "a".into()],
            backend: vec![
                ("backend".into(), "mmdebstrap".into()),
                ("suite".into(), "bookworm".into()),
            ],
            files: vec![dir.join("a.sh")],
            dirs: vec![],
            base: Some(dir.to_path_buf()),
        }
    }

    #[test]
    fn stable_and_sensitive() {
        let d = tempfile::tempdir().unwrap();
        let i = base(d.path());
        let h0 = hash(&i).unwrap();
        assert_eq!(h0.len(), 64);

        // Key order and package order do not matter.
        let mut same = i.clone();
        same.treefile = json!({"packages": ["b", "a"], "ref": "x"});
        same.packages = vec!["a".into(), "b".into()];
        assert_eq!(hash(&same).unwrap(), h0);

        let mut changed = i.clone();
        changed.packages.push("c".into());
        assert_ne!(hash(&changed).unwrap(), h0);

        let mut changed = i.clone();
        changed.backend[1].1 = "trixie".into();
        assert_ne!(hash(&changed).unwrap(), h0);

        std::fs::write(d.path().join("a.sh"), "echo b").unwrap();
        assert_ne!(hash(&i).unwrap(), h0);

        let mut gone = i.clone();
        gone.files = vec![d.path().join("missing")];
        assert!(hash(&gone).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn same_files_elsewhere_hash_the_same() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_eq!(
            hash(&base(a.path())).unwrap(),
            hash(&base(b.path())).unwrap()
        );
    }

    #[test]
    fn directory_content_counts() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("root");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/x"), "1").unwrap();
        let i = Inputs {
            dirs: vec![src.clone()],
            ..Default::default()
        };
        let h0 = hash(&i).unwrap();
        std::fs::write(src.join("etc/x"), "2").unwrap();
        assert_ne!(hash(&i).unwrap(), h0);
    }
}
