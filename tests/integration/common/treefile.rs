//! Fixtures for treefile tests: small treefile trees in temp dirs, and render/check runners.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::*;

/// Writes `files` (relative name, content) into a fresh temp dir.
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempdir();
    for (name, content) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

pub struct Rendered {
    pub out: Output,
    pub json: serde_json::Value,
    pub stderr: String,
}

/// `cairn treefile render FILE ARGS...` run from `cwd` (so messages use relative paths).
pub fn render_in(cwd: &Path, file: &str, args: &[&str]) -> Rendered {
    let out = cairn()
        .current_dir(cwd)
        .args(["treefile", "render", file])
        .args(args)
        .output()
        .expect("spawn cairn");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let stderr = stderr(&out);
    Rendered { out, json, stderr }
}

/// Renders and insists on success.
pub fn render_ok(cwd: &Path, file: &str, args: &[&str]) -> serde_json::Value {
    let r = render_in(cwd, file, args);
    assert!(
        r.out.status.success(),
        "render {file} {args:?} failed:\n{}",
        r.stderr
    );
    r.json
}

/// Renders and insists on failure (exit 1, nothing on stdout); returns stderr.
pub fn render_err(cwd: &Path, file: &str, args: &[&str]) -> String {
    let r = render_in(cwd, file, args);
    assert_eq!(
        r.out.status.code(),
        Some(1),
        "expected failure, got:\n{}",
        stdout(&r.out)
    );
    assert!(r.out.stdout.is_empty(), "wrote to stdout on error");
    r.stderr
}

pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn has_pkg(tf: &serde_json::Value, p: &str) -> bool {
    strings(&tf["packages"]).iter().any(|x| x == p)
}

pub fn shipped(name: &str) -> PathBuf {
    project_root().join("treefiles").join(name)
}
