//! Repo fixtures: trees with every file kind OSTree stores, repos made by cairn or the
//! `ostree` CLI, and a loopback HTTP server for real `ostree pull`s. Other domains reuse these.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use super::{run_cairn, stderr, stdout};

/// Writes a small tree under `dir`: nested dirs, an empty dir, symlinks (relative, absolute,
/// dangling), a setuid binary, a hardlink, a 1 MiB file, no xattrs. Returns `dir`.
pub fn make_tree(dir: &Path) -> PathBuf {
    let w = |rel: &str, data: &[u8]| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    w("usr/bin/hello", b"#!/bin/sh\necho hello\n");
    w("usr/lib/os-release", b"ID=cairn-test\nVERSION_ID=1\n");
    w("usr/share/doc/deep/er/still/README", b"nested\n");
    w("etc/hostname", b"test\n");
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    w("usr/lib/big.bin", &big);
    std::fs::set_permissions(
        dir.join("usr/bin/hello"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    w("usr/bin/su", b"\x7fELF pretend setuid binary");
    std::fs::set_permissions(
        dir.join("usr/bin/su"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("var/empty")).unwrap();
    symlink("../lib/os-release", dir.join("usr/bin/os-release-link")).unwrap();
    symlink("/usr/lib/os-release", dir.join("etc/os-release")).unwrap();
    symlink("/nonexistent/target", dir.join("etc/dangling")).unwrap();
    std::fs::hard_link(
        dir.join("usr/bin/hello"),
        dir.join("usr/bin/hello-hardlink"),
    )
    .unwrap();
    dir.to_path_buf()
}

/// Runs the real `ostree` CLI.
pub fn ostree<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new("ostree")
        .args(args)
        .output()
        .expect("spawn ostree")
}

/// Runs `ostree`, panicking with its stderr unless it succeeds; returns stdout.
pub fn ostree_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let o = ostree(&args);
    assert!(
        o.status.success(),
        "ostree {args:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

pub fn repo_arg(repo: &Path) -> String {
    format!("--repo={}", repo.display())
}

/// `cairn repo init PATH --mode MODE`, asserting success.
pub fn cairn_init(repo: &Path, mode: &str) -> PathBuf {
    let o = run_cairn(["repo", "init", repo.to_str().unwrap(), "--mode", mode]);
    assert!(o.status.success(), "repo init: {}", stderr(&o));
    repo.to_path_buf()
}

/// `cairn commit TREE --repo R --ref REF EXTRA...`, asserting success; returns the checksum.
pub fn cairn_commit(tree: &Path, repo: &Path, refname: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "commit".to_string(),
        tree.display().to_string(),
        "--repo".into(),
        repo.display().to_string(),
        "--ref".into(),
        refname.into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = run_cairn(&args);
    assert!(o.status.success(), "cairn {args:?}: {}", stderr(&o));
    let out = stdout(&o);
    let csum = out.trim().to_string();
    assert_eq!(csum.len(), 64, "checksum on stdout, got {out:?}");
    csum
}

/// `ostree fsck`, asserting it is clean.
pub fn assert_fsck_clean(repo: &Path) {
    let o = ostree(["fsck", &repo_arg(repo)]);
    assert!(
        o.status.success(),
        "ostree fsck failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(!stdout(&o).contains("corrupted"), "{}", stdout(&o));
}

/// Refs as the `ostree` CLI sees them (name -> checksum).
pub fn refs(repo: &Path) -> BTreeMap<String, String> {
    ostree_ok(["refs", &repo_arg(repo)])
        .lines()
        .filter(|l| !l.is_empty())
        .map(|r| {
            let c = ostree_ok(["rev-parse", &repo_arg(repo), r])
                .trim()
                .to_string();
            (r.to_string(), c)
        })
        .collect()
}

/// Object files under `objects/` (what a half-written commit must not add to).
pub fn object_count(repo: &Path) -> usize {
    walk_count(&repo.join("objects"))
}

fn walk_count(p: &Path) -> usize {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| {
                    if e.file_type().unwrap().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A static file server on 127.0.0.1 (ephemeral port), std only, one thread per connection.
/// It records every requested path so tests can tell which objects/deltas a client fetched.
pub struct HttpServer {
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl HttpServer {
    pub fn serve(root: &Path) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (root, log2) = (root.to_path_buf(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (root, log) = (root.clone(), log2.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &root, &log);
                });
            }
        });
        HttpServer { url, log }
    }

    /// Paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn handle(conn: TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        let mut keep_alive = true;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
                break;
            }
            if h.to_ascii_lowercase().starts_with("connection: close") {
                keep_alive = false;
            }
        }
        log.lock().unwrap().push(path.clone());
        let rel = path.split('?').next().unwrap_or("").trim_start_matches('/');
        let file = root.join(rel);
        let body = if rel.split('/').any(|c| c == "..") {
            None
        } else {
            std::fs::File::open(&file).ok().filter(|_| file.is_file())
        };
        match body {
            Some(mut f) => {
                let mut data = Vec::new();
                f.read_to_end(&mut data)?;
                write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    data.len()
                )?;
                if method != "HEAD" {
                    conn.write_all(&data)?;
                }
            }
            None => {
                conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            }
        }
        conn.flush()?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// A throwaway GnuPG home with one passphrase-less signing key; returns (homedir, key id).
pub fn gpg_key(dir: &Path) -> (PathBuf, String) {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let o = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
            .args(args)
            .output()
            .expect("spawn gpg");
        assert!(o.status.success(), "gpg {args:?}: {}", stderr(&o));
        stdout(&o)
    };
    gpg(&[
        "--quick-gen-key",
        "cairn test <test@cairn.invalid>",
        "rsa2048",
        "sign",
        "never",
    ]);
    let listing = gpg(&["--with-colons", "--list-secret-keys"]);
    let fpr = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("fingerprint")
        .to_string();
    (home, fpr)
}

/// Exports the public key of `key` from `home` into `out` (a binary `.gpg` keyring).
pub fn gpg_export(home: &Path, key: &str, out: &Path) {
    let o = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--export", "--output"])
        .arg(out)
        .arg(key)
        .output()
        .expect("spawn gpg");
    assert!(o.status.success(), "gpg --export: {}", stderr(&o));
}
