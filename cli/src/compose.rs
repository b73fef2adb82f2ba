//! `cairn compose TREEFILE --repo R`: build an OSTree commit from a treefile.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{Global, Status};
use cairn_compose::{self as compose, ComposeOptions, Event};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// The treefile's `cairn.backend`; else rpm-ostree if installed and the treefile has
    /// `repos`, else dnf if `repos`, else mmdebstrap if `cairn.mmdebstrap`, else rootfs.
    Auto,
    /// `rpm-ostree compose tree --unified-core` on the treefile rendered for rpm-ostree.
    RpmOstree,
    /// `dnf --installroot` with the `.repo` files beside the treefile.
    Dnf,
    /// Debian/Ubuntu from `cairn.mmdebstrap` (suite, mirror, components, variant).
    Mmdebstrap,
    /// An existing directory or tarball from `cairn.rootfs.path`.
    Rootfs,
}

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
    /// The package backend; `auto` lets the treefile and host decide.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Cache directory kept between composes (downloaded packages, build trees). Default:
    /// `cairn-cache` beside the repository.
    #[arg(long)]
    pub cachedir: Option<PathBuf>,
    /// Target basearch (x86_64, aarch64, ppc64le, s390x); default: the host's.
    #[arg(long)]
    pub arch: Option<String>,
    /// Override a treefile variable (`--var releasever=40`); repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Print the plan (backend, command, packages, ref, next version) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Build even when the input hash matches the ref's commit.
    #[arg(long)]
    pub force_nocache: bool,
    /// Exit 77 instead of 0 when nothing changed (for CI pipelines that skip later stages).
    #[arg(long)]
    pub unchanged_exit_77: bool,
    /// Print the result as JSON (apiVersion cairn/v1), phase timings included.
    #[arg(long)]
    pub json: bool,
    /// Where to write the SPDX 2.3 JSON SBOM. Default: `<ref with / as _>.spdx.json` beside
    /// the repository.
    #[arg(long)]
    pub sbom: Option<PathBuf>,
}

/// Progress on stderr: a spinner per phase on a TTY, plain lines otherwise.
struct Progress {
    quiet: bool,
    bar: Option<indicatif::ProgressBar>,
    tty: bool,
}

impl Progress {
    fn event(&mut self, e: Event) {
        if self.quiet {
            return;
        }
        match e {
            Event::Start(p) => {
                if self.tty {
                    let bar = indicatif::ProgressBar::new_spinner();
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{spinner} {prefix:<12} {elapsed:>4} {wide_msg}",
                        )
                        .expect("template"),
                    );
                    bar.set_prefix(p.as_str());
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    self.bar = Some(bar);
                } else {
                    super::err!("compose: {} ...", p.as_str());
                }
            }
            Event::Line(l) => match &self.bar {
                Some(b) => b.set_message(l.to_string()),
                None => super::err!("  | {l}"),
            },
            Event::Done(p, secs) => {
                if let Some(b) = self.bar.take() {
                    b.finish_with_message(format!("done in {secs:.1}s"));
                } else {
                    super::err!("compose: {} done in {secs:.1}s", p.as_str());
                }
            }
            Event::Warning(w) => {
                if let Some(b) = &self.bar {
                    b.suspend(|| super::err!("warning: {w}"));
                } else {
                    super::err!("warning: {w}");
                }
            }
        }
    }
}

pub fn run(args: ComposeArgs, global: &Global) -> anyhow::Result<Status> {
    use cairn_treefile::Backend;
    let vars = args
        .vars
        .iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--var `{v}`: expected NAME=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = ComposeOptions {
        treefile: args.treefile.clone(),
        repo: args.repo.clone(),
        backend: args.backend.map(|b| match b {
            BackendArg::Auto => Backend::Auto,
            BackendArg::RpmOstree => Backend::RpmOstree,
            BackendArg::Dnf => Backend::Dnf,
            BackendArg::Mmdebstrap => Backend::Mmdebstrap,
            BackendArg::Rootfs => Backend::Rootfs,
        }),
        cachedir: args.cachedir.clone(),
        arch: args.arch.clone(),
        vars,
        dry_run: args.dry_run,
        force_nocache: args.force_nocache,
        sbom: args.sbom.clone(),
    };
    let mut progress = Progress {
        quiet: global.quiet,
        bar: None,
        tty: std::io::stderr().is_terminal(),
    };
    let result = compose::compose(&opts, &mut |e| progress.event(e));
    if let Some(b) = progress.bar.take() {
        b.abandon_with_message("failed");
    }
    let report = result?;
    if args.json {
        super::output::print_doc("ComposeResult", &report)?;
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
