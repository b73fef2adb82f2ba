//! `cairn serve`: its flags; the server itself is `cairn_serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Global, Status};

/// Serve kickstarts, pxelinux/GRUB/iPXE configs and the OSTree repo to PXE clients.
///
/// Every host's documents are rendered at start, so each request is a lookup. Send SIGHUP to
/// reload the inventory (a bad inventory keeps the running state and logs why); SIGTERM or
/// SIGINT to stop gracefully. The bound address is printed on stdout as
/// `listening on http://ADDR`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Endpoints:\n  \
    GET  /ks/<mac>, /ks?mac=<mac>   kickstart (401 without a valid ?token= when --tokens)\n  \
    GET  /ipxe?mac=<mac>            per-host iPXE script\n  \
    GET  /boot.ipxe                 generic iPXE entry point (chains to /ipxe?mac=${net0/mac})\n  \
    GET  /pxelinux/<mac>            pxelinux config (also 01-aa-bb-.. form)\n  \
    GET  /grub/<mac>                GRUB config (also grub.cfg-01-aa-bb-.. form)\n  \
    GET  /repo/<path>               the OSTree repo, read-only (--repo)\n  \
    GET  /files/<path>              boot images (--files)\n  \
    GET  /snapshot/<path>           a package snapshot, for compose --snapshot URL (--snapshot)\n  \
    POST /built/<mac>, /failed/<mac> installation callbacks, appended to --log\n\n\
    Example:\n  cairn serve --inventory inv.yaml --repo /srv/ostree/repo --listen 0.0.0.0:8080 \\\n    \
    --server-url http://10.0.0.1:8080 --tokens --log /var/log/cairn/builds.jsonl")]
pub struct Args {
    /// The inventory YAML.
    #[arg(long, short)]
    inventory: PathBuf,
    /// An OSTree repository (archive mode) to serve read-only under /repo/.
    #[arg(long)]
    repo: Option<PathBuf>,
    /// A directory of boot images (installer kernel/initrd) served under /files/.
    #[arg(long)]
    files: Option<PathBuf>,
    /// A package snapshot (`cairn snapshot --out DIR`) served under /snapshot/, so builders
    /// compose from it with `cairn compose --snapshot http://SERVER/snapshot/`.
    #[arg(long, value_name = "DIR")]
    snapshot: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// URL the hosts reach this server at (default: the inventory's `server:`, else the bound
    /// address).
    #[arg(long)]
    server_url: Option<String>,
    /// Templates overriding the built-in ones (see `cairn kickstart render --help`).
    #[arg(long)]
    templates: Option<PathBuf>,
    /// Require one-time build tokens for kickstarts: the boot configs carry `?token=`, a token
    /// works once and expires after --token-ttl; afterwards /ks answers 401. SIGHUP re-arms
    /// used or expired tokens.
    #[arg(long)]
    tokens: bool,
    /// Lifetime of a build token, in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    token_ttl: u64,
    /// Append-only JSON-lines log of build events (/built, /failed), fsynced per event.
    /// Without it, events go to stderr.
    #[arg(long)]
    log: Option<PathBuf>,
    /// JSON-lines access log file (default: stderr).
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// Worker threads; each runs its own event loop and accepts from the shared listening socket,
    /// like nginx's worker processes. 0 means one per CPU.
    #[arg(long, default_value_t = 0, value_name = "N")]
    workers: usize,
    /// Seconds a client has to send a whole request header: from connecting for the first
    /// request, from its first byte for later ones (nginx's client_header_timeout).
    #[arg(long, default_value_t = 20, value_name = "SECONDS", value_parser = secs)]
    header_timeout: u64,
    /// Seconds a request body may pause between two reads (client_body_timeout).
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = secs)]
    body_timeout: u64,
    /// Seconds an idle keep-alive connection is kept open for its next request
    /// (keepalive_timeout).
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = secs)]
    keepalive_timeout: u64,
    /// Seconds a client may leave a response unread before it is cut off (send_timeout).
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = secs)]
    send_timeout: u64,
    /// Open connections one client address may hold; more are answered 503 and closed.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_conns_per_addr: u64,
    /// Open connections overall (default: three quarters of the descriptor limit, at least 64
    /// descriptors kept back). At the cap the address holding the most connections loses its
    /// newest one to a newcomer that holds fewer; the greediest address itself is refused.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_conns: Option<u64>,
}

fn secs(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1 second".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

pub fn run(a: Args, _global: &Global) -> anyhow::Result<Status> {
    cairn_serve::run(cairn_serve::Options {
        inventory: a.inventory,
        templates: a.templates,
        server_url: a.server_url,
        repo: a.repo,
        files: a.files,
        snapshot: a.snapshot,
        listen: a.listen,
        token_ttl: a.tokens.then(|| Duration::from_secs(a.token_ttl)),
        event_log: a.log,
        access_log: a.access_log,
        workers: a.workers,
        limits: cairn_serve::Limits {
            header_timeout: Duration::from_secs(a.header_timeout),
            body_timeout: Duration::from_secs(a.body_timeout),
            keepalive_timeout: Duration::from_secs(a.keepalive_timeout),
            send_timeout: Duration::from_secs(a.send_timeout),
            max_conns_per_addr: usize::try_from(a.max_conns_per_addr).unwrap_or(usize::MAX),
            max_conns: a
                .max_conns
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        },
    })?;
    Ok(0)
}
