//! Moving images with `skopeo`: what ostree-ext's image proxy runs too, with the host's
//! containers configuration (registries.conf for mirrors and insecure registries, auth files).

use std::process::Command;

use crate::{io, ContainerError};

/// The `skopeo` program (`$CAIRN_SKOPEO` overrides, for hosts that keep it elsewhere).
/// `$CONTAINERS_REGISTRIES_CONF` (the containers tools' variable for an alternative
/// registries.conf, e.g. one marking a plain-HTTP registry insecure) is passed on as
/// `--registries-conf`: skopeo 1.9 reads only the flag.
fn skopeo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CAIRN_SKOPEO").unwrap_or_else(|| "skopeo".into()));
    if let Some(conf) = std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
        cmd.arg("--registries-conf").arg(conf);
    }
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>, ContainerError> {
    let out = cmd.output().map_err(io(format!(
        "running skopeo for {what} (install the `skopeo` package)"
    )))?;
    if !out.status.success() {
        return Err(ContainerError::Tool {
            what: what.to_string(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// `skopeo copy SRC DST`. `insecure_policy`: skip containers-policy.json (the image is either
/// cairn's own, or the reference says it is unverified).
pub fn copy(src: &str, dst: &str, insecure_policy: bool) -> Result<(), ContainerError> {
    let mut cmd = skopeo();
    cmd.arg("copy").arg("--quiet");
    if insecure_policy {
        cmd.arg("--insecure-policy");
    }
    cmd.args([src, dst]);
    run(cmd, &format!("skopeo copy {src} {dst}")).map(|_| ())
}

/// The manifest of `image` exactly as stored (`skopeo inspect --raw`).
pub fn raw_manifest(image: &str) -> Result<Vec<u8>, ContainerError> {
    let mut cmd = skopeo();
    cmd.args(["inspect", "--raw", image]);
    run(cmd, &format!("skopeo inspect --raw {image}"))
}

/// The image's configuration blob (`skopeo inspect --config --raw`).
pub fn raw_config(image: &str) -> Result<Vec<u8>, ContainerError> {
    let mut cmd = skopeo();
    cmd.args(["inspect", "--config", "--raw", image]);
    run(cmd, &format!("skopeo inspect --config --raw {image}"))
}
