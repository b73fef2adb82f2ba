//! Splitting a commit's content objects into layers by package, so an image update changes
//! only the layers of the packages that changed.
//!
//! Each content object belongs to the package owning the first of its paths (sorted) that has
//! an owner; objects no package owns stay in the ostree layer, which changes with every commit
//! anyway. With room for every package, each gets its own layer. Otherwise the biggest packages
//! get their own layers and the rest share buckets chosen by a hash of the package name (stable
//! across builds, whatever else changes). With the previous image's layout (`--previous`),
//! packages keep the layer companions they had, new ones get free layers or the smallest one.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use crate::owners::Owners;

/// ostree-ext's default: 64 layers in all, the ostree layer included.
pub const DEFAULT_MAX_LAYERS: usize = 64;

/// A content object's size and checkout paths.
#[derive(Debug, Clone, Default)]
pub struct ObjInfo {
    pub size: u64,
    pub paths: Vec<String>,
}

/// One content layer: its packages (sorted) and objects (sorted by checksum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub packages: Vec<String>,
    pub objects: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Chunking {
    pub chunks: Vec<Chunk>,
    /// Objects that go into the ostree layer.
    pub remainder: Vec<String>,
}

fn bucket_of(name: &str, buckets: usize) -> usize {
    let h = Sha256::digest(name.as_bytes());
    let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    (n % buckets as u64) as usize
}

/// Package groups (one per layer) with no previous layout.
fn fresh_groups(sizes: &BTreeMap<String, u64>, room: usize) -> Vec<Vec<String>> {
    if sizes.len() <= room {
        return sizes.keys().map(|p| vec![p.clone()]).collect();
    }
    let buckets = (room / 4).max(1);
    let singles = room - buckets;
    let mut by_size: Vec<(&String, &u64)> = sizes.iter().collect();
    by_size.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut groups: Vec<Vec<String>> = by_size[..singles]
        .iter()
        .map(|(p, _)| vec![(*p).clone()])
        .collect();
    groups.sort();
    let mut shared = vec![Vec::new(); buckets];
    for (p, _) in &by_size[singles..] {
        shared[bucket_of(p, buckets)].push((*p).clone());
    }
    groups.extend(shared.into_iter().filter(|g| !g.is_empty()));
    groups
}

/// Package groups following `previous` (groups in layer order).
fn stable_groups(
    sizes: &BTreeMap<String, u64>,
    room: usize,
    previous: &[Vec<String>],
) -> Vec<Vec<String>> {
    let mut placed = BTreeSet::new();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for prev in previous {
        let g: Vec<String> = prev
            .iter()
            .filter(|p| sizes.contains_key(*p) && placed.insert((*p).clone()))
            .cloned()
            .collect();
        if !g.is_empty() {
            groups.push(g);
        }
    }
    for p in sizes.keys().filter(|p| !placed.contains(*p)) {
        if groups.len() < room {
            groups.push(vec![p.clone()]);
        } else if let Some(smallest) = groups
            .iter_mut()
            .min_by_key(|g| g.iter().map(|p| sizes[p]).sum::<u64>())
        {
            smallest.push(p.clone());
        }
    }
    groups
}

/// Splits `objects` into at most `max_layers - 1` content layers (one is the ostree layer).
pub fn chunk(
    objects: &BTreeMap<String, ObjInfo>,
    owners: &Owners,
    max_layers: usize,
    previous: Option<&[Vec<String>]>,
) -> Chunking {
    let mut owner_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Chunking::default();
    for (csum, info) in objects {
        let mut paths: Vec<&String> = info.paths.iter().collect();
        paths.sort();
        match paths.iter().find_map(|p| owners.get(*p)) {
            Some(pkg) => {
                owner_of.insert(csum, pkg);
                *sizes.entry(pkg.clone()).or_default() += info.size;
            }
            None => out.remainder.push(csum.clone()),
        }
    }
    let room = max_layers.saturating_sub(1);
    if room == 0 {
        out.remainder = objects.keys().cloned().collect();
        return out;
    }
    let groups = match previous {
        Some(prev) => stable_groups(&sizes, room, prev),
        None => fresh_groups(&sizes, room),
    };
    let mut layer_of: HashMap<&str, usize> = HashMap::new();
    for (i, g) in groups.iter().enumerate() {
        for p in g {
            layer_of.insert(p, i);
        }
    }
    out.chunks = groups
        .iter()
        .map(|g| {
            let mut packages = g.clone();
            packages.sort();
            Chunk {
                packages,
                objects: Vec::new(),
            }
        })
        .collect();
    for (csum, pkg) in owner_of {
        out.chunks[layer_of[pkg]].objects.push(csum.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objs(n: usize) -> (BTreeMap<String, ObjInfo>, Owners) {
        let mut objects = BTreeMap::new();
        let mut owners = Owners::new();
        for i in 0..n {
            let path = format!("usr/lib/p{i}/file");
            objects.insert(
                format!("{i:064x}"),
                ObjInfo {
                    size: (i as u64 + 1) * 100,
                    paths: vec![path.clone()],
                },
            );
            owners.insert(path, format!("pkg{i:03}"));
        }
        objects.insert(
            "f".repeat(64),
            ObjInfo {
                size: 1,
                paths: vec!["usr/etc/generated".into()],
            },
        );
        (objects, owners)
    }

    #[test]
    fn one_layer_per_package_when_there_is_room() {
        let (o, w) = objs(5);
        let c = chunk(&o, &w, 64, None);
        assert_eq!(c.chunks.len(), 5);
        assert_eq!(c.remainder, vec!["f".repeat(64)]);
        assert!(c
            .chunks
            .iter()
            .all(|c| c.packages.len() == 1 && c.objects.len() == 1));
    }

    #[test]
    fn many_packages_fit_the_limit_and_buckets_are_stable() {
        let (o, w) = objs(200);
        let c = chunk(&o, &w, 64, None);
        assert!(c.chunks.len() <= 63);
        let all: usize = c.chunks.iter().map(|c| c.objects.len()).sum();
        assert_eq!(all, 200);
        // The biggest packages get their own layers.
        assert!(c
            .chunks
            .iter()
            .any(|c| c.packages == vec!["pkg199".to_string()]));
        assert_eq!(bucket_of("pkg001", 15), bucket_of("pkg001", 15));
    }

    #[test]
    fn previous_layout_is_kept_and_new_packages_placed() {
        let (o, w) = objs(4);
        let prev = vec![
            vec!["pkg003".to_string(), "pkg000".to_string()],
            vec!["pkg001".to_string(), "gone".to_string()],
        ];
        let c = chunk(&o, &w, 64, Some(&prev));
        let groups: Vec<Vec<String>> = c.chunks.iter().map(|c| c.packages.clone()).collect();
        assert_eq!(
            groups,
            vec![
                vec!["pkg000".to_string(), "pkg003".to_string()],
                vec!["pkg001".to_string()],
                vec!["pkg002".to_string()],
            ]
        );
        // No room left: the new package joins the smallest layer.
        let c = chunk(&o, &w, 3, Some(&prev));
        assert_eq!(c.chunks.len(), 2);
        assert_eq!(c.chunks[1].packages, vec!["pkg001", "pkg002"]);
    }
}
