//! The FleetLock wire protocol and airlock's semaphore, as plain data: request validation, the
//! JSON error body, the etcd key layout and the recursive lock/unlock rules. No I/O.

use serde::{Deserialize, Serialize};

/// Where airlock keeps its groups; cairn uses the same keys so the two can share one etcd.
pub const KEY_PREFIX: &str = "com.coreos.airlock/groups/";
const KEY_SUFFIX: &str = "/v1/semaphore";

/// The header every lock request must carry, with the value `true`, so that a request that
/// reached the server by an unintended redirect is refused.
pub const PROTOCOL_HEADER: &str = "fleet-lock-protocol";

/// Longest id accepted: Zincati sends 32 hex digits; the bound keeps one client from bloating a
/// value that every request of its group reads.
pub const MAX_ID_LEN: usize = 256;

/// The etcd key of a group's semaphore. Airlock query-escapes the group, which is the identity
/// on every name `valid_group` accepts.
pub fn semaphore_key(group: &str) -> String {
    format!("{KEY_PREFIX}{group}{KEY_SUFFIX}")
}

/// The group a semaphore key belongs to, for keys in airlock's layout.
pub fn group_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_PREFIX)?
        .strip_suffix(KEY_SUFFIX)
        .filter(|g| valid_group(g))
}

/// `^[a-zA-Z0-9.-]+$`, the protocol's rule for group names.
pub fn valid_group(group: &str) -> bool {
    !group.is_empty()
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// airlock's value: `{"total_slots":N,"holders":[ids]}`, holders kept sorted because airlock
/// looks them up by binary search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Semaphore {
    pub total_slots: u64,
    // Go marshals a nil slice as null; airlock never writes one, but a hand-edited key might.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub holders: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// What a lock or unlock did to a semaphore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The value changed and must be written back.
    Changed,
    /// Already in the wanted state (held twice, or released without holding): nothing to write.
    Unchanged,
    /// Every slot is taken by someone else.
    Full,
}

impl Semaphore {
    pub fn new(total_slots: u64) -> Self {
        Self {
            total_slots,
            holders: Vec::new(),
        }
    }

    /// Takes a slot for `id`; recursive, so holding it already is success.
    pub fn lock(&mut self, id: &str) -> Change {
        match self.holders.binary_search_by(|h| h.as_str().cmp(id)) {
            Ok(_) => Change::Unchanged,
            // `>=`: slots lowered below the holder count leave everyone waiting, as in airlock.
            Err(_) if self.holders.len() as u64 >= self.total_slots => Change::Full,
            Err(at) => {
                self.holders.insert(at, id.to_string());
                Change::Changed
            }
        }
    }

    /// Gives back `id`'s slot if it holds one.
    pub fn unlock(&mut self, id: &str) -> Change {
        match self.holders.binary_search_by(|h| h.as_str().cmp(id)) {
            Ok(at) => {
                self.holders.remove(at);
                Change::Changed
            }
            Err(_) => Change::Unchanged,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a semaphore always serializes")
    }

    /// Parses a stored value. Holders are re-sorted: a value written by hand out of order would
    /// otherwise break the binary searches above (and airlock's).
    pub fn from_json(raw: &[u8]) -> Result<Self, serde_json::Error> {
        let mut s: Self = serde_json::from_slice(raw)?;
        s.holders.sort();
        s.holders.dedup();
        Ok(s)
    }
}

/// A validated lock request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub group: String,
}

#[derive(Deserialize)]
struct Body {
    client_params: Params,
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    id: Option<String>,
    /// The protocol's first revision called the id `node_uuid`; old clients still send it.
    #[serde(default)]
    node_uuid: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

/// A request refused before it reached etcd, with the HTTP status and error kind to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub kind: &'static str,
    pub value: String,
}

fn invalid(value: impl Into<String>) -> Rejection {
    Rejection {
        status: 400,
        kind: "invalid_client_identity",
        value: value.into(),
    }
}

/// Validates a request the way airlock does (header, then body), plus the group rule the
/// protocol states but airlock leaves to its configured group list.
pub fn parse_request(header: Option<&[u8]>, body: &[u8]) -> Result<Identity, Rejection> {
    if header != Some(b"true") {
        return Err(invalid(format!(
            "missing or wrong '{PROTOCOL_HEADER}' header (must be 'true')"
        )));
    }
    let body: Body =
        serde_json::from_slice(body).map_err(|e| invalid(format!("bad request body: {e}")))?;
    let p = body.client_params;
    let id = p.id.filter(|s| !s.is_empty()).or(p.node_uuid);
    let id = match id {
        Some(id) if !id.is_empty() => id,
        _ => return Err(invalid("empty client id (client_params.id)")),
    };
    if id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(invalid(format!(
            "client id must be at most {MAX_ID_LEN} bytes without control characters"
        )));
    }
    let group = p.group.unwrap_or_default();
    if !valid_group(&group) {
        return Err(Rejection {
            status: 400,
            kind: "invalid_group",
            value: format!("group {group:?} does not match ^[a-zA-Z0-9.-]+$"),
        });
    }
    Ok(Identity { id, group })
}

/// The body of every error answer: `{"kind": ..., "value": ...}`, which Zincati decodes and logs.
pub fn error_body(kind: &str, value: &str) -> String {
    serde_json::json!({ "kind": kind, "value": value }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Result<Identity, Rejection> {
        parse_request(Some(b"true"), s.as_bytes())
    }

    #[test]
    fn ids_come_from_id_or_the_legacy_node_uuid() {
        let want = Identity {
            id: "n1".into(),
            group: "default".into(),
        };
        assert_eq!(
            body(r#"{"client_params":{"id":"n1","group":"default"}}"#),
            Ok(want.clone())
        );
        assert_eq!(
            body(r#"{"client_params":{"node_uuid":"n1","group":"default"}}"#),
            Ok(want)
        );
        assert_eq!(
            body(r#"{"client_params":{"group":"default"}}"#)
                .unwrap_err()
                .kind,
            "invalid_client_identity"
        );
    }

    #[test]
    fn header_and_group_rules() {
        let ok = br#"{"client_params":{"id":"n1","group":"a.B-9"}}"#;
        assert!(parse_request(Some(b"true"), ok).is_ok());
        assert_eq!(parse_request(None, ok).unwrap_err().status, 400);
        assert_eq!(parse_request(Some(b"yes"), ok).unwrap_err().status, 400);
        for g in ["", "a b", "a/b", "ü", "a_b"] {
            let b = format!(r#"{{"client_params":{{"id":"n1","group":"{g}"}}}}"#);
            assert_eq!(body(&b).unwrap_err().kind, "invalid_group", "{g:?}");
        }
        assert_eq!(body("{").unwrap_err().kind, "invalid_client_identity");
    }

    #[test]
    fn lock_is_recursive_bounded_and_sorted() {
        let mut s = Semaphore::new(2);
        assert_eq!(s.lock("b"), Change::Changed);
        assert_eq!(s.lock("b"), Change::Unchanged);
        assert_eq!(s.lock("a"), Change::Changed);
        assert_eq!(s.lock("c"), Change::Full);
        assert_eq!(s.holders, ["a", "b"]);
        assert_eq!(s.unlock("c"), Change::Unchanged);
        assert_eq!(s.unlock("a"), Change::Changed);
        assert_eq!(s.to_json(), r#"{"total_slots":2,"holders":["b"]}"#);
    }

    #[test]
    fn stored_values_from_airlock_or_by_hand_parse() {
        let s = Semaphore::from_json(br#"{"total_slots":3,"holders":null}"#).unwrap();
        assert_eq!(s, Semaphore::new(3));
        let s = Semaphore::from_json(br#"{"total_slots":3,"holders":["z","a","z"]}"#).unwrap();
        assert_eq!(s.holders, ["a", "z"]);
        assert!(Semaphore::from_json(b"garbage").is_err());
    }

    #[test]
    fn keys_follow_airlock() {
        let k = semaphore_key("workers");
        assert_eq!(k, "com.coreos.airlock/groups/workers/v1/semaphore");
        assert_eq!(group_of_key(&k), Some("workers"));
        assert_eq!(group_of_key("com.coreos.airlock/groups/x/v2/other"), None);
    }
}
