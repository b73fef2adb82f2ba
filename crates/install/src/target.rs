//! The target's configuration, written into the new deployment before its first boot: fstab,
//! hostname, systemd-networkd files, the %post /etc files (sysctl presets), root's password and
//! SSH keys, the time zone.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::parse::{Kickstart, RootPw};
use crate::InstallError;

/// Where things go: the deployment's root and the stateroot's /var as the host will mount it.
pub(crate) struct Dirs {
    pub deployment: PathBuf,
    pub var: PathBuf,
}

pub(crate) struct Written(pub Vec<String>);

impl Written {
    fn file(
        &mut self,
        abs: &Path,
        host_path: &str,
        text: &str,
        mode: u32,
    ) -> Result<(), InstallError> {
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent).map_err(|e| InstallError::io(parent, e))?;
        }
        std::fs::write(abs, text).map_err(|e| InstallError::io(abs, e))?;
        std::fs::set_permissions(abs, std::fs::Permissions::from_mode(mode))
            .map_err(|e| InstallError::io(abs, e))?;
        self.0.push(host_path.to_owned());
        Ok(())
    }
}

/// `/etc/x` → `<deployment>/etc/x`.
fn etc(d: &Dirs, host_path: &str) -> PathBuf {
    d.deployment.join(host_path.trim_start_matches('/'))
}

pub(crate) fn configure(
    d: &Dirs,
    ks: &Kickstart,
    fstab: &str,
) -> Result<Vec<String>, InstallError> {
    let mut w = Written(Vec::new());
    let path = etc(d, "/etc/fstab");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(fstab);
    w.file(&path, "/etc/fstab", &text, 0o644)?;

    if let Some(h) = ks.networks.iter().find_map(|n| n.hostname.as_deref()) {
        w.file(
            &etc(d, "/etc/hostname"),
            "/etc/hostname",
            &format!("{h}\n"),
            0o644,
        )?;
    }
    let files = crate::network::render(&ks.networks).map_err(|msg| InstallError::Kickstart {
        source_name: ks.source.clone(),
        line: 0,
        msg,
    })?;
    for (name, text) in files {
        let host = format!("/etc/systemd/network/{name}");
        w.file(&etc(d, &host), &host, &text, 0o644)?;
    }
    for dir in &ks.post.dirs {
        let p = etc(d, dir);
        std::fs::create_dir_all(&p).map_err(|e| InstallError::io(&p, e))?;
    }
    for (host, text) in &ks.post.files {
        w.file(&etc(d, host), host, text, 0o644)?;
    }
    if let Some(pw) = &ks.root {
        root_password(d, pw, &mut w)?;
    }
    if !ks.ssh_keys.is_empty() {
        ssh_keys(d, &ks.ssh_keys, &mut w)?;
    }
    if let Some(tz) = &ks.timezone {
        let link = etc(d, "/etc/localtime");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("../usr/share/zoneinfo/{}", tz.name), &link)
            .map_err(|e| InstallError::io(&link, e))?;
        w.0.push("/etc/localtime".into());
        w.file(
            &etc(d, "/etc/timezone"),
            "/etc/timezone",
            &format!("{}\n", tz.name),
            0o644,
        )?;
        if tz.utc {
            w.file(
                &etc(d, "/etc/adjtime"),
                "/etc/adjtime",
                "0.0 0 0.0\n0\nUTC\n",
                0o644,
            )?;
        }
    }
    Ok(w.0)
}

/// Sets root's hash in /etc/shadow (a tree without one gets a shadow file holding root only).
fn root_password(d: &Dirs, pw: &RootPw, w: &mut Written) -> Result<(), InstallError> {
    let path = etc(d, "/etc/shadow");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let hash = |prev: &str| match pw {
        RootPw::Crypted(h) => h.clone(),
        RootPw::Locked if prev.starts_with('!') => prev.to_owned(),
        RootPw::Locked => format!("!{}", if prev.is_empty() { "*" } else { prev }),
    };
    let mut found = false;
    let mut out = String::new();
    for line in old.lines() {
        let mut f: Vec<String> = line.split(':').map(str::to_owned).collect();
        if f.first().map(String::as_str) == Some("root") && f.len() >= 2 {
            f[1] = hash(&f[1]);
            found = true;
        }
        out.push_str(&f.join(":"));
        out.push('\n');
    }
    if !found {
        out.push_str(&format!("root:{}:19000:0:99999:7:::\n", hash("")));
    }
    w.file(&path, "/etc/shadow", &out, 0o640)
}

/// root's home on an OSTree host is /var/roothome (`/root` links there), which lives on the
/// stateroot's /var: the keys go there, as anaconda's chroot would put them.
fn ssh_keys(d: &Dirs, keys: &[String], w: &mut Written) -> Result<(), InstallError> {
    let link = d.deployment.join("root");
    let target = std::fs::read_link(&link).map_err(|_| InstallError::Target {
        path: link.clone(),
        msg: "the commit's /root is not a symlink into /var (cairn compose makes /root -> var/roothome); `sshkey` has nowhere to write".into(),
    })?;
    let rel = target.to_string_lossy().trim_start_matches('/').to_owned();
    let Some(under_var) = rel.strip_prefix("var/") else {
        return Err(InstallError::Target {
            path: link,
            msg: format!("/root points at {rel}, not into /var"),
        });
    };
    let home = d.var.join(under_var);
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).map_err(|e| InstallError::io(&ssh, e))?;
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| InstallError::io(&home, e))?;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| InstallError::io(&ssh, e))?;
    let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
    w.file(
        &ssh.join("authorized_keys"),
        &format!("/{rel}/.ssh/authorized_keys"),
        &text,
        0o600,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs() -> (tempfile::TempDir, Dirs) {
        let t = tempfile::tempdir().unwrap();
        let d = Dirs {
            deployment: t.path().join("dep"),
            var: t.path().join("var"),
        };
        std::fs::create_dir_all(d.deployment.join("etc")).unwrap();
        (t, d)
    }

    #[test]
    fn root_password_replaces_only_roots_hash() {
        let (_t, d) = dirs();
        let shadow = d.deployment.join("etc/shadow");
        std::fs::write(
            &shadow,
            "root:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n",
        )
        .unwrap();
        let mut w = Written(Vec::new());
        root_password(&d, &RootPw::Crypted("$6$s$h".into()), &mut w).unwrap();
        assert_eq!(
            std::fs::read_to_string(&shadow).unwrap(),
            "root:$6$s$h:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n"
        );
        root_password(&d, &RootPw::Locked, &mut w).unwrap();
        assert!(std::fs::read_to_string(&shadow)
            .unwrap()
            .starts_with("root:!$6$s$h:"));
        std::fs::remove_file(&shadow).unwrap();
        root_password(&d, &RootPw::Locked, &mut w).unwrap();
        assert_eq!(
            std::fs::read_to_string(&shadow).unwrap(),
            "root:!*:19000:0:99999:7:::\n"
        );
    }

    #[test]
    fn ssh_keys_follow_root_into_var_or_are_refused() {
        let (_t, d) = dirs();
        let mut w = Written(Vec::new());
        assert!(
            ssh_keys(&d, &["k".into()], &mut w).is_err(),
            "no /root link"
        );
        std::os::unix::fs::symlink("var/roothome", d.deployment.join("root")).unwrap();
        ssh_keys(&d, &["k1".into(), "k2".into()], &mut w).unwrap();
        let keys = d.var.join("roothome/.ssh/authorized_keys");
        assert_eq!(std::fs::read_to_string(&keys).unwrap(), "k1\nk2\n");
        assert_eq!(w.0, ["/var/roothome/.ssh/authorized_keys"]);
    }
}
