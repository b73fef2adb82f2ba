//! The volume group and its logical volumes, written as LVM metadata only: `global/activation=0`
//! keeps LVM away from device-mapper (absent in many installer kernels and containers, and
//! needless here), and each LV's filesystem is made through a loop device over its extents, which
//! `--alloc contiguous` keeps in one linear segment. The booted host's initramfs (lvm2) activates
//! the volumes as usual. LVM sees only the target's PV (a device filter), so a VG of the same name
//! on the installing machine is never touched.

use std::process::Command;

use crate::disk::run;
use crate::plan::{PlannedLv, PlannedVg};
use crate::InstallError;

/// An LV's place on its physical volume, in bytes from the PV's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LvExtent {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

fn config(pv: &str) -> String {
    format!(
        "devices {{ filter = [ \"a|^{pv}$|\", \"r|.*|\" ] use_devicesfile = 0 \
         obtain_device_list_from_udev = 0 }} global {{ activation = 0 }} \
         activation {{ udev_sync = 0 udev_rules = 0 }}"
    )
}

fn lvm(pv: &str, args: &[&str]) -> Result<String, InstallError> {
    run(Command::new("lvm")
        .arg(args[0])
        .arg("--config")
        .arg(config(pv))
        .args(&args[1..])
        // LVM complains about every inherited descriptor otherwise.
        .env("LVM_SUPPRESS_FD_WARNINGS", "1"))
}

/// Creates the PV, the VG and its LVs on `pv`; returns where each LV lies on it.
pub(crate) fn create(
    pv: &str,
    vg: &PlannedVg,
    lvs: &[PlannedLv],
) -> Result<Vec<LvExtent>, InstallError> {
    lvm(pv, &["pvcreate", "-ff", "-y", "--dataalignment", "1m", pv])?;
    let pe = format!("{}k", vg.extent_size / 1024);
    lvm(pv, &["vgcreate", "-s", &pe, &vg.name, pv])?;
    for lv in lvs {
        let n = if lv.rest {
            "100%FREE".to_owned()
        } else {
            lv.extents.to_string()
        };
        lvm(
            pv,
            &[
                "lvcreate",
                "-an",
                "-Zn",
                "-Wn",
                "--alloc",
                "contiguous",
                "-y",
                "-n",
                &lv.name,
                "-l",
                &n,
                &vg.name,
            ],
        )?;
    }
    let pvs = lvm(
        pv,
        &[
            "pvs",
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "pe_start",
            pv,
        ],
    )?;
    let pe_start = json_field(&pvs, "pv", "pe_start")?;
    let report = lvm(
        pv,
        &[
            "lvs",
            "--reportformat",
            "json",
            "-o",
            "lv_name,seg_pe_ranges",
            &vg.name,
        ],
    )?;
    let doc: serde_json::Value =
        serde_json::from_str(&report).map_err(|e| bad("lvs", e.to_string()))?;
    let rows = doc["report"][0]["lv"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for lv in lvs {
        let row = rows
            .iter()
            .find(|r| r["lv_name"] == lv.name.as_str())
            .ok_or_else(|| bad("lvs", format!("no row for {}", lv.name)))?;
        let ranges = row["seg_pe_ranges"].as_str().unwrap_or("");
        let (first, last) = parse_range(ranges).ok_or_else(|| {
            bad(
                "lvs",
                format!(
                    "{}: unexpected segments `{ranges}` (one contiguous range expected)",
                    lv.name
                ),
            )
        })?;
        out.push(LvExtent {
            name: lv.name.clone(),
            offset: pe_start + first * vg.extent_size,
            size: (last - first + 1) * vg.extent_size,
        });
    }
    Ok(out)
}

fn bad(what: &str, msg: String) -> InstallError {
    InstallError::Tool {
        cmd: format!("lvm {what}"),
        msg,
    }
}

fn json_field(text: &str, table: &str, field: &str) -> Result<u64, InstallError> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(table, e.to_string()))?;
    doc["report"][0][table][0][field]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| bad(table, format!("no {field} in {text}")))
}

/// `/dev/loop3:0-49` → (0, 49); more than one segment → `None`.
fn parse_range(s: &str) -> Option<(u64, u64)> {
    if s.contains(' ') {
        return None;
    }
    let (_, range) = s.rsplit_once(':')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_segment_ranges_parse() {
        assert_eq!(super::parse_range("/dev/loop0:50-148"), Some((50, 148)));
        assert_eq!(super::parse_range("/dev/loop0:0-1 /dev/loop0:5-6"), None);
    }
}
