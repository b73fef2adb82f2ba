//! `cairn commit` and `cairn repo ...`: flags and printing; the work is in `cairn_ostree::repo`.

use std::path::{Path, PathBuf};

use cairn_common::named::Named;
use cairn_ostree::repo::{
    CommitOptions, CommitResult, Mode, Parent, Repo, SignType, Signature, VerifyOptions,
};
use clap::{Args, Subcommand};

use crate::args::Json;
use crate::output::{err, out, print_doc, suffix};
use crate::{Global, Status};

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

Prints the new commit's checksum on stdout (or a CommitResult document with --json). Permissions are
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
    #[arg(long = "add-metadata", value_name = "KEY=VALUE", value_parser = crate::args::key_value)]
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
    #[arg(long, value_parser = crate::args::named::<SignType>(), default_value = "gpg")]
    pub sign_type: SignType,
    /// Store real owners and mode bits (setuid, non-root owners) instead of canonical ones.
    #[arg(long)]
    pub keep_permissions: bool,
    #[command(flatten)]
    pub out: Json,
}

#[derive(Debug, Args)]
pub struct RepoArg {
    /// The OSTree repository.
    #[arg(long)]
    pub repo: PathBuf,
}

/// The repository and `--json`: what every inspecting subcommand takes.
#[derive(Debug, Args)]
pub struct Inspect {
    #[command(flatten)]
    pub repo: RepoArg,
    #[command(flatten)]
    pub out: Json,
}

#[derive(Debug, Args)]
pub struct KeyringArg {
    /// Check GPG signatures against this keyring (a .gpg file or a directory of them).
    #[arg(long, value_name = "PATH")]
    pub keyring: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Create a repository.
    #[command(after_help = "Example:\n  cairn repo init /srv/ostree/repo --mode archive")]
    Init {
        /// Where to create it (an absent or empty directory).
        path: PathBuf,
        /// archive (compressed, servable over HTTP), bare-user (no root needed) or bare.
        #[arg(long, value_parser = crate::args::named::<Mode>(), default_value = "archive")]
        mode: Mode,
    },
    /// List refs and the commits they point at.
    Refs {
        #[command(flatten)]
        at: Inspect,
    },
    /// Show a ref's history, newest first.
    Log {
        /// A ref or commit checksum.
        rev: String,
        #[command(flatten)]
        at: Inspect,
    },
    /// Show one commit: version, timestamp, parent, subject, metadata, signatures.
    Show {
        /// A ref or commit checksum.
        rev: String,
        #[command(flatten)]
        keyring: KeyringArg,
        #[command(flatten)]
        at: Inspect,
    },
    /// Files (and packages, when both commits carry a manifest) changed between two commits.
    Diff {
        /// The older ref or commit.
        from: String,
        /// The newer ref or commit.
        to: String,
        #[command(flatten)]
        at: Inspect,
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
        at: Inspect,
    },
    /// Sign an existing commit with a GPG key, and re-sign the summary with it (so remotes with
    /// gpg-verify=true and gpg-verify-summary=true pull from the repository).
    #[command(
        after_help = "Example:\n  cairn repo sign os/stable --repo repo --gpg-sign 0123ABCD --gpg-homedir ~/.gnupg"
    )]
    Sign {
        /// A ref or commit checksum.
        rev: String,
        /// The GPG key id to sign with.
        #[arg(long, value_name = "KEYID")]
        gpg_sign: String,
        /// GnuPG home directory holding the secret key [default: $GNUPGHOME or ~/.gnupg].
        #[arg(long, value_name = "DIR")]
        gpg_homedir: Option<PathBuf>,
        #[command(flatten)]
        at: Inspect,
    },
    /// Check every object's checksum and, with --keyring, that every ref is signed by a key in it.
    Verify {
        #[command(flatten)]
        keyring: KeyringArg,
        #[command(flatten)]
        at: Inspect,
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
        at: Inspect,
    },
}

pub fn run(cmd: Cmd, global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Commit(a) => commit(*a, global),
        Cmd::Repo(c) => repo_cmd(c, global),
    }
}

fn repo_cmd(c: RepoCmd, global: &Global) -> anyhow::Result<Status> {
    match c {
        RepoCmd::Init { path, mode } => init(&path, mode, global),
        RepoCmd::Refs { at } => refs(&at),
        RepoCmd::Log { rev, at } => log(&rev, &at),
        RepoCmd::Show { rev, at, keyring } => show(&rev, &at, &keyring),
        RepoCmd::Diff { from, to, at } => diff(&from, &to, &at),
        RepoCmd::Delta(DeltaCmd::Generate {
            from,
            empty: _,
            to,
            repo,
        }) => delta_generate(from.as_deref(), &to, &repo, global),
        RepoCmd::Delta(DeltaCmd::List { at }) => delta_list(&at),
        RepoCmd::Prune { keep, at } => prune(keep, &at, global),
        RepoCmd::Verify { at, keyring } => verify(&at, keyring),
        RepoCmd::Sign {
            rev,
            gpg_sign,
            gpg_homedir,
            at,
        } => sign(&rev, &gpg_sign, gpg_homedir.as_deref(), &at, global),
    }
}

fn open(repo: &RepoArg) -> anyhow::Result<Repo> {
    Ok(Repo::open(&repo.repo)?)
}

fn commit(a: CommitArgs, global: &Global) -> anyhow::Result<Status> {
    a.sign_type.ensure_available()?;
    let r = Repo::open(&a.repo)?;
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
        err!(
            "Committing {} to {} as {}",
            a.rootfs.display(),
            a.repo.display(),
            opts.refname
        );
    }
    let res = commit_with_bar(&r, &a.rootfs, &opts, global)?;
    if a.out.json {
        print_doc("CommitResult", &res)?;
        return Ok(0);
    }
    if !global.quiet {
        let note = if res.content_unchanged {
            " (tree unchanged from parent)"
        } else {
            ""
        };
        err!("{} -> {}{note}", res.refname, res.checksum);
    }
    out!("{}", res.checksum);
    Ok(0)
}

/// Files and bytes hashed, as a bar on a terminal; nothing off a terminal or with `--quiet`.
fn commit_with_bar(
    r: &Repo,
    rootfs: &Path,
    opts: &CommitOptions,
    global: &Global,
) -> anyhow::Result<CommitResult> {
    use std::io::IsTerminal;
    let bar = (!global.quiet && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} {msg} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let res = r.commit_tree_with_progress(rootfs, opts, &mut |p| {
        if let Some(b) = &bar {
            b.set_length(p.bytes_total);
            b.set_position(p.bytes_done);
            b.set_message(format!(
                "{}/{} files, {} new objects",
                p.files_done, p.files_total, p.objects_written
            ));
        }
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    Ok(res?)
}

fn init(path: &Path, mode: Mode, global: &Global) -> anyhow::Result<Status> {
    Repo::init(path, mode)?;
    if !global.quiet {
        err!("Created {} repository {}", mode.name(), path.display());
    }
    Ok(0)
}

fn refs(at: &Inspect) -> anyhow::Result<Status> {
    let refs = open(&at.repo)?.refs()?;
    let lines = refs.iter().map(|(name, csum)| format!("{name} {csum}"));
    print_listing(at.out, "RefList", "refs", &refs, lines)
}

/// A listing: one line per entry, or with `--json` one document holding the entries as `field`.
fn print_listing<T: serde::Serialize>(
    o: Json,
    kind: &str,
    field: &str,
    entries: &T,
    lines: impl Iterator<Item = String>,
) -> anyhow::Result<Status> {
    if o.json {
        print_doc(kind, &serde_json::json!({ field: entries }))?;
    } else {
        for l in lines {
            out!("{l}");
        }
    }
    Ok(0)
}

fn date(ts: u64) -> String {
    chrono::DateTime::from_timestamp(ts as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ts.to_string())
}

fn log(rev: &str, at: &Inspect) -> anyhow::Result<Status> {
    let (entries, truncated) = open(&at.repo)?.log(rev)?;
    if at.out.json {
        let body = serde_json::json!({ "commits": entries, "truncated": truncated });
        print_doc("CommitLog", &body)?;
        return Ok(0);
    }
    for e in &entries {
        out!("commit {}", e.checksum);
        out!("Date:    {}", date(e.timestamp));
        if let Some(v) = &e.version {
            out!("Version: {v}");
        }
        if !e.subject.is_empty() {
            out!("\n    {}", e.subject);
        }
        out!();
    }
    if truncated {
        out!("<< History beyond this commit is not in the repository (pruned or not pulled) >>");
    }
    Ok(0)
}

fn show(rev: &str, at: &Inspect, keyring: &KeyringArg) -> anyhow::Result<Status> {
    let info = open(&at.repo)?.commit_info_with_keyring(rev, keyring.keyring.as_deref())?;
    if at.out.json {
        print_doc("Commit", &info)?;
        return Ok(0);
    }
    out!("commit {}", info.checksum);
    out!("Parent:  {}", info.parent.as_deref().unwrap_or("(none)"));
    out!("Date:    {} ({})", date(info.timestamp), info.timestamp);
    if let Some(v) = &info.version {
        out!("Version: {v}");
    }
    out!("Subject: {}", info.subject);
    if let Some(d) = info
        .metadata
        .get(cairn_compose::META_SNAPSHOT)
        .and_then(|v| v.as_str())
    {
        out!("Snapshot: {d}");
    }
    print_metadata(&info.metadata);
    print_signatures(&info.signatures);
    Ok(0)
}

/// Long values (package manifests, SBOM digests) are cut so one key cannot flood the terminal.
fn print_metadata(metadata: &serde_json::Map<String, serde_json::Value>) {
    if metadata.is_empty() {
        return;
    }
    out!("Metadata:");
    for (k, v) in metadata {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if v.len() > 120 {
            let cut = floor_char_boundary(&v, 100);
            out!(
                "  {k}: {}... ({} bytes; --json for all)",
                &v[..cut],
                v.len()
            );
        } else {
            out!("  {k}: {v}");
        }
    }
}

fn print_signatures(signatures: &[Signature]) {
    if signatures.is_empty() {
        out!("Signatures: none");
        return;
    }
    out!("Signatures:");
    for s in signatures {
        let state = if s.valid {
            "good"
        } else if s.key_missing {
            "key not in keyring (pass --keyring)"
        } else {
            "BAD"
        };
        let by = suffix(" by ", s.user.as_deref(), "");
        out!(
            "  {} {} {state} made {}{by}",
            s.kind,
            s.fingerprint,
            date(s.timestamp.max(0) as u64)
        );
    }
}

/// `str::floor_char_boundary` is newer than the minimum Rust version.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn diff(from: &str, to: &str, at: &Inspect) -> anyhow::Result<Status> {
    let d = open(&at.repo)?.diff(from, to)?;
    if at.out.json {
        print_doc("CommitDiff", &d)?;
        return Ok(0);
    }
    for (mark, paths) in [
        ('A', &d.files.added),
        ('D', &d.files.removed),
        ('M', &d.files.modified),
    ] {
        for p in paths {
            out!("{mark} {p}");
        }
    }
    if let Some(pk) = &d.packages {
        if !pk.is_empty() {
            out!("Packages:");
        }
        for p in &pk.added {
            out!("  + {} {} {}", p.name, p.evr(), p.arch);
        }
        for p in &pk.removed {
            out!("  - {} {} {}", p.name, p.evr(), p.arch);
        }
        for c in &pk.changed {
            out!("  ~ {} {} -> {} {}", c.name, c.from, c.to, c.arch);
        }
    }
    Ok(0)
}

fn delta_generate(
    from: Option<&str>,
    to: &str,
    repo: &RepoArg,
    global: &Global,
) -> anyhow::Result<Status> {
    let d = open(repo)?.generate_delta(from, to)?;
    if !global.quiet {
        let from = d.from.as_deref().unwrap_or("(empty)");
        err!("Generated static delta {from} -> {}", d.to);
    }
    Ok(0)
}

fn delta_list(at: &Inspect) -> anyhow::Result<Status> {
    let deltas = open(&at.repo)?.deltas()?;
    let lines = deltas
        .iter()
        .map(|d| format!("{} -> {}", d.from.as_deref().unwrap_or("(empty)"), d.to));
    print_listing(at.out, "DeltaList", "deltas", &deltas, lines)
}

fn prune(keep: u32, at: &Inspect, global: &Global) -> anyhow::Result<Status> {
    let res = open(&at.repo)?.prune(keep)?;
    if at.out.json {
        print_doc("PruneResult", &res)?;
    } else if !global.quiet {
        out!(
            "Pruned {} of {} objects, freed {} bytes",
            res.objects_pruned,
            res.objects_total,
            res.bytes_freed
        );
    }
    Ok(0)
}

fn verify(at: &Inspect, keyring: KeyringArg) -> anyhow::Result<Status> {
    let report = open(&at.repo)?.verify(&VerifyOptions {
        keyring: keyring.keyring,
    })?;
    if at.out.json {
        print_doc("VerifyReport", &report)?;
    } else {
        for e in &report.errors {
            out!("error: {e}");
        }
        out!(
            "{}: {} objects checked, {} refs, {} problem(s)",
            if report.ok { "ok" } else { "FAILED" },
            report.objects_checked,
            report.refs.len(),
            report.errors.len()
        );
    }
    anyhow::ensure!(
        report.ok,
        "{}: verification failed ({} problem(s))",
        at.repo.repo.display(),
        report.errors.len()
    );
    Ok(0)
}

/// The `--json` body of `repo sign`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SignResult<'a> {
    commit: &'a str,
    key: &'a str,
    summary_signed: bool,
}

fn sign(
    rev: &str,
    key: &str,
    homedir: Option<&Path>,
    at: &Inspect,
    global: &Global,
) -> anyhow::Result<Status> {
    let r = open(&at.repo)?;
    let commit = r.require(rev)?;
    r.gpg_sign_commit(&commit, key, homedir)?;
    r.update_summary_signed(key, homedir)?;
    if at.out.json {
        print_doc(
            "SignResult",
            &SignResult {
                commit: &commit,
                key,
                summary_signed: true,
            },
        )?;
    } else if !global.quiet {
        err!("Signed {commit} and the summary with GPG key {key}");
    }
    Ok(0)
}
