//! `%post` as cairn renders it, interpreted instead of run: heredoc writes into /etc, `mkdir -p`
//! under /etc, and `ostree remote delete/add` on the sysroot repository. The installer has no
//! shell inside the target (the deployment is not booted), so anything else is refused by line.

use cairn_ostree::deploy::RemoteChange;

use crate::parse::{split_words, Ctx};
use crate::InstallError;

/// What the `%post` sections ask for, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Post {
    /// Directories to create (absolute, under /etc).
    pub dirs: Vec<String>,
    /// Files to write: absolute path under /etc, content.
    pub files: Vec<(String, String)>,
    pub remotes: Vec<RemoteChange>,
}

fn refuse(cx: &Ctx, line: usize, text: &str) -> InstallError {
    cx.err(
        line,
        format!(
            "%post: `{}` is not something cairn install can carry out (it interprets what cairn \
             renders: `cat > /etc/... <<'EOF'` heredocs, `mkdir -p /etc/...`, `ostree remote \
             delete|add --repo=/ostree/repo`); move it into the commit or a first-boot unit",
            text.trim()
        ),
    )
}

/// A path the installer may write: absolute, under /etc, no `..`.
fn etc_path(p: &str) -> bool {
    p.starts_with("/etc/") && !p.split('/').any(|c| c == ".." || c == ".")
}

pub(crate) fn interpret(
    cx: &Ctx,
    _start: usize,
    body: &[(usize, String)],
    post: &mut Post,
) -> Result<(), InstallError> {
    let mut i = 0;
    while i < body.len() {
        let (line, text) = &body[i];
        i += 1;
        let words = split_words(text).ok_or_else(|| cx.err(*line, "unterminated quote"))?;
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            [] => {}
            ["set", opts]
                if opts.starts_with('-') && opts[1..].chars().all(|c| "eux".contains(c)) => {}
            ["mkdir", "-p", dirs @ ..]
                if !dirs.is_empty() && dirs.iter().all(|d| etc_path(&format!("{d}/"))) =>
            {
                post.dirs.extend(dirs.iter().map(|d| d.to_string()));
            }
            ["cat", ">", path, heredoc] if etc_path(path) => {
                let delim = heredoc_delim(text).ok_or_else(|| refuse(cx, *line, text))?;
                let _ = heredoc;
                let mut content = String::new();
                loop {
                    let Some((_, l)) = body.get(i) else {
                        return Err(
                            cx.err(*line, format!("heredoc {delim} is not closed before %end"))
                        );
                    };
                    i += 1;
                    if l == &delim {
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                post.files.push((path.to_string(), content));
            }
            ["ostree", "remote", "delete", rest @ ..] => {
                post.remotes.push(remote_delete(cx, *line, text, rest)?)
            }
            ["ostree", "remote", "add", rest @ ..] => {
                post.remotes.push(remote_add(cx, *line, text, rest)?)
            }
            _ => return Err(refuse(cx, *line, text)),
        }
    }
    Ok(())
}

/// `<<'EOF'` (quoted: no expansion, which is what cairn renders) → `EOF`. Unquoted heredocs
/// expand `$...`, which an interpreter without a shell cannot reproduce, so they are refused.
fn heredoc_delim(text: &str) -> Option<String> {
    let after = text.split("<<").nth(1)?.trim();
    let inner = after.strip_prefix('\'')?.strip_suffix('\'')?;
    (!inner.is_empty() && !inner.contains(char::is_whitespace)).then(|| inner.to_owned())
}

fn repo_flag_ok(rest: &[&str]) -> bool {
    rest.contains(&"--repo=/ostree/repo")
}

fn remote_delete(
    cx: &Ctx,
    line: usize,
    text: &str,
    rest: &[&str],
) -> Result<RemoteChange, InstallError> {
    let names: Vec<&&str> = rest.iter().filter(|w| !w.starts_with("--")).collect();
    let flags_ok = rest
        .iter()
        .filter(|w| w.starts_with("--"))
        .all(|f| matches!(*f, "--repo=/ostree/repo" | "--if-exists"));
    match names.as_slice() {
        [name] if flags_ok && repo_flag_ok(rest) && rest.contains(&"--if-exists") => {
            Ok(RemoteChange::Delete {
                name: name.to_string(),
            })
        }
        _ => Err(refuse(cx, line, text)),
    }
}

fn remote_add(
    cx: &Ctx,
    line: usize,
    text: &str,
    rest: &[&str],
) -> Result<RemoteChange, InstallError> {
    let pos: Vec<&str> = rest
        .iter()
        .filter(|w| !w.starts_with("--"))
        .copied()
        .collect();
    let flags_ok = rest
        .iter()
        .filter(|w| w.starts_with("--"))
        .all(|f| matches!(*f, "--repo=/ostree/repo" | "--no-gpg-verify"));
    match pos.as_slice() {
        [name, url, branches @ ..]
            if flags_ok
                && repo_flag_ok(rest)
                && (url.starts_with("http://") || url.starts_with("https://")) =>
        {
            Ok(RemoteChange::Add {
                name: name.to_string(),
                url: url.to_string(),
                gpg_verify: !rest.contains(&"--no-gpg-verify"),
                branches: branches.iter().map(|b| b.to_string()).collect(),
            })
        }
        _ => Err(refuse(cx, line, text)),
    }
}

/// The URL of a `%post --nochroot` / `%onerror` section: one `curl ... -X POST 'URL' [|| true]`.
pub(crate) fn callback_url(
    cx: &Ctx,
    start: usize,
    body: &[(usize, String)],
) -> Result<Option<String>, InstallError> {
    let mut url = None;
    for (line, text) in body {
        let words = split_words(text).ok_or_else(|| cx.err(*line, "unterminated quote"))?;
        if words.is_empty() {
            continue;
        }
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        let urls: Vec<&str> = w
            .iter()
            .copied()
            .filter(|x| x.starts_with("http://") || x.starts_with("https://"))
            .collect();
        let is_post = w.windows(2).any(|p| p == ["-X", "POST"]);
        if w[0] != "curl" || !is_post || urls.len() != 1 || url.is_some() {
            return Err(cx.err(
                *line,
                format!(
                    "`{}` in the section opened at line {start}: cairn install carries out only one `curl -X POST URL` callback here",
                    text.trim()
                ),
            ));
        }
        url = Some(urls[0].to_owned());
    }
    Ok(url)
}

/// The `%onerror` section's callback URL, found without parsing the rest (which may be what is
/// wrong with the kickstart).
pub(crate) fn scan_failed_url(text: &str) -> Option<String> {
    let mut lines = text.lines().skip_while(|l| l.trim() != "%onerror").skip(1);
    let l = lines.find(|l| l.trim_start().starts_with("curl "))?;
    split_words(l)?
        .into_iter()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str) -> Result<Post, InstallError> {
        let cx = Ctx { source: "ks.cfg" };
        let lines: Vec<(usize, String)> = body
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 10, l.to_owned()))
            .collect();
        let mut p = Post::default();
        interpret(&cx, 9, &lines, &mut p).map(|()| p)
    }

    #[test]
    fn the_rendered_forms_are_interpreted() {
        let p = run("set -eu\nmkdir -p /etc/sysctl.d /etc/modules-load.d\ncat > /etc/sysctl.d/60-x.conf <<'CAIRN_EOF'\n# c\nvm.a = 1\nCAIRN_EOF\n\nostree remote delete --repo=/ostree/repo --if-exists cairn\nostree remote add --repo=/ostree/repo --no-gpg-verify cairn http://h/repo/ a/b\n").unwrap();
        assert_eq!(p.dirs, ["/etc/sysctl.d", "/etc/modules-load.d"]);
        assert_eq!(
            p.files,
            [(
                "/etc/sysctl.d/60-x.conf".to_owned(),
                "# c\nvm.a = 1\n".to_owned()
            )]
        );
        assert_eq!(
            p.remotes[1],
            RemoteChange::Add {
                name: "cairn".into(),
                url: "http://h/repo/".into(),
                gpg_verify: false,
                branches: vec!["a/b".into()]
            }
        );
    }

    #[test]
    fn anything_else_is_refused_with_its_line() {
        let e = run("set -eu\nsystemctl enable foo\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ks.cfg:11: %post: `systemctl enable foo`"),
            "{e}"
        );
        let e = run("cat > /usr/x <<'E'\nE\n").unwrap_err().to_string();
        assert!(e.contains("ks.cfg:10"), "{e}");
        let e = run("cat > /etc/x <<E\nE\n").unwrap_err().to_string();
        assert!(e.contains("ks.cfg:10"), "{e}");
        let e = run("cat > /etc/x <<'E'\nno end\n").unwrap_err().to_string();
        assert!(e.contains("not closed"), "{e}");
    }
}
