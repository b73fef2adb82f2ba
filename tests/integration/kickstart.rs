//! `cairn kickstart check|render`: every check error with its position, rendered kickstarts
//! validated by pykickstart's real `ksvalidator`, atomic output, and the CentOS Atomic corpus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::metal::*;
use crate::common::*;

fn check_json(inv: &Path) -> serde_json::Value {
    let o = run_cairn(
        ["kickstart", "check", "--json", "--inventory"]
            .map(String::from)
            .into_iter()
            .chain([inv.display().to_string()]),
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// Checks `hosts` and returns the (code, "line:col", message) of every error.
fn errors_of(hosts: &str) -> Vec<(String, String, String)> {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &inventory(hosts));
    let j = check_json(&inv);
    assert_eq!(j["apiVersion"], "cairn/v1");
    j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["file"].as_str().unwrap(), inv.display().to_string());
            (
                e["code"].as_str().unwrap().to_string(),
                format!("{}:{}", e["line"], e["col"]),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Line numbers in `inventory()`'s header: hosts text starts on line 11.
const H: usize = 11;

fn at(line: usize, col: usize) -> String {
    format!("{}:{col}", H + line - 1)
}

#[test]
fn shipped_inventory_is_valid() {
    let o = run_cairn([
        "kickstart".as_ref(),
        "check".as_ref(),
        "-i".as_ref(),
        shipped_inventory().as_os_str(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok, 4 hosts"), "{}", stdout(&o));
}

#[test]
fn duplicate_macs_name_both_positions() {
    let e = errors_of(
        "  - hostname: a\n    mac: \"52:54:00:00:00:01\"\n  - hostname: b\n    mac: \"52-54-00-00-00-01\"\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].0, "duplicate-mac");
    assert_eq!(e[0].1, at(4, 10));
    assert!(e[0].2.contains(&format!(":{}:10", H + 1)), "{e:?}");
    assert!(
        e[0].2.contains("52:54:00:00:00:01") && e[0].2.contains("`a.") || e[0].2.contains("`a`"),
        "{e:?}"
    );
}

#[test]
fn duplicate_ips_and_hostnames() {
    let e = errors_of(
        "  - hostname: a\n    mac: \"52:54:00:00:00:01\"\n    network: { ip: 10.0.0.5/24 }\n\
         \x20 - hostname: a\n    mac: \"52:54:00:00:00:02\"\n    network: { ip: 10.0.0.5/24 }\n",
    );
    let codes: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(codes, ["duplicate-ip", "duplicate-hostname"], "{e:?}");
    assert_eq!(e[0].1, at(6, 20));
    assert!(e[0].2.contains(&format!(":{}:20", H + 2)), "{e:?}");
    assert_eq!(e[1].1, at(4, 15));
    assert!(e[1].2.contains(&format!(":{}:15", H)), "{e:?}");
}

#[test]
fn addresses_outside_their_subnet() {
    let e = errors_of(
        "  - hostname: a\n    mac: \"52:54:00:00:00:01\"\n    network:\n      ip: 10.0.0.5/24\n      gateway: 10.0.1.1\n\
         \x20 - hostname: b\n    mac: \"52:54:00:00:00:02\"\n    network:\n      ip: 10.9.0.5/24\n      subnet: 10.0.0.0/16\n\
         \x20 - hostname: c\n    mac: \"52:54:00:00:00:03\"\n    network: { ip: 10.0.0.255/24 }\n",
    );
    let codes: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        codes,
        ["gateway-outside-subnet", "ip-outside-subnet", "ip-reserved"],
        "{e:?}"
    );
    assert_eq!(e[0].1, at(5, 16));
    assert_eq!(e[1].1, at(9, 11));
    assert!(e[2].2.contains("broadcast"), "{e:?}");
}

#[test]
fn unknown_presets_keys_and_roles_suggest() {
    let e = errors_of(
        "  - hostname: a\n    mac: \"52:54:00:00:00:01\"\n    sysctl-presets: [kubernetes-nod]\n    \
         hostnam: x\n    role: k8s-nod\n    disk: { devic: sdb }\n",
    );
    let find = |c: &str| {
        e.iter()
            .find(|x| x.0 == c)
            .unwrap_or_else(|| panic!("{c}: {e:?}"))
    };
    assert!(
        find("unknown-preset")
            .2
            .contains("did you mean `kubernetes-node`"),
        "{e:?}"
    );
    assert_eq!(find("unknown-preset").1, at(3, 22));
    let keys: Vec<_> = e.iter().filter(|x| x.0 == "unknown-key").collect();
    assert_eq!(keys.len(), 2, "{e:?}");
    assert_eq!(keys[0].1, at(4, 5));
    assert!(keys[0].2.contains("did you mean `hostname`"), "{e:?}");
    assert!(keys[1].2.contains("did you mean `device`"), "{e:?}");
    assert!(
        find("unknown-role").2.contains("did you mean `k8s-node`"),
        "{e:?}"
    );
}

#[test]
fn bad_macs_and_missing_fields() {
    let e = errors_of(
        "  - hostname: a\n    mac: \"52:54:00:00:00\"\n  - mac: \"52:54:00:00:00:09\"\n  - hostname: c\n",
    );
    let codes: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(codes, ["bad-mac", "missing", "missing"], "{e:?}");
    assert_eq!(e[0].1, at(2, 10));
    assert!(e[0].2.contains("6 groups"), "{e:?}");
    assert!(e[1].2.contains("no `hostname`"), "{e:?}");
    assert!(e[2].2.contains("no `mac`"), "{e:?}");
}

#[test]
fn plaintext_password_and_missing_ostree_refused() {
    let d = tempdir();
    let inv = write(
        d.path(),
        "inv.yaml",
        "defaults:\n  root-password: hunter2\n  disk: { device: vda }\nhosts:\n  - hostname: a\n    mac: \"52:54:00:00:00:01\"\n",
    );
    let o = run_cairn([
        "kickstart".as_ref(),
        "check".as_ref(),
        "-i".as_ref(),
        inv.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:2:18: root-password looks like plaintext",
            inv.display()
        )),
        "{err}"
    );
    assert!(err.contains("no `ostree.osname`"), "{err}");
    assert!(err.contains("no `ostree.ref`"), "{err}");
    assert!(err.contains("no `ostree.url`"), "{err}");
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", "hosts: [\n  - a\n");
    let j = check_json(&inv);
    assert_eq!(j["ok"], false);
    assert_eq!(j["errors"][0]["code"], "yaml");
    assert!(j["errors"][0]["line"].as_u64().unwrap() >= 1);
}

/// A varied inventory: DHCP, static prefix/netmask, VLAN, bond, no password, no presets.
fn varied() -> String {
    inventory(
        "  - hostname: dhcp1\n    mac: \"52:54:00:00:01:01\"\n\
         \x20 - hostname: static1.example.org\n    macs: [\"AA-BB-CC-00-00-02\", \"aabb.cc00.0003\"]\n    role: k8s-node\n    \
         kernel-args: [\"console=ttyS0,115200n8\", quiet]\n    timezone: America/New_York\n    \
         network: { ip: 10.1.0.10, netmask: 255.255.0.0, gateway: 10.1.0.1, dns: [10.1.0.53, \"2001:db8::1\"], vlan: 42, mtu: 9000 }\n\
         \x20 - hostname: bond1\n    mac: \"52:54:00:00:01:04\"\n    sysctl-presets: [database, elasticsearch]\n    \
         disk: { device: nvme0n1, fstype: ext4, vg: data, boot-size: 512, root-size: grow, var-size: 50GiB }\n    \
         network:\n      ip: 10.2.0.4/28\n      gateway: 10.2.0.1\n      bond: { name: bond0, mode: active-backup, slaves: [eno1, eno2] }\n",
    )
}

fn render(inv: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<std::ffi::OsString> = vec![
        "kickstart".into(),
        "render".into(),
        "-i".into(),
        inv.into(),
        "--out".into(),
        out.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    run_cairn(args)
}

#[test]
fn rendered_kickstarts_pass_ksvalidator() {
    if !have_tool(
        "ksvalidator",
        "scripts/setup.sh installs pykickstart from PyPI",
    ) {
        panic!("ksvalidator is required (run scripts/setup.sh)");
    }
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &varied());
    let mut files = Vec::new();
    for (i, src) in [shipped_inventory(), inv].iter().enumerate() {
        let out = d.path().join(format!("out{i}"));
        let o = render(src, &out, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        for e in std::fs::read_dir(out.join("ks")).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    assert_eq!(files.len(), 5 + 4);
    // The newest Fedora handler this pykickstart knows, besides RHEL9.
    let list = std::process::Command::new("ksvalidator")
        .arg("-l")
        .output()
        .unwrap();
    let fedora = String::from_utf8_lossy(&list.stdout)
        .split_whitespace()
        .filter_map(|v| v.strip_prefix('F').and_then(|n| n.parse::<u32>().ok()))
        .max()
        .expect("ksvalidator lists Fedora versions");
    assert!(fedora >= 40, "pykickstart too old: F{fedora}");
    for version in ["RHEL9".to_string(), format!("F{fedora}")] {
        // -e: warnings (deprecated options) fail too.
        let o = std::process::Command::new("ksvalidator")
            .args(["-e", "-v", &version])
            .args(&files)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ksvalidator -v {version}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    // And the validator really rejects a broken file, so a pass means something.
    let bad = write(d.path(), "bad.ks", "ostreesetup --osname=x --bogus\n");
    let o = std::process::Command::new("ksvalidator")
        .args(["-v", "RHEL9"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
}

#[test]
fn render_writes_every_document_with_the_right_content() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &varied());
    let out = d.path().join("out");
    let o = render(&inv, &out, &["--server-url", "http://10.9.9.9:8080/"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ks = std::fs::read_to_string(out.join("ks/aa:bb:cc:00:00:02")).unwrap();
    // The second MAC gets the same kickstart.
    assert_eq!(
        ks,
        std::fs::read_to_string(out.join("ks/aa:bb:cc:00:00:03")).unwrap()
    );
    for want in [
        "network --device=aa:bb:cc:00:00:02 --bootproto=static --ip=10.1.0.10 --netmask=255.255.0.0 --gateway=10.1.0.1 --nameserver=10.1.0.53,2001:db8::1 --vlanid=42 --mtu=9000 --hostname=static1.example.org",
        "ostreesetup --osname=cairn --remote=cairn --url=http://10.9.9.9:8080/repo/ --ref=cairn/x86_64/base --nogpg",
        "bootloader --location=mbr --boot-drive=vda --timeout=1 --append=\"console=ttyS0,115200n8 quiet\"",
        "timezone America/New_York --utc",
        &format!("rootpw --iscrypted {HASH}"),
        &format!("sshkey --username=root \"{KEY}\""),
        "net.bridge.bridge-nf-call-iptables = 1",
        "br_netfilter",
        "ostree remote add --repo=/ostree/repo --no-gpg-verify cairn http://10.9.9.9:8080/repo/ cairn/x86_64/base",
        "curl -fsS -m 30 -X POST 'http://10.9.9.9:8080/built/aa:bb:cc:00:00:02'",
        "%onerror\ncurl -fsS -m 30 -X POST 'http://10.9.9.9:8080/failed/aa:bb:cc:00:00:02'",
    ] {
        assert!(ks.contains(want), "missing {want:?} in\n{ks}");
    }
    let bond = std::fs::read_to_string(out.join("ks/52:54:00:00:01:04")).unwrap();
    for want in [
        "network --device=bond0 --bootproto=static --ip=10.2.0.4 --netmask=255.255.255.240 --gateway=10.2.0.1 --bondslaves=eno1,eno2 --bondopts=mode=active-backup",
        "part /boot --fstype=ext4 --size=512 --ondisk=nvme0n1",
        "volgroup data pv.01",
        "logvol / --vgname=data --name=root --fstype=ext4 --size=1 --grow",
        "logvol /var --vgname=data --name=var --fstype=ext4 --size=51200",
        "/etc/sysctl.d/60-cairn-database.conf",
        "vm.max_map_count = 262144",
    ] {
        assert!(bond.contains(want), "missing {want:?} in\n{bond}");
    }
    let dhcp = std::fs::read_to_string(out.join("ks/52:54:00:00:01:01")).unwrap();
    assert!(
        dhcp.contains(
            "network --device=52:54:00:00:01:01 --bootproto=dhcp --hostname=dhcp1 --activate"
        ),
        "{dhcp}"
    );
    let pxe = std::fs::read_to_string(out.join("pxelinux.cfg/01-aa-bb-cc-00-00-03")).unwrap();
    assert!(
        pxe.contains("inst.ks=http://10.9.9.9:8080/ks/aa:bb:cc:00:00:02 "),
        "{pxe}"
    );
    assert!(pxe.contains("KERNEL images/pxeboot/vmlinuz"), "{pxe}");
    let grub = std::fs::read_to_string(out.join("grub/grub.cfg-01-52-54-00-00-01-04")).unwrap();
    assert!(
        grub.contains(
            "linux images/pxeboot/vmlinuz inst.ks=http://10.9.9.9:8080/ks/52:54:00:00:01:04"
        ),
        "{grub}"
    );
    let ipxe = std::fs::read_to_string(out.join("ipxe/52:54:00:00:01:01")).unwrap();
    assert!(
        ipxe.starts_with("#!ipxe\n")
            && ipxe.contains("kernel http://10.9.9.9:8080/files/images/pxeboot/vmlinuz"),
        "{ipxe}"
    );
    let boot = std::fs::read_to_string(out.join("boot.ipxe")).unwrap();
    assert!(
        boot.contains("chain http://10.9.9.9:8080/ipxe?mac=${net0/mac}"),
        "{boot}"
    );
}

#[test]
fn render_is_atomic_and_templates_override() {
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &varied());
    let out = d.path().join("out");
    assert!(render(&inv, &out, &[]).status.success());
    let before = std::fs::read_to_string(out.join("ks/52:54:00:00:01:01")).unwrap();

    // A template that fails mid-render leaves the previous output exactly as it was.
    let tpl = d.path().join("tpl");
    std::fs::create_dir(&tpl).unwrap();
    write(&tpl, "grub.cfg.tera", "{{ no_such_variable }}\n");
    let o = render(&inv, &out, &["--templates", tpl.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("grub.cfg.tera") && stderr(&o).contains("no_such_variable"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("ks/52:54:00:00:01:01")).unwrap(),
        before
    );
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".cairn-render-")
        })
        .collect();
    assert!(leftovers.is_empty(), "temp dirs left behind");

    // A valid override replaces only that template; the rest stay built in.
    write(
        &tpl,
        "grub.cfg.tera",
        "# custom {{ fqdn }} {{ mac_dashed }}\n",
    );
    let o = render(&inv, &out, &["--templates", tpl.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("grub/grub.cfg-01-52-54-00-00-01-04")).unwrap(),
        "# custom bond1 52-54-00-00-01-04\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("ks/52:54:00:00:01:01")).unwrap(),
        before
    );

    // A directory that is not a previous render is never replaced.
    let foreign = d.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    write(&foreign, "precious", "x");
    let o = render(&inv, &foreign, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a cairn render directory"),
        "{}",
        stderr(&o)
    );
    assert!(foreign.join("precious").exists());
}

/// Splits a kickstart command line into its name and `--opt[=value]` map (quotes removed),
/// plus positional words.
fn parse_line(line: &str) -> (String, BTreeMap<String, String>, Vec<String>) {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let name = words.remove(0);
    let mut opts = BTreeMap::new();
    let mut pos = Vec::new();
    for w in words {
        match w.strip_prefix("--") {
            Some(o) => {
                let (k, v) = o.split_once('=').unwrap_or((o, ""));
                // Normalise booleans anaconda spells several ways.
                let v = match v {
                    "on" | "yes" | "true" | "1" => "yes",
                    other => other,
                };
                opts.insert(k.to_string(), v.to_string());
            }
            None => pos.push(w),
        }
    }
    (name, opts, pos)
}

fn lines_of<'a>(ks: &'a str, cmd: &str) -> Vec<&'a str> {
    ks.lines()
        .filter(|l| l.split_whitespace().next() == Some(cmd))
        .collect()
}

#[test]
fn corpus_kickstarts_essentials_round_trip() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("kickstarts");
    let originals = with_ostreesetup(&dir);
    if originals.is_empty() {
        skip(&format!(
            "no kickstart with ostreesetup under {}",
            dir.display()
        ));
        return;
    }
    let d = tempdir();
    let hosts = hosts_of(&originals);
    // The two disk: keys of one host would clash; merge them textually.
    let hosts = merge_disk_lines(&hosts);
    let inv = write(d.path(), "corpus.yaml", &inventory(&hosts));
    let out = d.path().join("out");
    let o = render(&inv, &out, &[]);
    assert!(o.status.success(), "{}\n{hosts}", stderr(&o));
    for (i, (path, orig)) in originals.iter().enumerate() {
        let ours = std::fs::read_to_string(out.join(format!("ks/52:54:00:00:0c:{i:02x}"))).unwrap();
        assert_essentials_kept(path, orig, &ours);
    }
    eprintln!("corpus: compared {} kickstarts", originals.len());
}

/// The kickstarts under `dir` that install OSTree (have `ostreesetup`), in name order.
fn with_ostreesetup(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut originals = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        if e.path().extension().is_some_and(|x| x == "ks") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            if !lines_of(&text, "ostreesetup").is_empty() {
                originals.push((e.path().to_path_buf(), text));
            }
        }
    }
    originals
}

/// Each original's essentials expressed as one inventory host (YAML under `hosts:`).
fn hosts_of(originals: &[(PathBuf, String)]) -> String {
    let mut hosts = String::new();
    for (i, (_, ks)) in originals.iter().enumerate() {
        let (_, o, _) = parse_line(lines_of(ks, "ostreesetup")[0]);
        let (_, b, _) = parse_line(lines_of(ks, "bootloader")[0]);
        hosts += &format!(
            "  - hostname: corpus{i}\n    mac: \"52:54:00:00:0c:{i:02x}\"\n    ostree:\n      osname: {}\n      remote: {}\n      url: {}\n      ref: \"{}\"\n      gpg: {}\n",
            o["osname"], o["remote"], o["url"], o["ref"], !o.contains_key("nogpg")
        );
        if let Some(a) = b.get("append") {
            hosts += "    kernel-args:\n";
            for w in a.split_whitespace() {
                hosts += &format!("      - \"{w}\"\n");
            }
        }
        if let Some(vg) = lines_of(ks, "volgroup").first() {
            let (_, _, pos) = parse_line(vg);
            let (_, root, _) = parse_line(
                lines_of(ks, "logvol")
                    .iter()
                    .find(|l| l.contains("logvol / "))
                    .unwrap(),
            );
            hosts += &format!(
                "    disk: {{ device: vda, vg: {}, root-size: {} }}\n",
                pos[0], root["size"]
            );
        }
        if let Some(boot) = lines_of(ks, "part")
            .iter()
            .find(|l| l.contains("part /boot"))
        {
            let (_, p, _) = parse_line(boot);
            hosts += &format!("    disk: {{ device: vda, boot-size: {} }}\n", p["size"]);
        }
    }
    hosts
}

/// cairn's kickstart `ours` keeps what the original `orig` (at `path`) says in its ostreesetup,
/// network, bootloader and volgroup lines and its /boot and / volumes.
fn assert_essentials_kept(path: &Path, orig: &str, ours: &str) {
    for cmd in ["ostreesetup", "network", "bootloader", "volgroup"] {
        let Some(line) = lines_of(orig, cmd).first().copied() else {
            continue;
        };
        let (_, want, want_pos) = parse_line(line);
        let (_, got, got_pos) = parse_line(lines_of(ours, cmd)[0]);
        for (k, v) in &want {
            // cairn names the NIC by MAC on purpose (`--device=link` picks whichever NIC
            // has a carrier, which is wrong on multi-NIC servers).
            if cmd == "network" && k == "device" {
                assert!(got[k].parse::<cairn_kickstart::Mac>().is_ok());
                continue;
            }
            assert_eq!(
                got.get(k),
                Some(v),
                "{}: {cmd} --{k}\n  original: {line}\n  cairn:    {}",
                path.display(),
                lines_of(ours, cmd)[0]
            );
        }
        assert_eq!(
            got_pos.first(),
            want_pos.first(),
            "{}: {cmd}",
            path.display()
        );
    }
    for (cmd, mount) in [("part", "/boot"), ("logvol", "/")] {
        let find = |ks: &str| {
            ks.lines()
                .find(|l| l.starts_with(&format!("{cmd} {mount} ")))
                .map(str::to_string)
        };
        let Some(line) = find(orig) else { continue };
        let (_, want, _) = parse_line(&line);
        let (_, got, _) = parse_line(&find(ours).unwrap());
        for k in ["size", "fstype", "name", "vgname"] {
            if let Some(v) = want.get(k) {
                assert_eq!(
                    got.get(k),
                    Some(v),
                    "{}: {cmd} {mount} --{k}",
                    path.display()
                );
            }
        }
    }
}

fn merge_disk_lines(hosts: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in hosts.lines() {
        if let (Some(prev), Some(rest)) = (
            out.last_mut(),
            line.strip_prefix("    disk: { device: vda, "),
        ) {
            if let Some(p) = prev.strip_suffix(" }") {
                if p.starts_with("    disk: {") {
                    *prev = format!("{p}, {rest}");
                    continue;
                }
            }
        }
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

#[test]
fn rerender_links_unchanged_files_and_rewrites_changed_ones() {
    use std::os::unix::fs::MetadataExt;
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &varied());
    let out = d.path().join("out");
    let json = |o: std::process::Output| -> serde_json::Value {
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let first = json(render(&inv, &out, &["--json"]));
    assert_eq!(first["reused"], 0);
    // static1 has two MACs: its second MAC's files are links to the first's, in the same tree.
    let ino = |p: &str| std::fs::metadata(out.join(p)).unwrap().ino();
    assert_eq!(ino("ks/aa:bb:cc:00:00:02"), ino("ks/aa:bb:cc:00:00:03"));
    let old_dhcp = ino("ks/52:54:00:00:01:01");
    let old_bond = ino("ks/52:54:00:00:01:04");

    // Nothing changed: every host's four documents come from the previous output.
    let again = json(render(&inv, &out, &["--json"]));
    assert_eq!(again["reused"], 3 * 4, "{again}");
    assert_eq!(again["files"], first["files"]);
    assert_eq!(ino("ks/52:54:00:00:01:01"), old_dhcp);

    // One host changed: its files are new inodes with the new text, the others still linked,
    // and the files the previous output held are not modified in place.
    let old_text = std::fs::read_to_string(out.join("ks/52:54:00:00:01:04")).unwrap();
    let kept = d.path().join("kept");
    std::fs::hard_link(out.join("ks/52:54:00:00:01:04"), &kept).unwrap();
    let changed = varied().replace("var-size: 50GiB", "var-size: 60GiB");
    std::fs::write(&inv, changed).unwrap();
    let third = json(render(&inv, &out, &["--json"]));
    assert_eq!(third["reused"], 3 * 4 - 1, "{third}");
    assert_ne!(ino("ks/52:54:00:00:01:04"), old_bond);
    assert!(std::fs::read_to_string(out.join("ks/52:54:00:00:01:04"))
        .unwrap()
        .contains("--size=61440"));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), old_text);
    assert_eq!(ino("ks/52:54:00:00:01:01"), old_dhcp);
}

/// `macs: []` is refused by `check` with its position, and `render` and `serve` refuse the same
/// file the same way instead of panicking: check accepts exactly what render and serve can use.
#[test]
fn an_empty_mac_list_is_an_error_everywhere_not_a_panic() {
    let hosts = "  - hostname: nomac\n    macs: []\n";
    let errs = errors_of(hosts);
    assert_eq!(
        errs,
        vec![(
            "missing".to_string(),
            at(2, 11),
            "host `nomac` has an empty MAC list (PXE clients are matched by MAC)".to_string()
        )]
    );
    let d = tempdir();
    let inv = write(d.path(), "inv.yaml", &inventory(hosts));
    let inv = inv.display().to_string();
    let out = d.path().join("out").display().to_string();
    for args in [
        vec!["kickstart", "render", "-i", &inv, "--out", &out],
        vec!["serve", "-i", &inv, "--listen", "127.0.0.1:0"],
    ] {
        let o = run_cairn(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("empty MAC list"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}
