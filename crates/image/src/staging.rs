//! The staging tree an image is assembled in, next to the output file.

use std::path::Path;

use super::ImageError;

/// Removes the staging tree (after clearing ostree's immutable bits) on every exit path.
pub struct Staging(pub tempfile::TempDir);

impl Staging {
    pub fn new_in(dir: &Path) -> Result<Staging, ImageError> {
        tempfile::Builder::new()
            .prefix(".cairn-image-")
            .tempdir_in(dir)
            .map(Staging)
            .map_err(|e| ImageError::io(dir, e))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        make_removable(&self.0.path().join("sysroot"));
    }
}

/// Clears the immutable bit ostree puts on deployment roots, so the staging tree can be removed.
fn make_removable(root: &Path) {
    let deploy = root.join("ostree/deploy");
    let Ok(stateroots) = std::fs::read_dir(&deploy) else {
        return;
    };
    for os in stateroots.flatten() {
        let Ok(deps) = std::fs::read_dir(os.path().join("deploy")) else {
            continue;
        };
        for d in deps.flatten() {
            if let Ok(f) = std::fs::File::open(d.path()) {
                if let Ok(flags) = rustix::fs::ioctl_getflags(&f) {
                    let _ = rustix::fs::ioctl_setflags(&f, flags - rustix::fs::IFlags::IMMUTABLE);
                }
            }
        }
    }
}
