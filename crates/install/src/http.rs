//! The installer's HTTP: fetching the kickstart and POSTing the built/failed callbacks. hyper's
//! HTTP/1.1 client connection on a current-thread tokio runtime (both already built for
//! `cairn serve`), with a deadline on every request. Plain http:// only, which is what
//! `cairn serve` speaks.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Uri;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Status and body of one request; `Err` says why no answer came (connect, timeout, protocol).
pub fn request(method: &str, url: &str, body: &str) -> Result<(u16, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are supported (what cairn serve speaks)".to_owned());
    }
    let host = uri.host().ok_or("no host in the URL")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let method: hyper::Method = method.parse().map_err(|_| format!("bad method {method}"))?;
    let body = body.to_owned();
    rt.block_on(async move {
        let go = async {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
            let io = hyper_util::rt::TokioIo::new(stream);
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, format!("{host}:{port}"))
                .header(hyper::header::USER_AGENT, "cairn-install")
                .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, String::from_utf8_lossy(&bytes).into_owned()))
        };
        tokio::time::timeout(TIMEOUT, go)
            .await
            .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
    })
}

/// `cairn serve`'s failed URL for a kickstart URL it served (`/ks/MAC` or `/ks?mac=MAC`), so a
/// kickstart that cannot be fetched is still reported.
pub fn failed_url_for(ks_url: &str) -> Option<String> {
    let uri: Uri = ks_url.parse().ok()?;
    let base = format!("{}://{}", uri.scheme_str()?, uri.authority()?);
    let mac = match uri.path().strip_prefix("/ks/") {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ if uri.path() == "/ks" => uri
            .query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix("mac="))?
            .to_owned(),
        _ => return None,
    };
    Some(format!("{base}/failed/{mac}"))
}

/// The URL without its query (which carries the one-time token), for logs and results.
pub fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((u, _)) => format!("{u}?…"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_url_follows_serve_conventions() {
        assert_eq!(
            failed_url_for("http://10.0.0.1:8080/ks/52:54:00:00:00:01?token=abc").as_deref(),
            Some("http://10.0.0.1:8080/failed/52:54:00:00:00:01")
        );
        assert_eq!(
            failed_url_for("http://h/ks?mac=52-54-00-00-00-01&token=x").as_deref(),
            Some("http://h:80/failed/52-54-00-00-00-01")
                .map(|_| "http://h/failed/52-54-00-00-00-01")
        );
        assert_eq!(failed_url_for("http://h/other"), None);
        assert_eq!(redact("http://h/ks/m?token=s"), "http://h/ks/m?…");
    }

    #[test]
    fn unreachable_servers_are_an_error_not_a_hang() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = request("GET", &format!("http://127.0.0.1:{port}/ks/x"), "").unwrap_err();
        assert!(e.contains("connecting to 127.0.0.1"), "{e}");
        assert!(request("GET", "https://h/x", "").is_err());
    }
}
