//! `cairn fleetlock`: the FleetLock reboot-lock server over etcd, the operator's view of it
//! (status, release) and the node side of the protocol (pre-reboot, steady-state, id).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Subcommand;

use super::output::{err, out, print_doc};
use super::{Global, Status};
use cairn_fleet::{FleetError, ServeOptions, StoreOptions};

/// Exit status of `release` when the id held no slot, and of `pre-reboot` when every slot of
/// the group is taken (ask again later).
pub const EXIT_NOTHING_HELD: Status = 77;
pub const EXIT_FULL: Status = 75;

/// Where the lock state lives.
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdArgs {
    /// etcd v3 client URLs, comma-separated (all members: requests fail over between them).
    #[arg(
        long,
        value_name = "URL[,URL...]",
        env = "CAIRN_FLEETLOCK_ETCD",
        value_delimiter = ',',
        required = true
    )]
    etcd: Vec<String>,
    /// Seconds one lock operation (with its retries over etcd members and write conflicts) may
    /// take before it fails.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    etcd_timeout: u64,
}

impl EtcdArgs {
    fn store(&self) -> StoreOptions {
        let mut s = StoreOptions::new(self.etcd.clone());
        s.deadline = Duration::from_secs(self.etcd_timeout.max(1));
        s
    }
}

/// Which node and group the node-side commands speak for.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// Lock server base URLs, comma-separated; a replica that is down or failing is skipped for
    /// the next.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        required = true
    )]
    server: Vec<String>,
    /// Reboot group.
    #[arg(long, default_value = "default")]
    group: String,
    /// Node id; default: this host's app-specific machine id (`cairn fleetlock id`).
    #[arg(long)]
    id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run a FleetLock server (the protocol Zincati speaks) with its state in etcd.
    #[command(after_help = "Endpoints:\n  \
        POST /v1/pre-reboot     take a reboot slot (409 failed_lock_semaphore_full when none is free)\n  \
        POST /v1/steady-state   give the slot back\n  \
        GET  /metrics           Prometheus text\n  \
        GET  /healthz           liveness\n\n\
        State is airlock's: etcd key com.coreos.airlock/groups/<group>/v1/semaphore, changed only\n\
        by compare-and-set. The server keeps none, so run several replicas against one etcd\n\
        (airlock may share it too). --slots and --group only apply when a group's key is first\n\
        created; an existing key keeps its slot count. FleetLock has no lease: a node that dies\n\
        holding a slot keeps it until `cairn fleetlock release --id ID`.\n\n\
        Prints `listening on http://ADDR` on stdout; one JSON line per request on stderr.\n\n\
        Example:\n  cairn fleetlock serve --etcd http://10.0.0.5:2379,http://10.0.0.6:2379,http://10.0.0.7:2379 \\\n    \
        --listen 0.0.0.0:8080 --slots 1 --group workers=3")]
    Serve {
        #[command(flatten)]
        etcd: EtcdArgs,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Slots a new group gets.
        #[arg(long, value_name = "N", default_value_t = 1)]
        slots: u64,
        /// Slots for one group, NAME=N (repeatable).
        #[arg(long = "group", value_name = "NAME=N", value_parser = group_slots)]
        groups: Vec<(String, u64)>,
    },
    /// Show every group's slots and holders, as stored in etcd.
    Status {
        #[command(flatten)]
        etcd: EtcdArgs,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Free the slot a node holds, for a node that died holding it (FleetLock has no lease).
    #[command(after_help = "Exit status: 0 released, 77 the id held no slot, 1 an error.")]
    Release {
        #[command(flatten)]
        etcd: EtcdArgs,
        /// The holder to remove, as `status` lists it.
        #[arg(long)]
        id: String,
        /// Only in this group (default: every group it holds a slot in).
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Node side: take a reboot slot (what the update agent does before rebooting).
    #[command(
        after_help = "Exit status: 0 slot held, 75 every slot is taken (ask again \
        later), 1 an error or no server answered."
    )]
    PreReboot(NodeArgs),
    /// Node side: give the reboot slot back (succeeds when none was held).
    SteadyState(NodeArgs),
    /// Print this host's FleetLock id (app-specific, derived from /etc/machine-id).
    Id,
}

fn group_slots(s: &str) -> Result<(String, u64), String> {
    let (name, n) = cairn_common::kv::split(s, "NAME=N").map_err(|e| e.to_string())?;
    if !cairn_fleet::valid_group(name) {
        return Err(FleetError::BadGroup(name.into()).to_string());
    }
    let n = n
        .parse()
        .map_err(|_| format!("`{s}`: N must be a number"))?;
    Ok((name.to_string(), n))
}

pub fn run(cmd: Cmd, _global: &Global) -> anyhow::Result<Status> {
    match cmd {
        Cmd::Serve {
            etcd,
            listen,
            slots,
            groups,
        } => serve(&etcd, listen, slots, groups),
        Cmd::Status { etcd, group, json } => status(&etcd, group.as_deref(), json),
        Cmd::Release {
            etcd,
            id,
            group,
            json,
        } => {
            let r = cairn_fleet::release(etcd.store(), &id, group.as_deref())?;
            if json {
                print_doc("FleetLockRelease", &r)?;
            } else if r.groups.is_empty() {
                err!("{id} holds no slot");
            } else {
                out!("released {id} in {}", r.groups.join(", "));
            }
            Ok(if r.groups.is_empty() {
                EXIT_NOTHING_HELD
            } else {
                0
            })
        }
        Cmd::PreReboot(n) => node(&n, true),
        Cmd::SteadyState(n) => node(&n, false),
        Cmd::Id => {
            out!("{}", cairn_fleet::node_id()?);
            Ok(0)
        }
    }
}

fn serve(
    etcd: &EtcdArgs,
    listen: SocketAddr,
    slots: u64,
    groups: Vec<(String, u64)>,
) -> anyhow::Result<Status> {
    let mut store = etcd.store();
    store.default_slots = slots;
    store.group_slots = groups.into_iter().collect();
    let bound = cairn_fleet::bind(listen)?;
    out!("listening on http://{}", bound.addr);
    cairn_fleet::serve(bound, ServeOptions::new(store), |ev| {
        if let Ok(line) = serde_json::to_string(ev) {
            err!("{line}");
        }
    })?;
    Ok(0)
}

fn status(etcd: &EtcdArgs, group: Option<&str>, json: bool) -> anyhow::Result<Status> {
    let groups = cairn_fleet::status(etcd.store(), group)?;
    if json {
        print_doc("FleetLockStatus", &serde_json::json!({ "groups": groups }))?;
        return Ok(0);
    }
    if groups.is_empty() {
        out!("no groups yet (a group appears when its first node calls in)");
    }
    for g in &groups {
        out!(
            "{}: {}/{} slots held{}{}",
            g.group,
            g.holders.len(),
            g.total_slots,
            if g.holders.is_empty() { "" } else { ": " },
            g.holders.join(", ")
        );
    }
    Ok(0)
}

fn node(n: &NodeArgs, lock: bool) -> anyhow::Result<Status> {
    let id = match &n.id {
        Some(id) => id.clone(),
        None => cairn_fleet::node_id()?,
    };
    let client = cairn_fleet::Client::new(n.server.clone(), &id, &n.group)?;
    let res = if lock {
        client.pre_reboot()
    } else {
        client.steady_state()
    };
    match res {
        Ok(()) => Ok(0),
        Err(FleetError::Refused { kind, value, .. }) if kind == "failed_lock_semaphore_full" => {
            err!("{value}");
            Ok(EXIT_FULL)
        }
        Err(e) => Err(e.into()),
    }
}
