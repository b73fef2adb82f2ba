//! Bare metal: an inventory of machines rendered to kickstarts (installing an OSTree commit with
//! `ostreesetup`) and per-MAC pxelinux, GRUB and iPXE configs.
//!
//! `inventory` loads and validates (every error with `file:line:col`), `render` turns hosts into
//! documents, `network` holds the MAC and IPv4 arithmetic both need, `output` writes a render
//! directory atomically.
//!
//! Owns inventories and the documents made from them; serving them is cairn_serve's. It does not
//! link libostree: the kickstart only names the commit `ostreesetup` installs.

// User data (files, requests) must never panic the program: no unwrap/expect/indexing outside
// tests; clippy (-D warnings in CI) enforces it, and a provably safe site says why with #[allow].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod check;
pub mod error;
pub mod inventory;
pub mod network;
pub mod output;
pub mod render;

pub use error::{Diagnostic, KickstartError};
pub use inventory::{load, parse, Host, Inventory, LoadOptions};
pub use network::Mac;
pub use output::{render_to_dir, RenderReport};
pub use render::{HostDocs, Templates};
