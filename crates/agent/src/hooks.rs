//! The commands the agent runs: pre-reboot and post-boot hooks (with `{node}` replaced by the
//! node name) and the reboot itself. Their stdout goes to the agent's stderr, because the agent's
//! stdout is its event stream.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::AgentError;

/// Runs `argv` (with `{node}` replaced) to completion within `timeout`; a command still running
/// then is killed and fails.
pub(crate) fn run_hook(argv: &[String], node: &str, timeout: Duration) -> Result<(), AgentError> {
    let argv: Vec<String> = argv.iter().map(|a| a.replace("{node}", node)).collect();
    let what = argv.join(" ");
    let fail = |why: String| AgentError::Command {
        what: what.clone(),
        why,
    };
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .env("CAIRN_NODE", node)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .spawn()
        .map_err(|e| fail(format!("could not start: {e}")))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(fail(st.to_string())),
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("killed after {}s", timeout.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(fail(format!("wait failed: {e}"))),
        }
    }
}

/// The reboot command: the config's, else `$CAIRN_REBOOT_COMMAND` (a shell command line: test
/// harnesses and VMs use it), else `systemctl reboot`.
pub fn reboot_command(configured: Option<&[String]>) -> Vec<String> {
    if let Some(c) = configured {
        return c.to_vec();
    }
    match std::env::var("CAIRN_REBOOT_COMMAND") {
        Ok(line) if !line.trim().is_empty() => vec!["sh".into(), "-c".into(), line],
        _ => vec!["systemctl".into(), "reboot".into()],
    }
}

/// Asks for the reboot; `to` (the deployment that boots next) is passed as `CAIRN_REBOOT_TO`.
/// Returning is normal: `systemctl reboot` only queues the shutdown.
pub fn reboot(argv: &[String], to: &str) -> Result<(), AgentError> {
    let what = argv.join(" ");
    let st = Command::new(&argv[0])
        .args(&argv[1..])
        .env("CAIRN_REBOOT_TO", to)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| AgentError::Command {
            what: what.clone(),
            why: format!("could not start: {e}"),
        })?;
    if st.success() {
        Ok(())
    } else {
        Err(AgentError::Command {
            what,
            why: st.to_string(),
        })
    }
}

/// The host name, for `{node}` in hooks (Kubernetes node names default to it).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hooks_get_the_node_name_and_fail_on_exit_status_or_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("echo \"$1 $CAIRN_NODE\" > {}", out.display());
        run_hook(
            &argv(&["sh", "-c", &script, "sh", "{node}"]),
            "worker-3",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "worker-3 worker-3\n"
        );
        let e = run_hook(&argv(&["false"]), "n", Duration::from_secs(10)).unwrap_err();
        assert!(e.to_string().contains("exit status: 1"), "{e}");
        let t = Instant::now();
        let e = run_hook(&argv(&["sleep", "30"]), "n", Duration::from_millis(200)).unwrap_err();
        assert!(e.to_string().contains("killed after"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(10));
        let e = run_hook(
            &argv(&["/nonexistent/kubectl"]),
            "n",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("could not start"), "{e}");
    }

    #[test]
    fn the_configured_reboot_command_wins() {
        assert_eq!(reboot_command(Some(&argv(&["/bin/true"]))), ["/bin/true"]);
        reboot(&argv(&["true"]), "x").unwrap();
        assert!(reboot(&argv(&["false"]), "x").is_err());
    }
}
