//! Checks across hosts: what no single host entry can know is wrong.

use std::collections::HashMap;

use super::error::Diagnostic;
use super::inventory::Inventory;
use cairn_yaml::Loc;

/// Duplicate MACs, IPs and host names, each reported at the second occurrence naming the first.
pub(crate) fn cross_check(inv: &Inventory, out: &mut Vec<Diagnostic>) {
    let mut macs: HashMap<_, (&Loc, &str)> = HashMap::new();
    let mut ips: HashMap<_, (&Loc, &str)> = HashMap::new();
    let mut names: HashMap<&str, &Loc> = HashMap::new();
    for h in &inv.hosts {
        for (mac, loc) in h.macs.iter().zip(&h.locs.macs) {
            if let Some((first, owner)) = macs.insert(*mac, (loc, &h.fqdn)) {
                out.push(Diagnostic {
                    loc: loc.clone(),
                    code: "duplicate-mac",
                    message: format!(
                        "duplicate MAC {mac}: also given to host `{owner}` at {first}"
                    ),
                });
                macs.insert(*mac, (first, owner));
            }
        }
        if let (Some(ip), Some(loc)) = (h.network.ip, &h.locs.ip) {
            if let Some((first, owner)) = ips.insert(ip, (loc, &h.fqdn)) {
                out.push(Diagnostic {
                    loc: loc.clone(),
                    code: "duplicate-ip",
                    message: format!("duplicate IP {ip}: also given to host `{owner}` at {first}"),
                });
                ips.insert(ip, (first, owner));
            }
        }
        if let Some(first) = names.insert(&h.fqdn, &h.locs.hostname) {
            out.push(Diagnostic {
                loc: h.locs.hostname.clone(),
                code: "duplicate-hostname",
                message: format!("duplicate hostname `{}`: also defined at {first}", h.fqdn),
            });
            names.insert(&h.fqdn, first);
        }
    }
}
