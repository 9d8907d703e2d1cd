//! Custom mode: the storage config's disks, partitions, formats and mounts. Everything is
//! resolved and checked first (disks exist and are unambiguous and unused, partitions fit, mkfs
//! tools exist, references resolve); only then is anything written.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::{Disk, Format, Item, Mount, Partition, Ptable, Storage, Wipe};
use super::disk::{self, FoundDisk};
use super::fstab;
use super::mount::Mounts;
use super::partition::{self, Kind, Placed};
use crate::blockdev;
use crate::target::TargetRoot;
use crate::tools::{self, FsFamily, Mkfs};

/// What block-meta made: the device of every id, the fstab entries, the mounts.
pub struct Outcome {
    pub devices: BTreeMap<String, PathBuf>,
    pub fstab: Vec<fstab::Entry>,
    pub mounts: Mounts,
}

struct DiskPlan<'a> {
    cfg: &'a Disk,
    found: FoundDisk,
    parts: Vec<Placed>,
}

/// Run the storage config against the machine; mounts go under `target`.
pub fn apply(storage: &Storage, target: &Path) -> Result<Outcome> {
    let (plans, devices, volumes) = plan(storage)?;
    for (fmt, fam) in &volumes {
        if !fmt.preserve {
            tools::require(fam.tool())?;
        }
    }
    for d in &plans {
        write_disk(d)
            .with_context(|| format!("disk '{}' ({})", d.cfg.id, d.found.path.display()))?;
        write_dnames(storage, d)?;
    }
    let mut uuids: BTreeMap<String, (String, FsFamily)> = BTreeMap::new();
    for (fmt, fam) in &volumes {
        let dev = &devices[&fmt.volume];
        let uuid = format_volume(fmt, *fam, dev)?;
        uuids.insert(fmt.id.clone(), (uuid, *fam));
    }
    let mut mounts = Mounts::default();
    let mut entries = Vec::new();
    let mut to_mount: Vec<(&Mount, PathBuf, String)> = Vec::new();
    for item in &storage.config {
        let Item::Mount(m) = item else { continue };
        let (dev, fstype, uuid) = match &m.device {
            Some(fid) => {
                let Some(Item::Format(f)) = storage.get(fid) else {
                    unreachable!("checked in plan")
                };
                let (uuid, fam) = &uuids[fid];
                (
                    devices[&f.volume].clone(),
                    fam.mount_type().to_string(),
                    Some(uuid.clone()),
                )
            }
            None => (
                PathBuf::from(m.spec.clone().unwrap_or_default()),
                m.fstype.clone().unwrap_or_default(),
                None,
            ),
        };
        // curtin (`mount_data`): the mount's own fstype wins over the format's.
        let fstype = m.fstype.clone().filter(|f| !f.is_empty()).unwrap_or(fstype);
        let is_swap = fstype == "swap";
        let path = m
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "none".into());
        let spec = m
            .spec
            .clone()
            .or(uuid.map(|u| format!("/dev/disk/by-uuid/{u}")))
            .unwrap_or_else(|| dev.display().to_string());
        entries.push(fstab::Entry {
            spec,
            path: path.clone(),
            fstype: fstype.clone(),
            options: m.options.clone().unwrap_or_default(),
            freq: m.freq.clone().unwrap_or_else(|| "0".into()),
            passno: m.passno.clone(),
            // The comment names the mount's `spec` when it has one, as curtin's does.
            device: m.spec.clone().unwrap_or_else(|| dev.display().to_string()),
        });
        if !is_swap && path != "none" {
            to_mount.push((m, dev, fstype));
        }
    }
    // Parents before children, whatever the config order.
    to_mount.sort_by(|a, b| {
        let pa = a.0.path.as_deref().unwrap_or("");
        let pb = b.0.path.as_deref().unwrap_or("");
        Path::new(pa)
            .components()
            .count()
            .cmp(&Path::new(pb).components().count())
            .then(pa.cmp(pb))
    });
    // The root on the target directory itself; the rest resolved inside what it mounted.
    let mut root: Option<TargetRoot> = None;
    for (m, dev, fstype) in to_mount {
        // Validated with the config; checked again here (defence in depth).
        let Some(path) = preseed::storage::mount_path(m)
            .map_err(|e| anyhow::anyhow!("type:mount id={}: {e}", m.id))?
        else {
            continue;
        };
        let opts = m.options.clone().unwrap_or_default();
        if path == "/" {
            mounts.mount(&dev, target, Some(&fstype), &opts)?;
            root = None;
            continue;
        }
        let r = match root.take() {
            Some(r) => r,
            None => TargetRoot::open(target)?,
        };
        mounts.mount_in(&r, &path, &dev, Some(&fstype), &opts)?;
        root = Some(r);
    }
    Ok(Outcome {
        devices,
        fstab: entries,
        mounts,
    })
}

/// by-dname rules for a named disk and its named partitions (curtin: a partition's only when
/// its disk has a `name`, and not for an extended partition).
fn write_dnames(storage: &Storage, d: &DiskPlan) -> Result<()> {
    let Some(name) = &d.cfg.name else {
        return Ok(());
    };
    super::dname::write(name, &d.found.path, true)?;
    for placed in d.parts.iter().filter(|p| p.kind != Kind::Extended) {
        if let Some(Item::Partition(Partition { name: Some(n), .. })) = storage.get(&placed.id) {
            let dev = blockdev::partition_path(&d.found.path, placed.number);
            super::dname::write(n, &dev, false)?;
        }
    }
    Ok(())
}

type Planned<'a> = (
    Vec<DiskPlan<'a>>,
    BTreeMap<String, PathBuf>,
    Vec<(&'a Format, FsFamily)>,
);

/// Resolve and check everything; write nothing.
fn plan(storage: &Storage) -> Result<Planned<'_>> {
    if storage.version != 1 {
        bail!(
            "storage version {} is not supported (only version 1)",
            storage.version
        );
    }
    storage.check_supported().map_err(anyhow::Error::msg)?;
    let mut plans: Vec<DiskPlan> = Vec::new();
    let mut devices: BTreeMap<String, PathBuf> = BTreeMap::new();
    for item in &storage.config {
        let Item::Disk(d) = item else { continue };
        if d.wipe.is_some() && d.preserve {
            bail!("type:disk id={} has both wipe and preserve", d.id);
        }
        let path = disk::find(d)?;
        if let Some(other) = plans.iter().find(|p| p.found.path == path) {
            bail!(
                "disks '{}' and '{}' are both {}",
                other.cfg.id,
                d.id,
                path.display()
            );
        }
        let found = FoundDisk::open(&path).with_context(|| format!("disk '{}'", d.id))?;
        if !d.preserve {
            crate::blockdev::check_not_busy(&path).with_context(|| format!("disk '{}'", d.id))?;
        }
        devices.insert(d.id.clone(), path);
        plans.push(DiskPlan {
            cfg: d,
            found,
            parts: Vec::new(),
        });
    }
    let parts: Vec<&Partition> = storage
        .config
        .iter()
        .filter_map(|i| {
            if let Item::Partition(p) = i {
                Some(p)
            } else {
                None
            }
        })
        .collect();
    for p in &parts {
        if !plans.iter().any(|d| d.cfg.id == p.device) {
            bail!(
                "partition '{}': device '{}' is not a disk in the storage config",
                p.id,
                p.device
            );
        }
    }
    for d in plans.iter_mut() {
        let mine: Vec<&Partition> = parts
            .iter()
            .copied()
            .filter(|p| p.device == d.cfg.id)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let ptable = match d.cfg.ptable {
            Some(t @ (Ptable::Gpt | Ptable::Msdos)) => t,
            Some(t) => bail!("disk '{}': ptable {t:?} is not supported", d.cfg.id),
            None => bail!("disk '{}' has partitions but no ptable", d.cfg.id),
        };
        d.parts = partition::place(&d.found, &d.cfg.id, ptable, &mine)?;
        // GPT names as curtin writes them: v1 (sgdisk --new) none, v2 (sfdisk) `partition_name`.
        for (placed, p) in d.parts.iter_mut().zip(&mine) {
            placed.name = (storage.version >= 2)
                .then(|| p.partition_name.clone())
                .flatten();
        }
        for p in &d.parts {
            if p.preserve && !d.cfg.preserve {
                bail!(
                    "partition '{}' has preserve: true but disk '{}' does not",
                    p.id,
                    d.cfg.id
                );
            }
            if !p.preserve && d.cfg.preserve {
                bail!(
                    "partition '{}': adding partitions to a preserved disk is not supported yet",
                    p.id
                );
            }
            devices.insert(
                p.id.clone(),
                blockdev::partition_path(&d.found.path, p.number),
            );
        }
        if d.cfg.preserve {
            let mut f = File::open(&d.found.path)
                .with_context(|| format!("opening {}", d.found.path.display()))?;
            let existing = partition::read_existing(&mut f, &d.found, ptable)?;
            for p in &d.parts {
                partition::verify_preserved(&existing, p, ptable, &d.found.path)?;
            }
        }
    }
    let mut volumes = Vec::new();
    for item in &storage.config {
        match item {
            Item::Format(f) => {
                if !devices.contains_key(&f.volume) {
                    bail!(
                        "format '{}': volume '{}' is not a disk or partition in the storage config",
                        f.id,
                        f.volume
                    );
                }
                let fam = FsFamily::parse(f.fstype.name())
                    .with_context(|| format!("format '{}'", f.id))?;
                volumes.push((f, fam));
            }
            Item::Mount(m) => match &m.device {
                Some(fid) => {
                    if !matches!(storage.get(fid), Some(Item::Format(_))) {
                        bail!(
                            "mount '{}': device '{fid}' is not a format in the storage config",
                            m.id
                        );
                    }
                }
                None if m.spec.is_some() && m.fstype.is_some() => {}
                None => bail!("mount '{}': needs a device, or a spec and an fstype", m.id),
            },
            _ => {}
        }
    }
    Ok((plans, devices, volumes))
}

fn write_disk(d: &DiskPlan) -> Result<()> {
    if d.cfg.preserve {
        return Ok(());
    }
    let path = &d.found.path;
    // Old signatures inside old partitions, before the new table hides them.
    match d.cfg.wipe {
        Some(Wipe::SuperblockRecursive) => {
            for n in 1..=128u32 {
                let pp = blockdev::partition_path(path, n);
                if pp.exists() {
                    tools::wipefs_all(&pp)?;
                }
            }
            tools::wipefs_all(path)?;
        }
        Some(Wipe::Superblock) => tools::wipefs_all(path)?,
        Some(Wipe::Pvremove) => {
            for n in 1..=128u32 {
                let pp = blockdev::partition_path(path, n);
                if pp.exists() {
                    tools::pvremove(&pp)?;
                }
            }
            tools::pvremove(path)?;
        }
        _ => {}
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
        .with_context(|| format!("opening {} exclusively", path.display()))?;
    let mib = 1u64 << 20;
    if matches!(d.cfg.wipe, Some(Wipe::Zero | Wipe::Random)) {
        if d.cfg.wipe == Some(Wipe::Random) {
            tracing::warn!("wipe: random is done as zero");
        }
        blockdev::zero_range(&f, 0, d.found.size)?;
    } else {
        // Always: GPT at both ends, the MBR, and whatever sits at the ends of the new partitions
        // (file systems, LVM and md superblocks of an earlier install).
        blockdev::zero_range(&f, 0, mib.min(d.found.size))?;
        blockdev::zero_range(&f, d.found.size.saturating_sub(mib), mib.min(d.found.size))?;
        for p in d.parts.iter().filter(|p| p.kind != Kind::Extended) {
            let (s, e) = (p.start * d.found.sector, p.end() * d.found.sector);
            blockdev::zero_range(&f, s, mib.min(e - s))?;
            blockdev::zero_range(&f, e.saturating_sub(mib).max(s), mib.min(e - s))?;
        }
    }
    if d.parts.is_empty() && d.cfg.ptable.is_none() {
        return Ok(());
    }
    match d.cfg.ptable {
        Some(Ptable::Gpt) => partition::write_gpt(&mut f, &d.found, &d.parts)?,
        Some(Ptable::Msdos) => partition::write_msdos(&mut f, &d.found, &d.parts)?,
        _ => {}
    }
    let lbs = d.found.sector;
    let kparts: Vec<blockdev::Part> = d
        .parts
        .iter()
        .map(|p| {
            // The kernel shows an extended partition as 1 KiB (2 sectors of 512).
            let len = if p.kind == Kind::Extended {
                1024.max(lbs)
            } else {
                p.len * lbs
            };
            blockdev::Part {
                number: p.number,
                start: p.start * lbs,
                len,
            }
        })
        .collect();
    blockdev::sync_partitions(&f, path, &kparts)?;
    Ok(())
}

fn format_volume(fmt: &Format, fam: FsFamily, dev: &Path) -> Result<String> {
    if fmt.preserve {
        return tools::blkid_uuid(dev)?.with_context(|| {
            format!(
                "format '{}' (preserve: true): {} has no file system",
                fmt.id,
                dev.display()
            )
        });
    }
    let sector = {
        let f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
        blockdev::logical_sector_size(&f)
            .with_context(|| format!("reading the sector size of {}", dev.display()))?
            as u64
    };
    let generated = uuid::Uuid::new_v4().to_string();
    // The families curtin gives no uuid flag: their tool picks one, read back after.
    let uuid = match fam {
        FsFamily::Vfat(_) | FsFamily::Jfs | FsFamily::Ntfs => None,
        _ => Some(fmt.uuid.as_deref().unwrap_or(&generated)),
    };
    Mkfs {
        family: fam,
        device: dev,
        label: fmt.label.as_deref(),
        uuid,
        sector_size: sector,
        extra: &fmt.extra_options,
    }
    .run()
    .with_context(|| format!("format '{}'", fmt.id))?;
    match uuid {
        Some(u) => Ok(u.to_string()),
        None => tools::blkid_uuid(dev)?
            .with_context(|| format!("no UUID on {} after mkfs", dev.display())),
    }
}
