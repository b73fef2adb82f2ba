//! The kickstart subset `cairn install` carries out: tokenizing (shell-style quoting), sections,
//! and one typed record per command, each with its line. Anything outside the subset is refused
//! here, by name and line, before a disk is touched.

use crate::post::{self, Post};
use crate::InstallError;

/// A parsed kickstart: what the install does, nothing about how.
#[derive(Debug, Clone, Default)]
pub struct Kickstart {
    /// Where it came from (file path or URL), for messages.
    pub source: String,
    pub ostree: Option<OstreeSetup>,
    /// The disk named by `ignoredisk --only-use` / `clearpart --drives` / `--ondisk`, if any.
    pub drive: Option<String>,
    pub clearpart: bool,
    pub parts: Vec<Part>,
    pub volgroups: Vec<VolGroup>,
    pub logvols: Vec<LogVol>,
    pub autopart: Option<Autopart>,
    pub networks: Vec<Network>,
    /// `bootloader --append`, split like a kernel command line.
    pub kargs: Vec<String>,
    /// `bootloader --timeout`, seconds.
    pub boot_timeout: Option<u32>,
    pub root: Option<RootPw>,
    pub ssh_keys: Vec<String>,
    pub timezone: Option<Timezone>,
    pub final_action: FinalAction,
    pub post: Post,
    /// From `%post --nochroot` / `%onerror` (`curl -X POST URL`).
    pub built_url: Option<String>,
    pub failed_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OstreeSetup {
    pub osname: String,
    pub remote: String,
    pub url: String,
    pub rref: String,
    pub gpg: bool,
    pub line: usize,
}

/// A size in MiB, as kickstart gives it, plus `--grow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub mib: u64,
    pub grow: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fs {
    Xfs,
    Ext4,
}

impl Fs {
    pub fn name(self) -> &'static str {
        match self {
            Fs::Xfs => "xfs",
            Fs::Ext4 => "ext4",
        }
    }
}

/// `part MOUNT|pv.ID ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub target: PartTarget,
    pub size: Size,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartTarget {
    Mount { path: String, fs: Fs },
    Pv(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolGroup {
    pub name: String,
    pub pvs: Vec<String>,
    /// Physical extent size in KiB (`--pesize`), 4096 by default.
    pub pesize_kib: u64,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVol {
    pub mount: String,
    pub vg: String,
    pub name: String,
    pub fs: Fs,
    pub size: Size,
    pub line: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autopart {
    pub lvm: bool,
    pub fs: Fs,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    /// An interface name or a MAC address.
    pub device: Option<String>,
    pub dhcp: bool,
    pub ip: Option<String>,
    pub netmask: Option<String>,
    pub gateway: Option<String>,
    pub nameservers: Vec<String>,
    pub bond_slaves: Vec<String>,
    /// `--bondopts` as `key=value` pairs.
    pub bond_opts: Vec<(String, String)>,
    pub vlan: Option<u16>,
    pub mtu: Option<u32>,
    pub hostname: Option<String>,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootPw {
    Crypted(String),
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timezone {
    pub name: String,
    pub utc: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalAction {
    #[default]
    None,
    Reboot,
    Poweroff,
}

/// One command line: name, options (`--k=v`, `--k v` or `--flag`) and plain arguments.
#[derive(Debug)]
pub(crate) struct Cmd {
    pub name: String,
    pub line: usize,
    pub opts: Vec<(String, Option<String>)>,
    pub args: Vec<String>,
}

/// Splits a line like a POSIX shell would for the quoting kickstarts use: whitespace separates,
/// '...' and "..." group (backslash escapes inside double quotes), `#` at a word start begins a
/// comment. `None` for an unterminated quote.
pub(crate) fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => cur.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => cur.push(chars.next()?),
                        c => cur.push(c),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// Per command: the options taking a value, the flags, and how many plain arguments.
struct Spec {
    name: &'static str,
    values: &'static [&'static str],
    flags: &'static [&'static str],
    args: (usize, usize),
}

#[rustfmt::skip]
const SPECS: &[Spec] = &[
    Spec { name: "text", values: &[], flags: &[], args: (0, 0) },
    Spec { name: "lang", values: &["addsupport"], flags: &[], args: (1, 1) },
    Spec { name: "keyboard", values: &["vckeymap", "xlayouts", "switch"], flags: &[], args: (0, 1) },
    Spec { name: "timezone", values: &[], flags: &["utc", "isUtc"], args: (1, 1) },
    Spec { name: "rootpw", values: &[], flags: &["iscrypted", "lock"], args: (0, 1) },
    Spec { name: "sshkey", values: &["username"], flags: &[], args: (1, 1) },
    Spec {
        name: "network",
        values: &[
            "device", "bootproto", "ip", "netmask", "gateway", "nameserver", "bondslaves",
            "bondopts", "vlanid", "mtu", "hostname", "onboot",
        ],
        flags: &["activate"],
        args: (0, 0),
    },
    Spec { name: "zerombr", values: &[], flags: &[], args: (0, 0) },
    Spec { name: "ignoredisk", values: &["only-use", "drives"], flags: &[], args: (0, 0) },
    Spec { name: "clearpart", values: &["drives"], flags: &["all", "initlabel"], args: (0, 0) },
    Spec { name: "reqpart", values: &[], flags: &["add-boot"], args: (0, 0) },
    Spec { name: "part", values: &["fstype", "size", "ondisk"], flags: &["grow", "asprimary"], args: (1, 1) },
    Spec { name: "partition", values: &["fstype", "size", "ondisk"], flags: &["grow", "asprimary"], args: (1, 1) },
    Spec { name: "volgroup", values: &["pesize"], flags: &[], args: (2, 64) },
    Spec { name: "logvol", values: &["vgname", "name", "fstype", "size"], flags: &["grow"], args: (1, 1) },
    Spec { name: "autopart", values: &["type", "fstype"], flags: &["nohome", "noswap"], args: (0, 0) },
    Spec {
        name: "bootloader",
        values: &["location", "boot-drive", "timeout", "append"],
        flags: &[],
        args: (0, 0),
    },
    Spec { name: "ostreesetup", values: &["osname", "remote", "url", "ref"], flags: &["nogpg"], args: (0, 0) },
    Spec { name: "reboot", values: &[], flags: &["eject"], args: (0, 0) },
    Spec { name: "poweroff", values: &[], flags: &["eject"], args: (0, 0) },
];

fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// The command names of the subset, for error messages and docs/install.md.
pub fn supported_commands() -> Vec<&'static str> {
    SPECS.iter().map(|s| s.name).collect()
}

pub(crate) struct Ctx<'a> {
    pub source: &'a str,
}

impl Ctx<'_> {
    pub fn err(&self, line: usize, msg: impl Into<String>) -> InstallError {
        InstallError::Kickstart {
            source_name: self.source.to_owned(),
            line,
            msg: msg.into(),
        }
    }
}

fn tokenize_cmd(cx: &Ctx, line: usize, text: &str) -> Result<Option<Cmd>, InstallError> {
    let words = split_words(text).ok_or_else(|| cx.err(line, "unterminated quote"))?;
    let Some((name, rest)) = words.split_first() else {
        return Ok(None);
    };
    let Some(spec) = spec(name) else {
        return Err(cx.err(
            line,
            format!(
                "`{name}` is not supported by cairn install (it carries out: {}); remove it or \
                 install this host with anaconda",
                supported_commands().join(", ")
            ),
        ));
    };
    let mut cmd = Cmd {
        name: name.clone(),
        line,
        opts: Vec::new(),
        args: Vec::new(),
    };
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        let Some(opt) = w.strip_prefix("--") else {
            cmd.args.push(w.clone());
            continue;
        };
        let (key, inline) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (opt, None),
        };
        if spec.values.contains(&key) {
            let v = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| cx.err(line, format!("`{name} --{key}` needs a value")))?,
            };
            cmd.opts.push((key.to_owned(), Some(v)));
        } else if spec.flags.contains(&key) && inline.is_none() {
            cmd.opts.push((key.to_owned(), None));
        } else {
            let mut known: Vec<&str> = spec.values.iter().chain(spec.flags).copied().collect();
            known.sort_unstable();
            return Err(cx.err(
                line,
                format!(
                    "`{name} --{key}` is not supported by cairn install (supported: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known
                            .iter()
                            .map(|k| format!("--{k}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            ));
        }
    }
    let (lo, hi) = spec.args;
    if cmd.args.len() < lo || cmd.args.len() > hi {
        return Err(cx.err(
            line,
            format!(
                "`{name}` takes {} argument(s), got {}: {:?}",
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo} to {hi}")
                },
                cmd.args.len(),
                cmd.args
            ),
        ));
    }
    Ok(Some(cmd))
}

impl Cmd {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, key: &str) -> bool {
        self.opts.iter().any(|(k, _)| k == key)
    }

    pub fn need(&self, cx: &Ctx, key: &str) -> Result<&str, InstallError> {
        self.get(key)
            .ok_or_else(|| cx.err(self.line, format!("`{}` needs --{key}", self.name)))
    }
}

/// Which section a line belongs to.
enum Section {
    Commands,
    /// `%post` in the chroot: interpreted by [`post`].
    Post {
        start: usize,
        body: Vec<(usize, String)>,
    },
    /// `%post --nochroot` or `%onerror`: one `curl -X POST URL` callback.
    Callback {
        built: bool,
        start: usize,
        body: Vec<(usize, String)>,
    },
}

/// Parses `text` (read from `source`) into a [`Kickstart`], refusing anything outside the subset.
pub fn parse(source: &str, text: &str) -> Result<Kickstart, InstallError> {
    let cx = Ctx { source };
    let mut ks = Kickstart {
        source: source.to_owned(),
        ..Kickstart::default()
    };
    let mut section = Section::Commands;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        section = match section {
            Section::Commands => {
                if trimmed.starts_with('%') {
                    open_section(&cx, line, trimmed)?
                } else {
                    if let Some(cmd) = tokenize_cmd(&cx, line, trimmed)? {
                        crate::commands::apply(&cx, &mut ks, &cmd)?;
                    }
                    Section::Commands
                }
            }
            Section::Post { start, mut body } => {
                if trimmed == "%end" {
                    post::interpret(&cx, start, &body, &mut ks.post)?;
                    Section::Commands
                } else {
                    body.push((line, raw.to_owned()));
                    Section::Post { start, body }
                }
            }
            Section::Callback {
                built,
                start,
                mut body,
            } => {
                if trimmed == "%end" {
                    let url = post::callback_url(&cx, start, &body)?;
                    let slot = if built {
                        &mut ks.built_url
                    } else {
                        &mut ks.failed_url
                    };
                    *slot = url;
                    Section::Commands
                } else {
                    body.push((line, raw.to_owned()));
                    Section::Callback { built, start, body }
                }
            }
        };
    }
    if !matches!(section, Section::Commands) {
        return Err(cx.err(text.lines().count(), "a % section is not closed with %end"));
    }
    crate::commands::check_complete(&cx, &ks)?;
    Ok(ks)
}

fn open_section(cx: &Ctx, line: usize, text: &str) -> Result<Section, InstallError> {
    let words = split_words(text).ok_or_else(|| cx.err(line, "unterminated quote"))?;
    let name = words[0].as_str();
    let flags: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    match name {
        "%post" => {
            let nochroot = flags.contains(&"--nochroot");
            for f in &flags {
                let ok = matches!(*f, "--nochroot" | "--erroronfail") || f.starts_with("--log=");
                if !ok {
                    return Err(cx.err(
                        line,
                        format!("`%post {f}` is not supported by cairn install (supported: --nochroot, --erroronfail, --log=)"),
                    ));
                }
            }
            Ok(if nochroot {
                Section::Callback {
                    built: true,
                    start: line,
                    body: Vec::new(),
                }
            } else {
                Section::Post {
                    start: line,
                    body: Vec::new(),
                }
            })
        }
        "%onerror" if flags.is_empty() => Ok(Section::Callback {
            built: false,
            start: line,
            body: Vec::new(),
        }),
        other => Err(cx.err(
            line,
            format!(
                "section `{other}` is not supported by cairn install (it carries out %post as \
                 cairn renders it, %post --nochroot and %onerror callbacks)"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"sshkey --username=root "ssh-ed25519 AAA x@y" # c"#).unwrap(),
            ["sshkey", "--username=root", "ssh-ed25519 AAA x@y"]
        );
        assert_eq!(
            split_words(r#"bootloader --append="a=1 b" 'c d'"#).unwrap(),
            ["bootloader", "--append=a=1 b", "c d"]
        );
        assert!(split_words("x 'open").is_none());
    }

    #[test]
    fn unknown_commands_and_options_are_refused_by_name_and_line() {
        let e = parse("ks.cfg", "text\n\nfirewall --enabled\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ks.cfg:3: `firewall` is not supported"),
            "{e}"
        );
        let e = parse("ks.cfg", "part /boot --encrypted\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ks.cfg:1: `part --encrypted` is not supported"),
            "{e}"
        );
        let e = parse("ks.cfg", "%packages\n%end\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ks.cfg:1: section `%packages`"), "{e}");
    }
}

#[cfg(test)]
mod shipped {
    use std::path::Path;

    /// One source of truth: every kickstart the shipped inventory renders (DHCP, static, VLAN +
    /// MTU, bond; LVM with fixed and growing volumes) is accepted and plans onto a 1 TiB disk.
    #[test]
    fn every_kickstart_of_the_shipped_inventory_is_accepted() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kickstart/inventory.yaml");
        let inv = cairn_kickstart::load(&path, &cairn_kickstart::LoadOptions::default()).unwrap();
        let templates = cairn_kickstart::Templates::load(None).unwrap();
        let mut kinds = Vec::new();
        for h in &inv.hosts {
            let docs = templates.render_host(&inv, h, Some("tok")).unwrap();
            let ks = super::parse("ks.cfg", &docs.kickstart)
                .unwrap_or_else(|e| panic!("{e}\n{}", docs.kickstart));
            let plan = crate::plan::plan(&ks, 1 << 40).unwrap();
            assert_eq!(plan.lvs.len(), 2, "/ and /var on LVM");
            assert!(ks.built_url.as_deref().unwrap().contains("/built/"));
            assert!(ks.failed_url.as_deref().unwrap().contains("/failed/"));
            assert!(!ks.post.files.is_empty(), "sysctl presets");
            assert_eq!(ks.post.remotes.len(), 2, "remote delete + add");
            let n = &ks.networks[0];
            kinds.push((n.dhcp, n.vlan.is_some(), !n.bond_slaves.is_empty()));
            crate::network::render(&ks.networks).unwrap();
        }
        for want in [
            (true, false, false),
            (false, true, false),
            (false, false, true),
        ] {
            assert!(kinds.contains(&want), "{kinds:?} lacks {want:?}");
        }
    }
}
