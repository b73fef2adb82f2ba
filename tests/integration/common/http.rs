//! The one test HTTP server: a directory served over loopback for real `ostree pull`s and
//! `cairn deploy --url http://...` (cairn's own server, `cairn serve`, is tested as a process).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A static file server on 127.0.0.1 (ephemeral port), std only, one thread per connection,
/// keep-alive as `ostree pull` wants it. It records every requested path so tests can tell which
/// objects/deltas a client fetched. Its threads outlive it (they end with the test binary).
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
