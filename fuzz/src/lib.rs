//! The fuzz targets' bodies, one function per target, free of afl: `fuzz/afl` wraps each in
//! afl's loop, and `tests/integration/fuzz.rs` replays every input under
//! `tests/fuzz-regressions/<target>/` through the same function. A target fails by panicking,
//! which is what the parsers must never do; the asserts below are invariants worth a crash.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod serve;

/// Every target, by the name `fuzz/run.sh` and the regression directories use.
pub const TARGETS: &[&str] = &[
    "yaml",
    "treefile",
    "inventory",
    "sysctl",
    "render",
    "serve_request",
];

/// Removes what the targets left on disk (serve_request's fixture directory).
pub fn cleanup() {
    serve::cleanup();
}

/// Runs `target` on `data`; `false` for an unknown target name.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "yaml" => yaml(data),
        "treefile" => treefile(data),
        "inventory" => inventory(data),
        "sysctl" => sysctl(data),
        "render" => render(data),
        "serve_request" => serve::request(data),
        _ => return false,
    }
    true
}

/// The YAML/JSON loader with positions: any text loads or fails with an error, and what loads
/// converts to JSON.
pub fn yaml(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(node) = cairn_yaml::parse(s, Path::new("fuzz.yaml")) {
        let _ = node.to_json();
    }
}

/// Where the treefile target's files live; the entry file is `main.yaml` unless the input names
/// its first file.
pub const TREEFILE_DIR: &str = "/fuzz";

/// Splits a treefile input into files: a line `#% FILE NAME` starts the file NAME (relative to
/// [`TREEFILE_DIR`]); text before the first such line is `main.yaml`. The marker is a YAML
/// comment, so a real treefile is a valid input as it is. Returns the files and the entry path.
pub fn split_files(s: &str) -> (cairn_treefile::MemFiles, PathBuf) {
    let dir = Path::new(TREEFILE_DIR);
    let mut files = cairn_treefile::MemFiles::new();
    let mut entry = None;
    let mut name = "main.yaml".to_string();
    let mut text = String::new();
    for line in s.split_inclusive('\n') {
        if let Some(next) = line.strip_prefix("#% FILE ") {
            if !text.is_empty() || entry.is_some() {
                files.insert(dir.join(&name), std::mem::take(&mut text));
                entry.get_or_insert_with(|| dir.join(&name));
            }
            name = next.trim_end().to_string();
            continue;
        }
        text.push_str(line);
    }
    files.insert(dir.join(&name), text);
    let entry = entry.unwrap_or_else(|| dir.join(&name));
    (files, entry)
}

/// The treefile loader over an in-memory include tree: loads or fails with diagnostics; a loaded
/// treefile renders for rpm-ostree and equals itself under `diff`.
pub fn treefile(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (files, entry) = split_files(s);
    let opts = cairn_treefile::LoadOptions {
        arch: Some("x86_64".into()),
        vars: Vec::new(),
    };
    if let Ok(tf) = cairn_treefile::load_from(&files, &entry, &opts) {
        let _ = tf.for_rpm_ostree();
        let _ = tf.cairn.sysctl_files();
        assert!(
            cairn_treefile::diff(&tf, &tf).is_empty(),
            "a treefile differs from itself"
        );
    }
}

fn parse_inventory(data: &[u8]) -> Option<cairn_kickstart::Inventory> {
    let s = std::str::from_utf8(data).ok()?;
    let opts = cairn_kickstart::LoadOptions::default();
    cairn_kickstart::parse(s, Path::new("/fuzz/inventory.yaml"), &opts).ok()
}

/// The inventory loader: every input is accepted or refused with diagnostics.
pub fn inventory(data: &[u8]) {
    let _ = parse_inventory(data);
}

/// The sysctl preset parser, then validation against cairn's key list and rendering.
pub fn sysctl(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = cairn_sysctl::parse_preset("fuzz", Path::new("/fuzz/fuzz.conf"), s) {
        let validator = cairn_sysctl::Validator::shipped_only();
        let presets = [p];
        let _ = validator.check_all(&presets);
        let _ = cairn_sysctl::render_owned(&presets);
    }
}

fn templates() -> &'static cairn_kickstart::Templates {
    static T: OnceLock<cairn_kickstart::Templates> = OnceLock::new();
    T.get_or_init(|| cairn_kickstart::Templates::load(None).expect("built-in templates load"))
}

/// Kickstart rendering from a parsed inventory: what `kickstart check` accepts, every host of it
/// renders (the promise `render` and `serve` rely on).
pub fn render(data: &[u8]) {
    let Some(inv) = parse_inventory(data) else {
        return;
    };
    let t = templates();
    for h in &inv.hosts {
        if let Err(e) = t.render_host(&inv, h, Some("token")) {
            panic!("check accepted host {} but rendering failed: {e}", h.fqdn);
        }
    }
    let server = inv.server.clone().unwrap_or_default();
    t.render_boot_ipxe(&server).expect("boot.ipxe renders");
}
