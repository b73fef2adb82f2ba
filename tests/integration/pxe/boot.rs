//! The PXE proof under QEMU TCG (`CAIRN_BOOT_TEST=1`): a machine with an empty disk and a NIC
//! boots its iPXE ROM, gets `/boot.ipxe` from `cairn serve` through QEMU user networking (the
//! host is 10.0.2.2), chains to its per-MAC script, boots the installer built by `cairn image
//! build --format pxe`, installs the commit with `cairn install`, reboots from its disk into the
//! OSTree deployment and reports what it runs with (tests/integration/boot/cairn-pxe-report.sh).
//! The failure half boots the same installer straight from QEMU (`-kernel`/`-initrd`) with a
//! kickstart URL nothing listens on and with one the server refuses (a wrong token): it must say
//! so, leave the disk untouched, and in the second case report `failed` to the server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::repo::{ostree_ok, repo_arg};
use crate::common::{ok, stderr, stdout, tempdir};

const MAC: &str = "52:54:00:12:34:56";

/// `cairn serve` on a port chosen here, so the guest-facing `--server-url` can name it.
struct Serve {
    child: Child,
    port: u16,
    events: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_serve(cairn: &Path, d: &Path, repo: &Path, files: &Path, inventory: &Path) -> Serve {
    let port = free_port();
    let events = d.join("events.jsonl");
    let mut cmd = Command::new(cairn);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--server-url", &format!("http://10.0.2.2:{port}")])
        .arg("--inventory")
        .arg(inventory)
        .arg("--repo")
        .arg(repo)
        .arg("--files")
        .arg(files)
        .arg("--tokens")
        .arg("--log")
        .arg(&events)
        .arg("--access-log")
        .arg(d.join("access.jsonl"));
    let (child, _url) = crate::common::spawn_listening(cmd, &d.join("serve.stderr"));
    Serve {
        child,
        port,
        events,
    }
}

/// The shipped Debian default plus LVM and XFS (the kickstart's layout needs them in the target's
/// initramfs) and the report unit; returns (repo, ref).
fn compose_tree(cairn: &Path, d: &Path) -> (PathBuf, String) {
    let root = crate::common::project_root();
    let boot = root.join("tests/integration/boot");
    let treefile = d.join("pxe-test.yaml");
    std::fs::write(
        &treefile,
        format!(
            "include: {}\npackages:\n  - lvm2 xfsprogs\nadd-files:\n  - [{}, /usr/libexec/cairn-pxe-report]\n  - [{}, /usr/lib/systemd/system/cairn-pxe-report.service]\nunits: [cairn-pxe-report.service]\n",
            root.join("treefiles/debian-12.yaml").display(),
            boot.join("cairn-pxe-report.sh").display(),
            boot.join("cairn-pxe-report.service").display(),
        ),
    )
    .unwrap();
    let repo = d.join("repo");
    let t = Instant::now();
    let o = Command::new(cairn)
        .arg("compose")
        .arg(&treefile)
        .arg("--repo")
        .arg(&repo)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(o.status.success(), "compose: {}{}", stdout(&o), stderr(&o));
    eprintln!("pxe boot test: compose {:.0}s", t.elapsed().as_secs_f64());
    let refs = ostree_ok([repo_arg(&repo).as_str(), "refs"]);
    let refname = refs
        .lines()
        .find(|l| l.starts_with("cairn/debian/12/"))
        .expect("composed ref")
        .to_owned();
    (repo, refname)
}

/// What a QEMU run left: its serial log, and when (since power-on) each watched marker first
/// appeared on it.
struct Run {
    serial: String,
    seen: Vec<Option<Duration>>,
    total: Duration,
}

/// Runs QEMU until it exits, `stop` says so on the serial log, or `limit` passes.
fn run_qemu(
    args: &[String],
    log: &Path,
    (limit, marks): (Duration, &[&str]),
    stop: &dyn Fn(&str) -> bool,
) -> Run {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "2048", "-smp", "2", "-nographic"])
        .args(["-monitor", "none", "-serial"])
        .arg(format!("file:{}", log.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn qemu-system-x86_64");
    let start = Instant::now();
    let read = || String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned();
    let mut seen = vec![None; marks.len()];
    loop {
        let exited = child.try_wait().unwrap().is_some();
        let serial = read();
        for (m, t) in marks.iter().zip(seen.iter_mut()) {
            if t.is_none() && serial.contains(m) {
                *t = Some(start.elapsed());
            }
        }
        if exited {
            break;
        }
        if stop(&serial) || start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Run {
        serial: read(),
        seen,
        total: start.elapsed(),
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

fn installer_failed(serial: &str) -> bool {
    serial.contains("cairn-installer: FAILED")
}

/// The whole path: PXE -> installer -> `cairn install` -> reboot from disk -> report.
#[test]
fn pxe_boot_installs_the_commit_and_reboots_into_it_under_tcg() {
    if !crate::image::boot_test_enabled("the PXE install boot test") {
        return;
    }
    assert!(
        crate::pxe::have_pxe_tools(),
        "CAIRN_BOOT_TEST=1 needs the PXE tools"
    );
    for (tool, pkg) in [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("mmdebstrap", "mmdebstrap"),
    ] {
        assert!(crate::common::have_tool(tool, pkg), "{tool} is required");
    }
    assert!(
        Path::new("/usr/lib/ipxe/qemu/efi-virtio.rom").exists(),
        "QEMU's iPXE ROMs (ipxe-qemu) are required"
    );
    let t_all = Instant::now();
    let dir = tempdir();
    let d = dir.path();
    // A private copy: this test outlives rebuilds of the shared target dir.
    let cairn = d.join("cairn");
    std::fs::copy(env!("CARGO_BIN_EXE_cairn"), &cairn).unwrap();
    let (repo, refname) = compose_tree(&cairn, d);
    let commit = ostree_ok([repo_arg(&repo).as_str(), "rev-parse", &refname])
        .trim()
        .to_owned();
    let files = d.join("files");
    let t = Instant::now();
    let report = crate::pxe::build_pxe(&cairn, &repo, &refname, &files.join("images/pxeboot"));
    eprintln!(
        "pxe boot test: image build --format pxe {:.0}s (initrd {} MiB)",
        t.elapsed().as_secs_f64(),
        report["initrdSize"].as_u64().unwrap() >> 20
    );
    unreachable_kickstart_leaves_the_disk_empty(d, &files.join("images/pxeboot"));

    // Not slirp's DHCP address (10.0.2.15): the address seen inside must be the static one.
    let host = "    network: { ip: 10.0.2.50/24, gateway: 10.0.2.2, dns: [10.0.2.3] }\n    \
                kernel-args: [\"console=ttyS0,115200n8\", cairn.pxetest=1]\n    \
                sysctl-presets: [hardening, high-connections]\n";
    let inv = d.join("inventory.yaml");
    std::fs::write(
        &inv,
        crate::pxe::pxe_inventory(MAC, host, None)
            .replace("ref: cairn/pxe/x86_64", &format!("ref: {refname}")),
    )
    .unwrap();
    let serve = start_serve(&cairn, d, &repo, &files, &inv);
    refused_kickstart_is_reported_failed(d, &files.join("images/pxeboot"), &serve);
    let disk = d.join("disk.qcow2");
    ok(Command::new("qemu-img")
        .args(["create", "-f", "qcow2"])
        .arg(&disk)
        .arg("8G"));
    let log = d.join("serial.log");
    let marks = [
        "cairn-installer: starting",
        "cairn-installer: installing onto",
        "cairn-installer: rebooting",
        "CAIRN-PXE-TEST: done",
    ];
    let run = run_qemu(
        &[
            "-drive".into(),
            format!("file={},if=virtio,format=qcow2", disk.display()),
            "-netdev".into(),
            format!(
                "user,id=n0,bootfile=http://10.0.2.2:{}/boot.ipxe",
                serve.port
            ),
            "-device".into(),
            format!("virtio-net-pci,netdev=n0,mac={MAC}"),
            // Network once (the empty disk), then the disk: the installer's reboot lands there.
            "-boot".into(),
            "order=c,once=n".into(),
        ],
        &log,
        (Duration::from_secs(75 * 60), &marks),
        &installer_failed,
    );
    // Figures first: they are worth having from a failed run too.
    let s = |i: usize| run.seen[i].map_or(f64::NAN, |d| d.as_secs_f64());
    eprintln!(
        "pxe boot test: power-on -> installer /init {:.0}s; -> cairn install starts {:.0}s; \
         install {:.0}s; reboot -> installed system reported {:.0}s; VM total {:.0}s; \
         test total {:.0}s",
        s(0),
        s(1) - s(0),
        s(2) - s(1),
        s(3) - s(2),
        run.total.as_secs_f64(),
        t_all.elapsed().as_secs_f64()
    );
    let serial = &run.serial;
    assert!(
        !installer_failed(serial),
        "the installer failed:\n{}",
        tail(serial)
    );
    assert_built_and_token_spent(&serve);
    assert_installed_and_reported(serial, &commit);
}

/// The serial log: the installer ran and rebooted, the installed system booted the commit through
/// ostree and runs with the inventory's hostname, address, kernel arguments and sysctl values.
fn assert_installed_and_reported(serial: &str, commit: &str) {
    let at = |needle: &str| {
        serial
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} on the serial console:\n{}", tail(serial)))
    };
    let started = at("cairn-installer: starting");
    let installed = at("cairn-installer: installed in ");
    at("cairn-installer: rebooting into the installed system");
    let booted = at("CAIRN-PXE-TEST: booted");
    assert!(started < installed && installed < booted);
    let report: Vec<&str> = serial
        .lines()
        .filter_map(|l| l.split("CAIRN-PXE-TEST: ").nth(1))
        .map(str::trim)
        .collect();
    let has = |s: &str| report.iter().any(|l| l == &s);
    let text = report.join("\n");
    assert!(
        has(&format!("booted ostree-booted=yes commit={commit}")),
        "{text}"
    );
    assert!(has("hostname pxe-1"), "{text}");
    // The inventory's static address and route, not a DHCP lease.
    let addrs: Vec<&&str> = report.iter().filter(|l| l.starts_with("addr ")).collect();
    assert_eq!(addrs, [&"addr 10.0.2.50/24"], "{text}");
    let route = report
        .iter()
        .find_map(|l| l.strip_prefix("route "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        route.starts_with("default via 10.0.2.2") && !route.contains("proto dhcp"),
        "{text}"
    );
    let cmdline = report
        .iter()
        .find_map(|l| l.strip_prefix("cmdline "))
        .unwrap_or_else(|| panic!("{text}"));
    for karg in [
        "cairn.pxetest=1",
        "console=ttyS0,115200n8",
        "ostree=/ostree/boot.",
    ] {
        assert!(cmdline.contains(karg), "{karg} missing: {cmdline}");
    }
    for (k, v) in [
        ("kernel.kptr_restrict", "2"),
        ("kernel.dmesg_restrict", "1"),
        ("kernel.yama.ptrace_scope", "1"),
        ("net.core.somaxconn", "65535"),
        ("net.ipv4.tcp_max_syn_backlog", "8192"),
        ("net.ipv4.ip_local_port_range", "1024 65535"),
    ] {
        assert!(has(&format!("sysctl {k}={v}")), "sysctl {k}={v}:\n{text}");
    }
    assert!(has("done"), "{text}");
}

/// The server's build log has `built` for the MAC, and the kickstart URL's token is spent.
fn assert_built_and_token_spent(serve: &Serve) {
    let events = std::fs::read_to_string(&serve.events).unwrap_or_default();
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"event\":\"built\"") && l.contains(MAC)),
        "no built event for {MAC}: {events:?}"
    );
    let (code, script) = crate::common::metal::http(
        format!("127.0.0.1:{}", serve.port).parse().unwrap(),
        "GET",
        &format!("/ipxe?mac={MAC}"),
    );
    assert_eq!(code, 200);
    let ks = script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("inst.ks="))
        .unwrap()
        .replace("10.0.2.2", "127.0.0.1");
    let (code, _) = crate::common::metal::curl(&[&ks]);
    assert_eq!(code, 401, "the token must be spent by the installation");
}

/// The installer booted straight from QEMU (`-kernel`/`-initrd`) with kickstart URL `ks`: it must
/// report the failure on the console and never touch the disk (not one cluster allocated).
/// Returns the serial log.
fn failing_installer(d: &Path, pxe: &Path, ks: &str, tag: &str) -> String {
    let disk = d.join(format!("fail-{tag}.qcow2"));
    ok(Command::new("qemu-img")
        .args(["create", "-f", "qcow2"])
        .arg(&disk)
        .arg("4G"));
    let log = d.join(format!("fail-{tag}-serial.log"));
    let run = run_qemu(
        &[
            "-kernel".into(),
            pxe.join("vmlinuz").display().to_string(),
            "-initrd".into(),
            pxe.join("initrd.img").display().to_string(),
            "-append".into(),
            format!("console=ttyS0,115200n8 inst.ks={ks}"),
            "-drive".into(),
            format!("file={},if=virtio,format=qcow2", disk.display()),
            "-netdev".into(),
            "user,id=n0".into(),
            "-device".into(),
            format!("virtio-net-pci,netdev=n0,mac={MAC}"),
        ],
        &log,
        (Duration::from_secs(20 * 60), &[]),
        &|s| s.contains("dropping to a shell"),
    );
    let serial = run.serial;
    assert!(
        serial.contains("cairn-installer: network up on")
            && serial.contains("cairn-installer: FAILED: cannot fetch the kickstart"),
        "{tag}: {}",
        tail(&serial)
    );
    let map = ok(Command::new("qemu-img")
        .args(["map", "--output=json"])
        .arg(&disk));
    assert!(
        !map.contains("\"data\": true"),
        "{tag}: the disk was written: {map}"
    );
    eprintln!(
        "pxe boot test: installer boot -> {tag} kickstart reported {:.0}s",
        run.total.as_secs_f64()
    );
    serial
}

/// Nothing listens at the kickstart URL: the installer says so, nobody can be told.
fn unreachable_kickstart_leaves_the_disk_empty(d: &Path, pxe: &Path) {
    let ks = format!("http://10.0.2.2:{}/ks/{MAC}", free_port());
    failing_installer(d, pxe, &ks, "unreachable");
}

/// The server refuses the kickstart (a wrong token): the installer says so and `cairn install`
/// posts the failed callback, which serve's build log keeps with the log's tail.
fn refused_kickstart_is_reported_failed(d: &Path, pxe: &Path, serve: &Serve) {
    let ks = format!(
        "http://10.0.2.2:{}/ks/{MAC}?token=00000000000000000000000000000000",
        serve.port
    );
    let serial = failing_installer(d, pxe, &ks, "refused");
    assert!(
        serial.contains("HTTP 401: wrong build token"),
        "{}",
        tail(&serial)
    );
    let events = std::fs::read_to_string(&serve.events).unwrap_or_default();
    let failed: Vec<serde_json::Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "failed" && e["mac"] == MAC)
        .collect();
    assert_eq!(failed.len(), 1, "one failed event for {MAC}: {events}");
    let log = failed[0]["log"].as_str().unwrap_or_default();
    assert!(
        log.contains("401"),
        "the failed event carries the log tail: {events}"
    );
}
