//! MAC addresses and IPv4 subnet arithmetic for the inventory (std::net is all it takes).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A 48-bit Ethernet address. Displays in the one form cairn writes everywhere: `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The pxelinux/GRUB file-name form, `aa-bb-cc-dd-ee-ff` (the `01-` ARP type prefix is added
    /// by the caller that needs it).
    pub fn dashed(&self) -> String {
        self.to_string().replace(':', "-")
    }

    /// Only the `aa:bb:cc:dd:ee:ff` form (any case), without allocating: the server's hot path.
    /// `None` means "not in this form", not "not a MAC": fall back to `parse` for the others.
    pub fn parse_canonical(s: &str) -> Option<Mac> {
        let b = s.as_bytes();
        if b.len() != 17 {
            return None;
        }
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 6];
        for (i, byte) in out.iter_mut().enumerate() {
            let at = i * 3;
            // Two digits, then `:` unless this is the last group.
            if i < 5 && b.get(at + 2) != Some(&b':') {
                return None;
            }
            let Some(&[hi, lo]) = b.get(at..at + 2) else {
                return None;
            };
            *byte = hex(hi)? << 4 | hex(lo)?;
        }
        Some(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Why a string is not a MAC address, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a MAC address ({why}); write it as aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or aabb.ccdd.eeff")]
pub struct MacError {
    pub text: String,
    pub why: &'static str,
}

impl FromStr for Mac {
    type Err = MacError;

    /// Accepts `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF` (Windows, pxelinux) and `aabb.ccdd.eeff`
    /// (Cisco), in any case. A pxelinux `01-` hardware-type prefix is accepted too, so that a
    /// file name like `01-aa-bb-cc-dd-ee-ff` can be looked up directly.
    fn from_str(s: &str) -> Result<Mac, MacError> {
        let err = |why| MacError {
            text: s.to_string(),
            why,
        };
        let t = s.trim();
        let t = if t.len() == 20 && t.starts_with("01-") {
            &t[3..]
        } else {
            t
        };
        let hex: String = if t.contains(':') || t.contains('-') {
            let sep = if t.contains(':') { ':' } else { '-' };
            if t.contains(':') && t.contains('-') {
                return Err(err("mixed `:` and `-` separators"));
            }
            let parts: Vec<&str> = t.split(sep).collect();
            if parts.len() != 6 {
                return Err(err("expected 6 groups of 2 hex digits"));
            }
            if parts.iter().any(|p| p.len() != 2) {
                return Err(err("every group needs exactly 2 hex digits"));
            }
            parts.concat()
        } else if t.contains('.') {
            let parts: Vec<&str> = t.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
                return Err(err("dotted form needs 3 groups of 4 hex digits"));
            }
            parts.concat()
        } else {
            return Err(err("no separators"));
        };
        // Groups were measured in bytes: a multi-byte character can fill one, so the digits are
        // checked as bytes before any pairing (slicing the string could split a character).
        let digit = |c: &u8| (*c as char).to_digit(16);
        let mut out = [0u8; 6];
        let mut pairs = hex.as_bytes().chunks_exact(2);
        for byte in out.iter_mut() {
            *byte = match pairs.next() {
                Some([hi, lo]) => match (digit(hi), digit(lo)) {
                    (Some(h), Some(l)) => (h << 4 | l) as u8,
                    _ => return Err(err("non-hexadecimal digit")),
                },
                _ => return Err(err("expected 12 hexadecimal digits")),
            };
        }
        Ok(Mac(out))
    }
}

/// An IPv4 address with its prefix length: the host address and the subnet it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    pub fn mask_bits(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask_bits())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask_bits() == u32::from(self.network())
    }

    /// True when `addr` is the network or broadcast address of a subnet that has both (/0../30);
    /// /31 (RFC 3021) and /32 have no such reserved addresses.
    pub fn is_reserved_addr(&self) -> bool {
        self.prefix <= 30 && (self.addr == self.network() || self.addr == self.broadcast())
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parses `10.0.0.5/24`; the prefix part is required.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` has no /prefix (write e.g. {s}/24)"))?;
    let addr: Ipv4Addr = a
        .parse()
        .map_err(|_| format!("`{a}` is not an IPv4 address"))?;
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("`/{p}` is not a prefix length (0-32)"))?;
    Ok(Ipv4Net { addr, prefix })
}

/// The prefix length of a dotted netmask; `None` when the ones are not contiguous.
pub fn netmask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_forms_normalise() {
        let want = "aa:bb:cc:0d:ee:ff";
        for s in [
            "aa:bb:cc:0d:ee:ff",
            "AA-BB-CC-0D-EE-FF",
            "aabb.cc0d.eeff",
            "AaBb.Cc0D.EeFf",
            "01-aa-bb-cc-0d-ee-ff",
        ] {
            assert_eq!(s.parse::<Mac>().unwrap().to_string(), want, "{s}");
        }
        assert_eq!(
            "aa:bb:cc:0d:ee:ff".parse::<Mac>().unwrap().dashed(),
            "aa-bb-cc-0d-ee-ff"
        );
    }

    #[test]
    fn canonical_parse_agrees_with_the_general_one() {
        for s in [
            "aa:bb:cc:0d:ee:ff",
            "AA:BB:CC:0D:EE:FF",
            "52:54:00:01:13:87",
        ] {
            assert_eq!(
                Mac::parse_canonical(s),
                Some(s.parse::<Mac>().unwrap()),
                "{s}"
            );
        }
        for s in [
            "aa-bb-cc-0d-ee-ff",
            "aabb.cc0d.eeff",
            "aa:bb:cc:0d:ee:fg",
            "aa:bb:cc:0d:ee:f",
            "aa:bb:cc:0d:ee:ff:",
            "aa:bb:cc:0d:ee+ff",
            "+a:bb:cc:0d:ee:ff",
        ] {
            assert_eq!(Mac::parse_canonical(s), None, "{s}");
        }
    }

    #[test]
    fn bad_macs_say_why() {
        for (s, why) in [
            ("aa:bb:cc:dd:ee", "6 groups"),
            ("aa:bb:cc:dd:ee:fg", "non-hexadecimal"),
            ("aa:bb-cc:dd:ee:ff", "mixed"),
            ("aabbccddeeff", "no separators"),
            ("a:bb:cc:dd:ee:fff", "exactly 2"),
            ("aabb.ccdd.eef", "dotted"),
            ("+a:bb:cc:dd:ee:ff", "non-hexadecimal"),
            // Found by fuzz/serve_request: a 2-byte character filling a group was sliced in half.
            ("aabb.ccdd.\u{29a};e", "non-hexadecimal"),
            ("\u{29a}:bb:cc:dd:ee:ff", "non-hexadecimal"),
        ] {
            let e = s.parse::<Mac>().unwrap_err();
            assert!(e.to_string().contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn subnet_math() {
        let n = parse_cidr("10.1.2.77/26").unwrap();
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 192));
        assert_eq!(n.network(), Ipv4Addr::new(10, 1, 2, 64));
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 1, 2, 127));
        assert!(n.contains(Ipv4Addr::new(10, 1, 2, 65)));
        assert!(!n.contains(Ipv4Addr::new(10, 1, 2, 128)));
        assert!(!n.is_reserved_addr());
        assert!(parse_cidr("10.1.2.64/26").unwrap().is_reserved_addr());
        assert!(!parse_cidr("10.1.2.64/31").unwrap().is_reserved_addr());
        assert_eq!(
            parse_cidr("0.0.0.0/0").unwrap().netmask(),
            Ipv4Addr::UNSPECIFIED
        );
        assert!(parse_cidr("10.0.0.1").is_err());
        assert!(parse_cidr("10.0.0.1/33").is_err());
        assert!(parse_cidr("10.0.0.256/8").is_err());
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask_to_prefix(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(
            netmask_to_prefix(Ipv4Addr::new(255, 255, 255, 255)),
            Some(32)
        );
        assert_eq!(netmask_to_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(netmask_to_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}
