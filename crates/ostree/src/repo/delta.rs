//! Static deltas: what `ostree pull` fetches instead of loose objects when the server has one.

use serde::Serialize;

use super::{Ctx, Repo, RepoError, NO_CANCEL};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeltaInfo {
    /// `None` for a "from scratch" delta (what a first pull uses).
    pub from: Option<String>,
    pub to: String,
}

impl Repo {
    /// Generates a static delta from `from` (`None`: from empty) to `to`, then regenerates the
    /// summary (clients learn of deltas from it).
    pub fn generate_delta(&self, from: Option<&str>, to: &str) -> Result<DeltaInfo, RepoError> {
        let to = self.require(to)?;
        let from = from.map(|f| self.require(f)).transpose()?;
        if from.as_deref() == Some(to.as_str()) {
            return Err(RepoError::BadInput(format!(
                "--from and --to are the same commit ({to}): nothing to delta"
            )));
        }
        // libostree 2022.7 dereferences `metadata` and `params` unconditionally (NULL crashes
        // it); empty a{sv}s mean "defaults".
        let params = super::variant::metadata_dict(&Default::default());
        let metadata = params.clone();
        self.inner
            .static_delta_generate(
                ostree::StaticDeltaGenerateOpt::Major,
                from.as_deref(),
                &to,
                Some(&metadata),
                Some(&params),
                NO_CANCEL,
            )
            .ctx(|| {
                format!(
                    "generating a static delta {} -> {to}",
                    from.as_deref().unwrap_or("(empty)")
                )
            })?;
        self.update_summary()?;
        Ok(DeltaInfo { from, to })
    }

    /// Static deltas present in the repo, sorted.
    pub fn deltas(&self) -> Result<Vec<DeltaInfo>, RepoError> {
        let names = self
            .inner
            .list_static_delta_names(NO_CANCEL)
            .ctx(|| format!("{}: listing static deltas", self.path.display()))?;
        let mut out: Vec<DeltaInfo> = names.iter().map(|n| parse_delta_name(n)).collect();
        out.sort_by(|a, b| (&a.to, &a.from).cmp(&(&b.to, &b.from)));
        Ok(out)
    }
}

/// libostree names deltas `FROM-TO` or `TO`, each a hex checksum (or, on disk, "modified
/// base64": `/` spelled `_`, no padding); normalize to hex.
fn parse_delta_name(name: &str) -> DeltaInfo {
    let hexify = |s: &str| {
        if crate::is_checksum(s) {
            s.to_string()
        } else {
            b64_to_hex(s).unwrap_or_else(|| s.to_string())
        }
    };
    match name.split_once('-') {
        Some((from, to)) => DeltaInfo {
            from: Some(hexify(from)),
            to: hexify(to),
        },
        None => DeltaInfo {
            from: None,
            to: hexify(name),
        },
    }
}

fn b64_to_hex(s: &str) -> Option<String> {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+_";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = ALPHA.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    (out.len() == 32).then(|| hex::encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_to_hex() {
        let hex = "a".repeat(64);
        assert_eq!(parse_delta_name(&hex).from, None);
        let d = parse_delta_name(&format!("{hex}-{hex}"));
        assert_eq!(d.from.as_deref(), Some(hex.as_str()));
        // 32 bytes of 0xff in modified base64.
        let b = format!("{}8", "_".repeat(42));
        assert_eq!(b64_to_hex(&b).unwrap(), "f".repeat(64));
    }
}
