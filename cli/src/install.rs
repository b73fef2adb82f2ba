//! `cairn install`: flags and printing; the work is in `cairn_install`.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use crate::args::Json;
use crate::output::{err, out, print_doc};
use crate::{Global, Status};
use cairn_common::notice::Notice;
use cairn_install::{self as install, FinalAction};

/// Install a machine's disk from a kickstart (file or cairn serve URL), as anaconda would.
///
/// Reads the same kickstart `cairn kickstart render` writes and `cairn serve` hands out, checks
/// it and the disk size before touching anything, then: GPT (BIOS boot, ESP, /boot, root or an
/// LVM volume group), filesystems, the OSTree commit pulled from the kickstart's ostreesetup
/// URL and deployed with libostree, the host's network, hostname, sysctl presets, root password,
/// SSH keys and time zone, and the BIOS boot loader last. Reports to the kickstart's built URL;
/// on any failure, wipes the partition table and boot code and reports to its failed URL with
/// the log's tail. Needs root. The supported kickstart subset: docs/install.md.
#[derive(Debug, ClapArgs)]
#[command(after_help = "\
Examples:
  cairn install --kickstart 'http://10.0.0.1:8080/ks/52:54:00:00:00:11?token=...' /dev/vda
  truncate -s 20G disk.img && cairn install --kickstart ks.cfg disk.img")]
pub struct Args {
    /// The kickstart: a file, or an http:// URL (cairn serve's /ks/<mac>?token=...).
    #[arg(long, value_name = "FILE|URL")]
    kickstart: String,
    /// The disk: a block device or an existing disk image file.
    #[arg(value_name = "TARGET")]
    target: PathBuf,
    /// GPG keyring for the kickstart's remote when it verifies signatures (repeatable).
    #[arg(long = "gpg-key", value_name = "FILE")]
    gpg_keys: Vec<PathBuf>,
    /// Carry out the kickstart's `reboot` / `poweroff` after a successful install (what an
    /// installer environment wants; off by default so a disk image install never reboots the
    /// machine running it).
    #[arg(long)]
    final_action: bool,
    #[command(flatten)]
    out: Json,
}

pub fn run(a: Args, global: &Global) -> anyhow::Result<Status> {
    if global.quiet {
        cairn_common::notice::set_sink(|n| {
            if !matches!(n, Notice::Progress { .. }) {
                err!("{n}");
            }
        });
    }
    let started = std::time::Instant::now();
    let r = install::install(&install::InstallOptions {
        kickstart: a.kickstart,
        target: a.target,
        gpg_keys: a.gpg_keys,
    })?;
    if a.out.json {
        print_doc("InstallResult", &r)?;
    } else {
        out!(
            "{} installed: {} as {} ({}) in {:.1}s",
            r.target.display(),
            &r.commit[..12.min(r.commit.len())],
            r.osname,
            r.origin,
            started.elapsed().as_secs_f64()
        );
        if let Some(b) = &r.built {
            match (b.status, &b.error) {
                (Some(s), _) => out!("reported built to {} (HTTP {s})", b.url),
                (None, Some(e)) => err!("warning: could not report built to {}: {e}", b.url),
                (None, None) => {}
            }
        }
    }
    if a.final_action && r.final_action != FinalAction::None {
        let cmd = if r.final_action == FinalAction::Reboot {
            "reboot"
        } else {
            "poweroff"
        };
        let st = std::process::Command::new(cmd).arg("-f").status()?;
        anyhow::ensure!(st.success(), "{cmd} -f: {st}");
    }
    Ok(0)
}
