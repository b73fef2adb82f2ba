//! External tools: run one, keep its standard output, and turn "not installed" and a failing
//! exit into one message naming the command line, for every domain that drives a tool.

use std::process::Command;

/// A tool that could not start or exited non-zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFailure {
    /// The command line as `Command`'s Debug shows it (program and quoted arguments).
    pub cmd: String,
    /// Why: `missing` when the program is not installed, else the exit status and stderr.
    pub msg: String,
}

/// Runs `cmd` to completion and returns its standard output. `missing` is the message for a
/// program that is not installed: callers say which package or script provides it.
pub fn run(cmd: &mut Command, missing: &str) -> Result<String, ToolFailure> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| ToolFailure {
        cmd: shown.clone(),
        msg: if e.kind() == std::io::ErrorKind::NotFound {
            missing.to_owned()
        } else {
            e.to_string()
        },
    })?;
    if !out.status.success() {
        return Err(ToolFailure {
            cmd: shown,
            msg: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_failure_and_missing_tool() {
        let ok = run(Command::new("sh").args(["-c", "echo hi"]), "x");
        assert_eq!(ok, Ok("hi\n".to_owned()));
        let bad = run(
            Command::new("sh").args(["-c", "echo oops >&2; exit 3"]),
            "x",
        )
        .unwrap_err();
        assert!(bad.cmd.contains("\"sh\""), "{bad:?}");
        assert!(
            bad.msg.contains("exit status: 3") && bad.msg.ends_with("oops"),
            "{bad:?}"
        );
        let missing = run(&mut Command::new("cairn-no-such-tool"), "install it").unwrap_err();
        assert_eq!(missing.msg, "install it");
    }
}
