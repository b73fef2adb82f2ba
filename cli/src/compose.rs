//! `cairn compose TREEFILE --repo R`: build an OSTree commit from a treefile.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::{Global, Status};
use cairn_compose::{self as compose, ComposeOptions};
use cairn_treefile::Backend;

pub mod progress;

/// Compose a treefile into an OSTree commit: install packages into a fresh root filesystem,
/// postprocess it into an OSTree-ready tree, commit it with a package manifest and an SBOM.
///
/// A compose whose inputs (flattened treefile, package set, backend settings, the content of
/// every referenced file) hash the same as the ref's current commit does no package work at
/// all and reports "no changes".
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cairn compose treefiles/debian-12.yaml --repo build/repo
  cairn compose fedora.yaml --repo build/repo --backend dnf --arch aarch64 --var releasever=40
  cairn compose host.yaml --repo repo --dry-run          # print the plan, write nothing
  cairn compose host.yaml --repo repo --write-lockfile host.lock.json
  cairn compose host.yaml --repo repo --lockfile host.lock.json --lockfile-strict
  cairn compose host.yaml --repo repo --snapshot /srv/snapshots/2024-06-01 --gpg-sign 0123ABCD
  rc=0; cairn compose host.yaml --repo repo --unchanged-exit-77 || rc=$?
  [ $rc = 77 ] && echo 'inputs unchanged: nothing to ship'

Exit status: 0 on a new commit or no changes; 77 on no changes with --unchanged-exit-77; 1 on
error (nothing is committed; the repository is left as it was).")]
pub struct ComposeArgs {
    /// The treefile (YAML or JSON, rpm-ostree compatible, with a `cairn:` section).
    pub treefile: PathBuf,
    /// The OSTree repository to commit into (created in archive mode if absent).
    #[arg(long)]
    pub repo: PathBuf,
    #[command(flatten)]
    pub resolve: ResolveArgs,
    /// Cache directory kept between composes (downloaded packages, build trees). Default:
    /// `cairn-cache` beside the repository.
    #[arg(long)]
    pub cachedir: Option<PathBuf>,
    /// Print the plan (backend, command, packages, ref, next version) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Build even when the input hash matches the ref's commit.
    #[arg(long)]
    pub force_nocache: bool,
    /// Exit 77 instead of 0 when nothing changed (for CI pipelines that skip later stages).
    #[arg(long)]
    pub unchanged_exit_77: bool,
    /// Print the result as JSON (a ComposeResult document), phase timings included.
    #[arg(long)]
    pub json: bool,
    /// Stream tool output (mmdebstrap, apt, dnf, dracut, postprocess scripts) on stderr as it
    /// comes; without it, tool output only goes to the log file.
    #[arg(long, short)]
    pub verbose: bool,
    /// The log file every line of tool output is written to. Default:
    /// `CACHEDIR/logs/compose-<UTC time>.log` (the newest 10 are kept).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Where to write the SPDX 2.3 JSON SBOM. Default: `<ref with / as _>.spdx.json` beside
    /// the repository.
    #[arg(long)]
    pub sbom: Option<PathBuf>,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Write the resolved package set (every installed package, its version and the sha256 of
    /// its file) to FILE, in rpm-ostree's lockfile format. Implies a build even when unchanged.
    #[arg(long, value_name = "FILE")]
    pub write_lockfile: Option<PathBuf>,
    /// Install from this `cairn snapshot` (a directory or an http(s) URL) instead of the
    /// treefile's mirrors: no other network is used, the snapshot's lockfile applies, and
    /// SOURCE_DATE_EPOCH defaults to the snapshot's timestamp.
    #[arg(long, value_name = "DIR|URL")]
    pub snapshot: Option<String>,
    /// Sign the commit and the summary with this GPG key id [default: the treefile's `gpg-key`].
    #[arg(long, value_name = "KEYID")]
    pub gpg_sign: Option<String>,
    /// GnuPG home directory holding the secret key [default: $GNUPGHOME or ~/.gnupg].
    #[arg(long, value_name = "DIR")]
    pub gpg_homedir: Option<PathBuf>,
}

/// How a treefile's packages are resolved, shared by `compose` and `snapshot`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResolveArgs {
    /// The package backend. `auto`: the treefile's `cairn.backend`; else rpm-ostree if installed
    /// and the treefile has `repos`, else dnf if `repos`, else mmdebstrap if `cairn.mmdebstrap`,
    /// else rootfs (`cairn.rootfs.path`, a directory or tarball).
    #[arg(long, value_parser = crate::args::named::<Backend>())]
    pub backend: Option<Backend>,
    /// Target basearch (x86_64, aarch64, ppc64le, s390x); default: the host's.
    #[arg(long)]
    pub arch: Option<String>,
    /// Override a treefile variable (`--var releasever=40`); repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = cairn_treefile::parse_var_arg)]
    pub vars: Vec<(String, String)>,
}

/// Lockfile flags, shared by `compose` and `snapshot`.
#[derive(Debug, Clone, clap::Args)]
pub struct LockArgs {
    /// Install exactly the versions this lockfile names and check every package's digest;
    /// repeatable (a later file's entry overrides an earlier one's).
    #[arg(long = "lockfile", value_name = "FILE")]
    pub lockfiles: Vec<PathBuf>,
    /// Fail when the resolution needs a package that no lockfile names.
    #[arg(long)]
    pub lockfile_strict: bool,
}

/// The `--json` body: the report, plus where its tool output went.
#[derive(Serialize)]
struct ComposeDoc<'a> {
    #[serde(flatten)]
    report: &'a compose::ComposeReport,
    /// Absent when no tool ran (no changes, dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a Path>,
}

pub fn run(args: ComposeArgs, global: &Global) -> anyhow::Result<Status> {
    let opts = ComposeOptions {
        treefile: args.treefile.clone(),
        repo: args.repo.clone(),
        backend: args.resolve.backend,
        cachedir: args.cachedir.clone(),
        arch: args.resolve.arch.clone(),
        vars: args.resolve.vars.clone(),
        dry_run: args.dry_run,
        force_nocache: args.force_nocache,
        sbom: args.sbom.clone(),
        lockfiles: args.lock.lockfiles.clone(),
        lockfile_strict: args.lock.lockfile_strict,
        write_lockfile: args.write_lockfile.clone(),
        snapshot: args.snapshot.clone(),
        gpg_key: args.gpg_sign.clone(),
        gpg_homedir: args.gpg_homedir.clone(),
        source_date_epoch: None,
    };
    let log = match &args.log {
        Some(path) => progress::LogTarget::File(path.clone()),
        None => progress::LogTarget::Dir(
            args.cachedir
                .clone()
                .unwrap_or_else(|| compose::default_cachedir(&args.repo))
                .join("logs"),
        ),
    };
    let mut display = progress::Display::new(progress::mode(args.verbose, global.quiet), log);
    let result = compose::compose(&opts, &mut |e| display.event(e));
    let log = display.finish(result.is_ok());
    let report = result?;
    if args.json {
        let doc = ComposeDoc {
            report: &report,
            log: log.as_deref(),
        };
        super::output::print_doc("ComposeResult", &doc)?;
    } else {
        print_human(&report);
    }
    Ok(match report.status {
        compose::Status::Unchanged if args.unchanged_exit_77 => 77,
        _ => 0,
    })
}

/// The lines a pipeline greps for, the same whether a commit was made or the ref was current.
fn print_summary(r: &compose::ComposeReport) {
    let none = || "-".to_string();
    super::out!("ref:      {}", r.refname);
    super::out!("commit:   {}", r.commit.clone().unwrap_or_else(none));
    super::out!("version:  {}", r.version.clone().unwrap_or_else(none));
    super::out!(
        "packages: {}",
        r.package_count.map(|n| n.to_string()).unwrap_or_else(none)
    );
}

fn print_human(r: &compose::ComposeReport) {
    let none = || "-".to_string();
    match r.status {
        compose::Status::DryRun => {
            super::out!("plan (dry run, nothing written)");
            super::out!("  backend:  {}", r.backend);
            super::out!("  command:  {}", r.argv.join(" "));
            super::out!(
                "  packages: {} requested: {}",
                r.requested_packages.len(),
                r.requested_packages.join(" ")
            );
            super::out!("  ref:      {}", r.refname);
            super::out!("  version:  {}", r.version.clone().unwrap_or_else(none));
            super::out!("  parent:   {}", r.parent.clone().unwrap_or_else(none));
            super::out!("  input:    {}", r.input_hash);
        }
        compose::Status::Unchanged => {
            super::out!(
                "no changes: inputs match {} (input hash {})",
                r.refname,
                &r.input_hash[..12]
            );
            print_summary(r);
        }
        compose::Status::Committed => {
            print_summary(r);
            if let Some(k) = &r.kernel {
                super::out!("kernel:   {k}");
            }
            if let Some(s) = &r.sbom {
                super::out!("sbom:     {}", s.display());
            }
            if let Some(s) = &r.snapshot {
                super::out!("snapshot: {s}");
            }
            if let Some(l) = &r.lockfile {
                super::out!("lockfile: {}", l.display());
            }
            if let Some(k) = &r.signed_with {
                super::out!("signed:   GPG key {k}");
            }
            let t = &r.timings;
            super::out!(
                "time:     {:.1}s (packages {:.1}s, postprocess {:.1}s, commit {:.1}s)",
                t.total,
                t.packages,
                t.postprocess,
                t.commit
            );
        }
    }
}
