//! What `cairn compose` shows while it works: a spinner per phase on a terminal (the current step
//! and the last tool line), tool output streamed with `-v`, and every line in a log file, which is
//! shown in full when the compose fails.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::err;
use cairn_compose::{Event, Phase};

/// Logs kept in the default log directory; older ones are removed when a compose starts.
const KEEP_LOGS: usize = 10;

/// How much of a compose's progress reaches stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A terminal: one spinner per phase with the current step and the last tool line.
    Bars,
    /// `-v`: phases, steps and every tool line as they come.
    Stream,
    /// Not a terminal (CI, pipes): the log path and warnings only.
    Plain,
    /// `--quiet`: nothing until the result (a failure still shows the log).
    Quiet,
}

pub fn mode(verbose: bool, quiet: bool) -> Mode {
    if verbose {
        Mode::Stream
    } else if quiet {
        Mode::Quiet
    } else if std::io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::Plain
    }
}

/// Where the log goes: a file the user named, or a new timestamped file in a directory.
#[derive(Debug, Clone)]
pub enum LogTarget {
    File(PathBuf),
    Dir(PathBuf),
}

pub struct Display {
    mode: Mode,
    target: LogTarget,
    /// Opened at the first phase, so a compose that stops early (no changes, dry run) writes no
    /// log and creates no cache directory.
    log: Option<(PathBuf, File)>,
    /// The log could not be opened or written: said once, never fatal to the compose.
    log_broken: bool,
    bar: Option<ProgressBar>,
    step: String,
}

impl Display {
    pub fn new(mode: Mode, target: LogTarget) -> Display {
        Display {
            mode,
            target,
            log: None,
            log_broken: false,
            bar: None,
            step: String::new(),
        }
    }

    pub fn event(&mut self, e: Event) {
        match e {
            Event::Start(p) => self.start(p),
            Event::Step(s) => {
                self.write_log(&format!("-- {s}"));
                self.step = one_line(s);
                match self.mode {
                    Mode::Bars => self.set_message(""),
                    Mode::Stream => err!("compose: {s}"),
                    Mode::Plain | Mode::Quiet => {}
                }
            }
            Event::Line(l) => {
                self.write_log(l);
                match self.mode {
                    Mode::Bars => self.set_message(l),
                    Mode::Stream => err!("  | {l}"),
                    Mode::Plain | Mode::Quiet => {}
                }
            }
            Event::Done(p, secs) => {
                self.write_log(&format!("== {} done in {secs:.1}s", p.as_str()));
                match self.mode {
                    Mode::Bars => {
                        if let Some(b) = self.bar.take() {
                            b.set_style(done_style());
                            b.finish_with_message(format!("{secs:.1}s"));
                        }
                    }
                    Mode::Stream => err!("compose: {} done in {secs:.1}s", p.as_str()),
                    Mode::Plain | Mode::Quiet => {}
                }
            }
            Event::Warning(w) => {
                self.write_log(&format!("warning: {w}"));
                match (&self.bar, self.mode) {
                    (_, Mode::Quiet) => {}
                    (Some(b), _) => b.suspend(|| err!("warning: {w}")),
                    (None, _) => err!("warning: {w}"),
                }
            }
        }
    }

    /// Ends the display; on failure shows the log (unless `-v` already did). Returns the log's
    /// path, if one was written.
    pub fn finish(mut self, ok: bool) -> Option<PathBuf> {
        if let Some(b) = self.bar.take() {
            b.abandon_with_message("failed");
        }
        let path = self.log.take().map(|(p, _)| p);
        if let (false, Some(p)) = (ok, &path) {
            if self.mode == Mode::Stream {
                err!("compose failed; its log: {}", p.display());
            } else {
                show_log(p);
            }
        }
        path
    }

    fn start(&mut self, phase: Phase) {
        if self.log.is_none() && !self.log_broken {
            match open_log(&self.target) {
                Ok((path, file)) => {
                    if self.mode != Mode::Quiet {
                        err!("log: {}", path.display());
                    }
                    self.log = Some((path, file));
                    let argv: Vec<String> = std::env::args().collect();
                    self.write_log(&format!(
                        "{} ({})",
                        argv.join(" "),
                        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
                    ));
                }
                Err(e) => self.log_failed(&e),
            }
        }
        self.write_log(&format!("== {}", phase.as_str()));
        self.step.clear();
        match self.mode {
            Mode::Bars => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(running_style());
                bar.set_prefix(phase.as_str());
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                self.bar = Some(bar);
            }
            Mode::Stream => err!("compose: {} ...", phase.as_str()),
            Mode::Plain | Mode::Quiet => {}
        }
    }

    /// The spinner's message: the current step, then the last tool line, cut to the terminal.
    fn set_message(&self, line: &str) {
        let Some(b) = &self.bar else { return };
        let line = one_line(line);
        b.set_message(match (self.step.is_empty(), line.trim().is_empty()) {
            (_, true) => self.step.clone(),
            (true, false) => line,
            (false, false) => format!("{} · {}", self.step, line.trim()),
        });
    }

    /// Appends one line, written through at once: a crash or SIGKILL loses nothing before it.
    fn write_log(&mut self, line: &str) {
        let Some((_, file)) = &mut self.log else {
            return;
        };
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if let Err(e) = file.write_all(&buf) {
            self.log = None;
            self.log_failed(&e);
        }
    }

    fn log_failed(&mut self, e: &std::io::Error) {
        self.log_broken = true;
        let msg = format!("warning: no compose log ({e}); tool output is not kept");
        match &self.bar {
            Some(b) => b.suspend(|| err!("{msg}")),
            None => err!("{msg}"),
        }
    }
}

fn running_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:<12} {elapsed:>4} {wide_msg}")
        .expect("template")
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template("✓ {prefix:<12} {msg}").expect("template")
}

/// Tool lines carry tabs, carriage returns and escape sequences; a spinner line must not.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Creates the log file: the named one, or `compose-<UTC time>.log` in the directory after
/// removing all but the newest logs there.
fn open_log(target: &LogTarget) -> std::io::Result<(PathBuf, File)> {
    match target {
        LogTarget::File(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Ok((p.clone(), File::create(p)?))
        }
        LogTarget::Dir(dir) => {
            std::fs::create_dir_all(dir)?;
            prune_logs(dir, KEEP_LOGS - 1);
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let p = dir.join(format!("compose-{stamp}.log"));
            let new = |p: &Path| File::options().write(true).create_new(true).open(p);
            match new(&p) {
                Ok(f) => Ok((p, f)),
                // Two composes sharing a cache dir started in the same second.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let p = dir.join(format!("compose-{stamp}-{}.log", std::process::id()));
                    new(&p).map(|f| (p, f))
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Keeps the newest `keep` `compose-*.log` files in `dir` (their names sort by time).
fn prune_logs(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("compose-") && n.ends_with(".log"))
        })
        .collect();
    logs.sort();
    let old = logs.len().saturating_sub(keep);
    for p in &logs[..old] {
        let _ = std::fs::remove_file(p);
    }
}

/// The whole log on stderr, framed by its path so the end of the output is the error itself.
fn show_log(path: &Path) {
    err!("compose failed; its log ({}):", path.display());
    match std::fs::read(path) {
        Ok(text) => {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&text);
            let _ = stderr.flush();
        }
        Err(e) => err!("(cannot read {}: {e})", path.display()),
    }
    err!("(end of {})", path.display());
}
