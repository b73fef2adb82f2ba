//! The compose pipeline: load -> input hash -> (unchanged? stop) -> install -> postprocess ->
//! commit -> SBOM.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::backend::{self, rpm_ostree, PackageDb};
use super::plan::{self, BackendPlan, Plan};
use super::{inputs, manifest, postprocess, version, ComposeError};
use cairn_ostree::repo::{CommitOptions, Mode, Parent, Repo};
use cairn_treefile::{self as treefile, Backend, LoadOptions};

/// Metadata keys compose writes (CONTRACTS.md).
pub const META_INPUT_HASH: &str = "cairn.input-hash";
pub const META_PACKAGES: &str = "cairn.packages";
pub const META_TREEFILE: &str = "cairn.treefile";
pub const META_BACKEND: &str = "cairn.backend";

#[derive(Debug, Clone, Default)]
pub struct ComposeOptions {
    pub treefile: PathBuf,
    pub repo: PathBuf,
    /// None: the treefile's `cairn.backend` (default auto).
    pub backend: Option<Backend>,
    /// Default: `cairn-cache` beside the repository.
    pub cachedir: Option<PathBuf>,
    pub arch: Option<String>,
    pub vars: Vec<(String, String)>,
    pub dry_run: bool,
    pub force_nocache: bool,
    /// Default: `<ref with / as _>.spdx.json` beside the repository.
    pub sbom: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Packages,
    Postprocess,
    Commit,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Packages => "packages",
            Phase::Postprocess => "postprocess",
            Phase::Commit => "commit",
        }
    }
}

/// What a running compose reports, for progress bars or log lines.
#[derive(Debug)]
pub enum Event<'a> {
    Start(Phase),
    Line(&'a str),
    Done(Phase, f64),
    Warning(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Committed,
    /// Same input hash as the ref's commit: nothing was built.
    Unchanged,
    DryRun,
}

/// Wall time per phase, seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub load: f64,
    pub packages: f64,
    pub postprocess: f64,
    pub commit: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComposeReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub status: Status,
    #[serde(rename = "ref")]
    pub refname: String,
    pub commit: Option<String>,
    pub parent: Option<String>,
    pub version: Option<String>,
    pub input_hash: String,
    pub backend: &'static str,
    /// The backend command (dry run and real run alike).
    pub argv: Vec<String>,
    /// Requested packages (what the treefile asks for).
    pub requested_packages: Vec<String>,
    /// Installed packages in the commit (the manifest's length).
    pub package_count: Option<usize>,
    pub kernel: Option<String>,
    pub sbom: Option<PathBuf>,
    pub timings: Timings,
    pub warnings: Vec<String>,
}

fn secs(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// Default cache directory: `cairn-cache` beside the repository (kept between composes: apt
/// archives, dnf metadata, and the build trees of running composes).
pub fn default_cachedir(repo: &Path) -> PathBuf {
    let abs = std::path::absolute(repo).unwrap_or_else(|_| repo.to_path_buf());
    abs.parent().unwrap_or(Path::new("/")).join("cairn-cache")
}

fn sbom_default(repo: &Path, refname: &str) -> PathBuf {
    let abs = std::path::absolute(repo).unwrap_or_else(|_| repo.to_path_buf());
    abs.parent()
        .unwrap_or(Path::new("/"))
        .join(format!("{}.spdx.json", refname.replace('/', "_")))
}

/// Removes build trees left by composes that were killed (their pid no longer runs).
fn clean_stale_builds(cachedir: &Path) {
    let Ok(rd) = std::fs::read_dir(cachedir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("build-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The argv shown in plans and reports, with `<rootfs>` for the build directory.
fn display_argv(plan: &Plan, rootfs: &Path, cachedir: &Path, repo: &Path) -> Vec<String> {
    match &plan.backend {
        BackendPlan::Mmdebstrap(s) => {
            let mut a = vec!["mmdebstrap".to_string()];
            a.extend(backend::mmdebstrap::argv(
                s,
                rootfs,
                Some(&cachedir.join("apt-archives").join(&s.arch)),
            ));
            a
        }
        BackendPlan::Dnf(s) => {
            let mut a = vec!["dnf".to_string()];
            a.extend(backend::dnf::argv(
                s,
                rootfs,
                Path::new("<private dnf.conf>"),
                true,
                None,
            ));
            a
        }
        BackendPlan::Rootfs(s) => backend::rootfs::argv(s, rootfs),
        BackendPlan::RpmOstree => rpm_ostree::argv(&rpm_ostree::RpmOstreeSpec {
            rendered_treefile: PathBuf::from("<rendered treefile>"),
            repo: repo.to_path_buf(),
            cachedir: cachedir.to_path_buf(),
            metadata: Vec::new(),
            commitid_file: cachedir.join("rpm-ostree-commitid"),
            force_nocache: false,
        }),
    }
}

fn os_release_id(rootfs: &Path) -> Option<String> {
    let text = std::fs::read_to_string(rootfs.join("usr/lib/os-release"))
        .or_else(|_| std::fs::read_to_string(rootfs.join("etc/os-release")))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
}

/// Runs a compose.
pub fn compose(
    opts: &ComposeOptions,
    events: &mut dyn FnMut(Event),
) -> Result<ComposeReport, ComposeError> {
    let t_total = Instant::now();
    let mut timings = Timings::default();
    let tf = treefile::load(
        &opts.treefile,
        &LoadOptions {
            arch: opts.arch.clone(),
            vars: opts.vars.clone(),
        },
    )?;
    let mut warnings: Vec<String> = tf.warnings.iter().map(|w| w.to_string()).collect();
    for w in &warnings {
        events(Event::Warning(w));
    }
    let chosen = plan::choose_backend(&tf, opts.backend, backend::tool_exists("rpm-ostree"))?;
    let plan = plan::plan(&tf, chosen)?;
    let input_hash = inputs::hash(&plan.inputs)?;

    let repo = match Repo::open(&opts.repo) {
        Ok(r) => Some(r),
        Err(_) if !opts.repo.exists() => None,
        Err(e) => return Err(e.into()),
    };
    let previous = match &repo {
        Some(r) => match r.resolve(&plan.refname)? {
            Some(c) => Some(r.commit_info(&c)?),
            None => None,
        },
        None => None,
    };
    // Absolute: mmdebstrap hooks and dnf run with other working directories.
    let cachedir = opts
        .cachedir
        .clone()
        .unwrap_or_else(|| default_cachedir(&opts.repo));
    let cachedir = std::path::absolute(&cachedir).unwrap_or(cachedir);
    let argv = display_argv(&plan, Path::new("<rootfs>"), &cachedir, &opts.repo);
    timings.load = secs(t_total);

    let mut report = ComposeReport {
        api_version: "cairn/v1",
        kind: "ComposeResult",
        status: Status::DryRun,
        refname: plan.refname.clone(),
        commit: None,
        parent: previous.as_ref().map(|p| p.checksum.clone()),
        version: None,
        input_hash: input_hash.clone(),
        backend: plan.backend.name(),
        argv,
        requested_packages: plan.packages.clone(),
        package_count: None,
        kernel: None,
        sbom: None,
        timings: Timings::default(),
        warnings: Vec::new(),
    };

    if let Some(prev) = &previous {
        let same = prev.metadata.get(META_INPUT_HASH).and_then(|v| v.as_str())
            == Some(input_hash.as_str());
        if same && !opts.force_nocache {
            report.status = Status::Unchanged;
            report.commit = Some(prev.checksum.clone());
            report.parent = prev.parent.clone();
            report.version = prev.version.clone();
            report.package_count = prev
                .metadata
                .get(META_PACKAGES)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(s).ok())
                .map(|v| v.len());
            timings.total = secs(t_total);
            report.timings = timings;
            report.warnings = warnings;
            return Ok(report);
        }
    }
    let next_version = match &plan.version_prefix {
        Some(p) => Some(version::compute(
            p,
            previous.as_ref().and_then(|p| p.version.as_deref()),
            chrono::Utc::now(),
        )?),
        None => None,
    };
    report.version = next_version.clone();
    if opts.dry_run {
        timings.total = secs(t_total);
        report.timings = timings;
        report.warnings = warnings;
        return Ok(report);
    }

    let repo = match repo {
        Some(r) => r,
        // Archive mode: servable over plain HTTP (`cairn serve`, nginx) and pullable into sysroots.
        None => Repo::init(&opts.repo, Mode::Archive)?,
    };
    std::fs::create_dir_all(&cachedir).map_err(|e| ComposeError::Io {
        what: format!("creating {}", cachedir.display()),
        source: e,
    })?;
    clean_stale_builds(&cachedir);
    // The tree is built in the cache dir, never in the repo: a compose killed at any point leaves
    // the repository as it was (the commit itself is one libostree transaction).
    let build = tempfile::Builder::new()
        .prefix(&format!("build-{}-", std::process::id()))
        .tempdir_in(&cachedir)
        .map_err(|e| ComposeError::Io {
            what: format!("creating a build dir in {}", cachedir.display()),
            source: e,
        })?;
    let rootfs = build.path().join("rootfs");

    if matches!(plan.backend, BackendPlan::RpmOstree) {
        return compose_rpm_ostree(
            &tf,
            &plan,
            &repo,
            &cachedir,
            build.path(),
            report,
            timings,
            t_total,
            opts,
            events,
        );
    }

    // Packages.
    let t = Instant::now();
    events(Event::Start(Phase::Packages));
    {
        let mut line = |l: &str| events(Event::Line(l));
        match &plan.backend {
            BackendPlan::Mmdebstrap(s) => {
                backend::mmdebstrap::install(s, &rootfs, Some(&cachedir), &mut line)?
            }
            BackendPlan::Dnf(s) => backend::dnf::install(s, &rootfs, Some(&cachedir), &mut line)?,
            BackendPlan::Rootfs(s) => backend::rootfs::install(s, &rootfs, &mut line)?,
            BackendPlan::RpmOstree => unreachable!(),
        }
    }
    let db = plan
        .postprocess
        .db
        .unwrap_or_else(|| plan::detect_db(&rootfs));
    let packages = manifest::read(&rootfs, db)?;
    let distro = os_release_id(&rootfs).unwrap_or_else(|| {
        if matches!(db, PackageDb::Rpm { .. }) {
            "rpm".into()
        } else {
            "debian".into()
        }
    });
    timings.packages = secs(t);
    events(Event::Done(Phase::Packages, timings.packages));

    // Postprocess.
    let t = Instant::now();
    events(Event::Start(Phase::Postprocess));
    let mut pp = plan.postprocess.clone();
    pp.db = Some(db);
    pp.version = next_version.clone();
    let pp_report = {
        let mut line = |l: &str| events(Event::Line(l));
        postprocess::run(&rootfs, &pp, &mut line)?
    };
    timings.postprocess = secs(t);
    events(Event::Done(Phase::Postprocess, timings.postprocess));

    // Commit.
    let t = Instant::now();
    events(Event::Start(Phase::Commit));
    let commit_opts = CommitOptions {
        refname: plan.refname.clone(),
        subject: Some(match &next_version {
            Some(v) => format!("{} {v}", plan.refname),
            None => plan.refname.clone(),
        }),
        version: next_version.clone(),
        metadata: vec![
            (META_INPUT_HASH.into(), input_hash.clone().into()),
            (
                META_PACKAGES.into(),
                manifest::to_metadata_json(&packages).into(),
            ),
            (
                META_TREEFILE.into(),
                serde_json::to_string(&tf.json).expect("json").into(),
            ),
            (META_BACKEND.into(), plan.backend.name().into()),
        ],
        parent: Parent::Auto,
        // An OS tree needs its real modes and owners (setuid binaries, /var/mail 2775 root:mail).
        keep_permissions: true,
        ..Default::default()
    };
    let committed = repo.commit_tree(&rootfs, &commit_opts)?;
    timings.commit = secs(t);
    events(Event::Done(Phase::Commit, timings.commit));
    drop(build);

    let sbom_path = opts
        .sbom
        .clone()
        .unwrap_or_else(|| sbom_default(&opts.repo, &plan.refname));
    let doc = manifest::sbom(
        &packages,
        &manifest::SbomSubject {
            name: &plan.refname,
            version: next_version.as_deref(),
            unique: &committed.checksum,
            db,
            distro: &distro,
            created: chrono::Utc::now(),
        },
    );
    std::fs::write(
        &sbom_path,
        serde_json::to_string_pretty(&doc).expect("json"),
    )
    .map_err(|e| ComposeError::Io {
        what: format!("writing SBOM {}", sbom_path.display()),
        source: e,
    })?;

    for (name, out) in &pp_report.scripts {
        if !out.trim().is_empty() {
            warnings.push(format!("{name} output:\n{out}"));
        }
    }
    report.status = Status::Committed;
    report.commit = Some(committed.checksum);
    report.parent = committed.parent;
    report.package_count = Some(packages.len());
    report.kernel = pp_report.kernel;
    report.sbom = Some(sbom_path);
    timings.total = secs(t_total);
    report.timings = timings;
    report.warnings = warnings;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn compose_rpm_ostree(
    tf: &treefile::Treefile,
    plan: &Plan,
    repo: &Repo,
    cachedir: &Path,
    build: &Path,
    mut report: ComposeReport,
    mut timings: Timings,
    t_total: Instant,
    opts: &ComposeOptions,
    events: &mut dyn FnMut(Event),
) -> Result<ComposeReport, ComposeError> {
    let rendered = tf.for_rpm_ostree()?;
    // Rendered into the build dir (never over a user's file); rpm-ostree finds .repo files
    // beside its treefile, so the treefile directory's are copied next to it.
    let dir = build.join("rpm-ostree-input");
    let io = |what: &str| {
        let what = what.to_string();
        move |e| ComposeError::Io { what, source: e }
    };
    let rendered_path = rendered
        .write_to(&dir)
        .map_err(io("writing the treefile rendered for rpm-ostree"))?;
    let tfdir = tf.path.parent().unwrap_or(Path::new("."));
    for e in std::fs::read_dir(tfdir)
        .map_err(io("reading the treefile directory"))?
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "repo") {
            std::fs::copy(e.path(), dir.join(e.file_name())).map_err(io("copying .repo files"))?;
        }
    }
    let spec = rpm_ostree::RpmOstreeSpec {
        rendered_treefile: rendered_path,
        repo: repo.path().to_path_buf(),
        cachedir: cachedir.join("rpm-ostree"),
        metadata: vec![
            (META_INPUT_HASH.into(), report.input_hash.clone()),
            (META_BACKEND.into(), "rpm-ostree".into()),
        ],
        commitid_file: build.join("commitid"),
        force_nocache: opts.force_nocache,
    };
    report.argv = rpm_ostree::argv(&spec);
    let t = Instant::now();
    events(Event::Start(Phase::Packages));
    let commit = {
        let mut line = |l: &str| events(Event::Line(l));
        rpm_ostree::install(&spec, &mut line)?
    };
    timings.packages = secs(t);
    events(Event::Done(Phase::Packages, timings.packages));
    let info = match &commit {
        Some(c) => Some(repo.commit_info(c)?),
        None => None,
    };
    report.status = if commit.is_some() {
        Status::Committed
    } else {
        Status::Unchanged
    };
    report.version = info
        .as_ref()
        .and_then(|i| i.version.clone())
        .or(report.version);
    report.commit = commit;
    let _ = plan;
    timings.total = secs(t_total);
    report.timings = timings;
    Ok(report)
}
