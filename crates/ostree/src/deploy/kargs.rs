//! Kernel arguments: validation of user input and the append/delete/replace edits.
//!
//! `cairn kargs` writes a new deployment of the same commit with the edited arguments (what
//! rpm-ostree does), not an in-place edit: the previous arguments stay bootable as the rollback,
//! so a wrong `root=` or `console=` costs one reboot, not a rescue disk.

use super::error::DeployError;

/// The key of `key=value` (or the whole argument when there is no `=`).
pub fn key(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(k, _)| k)
}

/// Rejects what would corrupt a BLS `options` line or is certainly a typo.
pub fn validate(arg: &str) -> Result<(), DeployError> {
    let bad = |why: &str| {
        Err(DeployError::BadKarg {
            arg: arg.to_string(),
            why: why.into(),
        })
    };
    if arg.is_empty() {
        return bad("empty");
    }
    if arg.chars().any(|c| c.is_control()) {
        return bad("control characters (newline, tab...) are not allowed");
    }
    if !arg.matches('"').count().is_multiple_of(2) {
        return bad("unbalanced double quote");
    }
    let mut quoted = false;
    for c in arg.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                return bad("spaces separate arguments: pass each one with its own flag, or quote the value (key=\"a b\")")
            }
            _ => {}
        }
    }
    let k = key(arg);
    if k.is_empty() {
        return bad("missing key before `=`");
    }
    if k.contains('"') {
        return bad("the key cannot be quoted");
    }
    Ok(())
}

/// Splits a BLS `options` line into arguments, keeping quoted spaces inside one argument.
pub fn split(options: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in options.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Edits to apply, in this order: delete, replace, append.
#[derive(Debug, Clone, Default)]
pub struct KargEdits {
    /// `KEY` deletes every `KEY` / `KEY=...`; `KEY=VALUE` deletes that exact argument.
    pub delete: Vec<String>,
    /// `KEY=VALUE` replaces every `KEY...` argument with one `KEY=VALUE` (appended if absent).
    pub replace: Vec<String>,
    /// Appended as is (for repeatable keys like `console=`).
    pub append: Vec<String>,
}

impl KargEdits {
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.replace.is_empty() && self.append.is_empty()
    }

    pub fn validate(&self) -> Result<(), DeployError> {
        self.delete
            .iter()
            .chain(&self.replace)
            .chain(&self.append)
            .try_for_each(|a| validate(a))
    }

    /// The edited list; an error when a delete matches nothing or the result would be empty.
    pub fn apply(&self, current: &[String]) -> Result<Vec<String>, DeployError> {
        self.validate()?;
        let mut args = current.to_vec();
        for d in &self.delete {
            let before = args.len();
            if d.contains('=') {
                args.retain(|a| a != d);
            } else {
                args.retain(|a| key(a) != d);
            }
            if args.len() == before {
                return Err(DeployError::KargNotFound(d.clone()));
            }
        }
        for r in &self.replace {
            args = replace(&args, r);
        }
        args.extend(self.append.iter().cloned());
        if args.is_empty() {
            return Err(DeployError::EmptyKargs);
        }
        Ok(args)
    }
}

/// `ostree admin deploy --karg` semantics: the first argument with this key becomes `arg`, later
/// ones with the key are dropped; absent keys are appended.
pub fn replace(args: &[String], arg: &str) -> Vec<String> {
    let k = key(arg);
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut placed = false;
    for a in args {
        if key(a) == k {
            if !placed {
                out.push(arg.to_string());
                placed = true;
            }
        } else {
            out.push(a.clone());
        }
    }
    if !placed {
        out.push(arg.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn validation() {
        for ok in [
            "quiet",
            "root=/dev/vda1",
            "console=ttyS0,115200",
            "x=\"a b\"",
            "rd.luks.uuid=",
        ] {
            validate(ok).unwrap();
        }
        for bad in ["", "=1", "a b", "x=\"a", "root=/dev/vda1\nrw", "\"k\"=1"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn split_keeps_quotes() {
        assert_eq!(
            split(" root=/x  a=\"b c\" quiet"),
            v(&["root=/x", "a=\"b c\"", "quiet"])
        );
    }

    #[test]
    fn edits() {
        let cur = v(&["root=/dev/vda1", "console=tty0", "console=ttyS0", "quiet"]);
        let e = KargEdits {
            delete: v(&["quiet"]),
            replace: v(&["console=ttyS1"]),
            append: v(&["mitigations=off"]),
        };
        assert_eq!(
            e.apply(&cur).unwrap(),
            v(&["root=/dev/vda1", "console=ttyS1", "mitigations=off"])
        );
        let e = KargEdits {
            delete: v(&["console=tty0"]),
            ..Default::default()
        };
        assert_eq!(
            e.apply(&cur).unwrap(),
            v(&["root=/dev/vda1", "console=ttyS0", "quiet"])
        );
        let e = KargEdits {
            delete: v(&["nosuch"]),
            ..Default::default()
        };
        assert!(matches!(e.apply(&cur), Err(DeployError::KargNotFound(_))));
        let e = KargEdits {
            delete: v(&["root"]),
            ..Default::default()
        };
        assert!(matches!(
            e.apply(&v(&["root=/x"])),
            Err(DeployError::EmptyKargs)
        ));
    }
}
