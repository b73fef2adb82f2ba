//! `cairn treefile render|check|diff`: flags and printing; the work is in `cairn_treefile`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::{Global, Status};
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
        /// Print a JSON array of {file, line, col, severity, message, included_from}.
        #[arg(long)]
        json: bool,
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
        /// Print the difference as JSON.
        #[arg(long)]
        json: bool,
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
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    treefile::parse_var_arg(s).map_err(|e| e.to_string())
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
        super::err!("{w}");
    }
}

fn load(file: &std::path::Path, args: &LoadArgs) -> anyhow::Result<Treefile> {
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DiffOut<'a> {
    api_version: &'static str,
    kind: &'static str,
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

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Render {
            file,
            load: args,
            for_tool,
            output_dir,
        } => {
            let tf = load(&file, &args)?;
            match for_tool {
                None => super::print_json(&tf.json)?,
                Some(ForTool::RpmOstree) => {
                    let low = tf.for_rpm_ostree()?;
                    if !global.quiet {
                        for n in &low.notes {
                            super::err!("note: {n}");
                        }
                    }
                    match output_dir {
                        Some(dir) => {
                            let path = low
                                .write_to(&dir)
                                .with_context(|| format!("writing {}", dir.display()))?;
                            super::out!("{}", path.display());
                        }
                        None => {
                            if !low.generated.is_empty() && !global.quiet {
                                super::err!(
                                    "note: add-files names {} generated file(s) under {}/; pass --output-dir DIR to write them",
                                    low.generated.len(),
                                    treefile::GENERATED_DIR
                                );
                            }
                            super::print_json(&low.json)?;
                        }
                    }
                }
            }
            Ok(0)
        }
        Cmd::Check {
            files,
            load: args,
            json,
        } => {
            let opts = args.options();
            let mut all = Vec::new();
            for f in &files {
                all.extend(treefile::check(f, &opts));
            }
            let errors = all.iter().filter(|d| d.severity == Severity::Error).count();
            let warnings = all.len() - errors;
            if json {
                let out: Vec<JsonDiagnostic> = all.iter().map(JsonDiagnostic::from).collect();
                super::print_json(&out)?;
            } else {
                for d in &all {
                    super::err!("{d}");
                }
                if !global.quiet || errors > 0 {
                    super::err!(
                        "checked {} treefile(s): {errors} error(s), {warnings} warning(s)",
                        files.len()
                    );
                }
            }
            Ok(if errors > 0 { 1 } else { 0 })
        }
        Cmd::Diff {
            a,
            b,
            load: args,
            json,
        } => {
            let ta = load(&a, &args)?;
            let tb = load(&b, &args)?;
            let d = treefile::diff(&ta, &tb);
            if json {
                super::print_json(&DiffOut {
                    api_version: "cairn/v1",
                    kind: "TreefileDiff",
                    old: a.display().to_string(),
                    new: b.display().to_string(),
                    diff: &d,
                })?;
                return Ok(0);
            }
            super::out!("--- {}\n+++ {}", a.display(), b.display());
            if d.is_empty() {
                super::out!("no differences");
            }
            if !d.packages_added.is_empty() || !d.packages_removed.is_empty() {
                super::out!(
                    "packages: +{} -{}",
                    d.packages_added.len(),
                    d.packages_removed.len()
                );
                for p in &d.packages_added {
                    super::out!("  + {p}");
                }
                for p in &d.packages_removed {
                    super::out!("  - {p}");
                }
            }
            for c in &d.changed {
                super::out!("{}:\n  - {}\n  + {}", c.key, show(&c.old), show(&c.new));
            }
            Ok(0)
        }
    }
}
