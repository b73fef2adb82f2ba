//! The id a node gives the lock server: systemd's app-specific machine id
//! (`sd_id128_get_machine_app_specific`, `systemd-id128 machine-id --app-specific=`), the way
//! Zincati derives its FleetLock id. The raw machine id is never sent: it is meant to stay on
//! the host, and an app-specific id cannot be turned back into it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::FleetError;

/// cairn's application id (random, fixed forever: changing it changes every node's id, and a
/// node would no longer recognise the slot it holds).
pub const CAIRN_APP_ID: [u8; 16] = [
    0x47, 0x6b, 0x71, 0xd8, 0x19, 0xf8, 0x4d, 0x73, 0xa1, 0xcf, 0xc5, 0xc9, 0x64, 0x4e, 0x59, 0x27,
];

/// This host's FleetLock id, from `/etc/machine-id`.
pub fn node_id() -> Result<String, FleetError> {
    let path = "/etc/machine-id";
    let raw = std::fs::read_to_string(path).map_err(|e| FleetError::Io(path.into(), e))?;
    node_id_from_machine_id(&raw, &CAIRN_APP_ID).ok_or_else(|| {
        FleetError::Io(
            path.into(),
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not 32 hex digits"),
        )
    })
}

/// HMAC-SHA256 keyed by the 16 machine-id bytes over the app id, first 16 bytes, stamped as a
/// v4 UUID, as 32 lowercase hex digits; `None` if `machine_id` is not 32 hex digits.
pub fn node_id_from_machine_id(machine_id: &str, app_id: &[u8; 16]) -> Option<String> {
    let hex = machine_id.trim();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let key: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(app_id);
    let digest = mac.finalize().into_bytes();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    // systemd's id128_make_v4_uuid: version 4, RFC 4122 variant.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    Some(id.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from systemd itself: `systemd-id128 machine-id --app-specific=APP` on a
    // host whose /etc/machine-id is MACHINE.
    const MACHINE: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4\n";

    #[test]
    fn matches_systemd_for_cairn_and_zincati_app_ids() {
        assert_eq!(
            node_id_from_machine_id(MACHINE, &CAIRN_APP_ID).as_deref(),
            Some("f437db8dd20a48b8911a2dfcc4ac6e35")
        );
        let zincati = [
            0xde, 0x35, 0x10, 0x6b, 0x6e, 0xc2, 0x46, 0x88, 0xb6, 0x3a, 0xfd, 0xda, 0xa1, 0x56,
            0x67, 0x9b,
        ];
        assert_eq!(
            node_id_from_machine_id(MACHINE, &zincati).as_deref(),
            Some("975228d46dc94622b9bbe16671e2b58d")
        );
    }

    #[test]
    fn never_the_raw_id_and_rejects_garbage() {
        let id = node_id_from_machine_id(MACHINE, &CAIRN_APP_ID).unwrap();
        assert_ne!(id, MACHINE.trim());
        assert_eq!(node_id_from_machine_id("xyz", &CAIRN_APP_ID), None);
        assert_eq!(
            node_id_from_machine_id(&"g".repeat(32), &CAIRN_APP_ID),
            None
        );
    }
}
