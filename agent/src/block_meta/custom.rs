//! Custom mode: the storage config, item by item in list order as curtin handles it.
//!
//! [`plan`] resolves and checks everything that can be known before a byte is written: disks
//! exist and are unambiguous, partitions fit, preserved tables match, every item comes after
//! what it uses, the tools exist. [`apply`] then takes apart what an earlier deployment left on
//! the disks ([`super::clear_holders`]), checks they are no longer busy, and runs the steps:
//! tables, arrays, volume groups and volumes, bcache, encryption, file systems; then mounts.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::{
    Bcache, Disk, DmCrypt, Format, Item, LvmPartition, LvmVolgroup, Mount, Partition, Ptable,
    Storage, Wipe,
};
use super::disk::{self, FoundDisk};
use super::mount::Mounts;
use super::partition::{self, Kind, Placed};
use super::{bcache, clear_holders, crypt, fstab, lvm, raid};
use crate::blockdev;
use crate::sysblock::Sysfs;
use crate::target::TargetRoot;
use crate::tools::{self, FsFamily, Mkfs};

/// What the handlers share while they run: the device of every id made so far, and the state
/// files they add to.
pub struct Ctx {
    pub sys: Sysfs,
    pub devices: BTreeMap<String, PathBuf>,
    /// `mdadm --detail --scan` after the last array.
    pub mdadm_conf: Option<String>,
    pub crypttab: Vec<String>,
}

impl Ctx {
    pub fn dev(&self, id: &str) -> Result<&PathBuf> {
        self.devices
            .get(id)
            .with_context(|| format!("'{id}' has no device (yet)"))
    }
}

/// What block-meta made: the device of every id, the fstab entries, the mounts, and the
/// contents of `state/mdadm.conf` and `state/crypttab`.
pub struct Outcome {
    pub devices: BTreeMap<String, PathBuf>,
    pub fstab: Vec<fstab::Entry>,
    pub mounts: Mounts,
    pub mdadm_conf: Option<String>,
    pub crypttab: Vec<String>,
}

/// A partition table to write: on a disk (planned in full) or on an array or bcache device
/// (placed once the device exists).
pub struct Table<'a> {
    pub id: &'a str,
    pub ptable: Option<Ptable>,
    pub wipe: Option<Wipe>,
    pub preserve: bool,
    pub found: FoundDisk,
    pub parts: Vec<Placed>,
}

/// One step of custom mode, in config order.
pub enum Step<'a> {
    /// The table of `tables[i]` and its partitions.
    Disk(usize),
    Raid(raid::Plan<'a>),
    VolGroup(&'a LvmVolgroup),
    Volume(&'a LvmPartition),
    Bcache(&'a Bcache),
    Crypt(&'a DmCrypt),
    Format(&'a Format, FsFamily),
}

pub struct Plan<'a> {
    pub tables: Vec<Table<'a>>,
    pub steps: Vec<Step<'a>>,
    /// Devices known before anything runs: disks and their partitions.
    pub devices: BTreeMap<String, PathBuf>,
}

/// The ptable of a raid or bcache item that carries partitions.
fn layer_ptable(item: &Item) -> Option<Option<Ptable>> {
    match item {
        Item::Raid(r) => Some(r.ptable),
        Item::Bcache(b) => Some(b.ptable),
        _ => None,
    }
}

/// Resolve and check everything; write nothing.
pub fn plan(storage: &Storage) -> Result<Plan<'_>> {
    storage.check_supported().map_err(anyhow::Error::msg)?;
    let mut tables: Vec<Table> = Vec::new();
    let mut devices: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut disk_of_table: Vec<&super::config::Disk> = Vec::new();
    for item in &storage.config {
        let Item::Disk(d) = item else { continue };
        if d.wipe.is_some() && d.preserve {
            bail!("type:disk id={} has both wipe and preserve", d.id);
        }
        let path = disk::find(d)?;
        if let Some(other) = tables.iter().find(|p| p.found.path == path) {
            bail!(
                "disks '{}' and '{}' are both {}",
                other.id,
                d.id,
                path.display()
            );
        }
        let found = FoundDisk::open(&path).with_context(|| format!("disk '{}'", d.id))?;
        devices.insert(d.id.clone(), path);
        tables.push(Table {
            id: &d.id,
            ptable: d.ptable,
            wipe: d.wipe,
            preserve: d.preserve,
            found,
            parts: Vec::new(),
        });
        disk_of_table.push(d);
    }
    for p in storage.config.iter().filter_map(|i| match i {
        Item::Partition(p) => Some(p),
        _ => None,
    }) {
        match storage.get(&p.device) {
            Some(Item::Disk(_)) => {}
            Some(layer) if layer_ptable(layer).is_some() => {
                if layer_ptable(layer) == Some(None) {
                    bail!(
                        "partition '{}': {} '{}' has no ptable",
                        p.id,
                        layer.type_name(),
                        p.device
                    );
                }
            }
            _ => bail!(
                "partition '{}': device '{}' is not a disk, raid or bcache in the storage config",
                p.id,
                p.device
            ),
        }
    }
    for (t, d) in tables.iter_mut().zip(&disk_of_table) {
        let mine: Vec<&Partition> = storage.partitions_of(&d.id).collect();
        if mine.is_empty() {
            continue;
        }
        let ptable = table_kind(t.id, t.ptable)?;
        t.parts = partition::place(&t.found, t.id, ptable, &mine, storage.version)?;
        v2_attributes(storage, &mut t.parts, &mine);
        for p in &t.parts {
            if p.preserve && !t.preserve {
                bail!(
                    "partition '{}' has preserve: true but disk '{}' does not",
                    p.id,
                    t.id
                );
            }
            if !p.preserve && t.preserve {
                bail!(
                    "partition '{}': adding partitions to a preserved disk is not supported yet",
                    p.id
                );
            }
            devices.insert(
                p.id.clone(),
                blockdev::partition_path(&t.found.path, p.number),
            );
        }
        if t.preserve {
            let mut f = File::open(&t.found.path)
                .with_context(|| format!("opening {}", t.found.path.display()))?;
            let existing = partition::read_existing(&mut f, &t.found, ptable)?;
            for p in &t.parts {
                partition::verify_preserved(&existing, p, ptable, &t.found.path)?;
            }
        }
    }

    // A bcache cache the kernel would refuse, when its size is known now.
    for b in storage.config.iter().filter_map(|i| match i {
        Item::Bcache(b) => Some(b),
        _ => None,
    }) {
        let cache = b.cache_device.as_deref().unwrap_or_default();
        let size = tables.iter().find_map(|t| {
            if t.id == cache {
                return Some(t.found.size);
            }
            t.parts
                .iter()
                .find(|p| p.id == cache)
                .map(|p| p.len * t.found.sector)
        });
        if let Some(size) = size.filter(|s| *s < tools::bcache::MIN_CACHE_BYTES) {
            bail!(
                "bcache '{}': cache device '{cache}' is {size} bytes; the kernel needs more than 512 buckets of make-bcache's 512 KiB ({} bytes)",
                b.id,
                tools::bcache::MIN_CACHE_BYTES
            );
        }
    }

    // Steps in list order; what an item uses must exist by then (its disk's partitions come
    // with the disk, an array's or bcache's with it).
    let mut ready: BTreeSet<&str> = BTreeSet::new();
    let mut steps = Vec::new();
    let mut needs: BTreeSet<&'static str> = BTreeSet::new();
    for item in &storage.config {
        if !matches!(item, Item::Disk(_) | Item::Partition(_) | Item::Mount(_)) {
            for (key, r) in item.refs() {
                if !ready.contains(r) {
                    bail!(
                        "{} '{}': its {key} '{r}' is listed after it (curtin handles items in list order)",
                        item.type_name(),
                        item.id()
                    );
                }
            }
        }
        match item {
            Item::Disk(d) => {
                let i = tables.iter().position(|t| t.id == d.id).expect("planned");
                steps.push(Step::Disk(i));
            }
            Item::Raid(r) => {
                needs.insert("mdadm");
                steps.push(Step::Raid(raid::plan(r)));
            }
            Item::LvmVolgroup(v) => {
                needs.insert("lvm");
                steps.push(Step::VolGroup(v));
            }
            Item::LvmPartition(l) => {
                needs.insert("lvm");
                steps.push(Step::Volume(l));
            }
            Item::Bcache(b) => {
                needs.insert("make-bcache");
                steps.push(Step::Bcache(b));
            }
            Item::DmCrypt(c) => {
                needs.insert("cryptsetup");
                steps.push(Step::Crypt(c));
            }
            Item::Format(f) => {
                let fam = FsFamily::parse(f.fstype.name())
                    .with_context(|| format!("format '{}'", f.id))?;
                if !f.preserve {
                    needs.insert(fam.tool());
                }
                steps.push(Step::Format(f, fam));
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
            Item::Partition(_) | Item::Other(_) => {}
        }
        ready.insert(item.id());
        if matches!(item, Item::Disk(_)) || layer_ptable(item).is_some() {
            ready.extend(storage.partitions_of(item.id()).map(|p| p.id.as_str()));
        }
    }
    for t in &needs {
        tools::require(t)?;
    }
    for (tool, what, name) in [
        ("mdadm", "md", "md (RAID)"),
        ("lvm", "dm", "device-mapper (LVM)"),
        ("cryptsetup", "dm", "device-mapper (dm-crypt)"),
        ("make-bcache", "bcache", "bcache"),
    ] {
        if needs.contains(tool) && !tools::kernel_supports(what) {
            bail!("the storage config needs {name}, which the running kernel does not have (module {what} not loaded and not loadable)");
        }
    }
    Ok(Plan {
        tables,
        steps,
        devices,
    })
}

pub fn table_kind(id: &str, ptable: Option<Ptable>) -> Result<Ptable> {
    match ptable {
        Some(t @ (Ptable::Gpt | Ptable::Msdos)) => Ok(t),
        Some(t) => bail!("'{id}': ptable {t:?} is not supported"),
        None => bail!("'{id}' has partitions but no ptable"),
    }
}

/// clear-holders on every disk of the config that is not preserved, then the busy check on each.
fn clear(plan: &Plan, target: &Path) -> Result<()> {
    let disks: Vec<(String, PathBuf)> = plan
        .tables
        .iter()
        .filter(|t| !t.preserve)
        .map(|t| (t.id.to_string(), t.found.path.clone()))
        .collect();
    clear_holders::clear_disks(&disks, target)?;
    for t in plan.tables.iter().filter(|t| !t.preserve) {
        blockdev::check_not_busy(&t.found.path).with_context(|| format!("disk '{}'", t.id))?;
    }
    Ok(())
}

/// Run the storage config against the machine; mounts go under `target`.
pub fn apply(storage: &Storage, target: &Path) -> Result<Outcome> {
    let plan = plan(storage)?;
    // Held until everything is made and mounted (see DiskLock).
    let _locks = plan
        .tables
        .iter()
        .filter(|t| !t.preserve)
        .map(|t| blockdev::DiskLock::take(&t.found.path))
        .collect::<Result<Vec<_>>>()?;
    crate::report::within("clear-holders", "removing previous storage devices", || {
        clear(&plan, target)
    })?;
    let mut ctx = Ctx {
        sys: Sysfs::default(),
        devices: plan.devices.clone(),
        mdadm_conf: None,
        crypttab: Vec::new(),
    };
    let mut uuids: BTreeMap<String, (String, FsFamily)> = BTreeMap::new();
    for step in &plan.steps {
        let (ty, id) = step_item(&plan, step);
        crate::report::within("", &format!("configuring {ty}: {id}"), || {
            run_step(storage, &plan, step, &mut ctx, &mut uuids)
        })?;
        if let Step::Disk(i) = step {
            // Its partitions are in the table just written.
            for p in &plan.tables[*i].parts {
                crate::report::within("", &format!("configuring partition: {}", p.id), || Ok(()))?;
            }
        }
    }
    let (fstab, mounts) = mount_all(storage, &ctx.devices, &uuids, target)?;
    Ok(Outcome {
        devices: ctx.devices,
        fstab,
        mounts,
        mdadm_conf: ctx.mdadm_conf,
        crypttab: ctx.crypttab,
    })
}

/// The storage item a step carries out: (type, id), as curtin's event descriptions name it.
fn step_item<'a>(plan: &'a Plan, step: &'a Step) -> (&'static str, &'a str) {
    match step {
        Step::Disk(i) => ("disk", plan.tables[*i].id),
        Step::Raid(r) => ("raid", &r.cfg.id),
        Step::VolGroup(v) => ("lvm_volgroup", &v.id),
        Step::Volume(l) => ("lvm_partition", &l.id),
        Step::Bcache(b) => ("bcache", &b.id),
        Step::Crypt(c) => ("dm_crypt", &c.id),
        Step::Format(f, _) => ("format", &f.id),
    }
}

fn run_step(
    storage: &Storage,
    plan: &Plan,
    step: &Step,
    ctx: &mut Ctx,
    uuids: &mut BTreeMap<String, (String, FsFamily)>,
) -> Result<()> {
    match step {
        Step::Disk(i) => {
            let t = &plan.tables[*i];
            write_table(t)
                .with_context(|| format!("disk '{}' ({})", t.id, t.found.path.display()))?;
            write_dnames(storage, t)
        }
        Step::Raid(r) => {
            let dev = r
                .apply(ctx)
                .with_context(|| format!("raid '{}'", r.cfg.id))?;
            layer_table(storage, ctx, &r.cfg.id, r.cfg.ptable, &dev)
        }
        Step::VolGroup(v) => {
            lvm::apply_vg(ctx, v).with_context(|| format!("lvm_volgroup '{}'", v.id))
        }
        Step::Volume(l) => {
            let dev = lvm::apply_lv(ctx, storage, l)
                .with_context(|| format!("lvm_partition '{}'", l.id))?;
            ctx.devices.insert(l.id.clone(), dev);
            Ok(())
        }
        Step::Bcache(b) => {
            let dev = bcache::apply(ctx, b).with_context(|| format!("bcache '{}'", b.id))?;
            layer_table(storage, ctx, &b.id, b.ptable, &dev)
        }
        Step::Crypt(c) => {
            let dev = crypt::apply(ctx, c).with_context(|| format!("dm_crypt '{}'", c.id))?;
            ctx.devices.insert(c.id.clone(), dev);
            Ok(())
        }
        Step::Format(f, fam) => {
            let dev = ctx.dev(&f.volume)?.clone();
            let uuid = format_volume(f, *fam, &dev)?;
            uuids.insert(f.id.clone(), (uuid, *fam));
            Ok(())
        }
    }
}

/// A new array or bcache device: record it, and write its partition table when it has one.
fn layer_table(
    storage: &Storage,
    ctx: &mut Ctx,
    id: &str,
    ptable: Option<Ptable>,
    dev: &Path,
) -> Result<()> {
    ctx.devices.insert(id.to_string(), dev.to_path_buf());
    let mine: Vec<&Partition> = storage.partitions_of(id).collect();
    let Some(ptable) = ptable else {
        return Ok(());
    };
    let found = FoundDisk::open(dev).with_context(|| format!("'{id}'"))?;
    let mut parts = partition::place(&found, id, ptable, &mine, storage.version)?;
    v2_attributes(storage, &mut parts, &mine);
    for p in &parts {
        ctx.devices
            .insert(p.id.clone(), blockdev::partition_path(dev, p.number));
    }
    let t = Table {
        id,
        ptable: Some(ptable),
        wipe: None,
        preserve: false,
        found,
        parts,
    };
    write_table(&t).with_context(|| format!("partitions of '{id}' ({})", dev.display()))
}

/// The fstab entries, and everything mounted under `target` in path order.
fn mount_all(
    storage: &Storage,
    devices: &BTreeMap<String, PathBuf>,
    uuids: &BTreeMap<String, (String, FsFamily)>,
    target: &Path,
) -> Result<(Vec<fstab::Entry>, Mounts)> {
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
        let event = crate::report::nested("", &format!("configuring mount: {}", m.id));
        if path == "/" {
            let r = mounts.mount(&dev, target, Some(&fstype), &opts);
            event.finish_result(&r);
            r?;
            root = None;
            continue;
        }
        let r = match root.take() {
            Some(r) => Ok(r),
            None => TargetRoot::open(target),
        }
        .and_then(|r| {
            mounts
                .mount_in(&r, &path, &dev, Some(&fstype), &opts)
                .map(|_| r)
        });
        event.finish_result(&r);
        root = Some(r?);
    }
    Ok((entries, mounts))
}

/// What curtin's v2 (sfdisk) writes and v1 (sgdisk --new) does not: the GPT name
/// (`partition_name`), the type (`partition_type`), the partition's GUID (`uuid`) and its
/// attribute bits (`attrs`).
pub fn v2_attributes(storage: &Storage, placed: &mut [Placed], parts: &[&Partition]) {
    let v2 = storage.version >= 2;
    for (pl, p) in placed.iter_mut().zip(parts) {
        pl.name = v2.then(|| p.partition_name.clone()).flatten();
        pl.type_code = v2.then(|| p.partition_type.clone()).flatten();
        pl.uuid = v2.then(|| p.uuid.clone()).flatten();
        // Checked when the config was read.
        pl.attrs = match v2 {
            true => preseed::storage::gpt_attribute_bits(&p.attrs).unwrap_or(0),
            false => 0,
        };
    }
}

/// by-dname rules for a named disk and its named partitions (curtin: a partition's only when
/// its disk has a `name`, and not for an extended partition).
fn write_dnames(storage: &Storage, t: &Table) -> Result<()> {
    let Some(Item::Disk(Disk {
        name: Some(name), ..
    })) = storage.get(t.id)
    else {
        return Ok(());
    };
    super::dname::write(name, &t.found.path, true)?;
    for placed in t.parts.iter().filter(|p| p.kind != Kind::Extended) {
        if let Some(Item::Partition(Partition { name: Some(n), .. })) = storage.get(&placed.id) {
            let dev = blockdev::partition_path(&t.found.path, placed.number);
            super::dname::write(n, &dev, false)?;
        }
    }
    Ok(())
}

fn write_table(d: &Table) -> Result<()> {
    if d.preserve {
        return Ok(());
    }
    let path = &d.found.path;
    // Old signatures inside old partitions, before the new table hides them.
    match d.wipe {
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
    if matches!(d.wipe, Some(Wipe::Zero | Wipe::Random)) {
        if d.wipe == Some(Wipe::Random) {
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
    if d.parts.is_empty() && d.ptable.is_none() {
        return Ok(());
    }
    match d.ptable {
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

/// What custom mode would do to a raid, LVM, bcache or dm_crypt item, for `deployer plan`.
pub fn describe_layer(storage: &Storage, item: &Item) -> Option<String> {
    Some(match item {
        Item::Raid(r) => raid::plan(r).describe(),
        Item::LvmVolgroup(v) => lvm::describe_vg(v),
        Item::LvmPartition(l) => lvm::describe_lv(storage, l),
        Item::Bcache(b) => bcache::describe(b),
        Item::DmCrypt(c) => crypt::describe(c),
        _ => return None,
    })
}
