//! Which kernel modules go into the installer, and in what order `/init` loads them, from the
//! commit's `modules.dep` and `modules.builtin` (what `depmod` wrote when the kernel was
//! installed).

use std::collections::{BTreeMap, BTreeSet};

/// A module's name as modprobe compares them: the file name without `.ko[.xz|.zst|.gz]`, with
/// `-` and `_` the same.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// `modules.dep`: module path -> the paths of every module it needs (depmod lists the whole
/// closure).
pub fn parse_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| {
            (
                m.trim().to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            )
        })
        .collect()
}

/// The plan: module files to load in order (dependencies first), wanted names that are built
/// into the kernel, and wanted names this kernel does not have at all.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub load: Vec<String>,
    pub builtin: Vec<String>,
    pub absent: Vec<String>,
}

pub fn plan(wanted: &[&str], dep: &BTreeMap<String, Vec<String>>, builtin_text: &str) -> Plan {
    let by_name: BTreeMap<String, &String> = dep.keys().map(|p| (module_name(p), p)).collect();
    let builtin: BTreeSet<String> = builtin_text.lines().map(module_name).collect();
    let mut out = Plan::default();
    let mut seen = BTreeSet::new();
    for w in wanted {
        let name = module_name(w);
        if let Some(path) = by_name.get(&name) {
            visit(path, dep, &mut seen, &mut out.load);
        } else if builtin.contains(&name) {
            out.builtin.push(name);
        } else {
            out.absent.push(name);
        }
    }
    out
}

/// Depth-first, dependencies before dependents: the order insmod needs.
fn visit(
    path: &str,
    dep: &BTreeMap<String, Vec<String>>,
    seen: &mut BTreeSet<String>,
    load: &mut Vec<String>,
) {
    if !seen.insert(path.to_owned()) {
        return;
    }
    for d in dep.get(path).into_iter().flatten() {
        visit(d, dep, seen, load);
    }
    load.push(path.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_load_first_and_builtins_are_told_apart() {
        let dep = parse_dep(
            "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
             kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko\n\
             kernel/drivers/virtio/virtio.ko:\n\
             kernel/fs/xfs/xfs.ko.xz: kernel/lib/libcrc32c.ko.xz\n\
             kernel/lib/libcrc32c.ko.xz:\n",
        );
        let p = plan(
            &["virtio_blk", "virtio", "xfs", "ext4", "no-such"],
            &dep,
            "kernel/fs/ext4/ext4.ko\n",
        );
        assert_eq!(
            p.load,
            [
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/lib/libcrc32c.ko.xz",
                "kernel/fs/xfs/xfs.ko.xz",
            ]
        );
        assert_eq!(p.builtin, ["ext4"]);
        assert_eq!(p.absent, ["no_such"]);
    }
}
