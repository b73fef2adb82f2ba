//! `cairn commit` and `cairn repo ...`: flags and printing; the work is in `cairn_ostree::repo`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Serialize;

use cairn_ostree::repo::{self, CommitOptions, Mode, Parent, Repo, SignType};

use super::{print_json, Global, Status};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Commit a directory tree to an OSTree repository and move a ref to it.
    #[command(after_help = COMMIT_EXAMPLES, disable_version_flag = true)]
    Commit(Box<CommitArgs>),
    /// Create and inspect OSTree repositories: refs, history, diffs, deltas, pruning, checks.
    #[command(subcommand)]
    Repo(RepoCmd),
}

const COMMIT_EXAMPLES: &str = "\
Examples:
  cairn commit ./rootfs --repo repo --ref exampleos/x86_64/stable --version 40.1
  SOURCE_DATE_EPOCH=1700000000 cairn commit ./rootfs --repo repo --ref os/dev --json
  cairn commit ./rootfs --repo repo --ref os/stable \\
      --gpg-sign 0123ABCD --gpg-homedir ~/.gnupg --add-metadata build.id=4711

Prints the new commit's checksum on stdout (or a JSON object with --json). Permissions are
canonical (owner 0:0, mode & 0755, like `ostree commit --canonical-permissions`) unless
--keep-permissions. Failpoint for crash tests: CAIRN_FAILPOINT=repo-commit-before-ref=pause.";

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The directory to commit (its contents become the tree root).
    pub rootfs: PathBuf,
    /// The OSTree repository to write into.
    #[arg(long)]
    pub repo: PathBuf,
    /// The ref (branch) to point at the new commit, e.g. exampleos/x86_64/stable.
    #[arg(long = "ref", value_name = "REF")]
    pub refname: String,
    /// One-line subject stored in the commit.
    #[arg(long, short = 's')]
    pub subject: Option<String>,
    /// Version string (the standard `version` metadata key `ostree admin status` shows).
    #[arg(long)]
    pub version: Option<String>,
    /// Extra string metadata KEY=VALUE; repeatable.
    #[arg(long = "add-metadata", value_name = "KEY=VALUE", value_parser = parse_kv)]
    pub add_metadata: Vec<(String, String)>,
    /// Parent commit: `auto` (the ref's current commit), `none`, or a checksum/ref.
    #[arg(long, default_value = "auto", value_name = "auto|none|CHECKSUM")]
    pub parent: Parent,
    /// Commit time in seconds since the epoch [default: $SOURCE_DATE_EPOCH, else now].
    #[arg(long, value_name = "SECONDS")]
    pub timestamp: Option<u64>,
    /// Sign the commit with this GPG key id (via libostree/gpgme).
    #[arg(long, value_name = "KEYID")]
    pub gpg_sign: Option<String>,
    /// GnuPG home directory holding the secret key [default: $GNUPGHOME or ~/.gnupg].
    #[arg(long, value_name = "DIR", requires = "gpg_sign")]
    pub gpg_homedir: Option<PathBuf>,
    /// Signature type: gpg, or ed25519 where this libostree was built with it.
    #[arg(long, default_value = "gpg", value_name = "gpg|ed25519")]
    pub sign_type: String,
    /// Store real owners and mode bits (setuid, non-root owners) instead of canonical ones.
    #[arg(long)]
    pub keep_permissions: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}`: expected KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
pub struct RepoArg {
    /// The OSTree repository.
    #[arg(long)]
    pub repo: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Create a repository.
    #[command(after_help = "Example:\n  cairn repo init /srv/ostree/repo --mode archive")]
    Init {
        /// Where to create it (an absent or empty directory).
        path: PathBuf,
        /// archive (compressed, servable over HTTP), bare-user (no root needed) or bare.
        #[arg(long, default_value = "archive", value_name = "archive|bare-user|bare")]
        mode: String,
    },
    /// List refs and the commits they point at.
    Refs {
        #[command(flatten)]
        repo: RepoArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a ref's history, newest first.
    Log {
        /// A ref or commit checksum.
        rev: String,
        #[command(flatten)]
        repo: RepoArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one commit: version, timestamp, parent, subject, metadata, signatures.
    Show {
        /// A ref or commit checksum.
        rev: String,
        #[command(flatten)]
        repo: RepoArg,
        /// Check signatures against this keyring (a .gpg file or a directory of them).
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Files (and packages, when both commits carry a manifest) changed between two commits.
    Diff {
        /// The older ref or commit.
        from: String,
        /// The newer ref or commit.
        to: String,
        #[command(flatten)]
        repo: RepoArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Static deltas: what `ostree pull` downloads instead of single objects.
    #[command(subcommand)]
    Delta(DeltaCmd),
    /// Delete history beyond the newest N commits of every ref, and unreachable objects.
    Prune {
        /// Commits of history to keep per ref (1 = only the commit each ref points at).
        #[arg(long, value_name = "N")]
        keep: u32,
        #[command(flatten)]
        repo: RepoArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every object's checksum and, with --keyring, every ref's signature.
    Verify {
        #[command(flatten)]
        repo: RepoArg,
        /// Require a valid GPG signature from this keyring (a .gpg file or a directory).
        #[arg(long, value_name = "PATH")]
        keyring: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeltaCmd {
    /// Generate a static delta and update the summary.
    #[command(
        after_help = "Examples:\n  cairn repo delta generate --repo repo --from os/stable^ --to os/stable\n  cairn repo delta generate --repo repo --empty --to os/stable"
    )]
    Generate {
        /// The commit clients already have.
        #[arg(long, required_unless_present = "empty", conflicts_with = "empty")]
        from: Option<String>,
        /// Generate a from-scratch delta (for first pulls).
        #[arg(long)]
        empty: bool,
        /// The commit clients will get.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        repo: RepoArg,
    },
    /// List static deltas.
    List {
        #[command(flatten)]
        repo: RepoArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versioned<T: Serialize> {
    api_version: &'static str,
    kind: &'static str,
    #[serde(flatten)]
    value: T,
}

fn versioned<T: Serialize>(kind: &'static str, value: T) -> Versioned<T> {
    Versioned {
        api_version: "cairn/v1",
        kind,
        value,
    }
}

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Commit(a) => commit(*a, global),
        Cmd::Repo(c) => repo_cmd(c, global),
    }
}

fn open(path: &Path) -> anyhow::Result<Repo> {
    Ok(Repo::open(path)?)
}

fn commit(a: CommitArgs, global: &Global) -> anyhow::Result<Status> {
    let sign_type: SignType = a.sign_type.parse()?;
    sign_type.ensure_available()?;
    let r = open(&a.repo)?;
    let opts = CommitOptions {
        refname: a.refname,
        subject: a.subject,
        version: a.version,
        metadata: a
            .add_metadata
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
        parent: a.parent,
        timestamp: a.timestamp,
        gpg_key: a.gpg_sign,
        gpg_homedir: a.gpg_homedir,
        keep_permissions: a.keep_permissions,
    };
    if !global.quiet {
        super::err!(
            "Committing {} to {} as {}",
            a.rootfs.display(),
            a.repo.display(),
            opts.refname
        );
    }
    let res = r.commit_tree(&a.rootfs, &opts)?;
    if a.json {
        print_json(&versioned("CommitResult", &res))?;
    } else {
        if !global.quiet {
            super::err!(
                "{} -> {}{}",
                res.refname,
                res.checksum,
                if res.content_unchanged {
                    " (tree unchanged from parent)"
                } else {
                    ""
                }
            );
        }
        super::out!("{}", res.checksum);
    }
    Ok(0)
}

fn date(ts: u64) -> String {
    chrono::DateTime::from_timestamp(ts as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ts.to_string())
}

fn repo_cmd(c: RepoCmd, global: &Global) -> anyhow::Result<Status> {
    match c {
        RepoCmd::Init { path, mode } => {
            let mode: Mode = mode.parse()?;
            Repo::init(&path, mode)?;
            if !global.quiet {
                super::err!("Created {} repository {}", mode.as_str(), path.display());
            }
            Ok(0)
        }
        RepoCmd::Refs { repo, json } => {
            let refs = open(&repo.repo)?.refs()?;
            if json {
                print_json(&versioned("RefList", serde_json::json!({ "refs": refs })))?;
            } else {
                for (name, csum) in refs {
                    super::out!("{name} {csum}");
                }
            }
            Ok(0)
        }
        RepoCmd::Log { rev, repo, json } => {
            let (entries, truncated) = open(&repo.repo)?.log(&rev)?;
            if json {
                print_json(&versioned(
                    "CommitLog",
                    serde_json::json!({ "commits": entries, "truncated": truncated }),
                ))?;
            } else {
                for e in &entries {
                    super::out!("commit {}", e.checksum);
                    super::out!("Date:    {}", date(e.timestamp));
                    if let Some(v) = &e.version {
                        super::out!("Version: {v}");
                    }
                    if !e.subject.is_empty() {
                        super::out!("\n    {}", e.subject);
                    }
                    super::out!();
                }
                if truncated {
                    super::out!("<< History beyond this commit is not in the repository (pruned or not pulled) >>");
                }
            }
            Ok(0)
        }
        RepoCmd::Show {
            rev,
            repo,
            keyring,
            json,
        } => {
            let info = open(&repo.repo)?.commit_info_with_keyring(&rev, keyring.as_deref())?;
            if json {
                print_json(&versioned("Commit", &info))?;
                return Ok(0);
            }
            super::out!("commit {}", info.checksum);
            super::out!("Parent:  {}", info.parent.as_deref().unwrap_or("(none)"));
            super::out!("Date:    {} ({})", date(info.timestamp), info.timestamp);
            if let Some(v) = &info.version {
                super::out!("Version: {v}");
            }
            super::out!("Subject: {}", info.subject);
            if !info.metadata.is_empty() {
                super::out!("Metadata:");
                for (k, v) in &info.metadata {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let v = if v.len() > 120 {
                        format!(
                            "{}... ({} bytes; --json for all)",
                            &v[..v.floor_char_boundary_compat(100)],
                            v.len()
                        )
                    } else {
                        v
                    };
                    super::out!("  {k}: {v}");
                }
            }
            if info.signatures.is_empty() {
                super::out!("Signatures: none");
            } else {
                super::out!("Signatures:");
                for s in &info.signatures {
                    let state = if s.valid {
                        "good"
                    } else if s.key_missing {
                        "key not in keyring (pass --keyring)"
                    } else {
                        "BAD"
                    };
                    super::out!(
                        "  {} {} {} made {}{}",
                        s.kind,
                        s.fingerprint,
                        state,
                        date(s.timestamp.max(0) as u64),
                        s.user
                            .as_deref()
                            .map(|u| format!(" by {u}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        RepoCmd::Diff {
            from,
            to,
            repo,
            json,
        } => {
            let d = open(&repo.repo)?.diff(&from, &to)?;
            if json {
                print_json(&d)?;
                return Ok(0);
            }
            for p in &d.files.added {
                super::out!("A {p}");
            }
            for p in &d.files.removed {
                super::out!("D {p}");
            }
            for p in &d.files.modified {
                super::out!("M {p}");
            }
            if let Some(pk) = &d.packages {
                if !pk.is_empty() {
                    super::out!("Packages:");
                }
                for p in &pk.added {
                    super::out!("  + {} {} {}", p.name, p.evr(), p.arch);
                }
                for p in &pk.removed {
                    super::out!("  - {} {} {}", p.name, p.evr(), p.arch);
                }
                for c in &pk.changed {
                    super::out!("  ~ {} {} -> {} {}", c.name, c.from, c.to, c.arch);
                }
            }
            Ok(0)
        }
        RepoCmd::Delta(DeltaCmd::Generate {
            from,
            empty: _,
            to,
            repo,
        }) => {
            let d = open(&repo.repo)?.generate_delta(from.as_deref(), &to)?;
            if !global.quiet {
                super::err!(
                    "Generated static delta {} -> {}",
                    d.from.as_deref().unwrap_or("(empty)"),
                    d.to
                );
            }
            Ok(0)
        }
        RepoCmd::Delta(DeltaCmd::List { repo, json }) => {
            let deltas = open(&repo.repo)?.deltas()?;
            if json {
                print_json(&versioned(
                    "DeltaList",
                    serde_json::json!({ "deltas": deltas }),
                ))?;
            } else {
                for d in deltas {
                    super::out!("{} -> {}", d.from.as_deref().unwrap_or("(empty)"), d.to);
                }
            }
            Ok(0)
        }
        RepoCmd::Prune { keep, repo, json } => {
            let res = open(&repo.repo)?.prune(keep)?;
            if json {
                print_json(&res)?;
            } else if !global.quiet {
                super::out!(
                    "Pruned {} of {} objects, freed {} bytes",
                    res.objects_pruned,
                    res.objects_total,
                    res.bytes_freed
                );
            }
            Ok(0)
        }
        RepoCmd::Verify {
            repo,
            keyring,
            json,
        } => {
            let report = open(&repo.repo)?.verify(&repo::VerifyOptions { keyring })?;
            if json {
                print_json(&report)?;
            } else {
                for e in &report.errors {
                    super::out!("error: {e}");
                }
                super::out!(
                    "{}: {} objects checked, {} refs, {} problem(s)",
                    if report.ok { "ok" } else { "FAILED" },
                    report.objects_checked,
                    report.refs.len(),
                    report.errors.len()
                );
            }
            if report.ok {
                Ok(0)
            } else {
                anyhow::bail!(
                    "{}: verification failed ({} problem(s))",
                    repo.repo.display(),
                    report.errors.len()
                )
            }
        }
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for String {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
