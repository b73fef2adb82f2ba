//! The compose pipeline: load -> input hash -> (unchanged? stop) -> install -> postprocess ->
//! commit -> SBOM, one function per phase over a [`Job`] (everything decided before package work).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use std::collections::BTreeMap;

use super::backend::{self, rpm_ostree, Note, PackageDb};
use super::lockfile::{self, Locked};
use super::manifest::Package;
use super::plan::{self, BackendPlan, Plan};
use super::resolve::Source;
use super::snapshot::{self, Opened};
use super::{inputs, locking, manifest, postprocess, version, ComposeError};
use cairn_ostree::repo::{CommitInfo, CommitOptions, CommitResult, Mode, Parent, Repo};
use cairn_treefile::{self as treefile, Backend, LoadOptions, Treefile};

/// Metadata keys compose writes on every commit, documented for users in docs/compose.md
/// ("Commit"); `cairn repo diff` reads `cairn.packages` back.
pub const META_INPUT_HASH: &str = "cairn.input-hash";
pub const META_PACKAGES: &str = "cairn.packages";
pub const META_TREEFILE: &str = "cairn.treefile";
pub const META_BACKEND: &str = "cairn.backend";
/// `sha256:...` of the snapshot a compose installed from (`cairn repo show` prints it).
pub const META_SNAPSHOT: &str = "cairn.snapshot";

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
    /// Install exactly these versions; a later file's entry overrides an earlier one's.
    pub lockfiles: Vec<PathBuf>,
    /// Fail when the resolution needs a package no lockfile names.
    pub lockfile_strict: bool,
    /// Write the resolved package set here (rpm-ostree's lockfile format).
    pub write_lockfile: Option<PathBuf>,
    /// A `cairn snapshot` directory or http(s) URL to install from instead of the mirrors.
    pub snapshot: Option<String>,
    /// GPG key id to sign the commit and the summary with; default: the treefile's `gpg-key`.
    pub gpg_key: Option<String>,
    pub gpg_homedir: Option<PathBuf>,
    /// Commit time and clamp for file times; default: `$SOURCE_DATE_EPOCH`, else the snapshot's
    /// timestamp, else none (now).
    pub source_date_epoch: Option<u64>,
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

/// What a running compose reports, for progress bars and log files.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event<'a> {
    Start(Phase),
    /// A step within the current phase, in cairn's words ("dracut --add ostree for ...").
    Step(&'a str),
    /// One line of tool output (mmdebstrap, apt, dnf, dracut, postprocess scripts).
    Line(&'a str),
    Done(Phase, f64),
    Warning(&'a str),
}

impl<'a> From<Note<'a>> for Event<'a> {
    fn from(n: Note<'a>) -> Self {
        match n {
            Note::Step(s) => Event::Step(s),
            Note::Output(l) => Event::Line(l),
        }
    }
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

/// The result of a compose; printed as the body of a `ComposeResult` document by `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComposeReport {
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
    /// The initramfs came from the initramfs cache (dracut did not run).
    pub initramfs_cached: bool,
    /// Content objects the commit wrote (the rest of the tree was already in the repo).
    pub objects_written: Option<u64>,
    pub sbom: Option<PathBuf>,
    pub timings: Timings,
    pub warnings: Vec<String>,
    /// The snapshot's digest (`sha256:...`), when composed from one.
    pub snapshot: Option<String>,
    /// Where `--write-lockfile` wrote the resolved package set.
    pub lockfile: Option<PathBuf>,
    /// The commit time and file-time clamp used, when reproducible.
    pub source_date_epoch: Option<u64>,
    /// The GPG key id the commit and summary were signed with.
    pub signed_with: Option<String>,
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

/// What a compose decided before any package work.
struct Job<'o> {
    opts: &'o ComposeOptions,
    tf: Treefile,
    plan: Plan,
    /// Absolute: mmdebstrap hooks and dnf run with other working directories.
    cachedir: PathBuf,
    /// The ref's current commit, if the repository and ref exist.
    previous: Option<CommitInfo>,
    started: Instant,
    /// Merged lockfiles (the snapshot's first, then `--lockfile`s in order).
    locked: BTreeMap<String, Locked>,
    snapshot: Option<Opened>,
    sde: Option<u64>,
    gpg_key: Option<String>,
}

/// The package phase's result: what postprocess, the commit and the SBOM need to know.
pub(crate) struct Installed {
    pub packages: Vec<Package>,
    pub db: PackageDb,
    pub distro: String,
    /// Read back when a lockfile, `--write-lockfile` or a snapshot needs it.
    pub sources: Option<Vec<Source>>,
}

/// Runs a compose.
pub fn compose(
    opts: &ComposeOptions,
    events: &mut dyn FnMut(Event),
) -> Result<ComposeReport, ComposeError> {
    let (job, repo, mut report) = load(opts, events)?;
    if let Some(prev) = &job.previous {
        let same = prev.metadata.get(META_INPUT_HASH).and_then(|v| v.as_str())
            == Some(report.input_hash.as_str());
        let locked_same = locking::matches_commit(
            prev.metadata.get(META_PACKAGES).and_then(|v| v.as_str()),
            &job.locked,
            opts.lockfile_strict,
        );
        if same && locked_same && !opts.force_nocache && opts.write_lockfile.is_none() {
            return Ok(unchanged(&job, prev, report));
        }
    }
    report.version = match &job.plan.version_prefix {
        Some(p) => Some(version::compute(
            p,
            job.previous.as_ref().and_then(|p| p.version.as_deref()),
            build_time(job.sde),
        )?),
        None => None,
    };
    if opts.dry_run {
        return Ok(finish(&job, report));
    }
    let repo = match repo {
        Some(r) => r,
        // Archive mode: servable over plain HTTP (`cairn serve`, nginx) and pullable into sysroots.
        None => Repo::init(&opts.repo, Mode::Archive)?,
    };
    let build = build_dir(&job.cachedir)?;
    if matches!(job.plan.backend, BackendPlan::RpmOstree) {
        return compose_rpm_ostree(&job, &repo, build.path(), report, events);
    }
    let installed = install_packages(&job, build.path(), &mut report, events)?;
    let rootfs = build.path().join("rootfs");
    let pp = postprocess_tree(&job, &rootfs, &installed, &mut report, events)?;
    let committed = commit(&job, &repo, &rootfs, &installed, &mut report, events)?;
    drop(build);
    let sbom = write_sbom(&job, &installed, &committed, report.version.as_deref())?;
    if let (Some(path), Some(sources)) = (&opts.write_lockfile, &installed.sources) {
        write_lockfile(path, sources, job.sde)?;
        report.lockfile = Some(path.clone());
    }
    report.status = Status::Committed;
    report.commit = Some(committed.checksum);
    report.parent = committed.parent;
    report.package_count = Some(installed.packages.len());
    report.kernel = pp.kernel;
    report.initramfs_cached = pp.initramfs_cached;
    report.objects_written = Some(committed.objects_written);
    report.sbom = Some(sbom);
    Ok(finish(&job, report))
}

/// The time dates in versions and SBOMs are taken from: `SOURCE_DATE_EPOCH` when set, so a
/// rebuild on another day gives the same version.
fn build_time(sde: Option<u64>) -> chrono::DateTime<chrono::Utc> {
    sde.and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
        .unwrap_or_else(chrono::Utc::now)
}

pub(crate) fn write_lockfile(
    path: &Path,
    sources: &[Source],
    sde: Option<u64>,
) -> Result<(), ComposeError> {
    let resolved: Vec<_> = sources.iter().map(|s| s.resolved.clone()).collect();
    let lf = lockfile::from_resolution(&resolved, build_time(sde));
    Ok(lockfile::write(&lf, path)?)
}

/// The treefile, planned, with its snapshot and lockfiles applied: everything both a compose
/// and `cairn snapshot` decide before package work.
pub(crate) struct Prepared {
    pub tf: Treefile,
    pub plan: Plan,
    pub cachedir: PathBuf,
    pub locked: BTreeMap<String, Locked>,
    pub snapshot: Option<Opened>,
    pub sde: Option<u64>,
    pub warnings: Vec<String>,
}

pub(crate) fn prepare(
    opts: &ComposeOptions,
    events: &mut dyn FnMut(Event),
) -> Result<Prepared, ComposeError> {
    let tf = treefile::load(
        &opts.treefile,
        &LoadOptions {
            arch: opts.arch.clone(),
            vars: opts.vars.clone(),
        },
    )?;
    let chosen = plan::choose_backend(&tf, opts.backend, backend::tool_exists("rpm-ostree"))?;
    let mut plan = plan::plan(&tf, chosen)?;
    let mut warnings: Vec<String> = tf.warnings.iter().map(|w| w.to_string()).collect();
    warnings.extend(plan::ignored_keys(&tf, chosen));
    for w in &warnings {
        events(Event::Warning(w));
    }
    let snapshot = match &opts.snapshot {
        Some(s) => Some(snapshot::open(snapshot::Location::parse(s))?),
        None => None,
    };
    let mut locked = snapshot
        .as_ref()
        .map(|s| s.lock.packages.clone())
        .unwrap_or_default();
    locked.extend(lockfile::read_merged(&opts.lockfiles)?);
    locking::apply(&mut plan, snapshot.as_ref(), &locked, opts.lockfile_strict)?;
    let sde = match opts.source_date_epoch {
        Some(t) => Some(t),
        None => env_source_date_epoch()?.or(snapshot.as_ref().map(|s| s.info.timestamp)),
    };
    let cachedir = opts
        .cachedir
        .clone()
        .unwrap_or_else(|| default_cachedir(&opts.repo));
    let cachedir = std::path::absolute(&cachedir).unwrap_or(cachedir);
    Ok(Prepared {
        tf,
        plan,
        cachedir,
        locked,
        snapshot,
        sde,
        warnings,
    })
}

fn env_source_date_epoch() -> Result<Option<u64>, ComposeError> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.trim().is_empty() => s.trim().parse().map(Some).map_err(|_| {
            ComposeError::Treefile(format!(
                "SOURCE_DATE_EPOCH=`{s}` is not a number of seconds since 1970-01-01"
            ))
        }),
        _ => Ok(None),
    }
}

/// Loads the treefile and plans the compose; opens the repository if it exists. The report
/// starts as a dry run's.
fn load<'o>(
    opts: &'o ComposeOptions,
    events: &mut dyn FnMut(Event),
) -> Result<(Job<'o>, Option<Repo>, ComposeReport), ComposeError> {
    let started = Instant::now();
    let p = prepare(opts, events)?;
    let input_hash = inputs::hash(&p.plan.inputs)?;
    let repo = match Repo::open(&opts.repo) {
        Ok(r) => Some(r),
        Err(_) if !opts.repo.exists() => None,
        Err(e) => return Err(e.into()),
    };
    let previous = match &repo {
        Some(r) => match r.resolve(&p.plan.refname)? {
            Some(c) => Some(r.commit_info(&c)?),
            None => None,
        },
        None => None,
    };
    let gpg_key = opts.gpg_key.clone().or_else(|| {
        p.tf.json
            .get("gpg-key")
            .and_then(|v| v.as_str())
            .map(String::from)
    });
    let report = ComposeReport {
        status: Status::DryRun,
        refname: p.plan.refname.clone(),
        commit: None,
        parent: previous.as_ref().map(|p| p.checksum.clone()),
        version: None,
        input_hash,
        backend: p.plan.backend.name(),
        argv: display_argv(&p.plan, Path::new("<rootfs>"), &p.cachedir, &opts.repo),
        requested_packages: p.plan.packages.clone(),
        package_count: None,
        kernel: None,
        initramfs_cached: false,
        objects_written: None,
        sbom: None,
        timings: Timings {
            load: secs(started),
            ..Timings::default()
        },
        warnings: p.warnings,
        snapshot: p.snapshot.as_ref().map(|s| s.info.digest.clone()),
        lockfile: None,
        source_date_epoch: p.sde,
        signed_with: gpg_key.clone(),
    };
    let job = Job {
        opts,
        tf: p.tf,
        plan: p.plan,
        cachedir: p.cachedir,
        previous,
        started,
        locked: p.locked,
        snapshot: p.snapshot,
        sde: p.sde,
        gpg_key,
    };
    Ok((job, repo, report))
}

/// The report of a compose whose inputs match the ref's commit: that commit, nothing built.
fn unchanged(job: &Job, prev: &CommitInfo, mut report: ComposeReport) -> ComposeReport {
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
    finish(job, report)
}

fn finish(job: &Job, mut report: ComposeReport) -> ComposeReport {
    report.timings.total = secs(job.started);
    report
}

/// A fresh build directory in the cache dir, never in the repo: a compose killed at any point
/// leaves the repository as it was (the commit itself is one libostree transaction).
pub(crate) fn build_dir(cachedir: &Path) -> Result<tempfile::TempDir, ComposeError> {
    std::fs::create_dir_all(cachedir).map_err(|e| ComposeError::Io {
        what: format!("creating {}", cachedir.display()),
        error: e,
    })?;
    clean_stale_builds(cachedir);
    tempfile::Builder::new()
        .prefix(&format!("build-{}-", std::process::id()))
        .tempdir_in(cachedir)
        .map_err(|e| ComposeError::Io {
            what: format!("creating a build dir in {}", cachedir.display()),
            error: e,
        })
}

/// Times one phase, bracketed by its Start and Done events; `work` gets the event sink back.
fn phase<T>(
    phase: Phase,
    events: &mut dyn FnMut(Event),
    work: impl FnOnce(&mut dyn FnMut(Event)) -> Result<T, ComposeError>,
) -> Result<(T, f64), ComposeError> {
    let t = Instant::now();
    events(Event::Start(phase));
    let value = work(events)?;
    let took = secs(t);
    events(Event::Done(phase, took));
    Ok((value, took))
}

/// The package phase: the backend fills `build/rootfs`; the package database is read back.
fn install_packages(
    job: &Job,
    build: &Path,
    report: &mut ComposeReport,
    events: &mut dyn FnMut(Event),
) -> Result<Installed, ComposeError> {
    let pj = PackageJob {
        plan: &job.plan,
        cachedir: &job.cachedir,
        locked: &job.locked,
        strict: job.opts.lockfile_strict,
        snapshot: job.snapshot.as_ref(),
        sde: job.sde,
        want_sources: job.opts.write_lockfile.is_some(),
    };
    let (installed, took) = phase(Phase::Packages, events, |events| {
        install_and_resolve(&pj, build, events)
    })?;
    report.timings.packages = took;
    Ok(installed)
}

/// What the package phase needs, shared by compose and `cairn snapshot`.
pub(crate) struct PackageJob<'a> {
    pub plan: &'a Plan,
    pub cachedir: &'a Path,
    pub locked: &'a BTreeMap<String, Locked>,
    pub strict: bool,
    pub snapshot: Option<&'a Opened>,
    pub sde: Option<u64>,
    /// Read the resolution back even without lockfiles (`--write-lockfile`, snapshots).
    pub want_sources: bool,
}

/// Installs into `build/rootfs`, reads the package database back and, with lockfiles, checks
/// the resolution against them (before anything is committed).
pub(crate) fn install_and_resolve(
    pj: &PackageJob,
    build: &Path,
    events: &mut dyn FnMut(Event),
) -> Result<Installed, ComposeError> {
    let rootfs = build.join("rootfs");
    let run_plan = locking::for_run(&pj.plan.backend, build, pj.locked, pj.snapshot, pj.sde)?;
    let mut note = |n: Note| events(n.into());
    let cache = Some(pj.cachedir);
    let installed = match &run_plan {
        BackendPlan::Mmdebstrap(s) => backend::mmdebstrap::install(s, &rootfs, cache, &mut note),
        BackendPlan::Dnf(s) => backend::dnf::install(s, &rootfs, cache, &mut note),
        BackendPlan::Rootfs(s) => backend::rootfs::install(s, &rootfs, &mut note),
        BackendPlan::RpmOstree => unreachable!("rpm-ostree composes in compose_rpm_ostree"),
    };
    installed.map_err(|e| locking::explain_missing(e, &run_plan, pj.locked))?;
    let db = pj
        .plan
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
    let checking = !pj.locked.is_empty() || pj.strict;
    let sources = if checking || pj.want_sources {
        events(Event::Step("reading back the resolution (digests)"));
        let (sources, index) = locking::resolution(&run_plan, &packages, pj.cachedir, pj.snapshot)?;
        if checking {
            events(Event::Step("checking the resolution against the lockfiles"));
            locking::check(&run_plan, &sources, index.as_ref(), pj.locked, pj.strict)?;
        }
        Some(sources)
    } else {
        None
    };
    Ok(Installed {
        packages,
        db,
        distro,
        sources,
    })
}

/// The postprocess phase: the installed tree becomes an OSTree-ready one, in place.
fn postprocess_tree(
    job: &Job,
    rootfs: &Path,
    installed: &Installed,
    report: &mut ComposeReport,
    events: &mut dyn FnMut(Event),
) -> Result<postprocess::Report, ComposeError> {
    let mut spec = job.plan.postprocess.clone();
    spec.db = Some(installed.db);
    spec.version = report.version.clone();
    spec.source_date_epoch = job.sde;
    // --force-nocache rebuilds everything, the initramfs included.
    spec.initramfs_cache = (!job.opts.force_nocache).then(|| job.cachedir.clone());
    let (pp, took) = phase(Phase::Postprocess, events, |events| {
        let mut note = |n: Note| events(n.into());
        Ok(postprocess::run(rootfs, &spec, &mut note)?)
    })?;
    report.timings.postprocess = took;
    Ok(pp)
}

/// The commit phase: the tree, its version and the metadata keys, in one transaction.
fn commit(
    job: &Job,
    repo: &Repo,
    rootfs: &Path,
    installed: &Installed,
    report: &mut ComposeReport,
    events: &mut dyn FnMut(Event),
) -> Result<CommitResult, ComposeError> {
    let refname = &job.plan.refname;
    let opts = CommitOptions {
        refname: refname.clone(),
        subject: Some(match &report.version {
            Some(v) => format!("{refname} {v}"),
            None => refname.clone(),
        }),
        version: report.version.clone(),
        metadata: vec![
            (META_INPUT_HASH.into(), report.input_hash.clone().into()),
            (
                META_PACKAGES.into(),
                manifest::to_metadata_json(&installed.packages).into(),
            ),
            (
                META_TREEFILE.into(),
                serde_json::to_string(&job.tf.json).expect("json").into(),
            ),
            (META_BACKEND.into(), job.plan.backend.name().into()),
        ]
        .into_iter()
        .chain(
            job.snapshot
                .as_ref()
                .map(|s| (META_SNAPSHOT.to_string(), s.info.digest.clone().into())),
        )
        .collect(),
        parent: Parent::Auto,
        timestamp: job.sde,
        gpg_key: job.gpg_key.clone(),
        gpg_homedir: job.opts.gpg_homedir.clone(),
        // An OS tree needs its real modes and owners (setuid binaries, /var/mail 2775 root:mail).
        keep_permissions: true,
    };
    let (committed, took) = phase(Phase::Commit, events, |events| {
        events(Event::Step(&format!("writing the tree to {refname}")));
        Ok(repo.commit_tree(rootfs, &opts)?)
    })?;
    report.timings.commit = took;
    Ok(committed)
}

/// Writes the SPDX SBOM of the commit; returns its path.
fn write_sbom(
    job: &Job,
    installed: &Installed,
    committed: &CommitResult,
    version: Option<&str>,
) -> Result<PathBuf, ComposeError> {
    let path = job
        .opts
        .sbom
        .clone()
        .unwrap_or_else(|| sbom_default(&job.opts.repo, &job.plan.refname));
    let doc = manifest::sbom(
        &installed.packages,
        &manifest::SbomSubject {
            name: &job.plan.refname,
            version,
            unique: &committed.checksum,
            db: installed.db,
            distro: &installed.distro,
            created: build_time(job.sde),
            snapshot: job.snapshot.as_ref().map(|s| s.info.digest.as_str()),
        },
    );
    std::fs::write(&path, serde_json::to_string_pretty(&doc).expect("json")).map_err(|e| {
        ComposeError::Io {
            what: format!("writing SBOM {}", path.display()),
            error: e,
        }
    })?;
    Ok(path)
}

/// rpm-ostree installs, postprocesses and commits by itself; cairn renders its input and reads
/// back the commit.
fn compose_rpm_ostree(
    job: &Job,
    repo: &Repo,
    build: &Path,
    mut report: ComposeReport,
    events: &mut dyn FnMut(Event),
) -> Result<ComposeReport, ComposeError> {
    let spec = rpm_ostree::RpmOstreeSpec {
        rendered_treefile: render_for_rpm_ostree(&job.tf, &build.join("rpm-ostree-input"))?,
        repo: repo.path().to_path_buf(),
        cachedir: job.cachedir.join("rpm-ostree"),
        metadata: vec![
            (META_INPUT_HASH.into(), report.input_hash.clone()),
            (META_BACKEND.into(), "rpm-ostree".into()),
        ],
        commitid_file: build.join("commitid"),
        force_nocache: job.opts.force_nocache,
    };
    report.argv = rpm_ostree::argv(&spec);
    let (commit, took) = phase(Phase::Packages, events, |events| {
        let mut note = |n: Note| events(n.into());
        Ok(rpm_ostree::install(&spec, &mut note)?)
    })?;
    report.timings.packages = took;
    if let Some(c) = &commit {
        if let Some(v) = repo.commit_info(c)?.version {
            report.version = Some(v);
        }
    }
    report.status = if commit.is_some() {
        Status::Committed
    } else {
        Status::Unchanged
    };
    report.commit = commit;
    Ok(finish(job, report))
}

/// Writes `tf` rendered for rpm-ostree into `dir` (never over a user's file), with the `.repo`
/// files of the treefile's directory beside it, where rpm-ostree looks for them.
fn render_for_rpm_ostree(tf: &Treefile, dir: &Path) -> Result<PathBuf, ComposeError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e| ComposeError::Io { what, error: e }
    };
    let rendered = tf
        .for_rpm_ostree()?
        .write_to(dir)
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
    Ok(rendered)
}
