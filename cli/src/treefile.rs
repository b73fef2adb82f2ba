//! `cairn treefile render|check|diff`: flags and printing; the work is in `cairn_treefile`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::args::Json;
use crate::output::{err, out, print_doc};
use crate::{Global, Status};
use cairn_treefile::{self as treefile, Diagnostic, LoadOptions, Severity, Treefile};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print the flattened, substituted treefile as JSON (like `rpm-ostree compose tree
    /// --print-only`). Writes nothing unless --output-dir is given.
    #[command(after_help = "Examples:
  cairn treefile render treefiles/debian-12.yaml
  cairn treefile render manifest.yaml --arch aarch64 --var prod=true
  cairn treefile render treefiles/k8s-node.yaml --for rpm-ostree --output-dir build/")]
    Render {
        /// The entry treefile (YAML: .yaml/.yml; anything else is read as JSON).
        file: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        /// Lower the `cairn:` section for another tool: `rpm-ostree` drops it and expresses
        /// sysctl presets as generated add-files (see docs/treefile.md).
        #[arg(long = "for", value_name = "TOOL")]
        for_tool: Option<ForTool>,
        /// With --for rpm-ostree: write treefile.json and the generated files into DIR
        /// (what `rpm-ostree compose tree DIR/treefile.json` needs) instead of printing.
        #[arg(long, short = 'o', value_name = "DIR", requires = "for_tool")]
        output_dir: Option<PathBuf>,
    },
    /// Validate treefiles: every error and warning as file:line:col. Exit 1 on any error.
    #[command(after_help = "Examples:
  cairn treefile check treefiles/*.yaml
  cairn treefile check manifest.yaml --arch s390x --json")]
    Check {
        /// Entry treefiles to check (each with everything it includes).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        out: Json,
    },
    /// Show packages added/removed and keys changed from A to B (for pull-request review).
    #[command(after_help = "Example:
  cairn treefile diff treefiles/debian-12.yaml treefiles/k8s-node.yaml")]
    Diff {
        /// The old treefile.
        a: PathBuf,
        /// The new treefile.
        b: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        out: Json,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ForTool {
    RpmOstree,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Target base architecture (x86_64, aarch64, s390x, ppc64le, ...); default: this machine's.
    /// Decides `packages-$basearch`, `arch-include` and the `basearch` variable.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Set a variable, overriding every treefile's `variables` (repeatable). VALUE is read as a
    /// YAML scalar: `prod=false` is a boolean, `n=3` a number, anything else a string.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = treefile::parse_var_arg)]
    pub vars: Vec<(String, String)>,
}

impl LoadArgs {
    fn options(&self) -> LoadOptions {
        LoadOptions {
            arch: self.arch.clone(),
            vars: self.vars.clone(),
        }
    }
}

fn print_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        err!("{w}");
    }
}

fn load(file: &Path, args: &LoadArgs) -> anyhow::Result<Treefile> {
    let tf = treefile::load(file, &args.options())?;
    print_warnings(&tf.warnings);
    Ok(tf)
}

#[derive(Serialize)]
struct JsonDiagnostic {
    file: Option<String>,
    line: usize,
    col: usize,
    severity: Severity,
    message: String,
    included_from: Vec<String>,
}

impl From<&Diagnostic> for JsonDiagnostic {
    fn from(d: &Diagnostic) -> Self {
        JsonDiagnostic {
            file: d.loc.as_ref().map(|l| l.file.display().to_string()),
            line: d.loc.as_ref().map_or(0, |l| l.line),
            col: d.loc.as_ref().map_or(0, |l| l.col),
            severity: d.severity,
            message: d.message.clone(),
            included_from: d.included_from.iter().map(|l| l.to_string()).collect(),
        }
    }
}

/// `check --json`: the counts a CI gate reads, then every diagnostic.
#[derive(Serialize)]
struct CheckOut<'a> {
    files: &'a [PathBuf],
    errors: usize,
    warnings: usize,
    diagnostics: Vec<JsonDiagnostic>,
}

#[derive(Serialize)]
struct DiffOut<'a> {
    old: String,
    new: String,
    #[serde(flatten)]
    diff: &'a treefile::TreefileDiff,
}

fn show(v: &Option<serde_json::Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// Prints a treefile itself (not a cairn report): the output is fed back to cairn or
/// rpm-ostree as a treefile, so it carries no `apiVersion`/`kind` envelope.
fn print_treefile(json: &impl Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(json)?);
    Ok(())
}

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Render {
            file,
            load: args,
            for_tool: None,
            output_dir: _,
        } => {
            print_treefile(&load(&file, &args)?.json)?;
            Ok(0)
        }
        Cmd::Render {
            file,
            load: args,
            for_tool: Some(ForTool::RpmOstree),
            output_dir,
        } => render_for_rpm_ostree(&load(&file, &args)?, output_dir, global),
        Cmd::Check {
            files,
            load: args,
            out,
        } => check(&files, &args, out, global),
        Cmd::Diff {
            a,
            b,
            load: args,
            out,
        } => diff(&a, &b, &args, out),
    }
}

fn render_for_rpm_ostree(
    tf: &Treefile,
    output_dir: Option<PathBuf>,
    global: &Global,
) -> anyhow::Result<Status> {
    let low = tf.for_rpm_ostree()?;
    if !global.quiet {
        for n in &low.notes {
            err!("note: {n}");
        }
    }
    if let Some(dir) = output_dir {
        let path = low
            .write_to(&dir)
            .with_context(|| format!("writing {}", dir.display()))?;
        out!("{}", path.display());
        return Ok(0);
    }
    if !low.generated.is_empty() && !global.quiet {
        err!(
            "note: add-files names {} generated file(s) under {}/; pass --output-dir DIR to write them",
            low.generated.len(),
            treefile::GENERATED_DIR
        );
    }
    print_treefile(&low.json)?;
    Ok(0)
}

fn check(files: &[PathBuf], args: &LoadArgs, o: Json, global: &Global) -> anyhow::Result<Status> {
    let opts = args.options();
    let all: Vec<Diagnostic> = files
        .iter()
        .flat_map(|f| treefile::check(f, &opts))
        .collect();
    let errors = all.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = all.len() - errors;
    if o.json {
        print_doc(
            "TreefileCheck",
            &CheckOut {
                files,
                errors,
                warnings,
                diagnostics: all.iter().map(JsonDiagnostic::from).collect(),
            },
        )?;
    } else {
        for d in &all {
            err!("{d}");
        }
        if !global.quiet || errors > 0 {
            err!(
                "checked {} treefile(s): {errors} error(s), {warnings} warning(s)",
                files.len()
            );
        }
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

fn diff(a: &Path, b: &Path, args: &LoadArgs, o: Json) -> anyhow::Result<Status> {
    let d = treefile::diff(&load(a, args)?, &load(b, args)?);
    if o.json {
        let body = DiffOut {
            old: a.display().to_string(),
            new: b.display().to_string(),
            diff: &d,
        };
        print_doc("TreefileDiff", &body)?;
        return Ok(0);
    }
    out!("--- {}\n+++ {}", a.display(), b.display());
    if d.is_empty() {
        out!("no differences");
    }
    if !d.packages_added.is_empty() || !d.packages_removed.is_empty() {
        out!(
            "packages: +{} -{}",
            d.packages_added.len(),
            d.packages_removed.len()
        );
        for p in &d.packages_added {
            out!("  + {p}");
        }
        for p in &d.packages_removed {
            out!("  - {p}");
        }
    }
    for c in &d.changed {
        out!("{}:\n  - {}\n  + {}", c.key, show(&c.old), show(&c.new));
    }
    Ok(0)
}
