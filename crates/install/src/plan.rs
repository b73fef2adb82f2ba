//! The install plan: kickstart + disk size → GPT partitions, the LVM volume group and its logical
//! volumes, and which filesystem goes where. Pure (no disk access), so every size rule is unit-tested.

use serde::Serialize;

use crate::parse::{Fs, Kickstart, PartTarget, Size};
use crate::InstallError;

pub const MIB: u64 = 1 << 20;
/// The ESP cairn creates (FAT32, mounted at /boot/efi); the UEFI loader files go there.
pub const ESP_MIB: u64 = 256;
/// Where LVM puts the first physical extent (its default, 1 MiB, after the metadata area).
pub const PE_START: u64 = MIB;

/// Smallest filesystem mkfs accepts (mkfs.xfs refuses below 300 MiB).
fn fs_min_mib(fs: Fs) -> u64 {
    match fs {
        Fs::Xfs => 300,
        Fs::Ext4 => 16,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    BiosBoot,
    Esp,
    /// A filesystem mounted at `mount`.
    Fs,
    /// An LVM physical volume.
    Pv,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPartition {
    pub number: u32,
    pub name: String,
    /// sgdisk type code: EF02 BIOS boot, EF00 ESP, 8300 Linux filesystem, 8E00 Linux LVM.
    pub type_code: &'static str,
    pub role: Role,
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedVg {
    pub name: String,
    /// The partition number of its single physical volume.
    pub pv_partition: u32,
    pub extent_size: u64,
    pub extents: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedLv {
    pub name: String,
    pub extents: u64,
    /// Takes whatever the volume group has left when it is created (the last growing volume).
    pub rest: bool,
}

/// Where a filesystem lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Location {
    Partition { number: u32 },
    Lv { vg: String, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub mount: String,
    pub fs: Fs,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub disk_size: u64,
    /// The smallest disk this kickstart fits on.
    pub min_disk_size: u64,
    pub partitions: Vec<PlannedPartition>,
    pub vg: Option<PlannedVg>,
    pub lvs: Vec<PlannedLv>,
    pub volumes: Vec<Volume>,
}

impl Plan {
    pub fn partition(&self, number: u32) -> &PlannedPartition {
        &self.partitions[(number - 1) as usize]
    }

    pub fn volume(&self, mount: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.mount == mount)
    }
}

/// A partition-to-be before sizes are final.
struct Want {
    name: String,
    type_code: &'static str,
    role: Role,
    size: Size,
    /// Its minimum in MiB (filesystem or LVM contents).
    min_mib: u64,
    mount: Option<(String, Fs)>,
}

impl Want {
    fn fs(name: &str, mount: &str, fs: Fs, size: Size) -> Want {
        Want {
            name: name.to_owned(),
            type_code: "8300",
            role: Role::Fs,
            size,
            min_mib: 0,
            mount: Some((mount.to_owned(), fs)),
        }
    }

    fn pv(name: &str, size: Size) -> Want {
        Want {
            name: name.to_owned(),
            type_code: "8E00",
            role: Role::Pv,
            size,
            min_mib: 0,
            mount: None,
        }
    }

    /// The size it starts from before growing.
    fn base_mib(&self) -> u64 {
        if self.size.grow {
            self.size.mib.max(self.min_mib)
        } else {
            self.size.mib
        }
    }
}

/// One logical volume to be: name, mount point, filesystem, size.
type LvWant = (String, String, Fs, Size);

struct Lvm {
    vg: String,
    pv: String,
    pe: u64,
    lvs: Vec<LvWant>,
}

type ErrFn<'a> = &'a dyn Fn(usize, String) -> InstallError;

const GROW: Size = Size { mib: 1, grow: true };

/// anaconda's autopart, cairn's way: /boot 1 GiB, then / on LVM (VG `cairn`) or a partition.
fn autopart(lvm: bool, fs: Fs) -> (Vec<Want>, Option<Lvm>) {
    let boot = Want::fs(
        "boot",
        "/boot",
        fs,
        Size {
            mib: 1024,
            grow: false,
        },
    );
    if lvm {
        let vg = Lvm {
            vg: "cairn".into(),
            pv: "pv.autopart".into(),
            pe: 4 * MIB,
            lvs: vec![("root".into(), "/".into(), fs, GROW)],
        };
        (vec![boot, Want::pv("pv.autopart", GROW)], Some(vg))
    } else {
        (vec![boot, Want::fs("root", "/", fs, GROW)], None)
    }
}

/// The volume group (one, over one PV) and its logical volumes.
fn volume_group(ks: &Kickstart, wants: &[Want], err: ErrFn) -> Result<Option<Lvm>, InstallError> {
    let mut lvm = match ks.volgroups.as_slice() {
        [] => None,
        [vg] => {
            let [pv] = vg.pvs.as_slice() else {
                return Err(err(
                    vg.line,
                    format!(
                        "`volgroup {}` over {} physical volumes: cairn install supports one",
                        vg.name,
                        vg.pvs.len()
                    ),
                ));
            };
            if !wants.iter().any(|w| w.role == Role::Pv && &w.name == pv) {
                return Err(err(
                    vg.line,
                    format!(
                        "`volgroup {}` names {pv}, which no `part {pv}` line creates",
                        vg.name
                    ),
                ));
            }
            if vg.pesize_kib == 0 || vg.pesize_kib % 1024 != 0 {
                return Err(err(
                    vg.line,
                    format!(
                        "`volgroup --pesize={}`: use a whole number of MiB in KiB (e.g. 4096)",
                        vg.pesize_kib
                    ),
                ));
            }
            Some(Lvm {
                vg: vg.name.clone(),
                pv: pv.clone(),
                pe: vg.pesize_kib * 1024,
                lvs: Vec::new(),
            })
        }
        [_, second, ..] => {
            return Err(err(
                second.line,
                "a second `volgroup`: cairn install supports one volume group".into(),
            ))
        }
    };
    for lv in &ks.logvols {
        match &mut lvm {
            Some(l) if l.vg == lv.vg => {
                l.lvs
                    .push((lv.name.clone(), lv.mount.clone(), lv.fs, lv.size))
            }
            _ => {
                return Err(err(
                    lv.line,
                    format!(
                        "`logvol {}` is in volume group `{}`, which no `volgroup` line creates",
                        lv.mount, lv.vg
                    ),
                ))
            }
        }
    }
    if wants.iter().filter(|w| w.role == Role::Pv).count() > usize::from(lvm.is_some()) {
        let line = ks
            .parts
            .iter()
            .find(|p| matches!(p.target, PartTarget::Pv(_)))
            .map_or(0, |p| p.line);
        return Err(err(line, "a `part pv.*` no `volgroup` uses".into()));
    }
    Ok(lvm)
}

/// The partitions and LVM the kickstart asks for (autopart expanded), validated.
fn wants(ks: &Kickstart, err: ErrFn) -> Result<(Vec<Want>, Option<Lvm>), InstallError> {
    if let Some(a) = ks.autopart {
        return Ok(autopart(a.lvm, a.fs));
    }
    let wants: Vec<Want> = ks
        .parts
        .iter()
        .map(|p| match &p.target {
            PartTarget::Mount { path, fs } => {
                let name = if path == "/" {
                    "root"
                } else {
                    path.trim_start_matches('/')
                };
                Want::fs(name, path, *fs, p.size)
            }
            PartTarget::Pv(id) => Want::pv(id, p.size),
        })
        .collect();
    let lvm = volume_group(ks, &wants, err)?;
    Ok((wants, lvm))
}

/// Every mount point once; / and /boot present; /boot on a partition.
fn check_mounts(wants: &[Want], lvm: Option<&Lvm>, err: ErrFn) -> Result<(), InstallError> {
    let mut mounts: Vec<&str> = wants
        .iter()
        .filter_map(|w| w.mount.as_ref().map(|(m, _)| m.as_str()))
        .collect();
    let on_lv: Vec<&str> = lvm
        .map(|l| l.lvs.iter().map(|lv| lv.1.as_str()).collect())
        .unwrap_or_default();
    if on_lv.contains(&"/boot") {
        return Err(err(
            0,
            "/boot on a logical volume: the BIOS boot loader reads /boot from a plain partition"
                .into(),
        ));
    }
    mounts.extend(on_lv);
    for m in ["/", "/boot"] {
        if !mounts.contains(&m) {
            return Err(err(0, format!("no `{m}` in the layout: cairn install needs a /boot partition and a / (partition or logical volume)")));
        }
    }
    for (i, m) in mounts.iter().enumerate() {
        if mounts[..i].contains(m) {
            return Err(err(
                0,
                format!("mount point {m} appears twice in the layout"),
            ));
        }
    }
    Ok(())
}

/// Sets each partition's minimum (its filesystem's, or its volume group's contents); returns
/// each LV's minimum in extents.
fn minimums(wants: &mut [Want], lvm: Option<&Lvm>, err: ErrFn) -> Result<Vec<u64>, InstallError> {
    let mut lv_min = Vec::new();
    if let Some(l) = lvm {
        for (_, _, fs, size) in &l.lvs {
            let mib = if size.grow {
                size.mib.max(fs_min_mib(*fs))
            } else {
                size.mib
            };
            lv_min.push((mib * MIB).div_ceil(l.pe));
        }
        let need = PE_START + lv_min.iter().sum::<u64>() * l.pe;
        if let Some(w) = wants.iter_mut().find(|w| w.name == l.pv) {
            w.min_mib = need.div_ceil(MIB);
        }
    }
    for w in wants.iter_mut() {
        if let Some((_, fs)) = &w.mount {
            w.min_mib = w.min_mib.max(fs_min_mib(*fs));
        }
        if !w.size.grow && w.size.mib < w.min_mib {
            let what = w
                .mount
                .as_ref()
                .map_or_else(|| w.name.clone(), |(m, _)| m.clone());
            return Err(err(
                0,
                format!(
                    "{what} is {} MiB, but needs at least {} MiB",
                    w.size.mib, w.min_mib
                ),
            ));
        }
    }
    Ok(lv_min)
}

/// Shares `extra` among `n` growing items: equal parts, the remainder to the last.
fn share(extra: u64, n: u64, i: u64) -> u64 {
    let base = extra / n;
    if i + 1 == n {
        extra - base * (n - 1)
    } else {
        base
    }
}

/// GPT partitions in order, growing ones sharing what the disk has beyond the minimum.
fn lay_out(wants: &[Want], extra_mib: u64) -> (Vec<PlannedPartition>, Vec<Volume>) {
    let mut partitions = vec![
        PlannedPartition {
            number: 1,
            name: "bios".into(),
            type_code: "EF02",
            role: Role::BiosBoot,
            offset: MIB,
            size: MIB,
        },
        PlannedPartition {
            number: 2,
            name: "esp".into(),
            type_code: "EF00",
            role: Role::Esp,
            offset: 2 * MIB,
            size: ESP_MIB * MIB,
        },
    ];
    let growing: Vec<usize> = (0..wants.len()).filter(|&i| wants[i].size.grow).collect();
    let mut offset = (2 + ESP_MIB) * MIB;
    let mut volumes = Vec::new();
    for (i, w) in wants.iter().enumerate() {
        let mut mib = w.base_mib();
        if let Some(k) = growing.iter().position(|&g| g == i) {
            mib += share(extra_mib, growing.len() as u64, k as u64);
        }
        let number = partitions.len() as u32 + 1;
        if let Some((m, fs)) = &w.mount {
            // syslinux reads /boot, and boots from ext4 only: XFS keeps its superblock where the
            // partition's boot sector would go.
            let fs = if m == "/boot" { Fs::Ext4 } else { *fs };
            volumes.push(Volume {
                mount: m.clone(),
                fs,
                at: Location::Partition { number },
            });
        }
        partitions.push(PlannedPartition {
            number,
            name: w.name.clone(),
            type_code: w.type_code,
            role: w.role,
            offset,
            size: mib * MIB,
        });
        offset += mib * MIB;
    }
    (partitions, volumes)
}

/// The volume group on its (now sized) PV partition: growing LVs share the spare extents.
fn plan_lvm(
    l: &Lvm,
    partitions: &[PlannedPartition],
    lv_min: &[u64],
    volumes: &mut Vec<Volume>,
) -> (PlannedVg, Vec<PlannedLv>) {
    let pv = partitions
        .iter()
        .find(|p| p.name == l.pv)
        .expect("planned with its PV");
    let extents = (pv.size - PE_START) / l.pe;
    let spare = extents - lv_min.iter().sum::<u64>();
    let growing: Vec<usize> = (0..l.lvs.len()).filter(|&i| l.lvs[i].3.grow).collect();
    let mut lvs = Vec::new();
    for (i, (name, mount, fs, _)) in l.lvs.iter().enumerate() {
        let mut n = lv_min[i];
        if let Some(k) = growing.iter().position(|&g| g == i) {
            n += share(spare, growing.len() as u64, k as u64);
        }
        lvs.push(PlannedLv {
            name: name.clone(),
            extents: n,
            rest: growing.last() == Some(&i),
        });
        volumes.push(Volume {
            mount: mount.clone(),
            fs: *fs,
            at: Location::Lv {
                vg: l.vg.clone(),
                name: name.clone(),
            },
        });
    }
    let vg = PlannedVg {
        name: l.vg.clone(),
        pv_partition: pv.number,
        extent_size: l.pe,
        extents,
    };
    (vg, lvs)
}

/// Plans the install of `ks` onto a disk of `disk_size` bytes.
pub fn plan(ks: &Kickstart, disk_size: u64) -> Result<Plan, InstallError> {
    let err = |line: usize, msg: String| InstallError::Kickstart {
        source_name: ks.source.clone(),
        line,
        msg,
    };
    let (mut wants, lvm) = wants(ks, &err)?;
    check_mounts(&wants, lvm.as_ref(), &err)?;
    let lv_min = minimums(&mut wants, lvm.as_ref(), &err)?;
    // 1 MiB lead-in (MBR + primary GPT), BIOS boot, ESP, the kickstart's partitions, and 1 MiB
    // for the backup GPT. Everything on MiB boundaries.
    let fixed: u64 = 1 + 1 + ESP_MIB + 1 + wants.iter().map(Want::base_mib).sum::<u64>();
    let disk_mib = disk_size / MIB;
    if disk_mib < fixed {
        return Err(InstallError::DiskTooSmall {
            have: disk_size,
            need: fixed * MIB,
        });
    }
    let (partitions, mut volumes) = lay_out(&wants, disk_mib - fixed);
    let (vg, lvs) = match &lvm {
        Some(l) => {
            let (vg, lvs) = plan_lvm(l, &partitions, &lv_min, &mut volumes);
            (Some(vg), lvs)
        }
        None => (None, Vec::new()),
    };
    Ok(Plan {
        disk_size: disk_mib * MIB,
        min_disk_size: fixed * MIB,
        partitions,
        vg,
        lvs,
        volumes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LVM: &str = "ostreesetup --osname=os --remote=r --url=http://h/repo/ --ref=a/b --nogpg\n\
        part /boot --fstype=xfs --size=1024\npart pv.01 --size=1 --grow\nvolgroup vg pv.01\n\
        logvol / --vgname=vg --name=root --fstype=xfs --size=12288\n\
        logvol /var --vgname=vg --name=var --fstype=xfs --size=1 --grow\n";

    fn ks(text: &str) -> Kickstart {
        crate::parse::parse("ks.cfg", text).unwrap()
    }

    #[test]
    fn lvm_layout_is_mib_aligned_and_fills_the_disk() {
        let p = plan(&ks(LVM), 20 * 1024 * MIB + 12345).unwrap();
        let codes: Vec<&str> = p.partitions.iter().map(|p| p.type_code).collect();
        assert_eq!(codes, ["EF02", "EF00", "8300", "8E00"]);
        for w in p.partitions.windows(2) {
            assert_eq!(w[0].offset + w[0].size, w[1].offset);
        }
        assert!(p
            .partitions
            .iter()
            .all(|p| p.offset % MIB == 0 && p.size % MIB == 0));
        let last = p.partitions.last().unwrap();
        assert_eq!(
            last.offset + last.size,
            20 * 1024 * MIB - MIB,
            "backup GPT keeps the last MiB"
        );
        let vg = p.vg.as_ref().unwrap();
        assert_eq!(vg.extents, (last.size - MIB) / (4 * MIB));
        assert_eq!(p.lvs[0].extents, 3072);
        assert_eq!(p.lvs[0].extents + p.lvs[1].extents, vg.extents);
        assert!(p.lvs[1].rest && !p.lvs[0].rest);
        assert_eq!(
            p.volume("/var").unwrap().at,
            Location::Lv {
                vg: "vg".into(),
                name: "var".into()
            }
        );
        assert_eq!(
            p.volume("/boot").unwrap().at,
            Location::Partition { number: 3 }
        );
    }

    #[test]
    fn too_small_names_the_size_needed() {
        let e = plan(&ks(LVM), 4 * 1024 * MIB).unwrap_err();
        // 1 + 1 + ESP + 1 + /boot 1024 + PV (1 + 12288 + 300 rounded to extents).
        let need = (3 + ESP_MIB + 1024 + 1 + 12288 + 300) * MIB;
        match e {
            InstallError::DiskTooSmall { need: n, .. } => assert_eq!(n, need),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn plain_and_autopart_layouts() {
        let p = plan(&ks("ostreesetup --osname=os --url=http://h/ --ref=r\nautopart --type=plain --fstype=ext4\n"), 4096 * MIB).unwrap();
        assert_eq!(p.partitions.len(), 4);
        assert_eq!(p.volume("/").unwrap().at, Location::Partition { number: 4 });
        assert!(p.vg.is_none());
        let p = plan(
            &ks("ostreesetup --osname=os --url=http://h/ --ref=r\nautopart\n"),
            4096 * MIB,
        )
        .unwrap();
        assert_eq!(p.lvs.len(), 1);
        let e = plan(
            &ks("ostreesetup --osname=os --url=http://h/ --ref=r\npart / --size=1 --grow\n"),
            4096 * MIB,
        )
        .unwrap_err();
        assert!(e.to_string().contains("/boot"), "{e}");
    }
}
