//! `cairn snapshot TREEFILE --out DIR`: the packages of a treefile's resolution as a static
//! repository, and `cairn lockfile diff`: flags and printing; the work is in `cairn_compose`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::compose::{progress, LockArgs, ResolveArgs};
use super::{Global, Status};
use crate::args::Json;
use crate::output::{out, print_doc};
use cairn_compose::{self as compose, lockfile, SnapshotOptions};

/// Download exactly the packages a treefile resolves to into a new directory, as a real package
/// repository (apt: pool/ + dists/SUITE/... + Release; RPM: createrepo_c metadata) with the
/// lockfile beside it. Compose from it with `cairn compose --snapshot DIR|URL`, offline.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  cairn snapshot treefiles/debian-12.yaml --out /srv/snapshots/debian-12-$(date +%F)
  cairn snapshot host.yaml --out snap --lockfile host.lock.json     # exactly the locked builds
  cairn compose treefiles/debian-12.yaml --repo repo --snapshot /srv/snapshots/debian-12-2024-06-01

Serve a snapshot with any static web server (or keep it in object storage) and pass its URL to
--snapshot. See docs/snapshot.md.")]
pub struct SnapshotArgs {
    /// The treefile whose packages to snapshot.
    pub treefile: PathBuf,
    /// The snapshot directory to create (must be absent or empty).
    #[arg(long)]
    pub out: PathBuf,
    // Snapshots support the mmdebstrap and dnf backends (the others have no package repository).
    #[command(flatten)]
    pub resolve: ResolveArgs,
    /// Package cache kept between runs. Default: `cairn-cache` beside --out.
    #[arg(long)]
    pub cachedir: Option<PathBuf>,
    #[command(flatten)]
    pub lock: LockArgs,
    /// Stream tool output on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub out_fmt: Json,
}

pub fn run(args: SnapshotArgs, global: &Global) -> anyhow::Result<Status> {
    let opts = SnapshotOptions {
        treefile: args.treefile,
        out: args.out.clone(),
        backend: args.resolve.backend,
        cachedir: args.cachedir.clone(),
        arch: args.resolve.arch,
        vars: args.resolve.vars,
        lockfiles: args.lock.lockfiles,
        lockfile_strict: args.lock.lockfile_strict,
    };
    let logs = args
        .cachedir
        .unwrap_or_else(|| compose::default_cachedir(&args.out))
        .join("logs");
    let mut display = progress::Display::new(
        progress::mode(args.verbose, global.quiet),
        progress::LogTarget::Dir(logs),
    );
    let result = compose::snapshot(&opts, &mut |e| display.event(e));
    display.finish(result.is_ok());
    let r = result?;
    if args.out_fmt.json {
        print_doc("SnapshotResult", &r)?;
        return Ok(0);
    }
    out!("snapshot: {}", r.out.display());
    out!("digest:   {}", r.info.digest);
    out!("packages: {}", r.info.packages);
    out!(
        "time:     {} (SOURCE_DATE_EPOCH of composes from it)",
        r.info.timestamp
    );
    out!("lockfile: {}", r.lockfile.display());
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum LockfileCmd {
    /// What changed between two lockfiles: packages added, removed and changed (for a pull
    /// request comment).
    #[command(after_help = "Example:\n  cairn lockfile diff main.lock.json pr.lock.json")]
    Diff {
        /// The older lockfile.
        from: PathBuf,
        /// The newer lockfile.
        to: PathBuf,
        #[command(flatten)]
        out: Json,
    },
}

pub fn lockfile_run(cmd: LockfileCmd) -> anyhow::Result<Status> {
    let LockfileCmd::Diff { from, to, out } = cmd;
    let d = lockfile::diff(&lockfile::read(&from)?, &lockfile::read(&to)?);
    if out.json {
        print_doc("LockfileDiff", &d)?;
        return Ok(0);
    }
    if d.is_empty() {
        out!("no changes");
    }
    for p in &d.added {
        out!("+ {} {}", p.name, p.evra);
    }
    for p in &d.removed {
        out!("- {} {}", p.name, p.evra);
    }
    for c in &d.changed {
        if c.digest_only {
            out!(
                "~ {} {} (same version, another file: rebuilt?)",
                c.name,
                c.to
            );
        } else {
            out!("~ {} {} -> {}", c.name, c.from, c.to);
        }
    }
    Ok(0)
}
