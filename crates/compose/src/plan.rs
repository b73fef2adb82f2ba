//! Treefile -> plan: which backend with which spec, what postprocess does, what gets hashed.
//! Pure: reads the treefile's referenced files for the hash, but installs and writes nothing.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::backend::{self, DnfSpec, MmdebstrapSpec, PackageDb, RootfsSpec};
use super::inputs::Inputs;
use super::postprocess::PostprocessSpec;
use super::ComposeError;
use cairn_treefile::{Backend, Treefile};

/// The backend chosen for a compose, with its spec.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum BackendPlan {
    /// rpm-ostree does install + postprocess + commit; cairn renders its input.
    RpmOstree,
    Dnf(DnfSpec),
    Mmdebstrap(MmdebstrapSpec),
    Rootfs(RootfsSpec),
}

impl BackendPlan {
    pub fn name(&self) -> &'static str {
        match self {
            BackendPlan::RpmOstree => "rpm-ostree",
            BackendPlan::Dnf(_) => "dnf",
            BackendPlan::Mmdebstrap(_) => "mmdebstrap",
            BackendPlan::Rootfs(_) => "rootfs",
        }
    }
}

/// Everything a compose will do, decided before any package work.
#[derive(Debug, Clone)]
pub struct Plan {
    pub refname: String,
    pub backend: BackendPlan,
    pub packages: Vec<String>,
    pub postprocess: PostprocessSpec,
    /// `automatic-version-prefix`, unexpanded.
    pub version_prefix: Option<String>,
    pub inputs: Inputs,
}

fn strings(json: &Map<String, Value>, key: &str) -> Result<Vec<String>, ComposeError> {
    match json.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                scalar(v).ok_or_else(|| {
                    ComposeError::Treefile(format!("`{key}`: expected a list of strings"))
                })
            })
            .collect(),
        Some(_) => Err(ComposeError::Treefile(format!(
            "`{key}`: expected a list of strings"
        ))),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string(json: &Map<String, Value>, key: &str) -> Option<String> {
    json.get(key).and_then(scalar)
}

fn boolean(json: &Map<String, Value>, key: &str, default: bool) -> bool {
    json.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// Which backend `auto` means for this treefile on this host.
pub fn choose_backend(
    tf: &Treefile,
    requested: Option<Backend>,
    rpm_ostree_installed: bool,
) -> Result<Backend, ComposeError> {
    let has_repos = tf
        .json
        .get("repos")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let b = match requested.unwrap_or(tf.cairn.backend) {
        Backend::Auto if rpm_ostree_installed && has_repos => Backend::RpmOstree,
        Backend::Auto if has_repos => Backend::Dnf,
        Backend::Auto if tf.cairn.mmdebstrap.is_some() => Backend::Mmdebstrap,
        Backend::Auto if tf.cairn.rootfs.is_some() => Backend::Rootfs,
        Backend::Auto => {
            return Err(ComposeError::Treefile(
                "cannot choose a backend: the treefile has no `repos` (dnf/rpm-ostree), no `cairn.mmdebstrap` and no \
                 `cairn.rootfs`; add one, or set `cairn.backend`"
                    .into(),
            ))
        }
        other => other,
    };
    Ok(b)
}

/// Builds the plan for `tf` with backend `backend` (already chosen).
pub fn plan(tf: &Treefile, backend: Backend) -> Result<Plan, ComposeError> {
    let json = &tf.json;
    let refname = string(json, "ref").ok_or_else(|| {
        ComposeError::Treefile(format!(
            "{}: `ref` is required (the OSTree branch to commit to)",
            tf.path.display()
        ))
    })?;
    let part = match backend {
        Backend::Mmdebstrap => mmdebstrap_part(tf)?,
        Backend::Dnf | Backend::RpmOstree => dnf_part(tf, backend)?,
        Backend::Rootfs => rootfs_part(tf)?,
        Backend::Auto => unreachable!("choose_backend resolves auto"),
    };
    let mut files: Vec<PathBuf> = tf.files.clone();
    files.extend(tf.add_files.iter().map(|(s, _)| s.clone()));
    files.extend(tf.postprocess_scripts.iter().cloned());
    files.extend(part.files);
    let mut backend_inputs = vec![
        ("backend".to_string(), backend.as_str().to_string()),
        ("arch".to_string(), tf.arch.clone()),
        // A new cairn may postprocess differently: its version is an input too.
        ("cairn".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ];
    backend_inputs.extend(part.inputs);
    let inputs = Inputs {
        base: tf.path.parent().map(Path::to_path_buf),
        treefile: Value::Object(json.clone()),
        packages: tf.packages.clone(),
        backend: backend_inputs,
        files,
        dirs: part.dirs,
    };
    Ok(Plan {
        refname,
        backend: part.plan,
        packages: tf.packages.clone(),
        postprocess: postprocess_spec(tf, part.db)?,
        version_prefix: string(json, "automatic-version-prefix"),
        inputs,
    })
}

/// One backend's share of a plan: its spec and what it adds to the input hash.
struct BackendPart {
    plan: BackendPlan,
    /// The package database the backend writes; None: detected in the tree after install.
    db: Option<PackageDb>,
    inputs: Vec<(String, String)>,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

fn mmdebstrap_part(tf: &Treefile) -> Result<BackendPart, ComposeError> {
    let m = tf.cairn.mmdebstrap.clone().unwrap_or_default();
    let spec = MmdebstrapSpec {
        suite: m.suite,
        mirror: m.mirror,
        components: m.components,
        variant: m.variant,
        arch: backend::debian_arch(&tf.arch)?.to_string(),
        packages: tf.packages.clone(),
        run: Default::default(),
    };
    let inputs = vec![
        ("suite".to_string(), spec.suite.clone()),
        ("mirror".to_string(), spec.mirror.clone()),
        ("components".to_string(), spec.components.join(",")),
        ("variant".to_string(), spec.variant.clone()),
    ];
    Ok(BackendPart {
        plan: BackendPlan::Mmdebstrap(spec),
        db: Some(PackageDb::Dpkg),
        inputs,
        files: Vec::new(),
        dirs: Vec::new(),
    })
}

/// dnf, and rpm-ostree (which reads the same keys and `.repo` files).
fn dnf_part(tf: &Treefile, backend: Backend) -> Result<BackendPart, ComposeError> {
    let json = &tf.json;
    let repos = strings(json, "repos")?;
    if repos.is_empty() {
        return Err(ComposeError::Treefile(format!(
            "the {} backend needs `repos`",
            backend.as_str()
        )));
    }
    let dir = tf.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    // dnf reads every .repo file in reposdir; all of them decide what is found.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "repo"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut spec = DnfSpec::new(dir, repos.clone(), tf.packages.clone());
    spec.arch = tf.arch.clone();
    spec.releasever = string(json, "releasever");
    spec.exclude_packages = strings(json, "exclude-packages")?;
    spec.recommends = boolean(json, "recommends", true);
    spec.documentation = boolean(json, "documentation", true);
    spec.install_langs = strings(json, "install-langs")?;
    spec.repo_packages = repo_packages(json)?;
    let inputs = vec![
        ("repos".into(), repos.join(",")),
        ("dbpath".into(), spec.dbpath.clone()),
    ];
    Ok(BackendPart {
        plan: if backend == Backend::RpmOstree {
            BackendPlan::RpmOstree
        } else {
            BackendPlan::Dnf(spec)
        },
        db: Some(PackageDb::Rpm {
            dbpath: backend::dnf::DEFAULT_DBPATH,
        }),
        inputs,
        files,
        dirs: Vec::new(),
    })
}

fn rootfs_part(tf: &Treefile) -> Result<BackendPart, ComposeError> {
    let r = tf.cairn.rootfs.clone().ok_or_else(|| {
        ComposeError::Treefile(
            "the rootfs backend needs `cairn.rootfs.path` (a directory or tarball)".into(),
        )
    })?;
    let (files, dirs) = if r.path.is_dir() {
        (Vec::new(), vec![r.path.clone()])
    } else {
        (vec![r.path.clone()], Vec::new())
    };
    Ok(BackendPart {
        inputs: vec![("rootfs".into(), r.path.display().to_string())],
        plan: BackendPlan::Rootfs(RootfsSpec { path: r.path }),
        // The package database is whatever the root filesystem brings (detected later).
        db: None,
        files,
        dirs,
    })
}

fn postprocess_spec(tf: &Treefile, db: Option<PackageDb>) -> Result<PostprocessSpec, ComposeError> {
    let json = &tf.json;
    let explicit_bootable = json
        .get("cairn")
        .and_then(|c| c.get("bootable"))
        .and_then(Value::as_bool);
    Ok(PostprocessSpec {
        bootable: explicit_bootable.or(tf.cairn.bootable.then_some(true)),
        db,
        add_files: tf.add_files.clone(),
        remove_files: strings(json, "remove-files")?,
        remove_from_packages: remove_from_packages(json)?,
        units: strings(json, "units")?,
        default_target: string(json, "default-target"),
        etc_group_members: strings(json, "etc-group-members")?,
        mutate_os_release: string(json, "mutate-os-release"),
        version: None,
        sysctl_presets: tf.cairn.sysctl_presets.clone(),
        sysctl: tf.cairn.sysctl.clone(),
        postprocess: strings(json, "postprocess")?,
        postprocess_scripts: tf.postprocess_scripts.clone(),
        source_date_epoch: None,
        initramfs_cache: None,
    })
}

/// `repo-packages: [{repo: ID, packages: [..]}]`.
fn repo_packages(json: &Map<String, Value>) -> Result<Vec<(String, Vec<String>)>, ComposeError> {
    let Some(v) = json.get("repo-packages") else {
        return Ok(Vec::new());
    };
    let bad = || {
        ComposeError::Treefile(
            "`repo-packages`: expected a list of {repo: ID, packages: [NAME...]}".into(),
        )
    };
    let mut out = Vec::new();
    for item in v.as_array().ok_or_else(bad)? {
        let o = item.as_object().ok_or_else(bad)?;
        let repo = o
            .get("repo")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_string();
        let pkgs = strings(o, "packages")?;
        // Entries may hold several names per string, as `packages` does.
        let pkgs = pkgs
            .iter()
            .flat_map(|s| s.split_whitespace().map(String::from))
            .collect();
        out.push((repo, pkgs));
    }
    Ok(out)
}

/// `remove-from-packages: [[PKG, REGEX...]...]`.
fn remove_from_packages(
    json: &Map<String, Value>,
) -> Result<Vec<(String, Vec<String>)>, ComposeError> {
    let Some(v) = json.get("remove-from-packages") else {
        return Ok(Vec::new());
    };
    let bad = || {
        ComposeError::Treefile(
            "`remove-from-packages`: expected a list of [PACKAGE, REGEX...]".into(),
        )
    };
    let mut out = Vec::new();
    for item in v.as_array().ok_or_else(bad)? {
        let a = item.as_array().ok_or_else(bad)?;
        let mut it = a
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(bad));
        let pkg = it.next().ok_or_else(bad)??;
        out.push((pkg, it.collect::<Result<_, _>>()?));
    }
    Ok(out)
}

/// Keys every backend cairn drives itself acts on (postprocess, commit, signing), besides
/// the structural ones (`ref`, `packages`, `cairn`).
const COMMON_KEYS: &[&str] = &[
    "ref",
    "basearch",
    "edition",
    "packages",
    "cairn",
    "automatic-version-prefix",
    "mutate-os-release",
    "gpg-key",
    "add-files",
    "remove-files",
    "remove-from-packages",
    "units",
    "default-target",
    "etc-group-members",
    "postprocess",
    "postprocess-script",
];

/// Keys only the dnf backend acts on.
const DNF_KEYS: &[&str] = &[
    "repos",
    "releasever",
    "exclude-packages",
    "repo-packages",
    "recommends",
    "documentation",
    "install-langs",
];

/// (key, value) pairs that ask for what cairn does anyway, so they are not worth a warning.
fn matches_cairn(key: &str, v: &Value) -> bool {
    match key {
        "selinux" | "readonly-executables" => v == &Value::Bool(false),
        // cairn puts the kernel in /usr/lib/modules/$kver, as `modules` asks.
        "boot-location" => v.as_str() == Some("modules"),
        _ => false,
    }
}

/// One warning per treefile key the chosen backend does not act on: silence would let a user
/// believe `selinux: true` or `initramfs-args` did something.
pub fn ignored_keys(tf: &Treefile, backend: Backend) -> Vec<String> {
    if backend == Backend::RpmOstree {
        // rpm-ostree reads the rendered treefile itself.
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, v) in &tf.json {
        let k = k.as_str();
        let packages = k == "packages" || k.starts_with("packages-");
        let acted = match backend {
            // The root filesystem brings its own packages.
            Backend::Rootfs => COMMON_KEYS.contains(&k) && !packages,
            Backend::Dnf => COMMON_KEYS.contains(&k) || packages || DNF_KEYS.contains(&k),
            _ => COMMON_KEYS.contains(&k) || packages,
        };
        let empty = v.as_array().is_some_and(|a| a.is_empty());
        if acted || empty || matches_cairn(k, v) {
            continue;
        }
        out.push(format!(
            "treefile key `{k}` is ignored by the {b} backend (rpm-ostree acts on it; cairn's {b} backend does not)",
            b = backend.as_str()
        ));
    }
    out
}

/// The rpmdb of a root filesystem brought by the rootfs backend, if any.
pub fn detect_db(rootfs: &Path) -> PackageDb {
    if rootfs.join("var/lib/dpkg/status").is_file() {
        return PackageDb::Dpkg;
    }
    for dbpath in ["/usr/lib/sysimage/rpm", "/usr/share/rpm", "/var/lib/rpm"] {
        let p = rootfs.join(dbpath.trim_start_matches('/'));
        if p.join("rpmdb.sqlite").is_file() || p.join("Packages").is_file() {
            return PackageDb::Rpm { dbpath };
        }
    }
    PackageDb::None
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_treefile::{load, LoadOptions};

    fn tf(dir: &Path, body: &str) -> Treefile {
        let p = dir.join("t.yaml");
        std::fs::write(&p, body).unwrap();
        load(
            &p,
            &LoadOptions {
                arch: Some("aarch64".into()),
                vars: vec![],
            },
        )
        .unwrap()
    }

    #[test]
    fn auto_backend_order() {
        let d = tempfile::tempdir().unwrap();
        let t = tf(d.path(), "ref: a/b\nrepos: [fedora]\npackages: [bash]\n");
        assert_eq!(choose_backend(&t, None, false).unwrap(), Backend::Dnf);
        assert_eq!(choose_backend(&t, None, true).unwrap(), Backend::RpmOstree);
        assert_eq!(
            choose_backend(&t, Some(Backend::Dnf), true).unwrap(),
            Backend::Dnf
        );
        let t = tf(
            d.path(),
            "ref: a/b\npackages: [bash]\ncairn:\n  mmdebstrap: {suite: trixie}\n",
        );
        assert_eq!(choose_backend(&t, None, true).unwrap(), Backend::Mmdebstrap);
        let t = tf(d.path(), "ref: a/b\npackages: [bash]\n");
        assert!(choose_backend(&t, None, false)
            .unwrap_err()
            .to_string()
            .contains("cannot choose a backend"));
    }

    #[test]
    fn plan_maps_keys_and_hashes_referenced_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("x.repo"),
            "[fedora]\nbaseurl=file:///nowhere\n",
        )
        .unwrap();
        std::fs::write(d.path().join("motd"), "hi\n").unwrap();
        let body = "ref: a/${basearch}\nrepos: [fedora]\nreleasever: 40\nrecommends: false\n\
                    exclude-packages: [nano]\nrepo-packages:\n  - repo: fedora\n    packages: [kernel]\n\
                    packages: [bash]\nadd-files:\n  - [motd, /etc/motd]\n\
                    remove-from-packages:\n  - [bash, \"/usr/share/doc/.*\"]\n";
        let t = tf(d.path(), body);
        let p = plan(&t, Backend::Dnf).unwrap();
        assert_eq!(p.refname, "a/aarch64");
        let BackendPlan::Dnf(s) = &p.backend else {
            panic!("dnf")
        };
        assert_eq!(s.arch, "aarch64");
        assert_eq!(s.releasever.as_deref(), Some("40"));
        assert!(!s.recommends);
        assert_eq!(s.exclude_packages, ["nano"]);
        assert_eq!(
            s.repo_packages,
            [("fedora".to_string(), vec!["kernel".to_string()])]
        );
        assert_eq!(
            p.postprocess.remove_from_packages[0].1,
            ["/usr/share/doc/.*"]
        );
        let h0 = crate::inputs::hash(&p.inputs).unwrap();
        // Content of a .repo file and of an add-files source both count.
        std::fs::write(d.path().join("motd"), "changed\n").unwrap();
        let h1 = crate::inputs::hash(&p.inputs).unwrap();
        assert_ne!(h0, h1);
        std::fs::write(
            d.path().join("x.repo"),
            "[fedora]\nbaseurl=file:///elsewhere\n",
        )
        .unwrap();
        assert_ne!(crate::inputs::hash(&p.inputs).unwrap(), h1);
        // Debian arch names for mmdebstrap.
        let t = tf(
            d.path(),
            "ref: a/b\npackages: [bash]\ncairn:\n  mmdebstrap: {suite: trixie}\n",
        );
        let BackendPlan::Mmdebstrap(m) = plan(&t, Backend::Mmdebstrap).unwrap().backend else {
            panic!()
        };
        assert_eq!((m.arch.as_str(), m.suite.as_str()), ("arm64", "trixie"));
    }
}
