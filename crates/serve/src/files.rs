//! Read-only static files (the OSTree repo under `/repo/`, boot images under `/files/`) with
//! traversal made impossible by the kernel: every open is `openat2(RESOLVE_BENEATH)` relative to
//! a directory fd taken at start-up, so `..`, absolute paths and symlinks that leave the tree fail
//! however they are spelled or raced. The path check before it only makes the answers precise.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::ServeError;

pub struct Root {
    fd: OwnedFd,
}

impl Root {
    pub fn open(dir: &Path) -> Result<Root, ServeError> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ServeError::Io(dir.to_path_buf(), e.into()))?;
        Ok(Root { fd })
    }
}

/// Why a request path is refused before touching the file system.
pub fn check_path(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("no file named");
    }
    if p.starts_with('/') {
        return Err("absolute paths are not served");
    }
    for c in p.split('/') {
        match c {
            ".." => return Err("`..` is not allowed in paths"),
            "" | "." => return Err("empty or `.` path components are not allowed"),
            _ if c.contains(['\0', '\\']) => return Err("NUL or backslash in path"),
            _ => {}
        }
    }
    Ok(())
}

pub async fn serve(root: Arc<Root>, rel: String) -> Response {
    if let Err(why) = check_path(&rel) {
        return (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    }
    let opened = tokio::task::spawn_blocking(move || {
        let fd = rustix::fs::openat2(
            &root.fd,
            rel.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        )?;
        let st = rustix::fs::fstat(&fd)?;
        Ok::<_, rustix::io::Errno>((fd, st))
    })
    .await;
    let (fd, st) = match opened {
        Ok(Ok(x)) => x,
        // ENOENT, ENOTDIR, and EXDEV (a symlink pointing outside): all look like "not here".
        Ok(Err(_)) | Err(_) => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let len = st.st_size as u64;
    let file = tokio::fs::File::from_std(std::fs::File::from(fd));
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::check_path;

    #[test]
    fn traversal_spellings_refused() {
        for p in [
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            "./config",
            "a\\..\\b",
            "",
        ] {
            assert!(check_path(p).is_err(), "{p}");
        }
        for p in [
            "config",
            "objects/ab/cdef.commit",
            "refs/heads/a/b",
            "summary.sig",
        ] {
            assert!(check_path(p).is_ok(), "{p}");
        }
    }
}
