//! The FleetLock client the update agent uses (`pre-reboot` before finalizing an update,
//! `steady-state` once it booted fine), speaking the protocol as Zincati does, over a list of
//! lock-server replicas: a replica that is down or answers 5xx is skipped for the next one; a
//! 4xx (a full semaphore above all) is the fleet's answer and is returned at once.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use crate::protocol::{valid_group, PROTOCOL_HEADER};
use crate::FleetError;

/// A node's handle on the lock servers.
#[derive(Debug, Clone)]
pub struct Client {
    servers: Vec<String>,
    body: String,
    /// Longest one request to one server may take.
    pub attempt_timeout: Duration,
    /// Passes over the whole server list before giving up.
    pub rounds: u32,
    /// Pause between passes, doubled after each.
    pub backoff: Duration,
}

/// The answer of one server that reached a verdict.
enum Attempt {
    Ok,
    /// 4xx except 408/429: asking another replica (same etcd) would get the same answer.
    Refused(FleetError),
    /// Unreachable, timed out or 5xx: worth asking the next replica.
    Failed(String),
}

impl Client {
    /// `servers` are base URLs (`http://lock.example:8080` or with a path prefix); the protocol
    /// paths are appended to each.
    pub fn new(servers: Vec<String>, id: &str, group: &str) -> Result<Self, FleetError> {
        if !valid_group(group) {
            return Err(FleetError::BadGroup(group.to_string()));
        }
        if servers.is_empty() {
            return Err(FleetError::BadUrl("no lock server given".into()));
        }
        for s in &servers {
            if !s.starts_with("http://") {
                // TLS needs a TLS stack in the client; put the lock servers behind plain HTTP on
                // the management network or a local TLS-terminating proxy for now.
                return Err(FleetError::BadUrl(format!(
                    "{s}: only http:// lock server URLs are supported"
                )));
            }
        }
        let body = serde_json::json!({"client_params": {"id": id, "group": group}}).to_string();
        Ok(Self {
            servers: servers
                .into_iter()
                .map(|s| s.trim_end_matches('/').to_string())
                .collect(),
            body,
            attempt_timeout: Duration::from_secs(10),
            rounds: 3,
            backoff: Duration::from_millis(500),
        })
    }

    /// Takes a reboot slot (blocking). `Err(Refused)` with kind `failed_lock_semaphore_full`
    /// means: not now, ask again later.
    pub fn pre_reboot(&self) -> Result<(), FleetError> {
        block_on(self.request("/v1/pre-reboot"))
    }

    /// Gives the reboot slot back (blocking); succeeds when none was held.
    pub fn steady_state(&self) -> Result<(), FleetError> {
        block_on(self.request("/v1/steady-state"))
    }

    pub async fn pre_reboot_async(&self) -> Result<(), FleetError> {
        self.request("/v1/pre-reboot").await
    }

    pub async fn steady_state_async(&self) -> Result<(), FleetError> {
        self.request("/v1/steady-state").await
    }

    async fn request(&self, path: &str) -> Result<(), FleetError> {
        let http = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut failures = Vec::new();
        let mut pause = self.backoff;
        for round in 0..self.rounds.max(1) {
            if round > 0 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            for server in &self.servers {
                let url = format!("{server}{path}");
                match self.attempt(&http, &url).await {
                    Attempt::Ok => return Ok(()),
                    Attempt::Refused(e) => return Err(e),
                    Attempt::Failed(why) => failures.push(format!("{url}: {why}")),
                }
            }
        }
        Err(FleetError::Unreachable(failures.join("; ")))
    }

    async fn attempt(
        &self,
        http: &HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
        url: &str,
    ) -> Attempt {
        let req = match hyper::Request::post(url)
            .header(PROTOCOL_HEADER, "true")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(self.body.clone())))
        {
            Ok(r) => r,
            Err(e) => return Attempt::Refused(FleetError::BadUrl(format!("{url}: {e}"))),
        };
        let exchange = async {
            let resp = http.request(req).await.map_err(|e| format!("{e:?}"))?;
            let status = resp.status().as_u16();
            // Error bodies are a line of JSON; the bound keeps a misbehaving server from
            // filling the agent's memory.
            let body = Limited::new(resp.into_body(), 64 * 1024)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((status, body))
        };
        let (status, body) = match tokio::time::timeout(self.attempt_timeout, exchange).await {
            Err(_) => return Attempt::Failed(format!("no answer in {:?}", self.attempt_timeout)),
            Ok(Err(e)) => return Attempt::Failed(e),
            Ok(Ok(r)) => r,
        };
        let (kind, value) = decode_error(&body);
        match verdict(status) {
            Verdict::Success => Attempt::Ok,
            Verdict::TryAnother => Attempt::Failed(format!("{status} {kind}: {value}")),
            Verdict::Final => Attempt::Refused(FleetError::Refused {
                server: url.to_string(),
                status,
                kind,
                value,
            }),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Success,
    TryAnother,
    Final,
}

/// The protocol: any 2xx is success, anything else a failure. Which failures are worth another
/// replica is cairn's choice: timeouts, rate limits and server errors are the replica's; other
/// 4xx answers (a full group, a bad request) would be the same from any replica.
fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        408 | 429 | 500..=599 => Verdict::TryAnother,
        _ => Verdict::Final,
    }
}

/// `{"kind":..,"value":..}`, or a generic kind for a server that answered otherwise, named the
/// way Zincati names them.
fn decode_error(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Remote {
        kind: String,
        value: String,
    }
    match serde_json::from_slice::<Remote>(body) {
        Ok(r) => (r.kind, r.value),
        Err(_) => (
            "generic_http_error".into(),
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(200)
                .collect(),
        ),
    }
}

fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, FleetError>>,
) -> Result<T, FleetError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FleetError::Io("tokio runtime".into(), e))?
        .block_on(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_2xx_is_success_and_only_replica_failures_are_retried() {
        for s in [200, 201, 202, 204, 299] {
            assert_eq!(verdict(s), Verdict::Success, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(verdict(s), Verdict::TryAnother, "{s}");
        }
        for s in [300, 400, 404, 409, 413] {
            assert_eq!(verdict(s), Verdict::Final, "{s}");
        }
    }

    #[test]
    fn error_bodies_decode_or_fall_back_to_a_generic_kind() {
        let (k, v) = decode_error(br#"{"kind":"failed_lock_semaphore_full","value":"full"}"#);
        assert_eq!(
            (k.as_str(), v.as_str()),
            ("failed_lock_semaphore_full", "full")
        );
        let (k, v) = decode_error(b"<html>bad gateway</html>\n");
        assert_eq!(
            (k.as_str(), v.as_str()),
            ("generic_http_error", "<html>bad gateway</html>")
        );
    }

    #[test]
    fn only_plain_http_urls_and_valid_groups() {
        assert!(Client::new(vec!["http://a:8080/".into()], "n", "default").is_ok());
        assert!(Client::new(vec!["https://a".into()], "n", "default").is_err());
        assert!(Client::new(vec![], "n", "default").is_err());
        assert!(Client::new(vec!["http://a".into()], "n", "a/b").is_err());
    }
}
