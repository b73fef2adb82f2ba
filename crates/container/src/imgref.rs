//! Image references as skopeo spells them (`oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
//! `docker://HOST/NAME:TAG`) and the ostree-ext forms hosts deploy from
//! (`ostree-unverified-registry:...`, `ostree-unverified-image:...`, `ostree-remote-image:...`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::ContainerError;

/// Where an image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// An OCI image layout directory, optionally a tag in it.
    OciDir { path: PathBuf, tag: Option<String> },
    /// A tar archive of an OCI image layout.
    OciArchive { path: PathBuf, tag: Option<String> },
    /// A registry image, `HOST[:PORT]/NAME[:TAG|@DIGEST]`.
    Registry(String),
}

fn bad(input: &str, why: &str) -> ContainerError {
    ContainerError::BadRef {
        input: input.to_string(),
        why: why.to_string(),
    }
}

fn path_and_tag(input: &str, rest: &str) -> Result<(PathBuf, Option<String>), ContainerError> {
    let (path, tag) = match rest.split_once(':') {
        Some((p, t)) => (p, Some(t.to_string())),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(bad(input, "no path after the transport"));
    }
    if tag.as_deref() == Some("") {
        return Err(bad(input, "empty tag after `:`"));
    }
    Ok((PathBuf::from(path), tag))
}

impl FromStr for ImageRef {
    type Err = ContainerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, tag) = path_and_tag(s, rest)?;
            return Ok(ImageRef::OciDir { path, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, tag) = path_and_tag(s, rest)?;
            return Ok(ImageRef::OciArchive { path, tag });
        }
        // `registry:` is ostree-ext's spelling of skopeo's `docker://`.
        if let Some(rest) = s
            .strip_prefix("docker://")
            .or_else(|| s.strip_prefix("registry:"))
        {
            if rest.is_empty() || rest.contains("://") {
                return Err(bad(s, "expected docker://HOST/NAME:TAG"));
            }
            return Ok(ImageRef::Registry(rest.to_string()));
        }
        Err(bad(
            s,
            "unknown transport; use oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/NAME:TAG",
        ))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tagged = |f: &mut fmt::Formatter<'_>, t: &str, p: &PathBuf, tag: &Option<String>| {
            write!(f, "{t}:{}", p.display())?;
            match tag {
                Some(tag) => write!(f, ":{tag}"),
                None => Ok(()),
            }
        };
        match self {
            ImageRef::OciDir { path, tag } => tagged(f, "oci", path, tag),
            ImageRef::OciArchive { path, tag } => tagged(f, "oci-archive", path, tag),
            ImageRef::Registry(r) => write!(f, "docker://{r}"),
        }
    }
}

/// How a host checks an image before deploying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigVerify {
    /// No check (`ostree-unverified-*`).
    Unverified,
    /// The commit's detached metadata must carry a signature the sysroot repository's remote
    /// of this name accepts (its GPG keyring), as `ostree pull` would check.
    Remote(String),
}

/// An image reference with its verification policy, as ostree-ext and bootc spell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OstreeImageRef {
    pub sigverify: SigVerify,
    pub image: ImageRef,
}

impl FromStr for OstreeImageRef {
    type Err = ContainerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unverified = |image| OstreeImageRef {
            sigverify: SigVerify::Unverified,
            image,
        };
        if let Some(r) = s.strip_prefix("ostree-unverified-registry:") {
            return Ok(unverified(ImageRef::Registry(r.to_string())));
        }
        if let Some(r) = s.strip_prefix("ostree-unverified-image:") {
            return Ok(unverified(r.parse()?));
        }
        for (prefix, registry) in [
            ("ostree-remote-registry:", true),
            ("ostree-remote-image:", false),
        ] {
            if let Some(r) = s.strip_prefix(prefix) {
                let (remote, rest) = r
                    .split_once(':')
                    .ok_or_else(|| bad(s, "expected REMOTE:IMAGE after the prefix"))?;
                let image = if registry {
                    ImageRef::Registry(rest.to_string())
                } else {
                    rest.parse()?
                };
                return Ok(OstreeImageRef {
                    sigverify: SigVerify::Remote(remote.to_string()),
                    image,
                });
            }
        }
        if s.starts_with("ostree-image-signed:") {
            return Err(bad(
                s,
                "containers-policy signature checks are not supported; use \
                 ostree-remote-image:REMOTE:IMAGE (ostree GPG signatures) or ostree-unverified-*",
            ));
        }
        Err(bad(
            s,
            "expected ostree-unverified-registry:HOST/NAME:TAG, ostree-unverified-image:IMAGE or \
             ostree-remote-image:REMOTE:IMAGE",
        ))
    }
}

impl fmt::Display for OstreeImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.sigverify, &self.image) {
            (SigVerify::Unverified, ImageRef::Registry(r)) => {
                write!(f, "ostree-unverified-registry:{r}")
            }
            (SigVerify::Unverified, i) => write!(f, "ostree-unverified-image:{i}"),
            (SigVerify::Remote(remote), i) => write!(f, "ostree-remote-image:{remote}:{i}"),
        }
    }
}

/// True when `s` looks like an ostree image reference (so `cairn deploy` treats it as one).
pub fn is_ostree_image_ref(s: &str) -> bool {
    s.starts_with("ostree-unverified-")
        || s.starts_with("ostree-remote-")
        || s.starts_with("ostree-image-signed:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skopeo_spellings_round_trip() {
        for s in [
            "oci:/tmp/img",
            "oci:/tmp/img:v1",
            "oci-archive:/tmp/a.tar:latest",
            "docker://127.0.0.1:5000/cairn/os:v2",
        ] {
            assert_eq!(s.parse::<ImageRef>().unwrap().to_string(), s);
        }
        assert!("oci:".parse::<ImageRef>().is_err());
        assert!("oci:/x:".parse::<ImageRef>().is_err());
        assert!("http://x/y".parse::<ImageRef>().is_err());
    }

    #[test]
    fn ostree_forms() {
        let r: OstreeImageRef = "ostree-unverified-registry:127.0.0.1:5000/os:v1"
            .parse()
            .unwrap();
        assert_eq!(r.sigverify, SigVerify::Unverified);
        assert_eq!(
            r.image,
            ImageRef::Registry("127.0.0.1:5000/os:v1".to_string())
        );
        assert_eq!(
            r.to_string(),
            "ostree-unverified-registry:127.0.0.1:5000/os:v1"
        );
        let r: OstreeImageRef = "ostree-remote-image:origin:oci:/srv/img:v1"
            .parse()
            .unwrap();
        assert_eq!(r.sigverify, SigVerify::Remote("origin".into()));
        assert_eq!(r.to_string(), "ostree-remote-image:origin:oci:/srv/img:v1");
        assert!("ostree-image-signed:docker://x/y"
            .parse::<OstreeImageRef>()
            .is_err());
        assert!(is_ostree_image_ref("ostree-unverified-image:oci:/x"));
        assert!(!is_ostree_image_ref("cairnos/x86_64/stable"));
    }
}
