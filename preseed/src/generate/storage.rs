//! Storage config v1 the way MAAS's `CurtinStorageGenerator` writes it (maas-preseed.md §4):
//! disks (with a generated bios_grub partition on BIOS+GPT amd64, not for ESXi), volume groups,
//! logical volumes, raids, bcaches, vmfs datastores, partitions, encrypted volumes, formats,
//! reordered so that every dependency comes first, then mounts sorted by path. Sizes are bytes
//! with a `B` suffix, rounded down to 4 MiB (but for the VMFS layouts' fixed partitions, which
//! MAAS creates past its model's rounding).
//!
//! Layouts (MAAS's `storage_layouts.py`): `flat`, `lvm`, `bcache` (root partition as the
//! backing device, cache on the smallest other `ssd` disk; flat when there is none), `vmfs6`,
//! `vmfs7` (ESXi's fixed partitions and `datastore1`), `blank`, and `custom` (partitions,
//! md arrays of them, dm_crypt on either).

use yaml_serde::{Mapping, Value};

use super::machine::{BootMode, CustomPartition, Disk, Layout, Machine, PtableKind};
use super::{seq, GenError};

pub const MIB: u64 = 1 << 20;
/// `INITIAL_PARTITION_OFFSET`: where MAAS starts the first partition.
pub const INITIAL_OFFSET: u64 = 4 * MIB;
/// `PARTITION_ALIGNMENT_SIZE`: every partition size is rounded down to this.
pub const ALIGN: u64 = 4 * MIB;
/// Initial offset plus `END_OF_PARTITION_TABLE_SPACE` (1 MiB, room for the GPT backup).
pub const TABLE_OVERHEAD: u64 = 5 * MIB;
pub const BIOS_GRUB_SIZE: u64 = MIB;
/// The PReP boot partition MAAS makes on ppc64el boot disks.
pub const PREP_SIZE: u64 = 8 * MIB;
pub const EFI_SIZE: u64 = 512 * MIB;
pub const MIN_BOOT_SIZE: u64 = 512 * MIB;
pub const MIN_ROOT_SIZE: u64 = 3 << 30;
/// `LVM_PE_SIZE`; MAAS keeps one extent per physical volume for LVM's headers.
pub const LVM_PE: u64 = 4 * MIB;

fn bytes(n: u64) -> Value {
    Value::String(format!("{n}B"))
}

fn align_down(n: u64) -> u64 {
    n / ALIGN * ALIGN
}

/// A partition the layout wants, before numbering and sizing.
struct Want {
    disk: usize,
    /// None: the rest of the disk.
    size: Option<u64>,
    /// Which input key asked for it, for errors.
    origin: String,
    bootable: bool,
    fs: Option<Fs>,
    role: Role,
    /// The partition number, when the layout fixes it (VMFS); else the next one.
    number: Option<u64>,
    /// The size as given, not rounded to 4 MiB (VMFS).
    exact: bool,
}

impl Want {
    fn new(disk: usize, size: Option<u64>, origin: &str, fs: Option<Fs>, role: Role) -> Want {
        Want {
            disk,
            size,
            origin: origin.into(),
            bootable: false,
            fs,
            role,
            number: None,
            exact: false,
        }
    }

    fn bootable(mut self) -> Want {
        self.bootable = true;
        self
    }
}

/// What a partition is for, besides a file system.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Plain,
    /// A physical volume of the lvm layout's volume group.
    Pv,
    /// The bcache layout's backing device (root).
    Backing,
    /// The bcache layout's cache device.
    Cache,
    /// A member of the custom layout's array of this name (a spare when `true`).
    Raid(String, bool),
    /// The VMFS layouts' datastore.
    Vmfs,
}

struct Fs {
    fstype: String,
    label: Option<String>,
    mount: Option<String>,
    options: Option<String>,
    encrypt: Option<super::machine::Encrypt>,
}

fn fs(fstype: &str, label: &str, mount: &str) -> Option<Fs> {
    Some(Fs {
        fstype: fstype.into(),
        label: Some(label.into()),
        mount: Some(mount.into()),
        options: None,
        encrypt: None,
    })
}

/// The `partitioning_commands` + `storage` fragment. `esxi`: the image is VMware ESXi (no
/// bios_grub partition, as MAAS).
pub fn generate(m: &Machine, esxi: bool) -> Result<Value, GenError> {
    check_disks(m)?;
    let arch = m.arch();
    let boot_idx = m.disks.iter().position(|d| d.boot).unwrap_or(0);
    let uefi = m.boot_mode == BootMode::Uefi;

    let wants = layout_wants(m, boot_idx)?;

    // Partition tables: the disk's own choice, GPT for any disk that gets partitions or grub.
    let grub = grub_disks(m, boot_idx, &wants);
    let ptables: Vec<Option<PtableKind>> = m
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.ptable.or_else(|| {
                let used = wants.iter().any(|w| w.disk == i);
                if used || grub[i] {
                    // MAAS: GPT for UEFI and for BIOS amd64, msdos for other BIOS machines.
                    if uefi || arch == "amd64" || used {
                        Some(PtableKind::Gpt)
                    } else {
                        Some(PtableKind::Msdos)
                    }
                } else {
                    None
                }
            })
        })
        .collect();
    let bios_grub: Vec<bool> = ptables
        .iter()
        .map(|p| *p == Some(PtableKind::Gpt) && arch == "amd64" && !uefi && !esxi)
        .collect();

    // ppc64el: grub goes into a PReP partition on the boot disk, not the disk's header.
    let prep: Vec<bool> = (0..m.disks.len())
        .map(|i| arch == "ppc64el" && i == boot_idx && ptables[i].is_some())
        .collect();

    let mut items: Vec<Mapping> = Vec::new();
    for (i, d) in m.disks.iter().enumerate() {
        items.push(disk_item(d, ptables[i], grub[i] && !prep[i]));
        if prep[i] {
            let id = format!("{}-part1", d.name);
            let mut p = Mapping::new();
            p.insert("id".into(), id.clone().into());
            p.insert("name".into(), id.into());
            p.insert("type".into(), "partition".into());
            p.insert("number".into(), 1.into());
            p.insert("offset".into(), bytes(INITIAL_OFFSET));
            p.insert("size".into(), bytes(PREP_SIZE));
            p.insert("device".into(), d.name.clone().into());
            p.insert("wipe".into(), "zero".into());
            p.insert("flag".into(), "prep".into());
            p.insert("grub_device".into(), true.into());
            items.push(p);
        }
        if bios_grub[i] {
            let mut p = Mapping::new();
            p.insert("id".into(), format!("{}-part1", d.name).into());
            p.insert("type".into(), "partition".into());
            p.insert("number".into(), 1.into());
            p.insert("offset".into(), bytes(INITIAL_OFFSET));
            p.insert("size".into(), bytes(BIOS_GRUB_SIZE));
            p.insert("device".into(), d.name.clone().into());
            p.insert("wipe".into(), "zero".into());
            p.insert("flag".into(), "bios_grub".into());
            items.push(p);
        }
    }

    // Number and size the partitions, per disk; note what each one becomes.
    let mut partitions = Vec::new();
    let mut layers = Vec::new();
    let mut formats = Vec::new();
    let mut mounts: Vec<(String, Mapping)> = Vec::new();
    let mut pvs: Vec<(String, u64)> = Vec::new();
    let mut by_role: Vec<(Role, String)> = Vec::new();
    for (i, d) in m.disks.iter().enumerate() {
        let mine: Vec<&Want> = wants.iter().filter(|w| w.disk == i).collect();
        if mine.is_empty() {
            continue;
        }
        let overhead = TABLE_OVERHEAD
            + if bios_grub[i] { BIOS_GRUB_SIZE } else { 0 }
            + if prep[i] { PREP_SIZE } else { 0 };
        let sized = |w: &Want, s: u64| if w.exact { s } else { align_down(s) };
        let fixed: u64 = mine
            .iter()
            .filter_map(|w| w.size.map(|s| sized(w, s)))
            .sum();
        if mine.iter().filter(|w| w.size.is_none()).count() > 1 {
            return Err(GenError::new(
                "partitions",
                format!(
                    "disk {}: only one partition may take the rest of the disk (no size)",
                    d.name
                ),
            ));
        }
        let usable = d.size.saturating_sub(overhead);
        if fixed > usable {
            return Err(GenError::new(
                &mine.last().map(|w| w.origin.clone()).unwrap_or_default(),
                format!(
                    "the partitions on disk {} need {fixed} bytes but only {} are available",
                    d.name,
                    align_down(usable)
                ),
            ));
        }
        // MAAS's get_available_size: what is left, rounded down to the alignment.
        let rest = align_down(usable - fixed);
        let msdos = ptables[i] == Some(PtableKind::Msdos);
        if msdos && mine.len() > 4 {
            return Err(GenError::new(
                "partitions",
                format!(
                    "disk {}: more than 4 partitions on an msdos table are not supported",
                    d.name
                ),
            ));
        }
        let first_number = if bios_grub[i] || prep[i] { 2 } else { 1 };
        for (k, w) in mine.iter().enumerate() {
            let number = w.number.unwrap_or(first_number + k as u64);
            let size = match w.size {
                Some(s) => sized(w, s),
                None => rest,
            };
            if size < ALIGN && !w.exact {
                return Err(GenError::new(
                    &w.origin,
                    format!(
                        "partition {number} on disk {} would be smaller than 4 MiB",
                        d.name
                    ),
                ));
            }
            let id = format!("{}-part{number}", d.name);
            let mut p = Mapping::new();
            p.insert("id".into(), id.clone().into());
            p.insert("name".into(), id.clone().into());
            p.insert("type".into(), "partition".into());
            p.insert("number".into(), number.into());
            p.insert("size".into(), bytes(size));
            p.insert("device".into(), d.name.clone().into());
            p.insert("wipe".into(), "superblock".into());
            if number == 1 {
                p.insert("offset".into(), bytes(INITIAL_OFFSET));
            }
            if w.bootable {
                p.insert("flag".into(), "boot".into());
            }
            partitions.push(p);
            if w.role == Role::Pv {
                pvs.push((id.clone(), size));
            }
            if w.role != Role::Plain {
                by_role.push((w.role.clone(), id.clone()));
            }
            if let Some(f) = &w.fs {
                add_fs(&id, f, &mut layers, &mut formats, &mut mounts);
            }
        }
    }
    // bcache_no_part: the cache is the whole disk.
    if m.layout == Layout::Bcache && m.cache_no_part {
        if let Some(c) = cache_disk(m, boot_idx) {
            by_role.push((Role::Cache, m.disks[c].name.clone()));
        }
    }
    let of = |r: &Role| -> Vec<String> {
        by_role
            .iter()
            .filter(|(role, _)| role == r)
            .map(|(_, id)| id.clone())
            .collect()
    };

    // The lvm layout's volume group and logical volume.
    let mut lvm = Vec::new();
    if !pvs.is_empty() {
        let vg = m.vg_name.clone().unwrap_or_else(|| "vgroot".into());
        let lv = m.lv_name.clone().unwrap_or_else(|| "lvroot".into());
        let extents: u64 = pvs.iter().map(|(_, s)| s / LVM_PE).sum::<u64>() - pvs.len() as u64;
        let vg_size = extents * LVM_PE;
        let lv_size = match m.lv_size {
            Some(s) if align_down(s) > vg_size => {
                return Err(GenError::new(
                    "lv_size",
                    format!("{s} bytes does not fit in volume group {vg} ({vg_size} bytes)"),
                ))
            }
            Some(s) => align_down(s),
            None => vg_size,
        };
        if lv_size < MIN_ROOT_SIZE {
            return Err(GenError::new(
                "lv_size",
                format!("the root logical volume must be at least 3 GiB, got {lv_size} bytes"),
            ));
        }
        let mut g = Mapping::new();
        g.insert("id".into(), vg.clone().into());
        g.insert("name".into(), vg.clone().into());
        g.insert("type".into(), "lvm_volgroup".into());
        let mut devs: Vec<String> = pvs.iter().map(|(id, _)| id.clone()).collect();
        devs.sort();
        g.insert("devices".into(), seq(devs));
        lvm.push(g);
        let lv_id = format!("{vg}-{lv}");
        let mut l = Mapping::new();
        l.insert("id".into(), lv_id.clone().into());
        l.insert("name".into(), lv.into());
        l.insert("type".into(), "lvm_partition".into());
        l.insert("volgroup".into(), vg.into());
        l.insert("size".into(), bytes(lv_size));
        lvm.push(l);
        add_fs(
            &lv_id,
            &fs("ext4", "root", "/").unwrap(),
            &mut layers,
            &mut formats,
            &mut mounts,
        );
    }

    // The custom layout's arrays.
    let mut raids = Vec::new();
    for r in &m.raids {
        let mut active = of(&Role::Raid(r.name.clone(), false));
        let mut spares = of(&Role::Raid(r.name.clone(), true));
        active.sort();
        spares.sort();
        let mut x = Mapping::new();
        x.insert("id".into(), r.name.clone().into());
        x.insert("name".into(), r.name.clone().into());
        x.insert("type".into(), "raid".into());
        x.insert("raidlevel".into(), r.level.into());
        x.insert("devices".into(), seq(active));
        x.insert("spare_devices".into(), seq(spares));
        raids.push(x);
        if let Some(t) = &r.fstype {
            let f = Fs {
                fstype: t.clone(),
                label: r.label.clone(),
                mount: r.mount.clone(),
                options: r.mount_options.clone(),
                encrypt: r.encrypt.clone(),
            };
            add_fs(&r.name, &f, &mut layers, &mut formats, &mut mounts);
        }
    }

    // The bcache layout's device, with the root on it.
    let mut bcaches = Vec::new();
    if let (Some(backing), Some(cache)) = (of(&Role::Backing).pop(), of(&Role::Cache).pop()) {
        let mut b = Mapping::new();
        b.insert("id".into(), "bcache0".into());
        b.insert("name".into(), "bcache0".into());
        b.insert("type".into(), "bcache".into());
        b.insert("backing_device".into(), backing.into());
        b.insert("cache_device".into(), cache.into());
        b.insert(
            "cache_mode".into(),
            m.cache_mode
                .clone()
                .unwrap_or_else(|| "writethrough".into())
                .into(),
        );
        bcaches.push(b);
        add_fs(
            "bcache0",
            &fs("ext4", "root", "/").unwrap(),
            &mut layers,
            &mut formats,
            &mut mounts,
        );
    }

    // The VMFS layouts' datastore (one item type for both, as MAAS).
    let mut vmfs = Vec::new();
    if let Some(part) = of(&Role::Vmfs).pop() {
        let mut v = Mapping::new();
        v.insert("id".into(), "datastore1".into());
        v.insert("name".into(), "datastore1".into());
        v.insert("type".into(), "vmfs6".into());
        v.insert("devices".into(), seq(vec![part]));
        vmfs.push(v);
    }

    items.extend(lvm);
    items.extend(raids);
    items.extend(bcaches);
    items.extend(vmfs);
    items.extend(partitions);
    items.extend(layers);
    items.extend(formats);
    order_dependencies(&mut items);
    mounts.sort_by(|a, b| a.0.cmp(&b.0));
    items.extend(mounts.into_iter().map(|(_, m)| m));

    let mut storage = Mapping::new();
    storage.insert("version".into(), 1.into());
    storage.insert(
        "config".into(),
        Value::Sequence(items.into_iter().map(Value::Mapping).collect()),
    );
    let mut out = Mapping::new();
    out.insert(
        "partitioning_commands".into(),
        builtin(&["curtin", "block-meta", "custom"]),
    );
    out.insert("storage".into(), Value::Mapping(storage));
    Ok(Value::Mapping(out))
}

/// MAAS's `_find_grub_devices`: every disk of an array that has a member on the boot disk,
/// else the boot disk alone.
fn grub_disks(m: &Machine, boot: usize, wants: &[Want]) -> Vec<bool> {
    let mut grub = vec![false; m.disks.len()];
    grub[boot] = true;
    for r in &m.raids {
        let member_disks: Vec<usize> = wants
            .iter()
            .filter(|w| matches!(&w.role, Role::Raid(n, _) if *n == r.name))
            .map(|w| w.disk)
            .collect();
        if member_disks.contains(&boot) {
            for d in member_disks {
                grub[d] = true;
            }
        }
    }
    grub
}

/// The bcache layout's cache disk: the one named, else the smallest other disk tagged ssd.
fn cache_disk(m: &Machine, boot: usize) -> Option<usize> {
    if let Some(name) = &m.cache_device {
        return m.disks.iter().position(|d| &d.name == name);
    }
    m.disks
        .iter()
        .enumerate()
        .filter(|(i, d)| *i != boot && d.ssd)
        .min_by_key(|(_, d)| d.size)
        .map(|(i, _)| i)
}

pub fn builtin(cmd: &[&str]) -> Value {
    let mut m = Mapping::new();
    m.insert("builtin".into(), seq(cmd.iter().map(|s| s.to_string())));
    Value::Mapping(m)
}

fn disk_item(d: &Disk, ptable: Option<PtableKind>, grub: bool) -> Mapping {
    let mut m = Mapping::new();
    m.insert("id".into(), d.name.clone().into());
    m.insert("name".into(), d.name.clone().into());
    m.insert("type".into(), "disk".into());
    m.insert("wipe".into(), "superblock".into());
    if let Some(p) = ptable {
        m.insert("ptable".into(), p.as_str().into());
    }
    if let Some(model) = &d.model {
        m.insert("model".into(), model.clone().into());
    }
    if let Some(serial) = &d.serial {
        m.insert("serial".into(), serial.clone().into());
    }
    if let Some(wwn) = &d.wwn {
        m.insert("wwn".into(), wwn.clone().into());
    }
    // MAAS uses the path only when it cannot match by serial.
    if let (Some(path), None) = (&d.path, &d.serial) {
        m.insert("path".into(), path.clone().into());
    }
    if grub {
        m.insert("grub_device".into(), true.into());
    }
    m
}

fn add_fs(
    vol: &str,
    f: &Fs,
    layers: &mut Vec<Mapping>,
    formats: &mut Vec<Mapping>,
    mounts: &mut Vec<(String, Mapping)>,
) {
    // Encrypted: the file system goes on the dm_crypt volume.
    let vol = match &f.encrypt {
        Some(e) => {
            let id = format!("{vol}-crypt");
            let mut c = Mapping::new();
            c.insert("id".into(), id.clone().into());
            c.insert("type".into(), "dm_crypt".into());
            c.insert("volume".into(), vol.into());
            c.insert("dm_name".into(), id.clone().into());
            if let Some(k) = &e.key {
                c.insert("key".into(), k.clone().into());
            }
            if let Some(k) = &e.keyfile {
                let mut kf = Mapping::new();
                kf.insert("path".into(), k.path.clone().into());
                kf.insert("content".into(), k.content.clone().into());
                c.insert("keyfile".into(), Value::Mapping(kf));
            }
            layers.push(c);
            id
        }
        None => vol.to_string(),
    };
    let vol = vol.as_str();
    let mut fm = Mapping::new();
    fm.insert("id".into(), format!("{vol}_format").into());
    fm.insert("type".into(), "format".into());
    fm.insert("fstype".into(), f.fstype.clone().into());
    if let Some(l) = &f.label {
        fm.insert("label".into(), l.clone().into());
    }
    fm.insert("volume".into(), vol.into());
    formats.push(fm);
    let swap = f.fstype == "swap";
    if f.mount.is_some() || swap {
        let mut mm = Mapping::new();
        mm.insert("id".into(), format!("{vol}_mount").into());
        mm.insert("type".into(), "mount".into());
        mm.insert("device".into(), format!("{vol}_format").into());
        // Swap takes no mount point (MAAS's `uses_mount_point`).
        if let (Some(p), false) = (&f.mount, swap) {
            mm.insert("path".into(), p.clone().into());
        }
        if let Some(o) = &f.options {
            mm.insert("options".into(), o.clone().into());
        }
        let key = if swap {
            "none".to_string()
        } else {
            f.mount.clone().unwrap_or_default()
        };
        mounts.push((key, mm));
    }
}

/// Move each item right after the first dependency that is not above it, until none is.
fn order_dependencies(items: &mut Vec<Mapping>) {
    let deps = |m: &Mapping| -> Vec<String> {
        let mut out = Vec::new();
        for key in [
            "device",
            "volume",
            "volgroup",
            "backing_device",
            "cache_device",
        ] {
            if let Some(Value::String(s)) = m.get(key) {
                out.push(s.clone());
            }
        }
        for key in ["devices", "spare_devices"] {
            if let Some(Value::Sequence(devs)) = m.get(key) {
                out.extend(devs.iter().filter_map(|v| v.as_str().map(String::from)));
            }
        }
        out
    };
    let id = |m: &Mapping| {
        m.get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    // Each move puts an item after one more of its dependencies; bounded for safety.
    for _ in 0..items.len() * items.len() + 1 {
        let mut above: Vec<String> = Vec::new();
        let mut moved = false;
        for idx in 0..items.len() {
            let missing = deps(&items[idx]).into_iter().find(|d| !above.contains(d));
            if let Some(dep) = missing {
                if let Some(target) = items.iter().position(|m| id(m) == dep) {
                    let item = items.remove(idx);
                    let target = items.iter().position(|m| id(m) == dep).unwrap_or(target);
                    items.insert(target + 1, item);
                    moved = true;
                    break;
                }
            }
            above.push(id(&items[idx]));
        }
        if !moved {
            return;
        }
    }
}

fn check_disks(m: &Machine) -> Result<(), GenError> {
    if m.disks.is_empty() {
        return Err(GenError::new("disks", "a machine needs at least one disk"));
    }
    if m.disks.iter().filter(|d| d.boot).count() > 1 {
        return Err(GenError::new("disks", "only one disk may have boot: true"));
    }
    for (i, d) in m.disks.iter().enumerate() {
        let key = format!("disks[{i}]");
        if d.name.is_empty() || d.name.contains('/') || d.name.contains(char::is_whitespace) {
            return Err(GenError::new(
                &format!("{key}.name"),
                format!("{:?} is not a disk name", d.name),
            ));
        }
        if m.disks[..i].iter().any(|o| o.name == d.name) {
            return Err(GenError::new(
                &format!("{key}.name"),
                format!("disk {} is listed twice", d.name),
            ));
        }
        if d.serial.is_none() && d.path.is_none() && d.wwn.is_none() {
            return Err(GenError::new(
                &key,
                format!(
                    "disk {} needs a serial, wwn or path so the agent can find it",
                    d.name
                ),
            ));
        }
        if d.serial.is_some()
            && m.disks[..i]
                .iter()
                .any(|o| o.serial == d.serial && o.model == d.model)
        {
            return Err(GenError::new(
                &format!("{key}.serial"),
                format!(
                    "disks {} and {} have the same model/serial; curtin cannot distinguish between them",
                    m.disks.iter().find(|o| o.serial == d.serial).map(|o| o.name.as_str()).unwrap_or(""),
                    d.name
                ),
            ));
        }
        if ![512, 4096].contains(&d.block_size) {
            return Err(GenError::new(
                &format!("{key}.block_size"),
                format!("{} is not a logical block size (512 or 4096)", d.block_size),
            ));
        }
        if d.size < TABLE_OVERHEAD + ALIGN {
            return Err(GenError::new(
                &format!("{key}.size"),
                format!("{} bytes is too small for a disk", d.size),
            ));
        }
    }
    Ok(())
}

/// VMFS6: ESXi 6's fixed partitions (number, size, bootable); 0 is the datastore (the rest).
const VMFS6: &[(u64, u64, bool)] = &[
    (1, 3 * MIB, true),
    (2, 4 << 30, false),
    (3, 0, false),
    (5, 249 * MIB, false),
    (6, 249 * MIB, false),
    (7, 109 * MIB, false),
    (8, 285 * MIB, false),
    (9, 2560 * MIB, false),
];
/// VMFS7: ESXi 7's (1, 5, 6, the VMFSL 7, the datastore 8).
const VMFS7: &[(u64, u64, bool)] = &[
    (1, 100 * MIB, true),
    (5, 4095 * MIB, false),
    (6, 4095 * MIB, false),
    (7, 25662832128, false),
    (8, 0, false),
];

/// The partitions a layout asks for (`create_basic_layout` and friends).
fn layout_wants(m: &Machine, boot: usize) -> Result<Vec<Want>, GenError> {
    let uefi = m.boot_mode == BootMode::Uefi;
    let boot_gpt = m.disks[boot].ptable != Some(PtableKind::Msdos);
    let mut wants = Vec::new();
    let custom_only = |what: &str, set: bool| -> Result<(), GenError> {
        if set && m.layout != Layout::Custom {
            return Err(GenError::new(what, "only used with layout: custom"));
        }
        Ok(())
    };
    custom_only("partitions", !m.partitions.is_empty())?;
    custom_only("raids", !m.raids.is_empty())?;
    let bcache_keys = [
        ("cache_device", m.cache_device.is_some()),
        ("cache_mode", m.cache_mode.is_some()),
        ("cache_size", m.cache_size.is_some()),
        ("cache_no_part", m.cache_no_part),
    ];
    for (key, set) in bcache_keys {
        if set && m.layout != Layout::Bcache {
            return Err(GenError::new(key, "only used with layout: bcache"));
        }
    }
    // bcache without a cache disk is the flat layout (MAAS's fallback).
    let cache = match m.layout {
        Layout::Bcache => {
            if let Some(name) = &m.cache_device {
                let c = cache_disk(m, boot).ok_or_else(|| {
                    GenError::new("cache_device", format!("no disk named {name:?}"))
                })?;
                if c == boot {
                    return Err(GenError::new(
                        "cache_device",
                        "the cache cannot be the boot disk",
                    ));
                }
            }
            if let Some(mode) = &m.cache_mode {
                if !["writethrough", "writeback", "writearound"].contains(&mode.as_str()) {
                    return Err(GenError::new(
                        "cache_mode",
                        format!("{mode:?}: expected writethrough, writeback or writearound"),
                    ));
                }
            }
            if m.cache_size.is_some() && m.cache_no_part {
                return Err(GenError::new(
                    "cache_size",
                    "Cannot use cache_size and cache_no_part at the same time.",
                ));
            }
            cache_disk(m, boot)
        }
        _ => None,
    };
    match m.layout {
        Layout::Blank => {}
        Layout::Vmfs6 | Layout::Vmfs7 => {
            let (table, min) = if m.layout == Layout::Vmfs6 {
                (VMFS6, 10u64 << 30)
            } else {
                (VMFS7, 32u64 << 30)
            };
            if m.disks[boot].size < min {
                return Err(GenError::new(
                    &format!("disks[{boot}].size"),
                    format!("Boot disk must be at least {}Gb.", min >> 30),
                ));
            }
            for &(number, size, bootable) in table {
                let datastore = size == 0;
                let mut w = Want::new(
                    boot,
                    if datastore { m.root_size } else { Some(size) },
                    "layout",
                    None,
                    if datastore { Role::Vmfs } else { Role::Plain },
                );
                w.number = Some(number);
                w.exact = !datastore;
                w.bootable = bootable;
                wants.push(w);
            }
        }
        Layout::Flat | Layout::Lvm | Layout::Bcache => {
            if uefi && boot_gpt && m.arch() != "ppc64el" {
                wants.push(
                    Want::new(
                        boot,
                        Some(EFI_SIZE),
                        "layout",
                        fs("fat32", "efi", "/boot/efi"),
                        Role::Plain,
                    )
                    .bootable(),
                );
            }
            let boot_size = match m.boot_size {
                None if m.layout == Layout::Bcache && cache.is_some() => Some(1 << 30),
                None if !uefi && m.arch() == "arm64" => Some(MIN_BOOT_SIZE),
                s => s,
            };
            if let Some(s) = boot_size {
                if s < MIN_BOOT_SIZE {
                    return Err(GenError::new("boot_size", "must be at least 512 MiB"));
                }
                wants.push(
                    Want::new(
                        boot,
                        Some(s),
                        "boot_size",
                        fs("ext4", "boot", "/boot"),
                        Role::Plain,
                    )
                    .bootable(),
                );
            }
            if let Some(s) = m.root_size {
                if s < MIN_ROOT_SIZE {
                    return Err(GenError::new("root_size", "must be at least 3 GiB"));
                }
            }
            let (root_fs, role) = match m.layout {
                Layout::Lvm => (None, Role::Pv),
                Layout::Bcache if cache.is_some() => (None, Role::Backing),
                _ => (fs("ext4", "root", "/"), Role::Plain),
            };
            wants.push(Want::new(boot, m.root_size, "root_size", root_fs, role));
            // Root must get at least 3 GiB of what is left.
            let d = &m.disks[boot];
            let overhead = TABLE_OVERHEAD
                + match m.arch() {
                    "amd64" if !uefi && boot_gpt => BIOS_GRUB_SIZE,
                    "ppc64el" => PREP_SIZE,
                    _ => 0,
                };
            let fixed: u64 = wants.iter().filter_map(|w| w.size.map(align_down)).sum();
            if m.root_size.is_none()
                && align_down(d.size.saturating_sub(overhead)).saturating_sub(fixed) < MIN_ROOT_SIZE
            {
                return Err(GenError::new(
                    &format!("disks[{boot}].size"),
                    format!(
                        "boot disk {} is too small for the {:?} layout (root needs 3 GiB)",
                        d.name, m.layout
                    ),
                ));
            }
            if let (Some(c), false) = (cache, m.cache_no_part) {
                wants.push(Want::new(c, m.cache_size, "cache_size", None, Role::Cache));
            }
        }
        Layout::Custom => {
            if m.partitions.is_empty() {
                return Err(GenError::new(
                    "partitions",
                    "layout: custom needs a partitions list",
                ));
            }
            for (i, p) in m.partitions.iter().enumerate() {
                wants.push(custom_want(m, i, p)?);
            }
            check_raids(m, &wants)?;
        }
    }
    if m.layout != Layout::Lvm {
        for key in ["vg_name", "lv_name", "lv_size"] {
            let set = match key {
                "vg_name" => m.vg_name.is_some(),
                "lv_name" => m.lv_name.is_some(),
                _ => m.lv_size.is_some(),
            };
            if set {
                return Err(GenError::new(key, "only used with layout: lvm"));
            }
        }
    }
    Ok(wants)
}

/// Each array is named once, has a known level and enough members, and is used.
fn check_raids(m: &Machine, wants: &[Want]) -> Result<(), GenError> {
    for (i, r) in m.raids.iter().enumerate() {
        let key = format!("raids[{i}]");
        if m.raids[..i].iter().any(|o| o.name == r.name) {
            return Err(GenError::new(
                &format!("{key}.name"),
                format!("array {} is listed twice", r.name),
            ));
        }
        let min = match r.level {
            0 | 1 => 2,
            5 => 3,
            6 | 10 => 4,
            l => {
                return Err(GenError::new(
                    &format!("{key}.level"),
                    format!("raid level {l} is not one of 0, 1, 5, 6, 10"),
                ))
            }
        };
        let members = wants
            .iter()
            .filter(|w| matches!(&w.role, Role::Raid(n, false) if *n == r.name))
            .count();
        if members < min {
            return Err(GenError::new(
                &format!("{key}.name"),
                format!(
                    "raid {} level {} needs at least {min} partitions with `raid: {}`, got {members}",
                    r.name, r.level, r.name
                ),
            ));
        }
        check_mount(
            &format!("{key}.mount"),
            r.fstype.as_deref(),
            r.mount.as_deref(),
        )?;
    }
    for (i, p) in m.partitions.iter().enumerate() {
        if let Some(name) = &p.raid {
            if !m.raids.iter().any(|r| &r.name == name) {
                return Err(GenError::new(
                    &format!("partitions[{i}].raid"),
                    format!("no array named {name:?} in raids"),
                ));
            }
        }
    }
    // One mount point once, whether on a partition or an array.
    let mut seen: Vec<&str> = Vec::new();
    let points = m
        .partitions
        .iter()
        .filter_map(|p| p.mount.as_deref())
        .chain(m.raids.iter().filter_map(|r| r.mount.as_deref()));
    for mp in points {
        if seen.contains(&mp) {
            return Err(GenError::new("raids", format!("{mp} is mounted twice")));
        }
        seen.push(mp);
    }
    Ok(())
}

const FSTYPES: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "fat12", "fat16", "fat32", "swap",
];

/// An fstype is known, and a mount point has one and is absolute.
fn check_mount(key: &str, fstype: Option<&str>, mount: Option<&str>) -> Result<(), GenError> {
    match (fstype, mount) {
        (Some(t), _) if !FSTYPES.contains(&t) => Err(GenError::new(
            &key.replace(".mount", ".fstype"),
            format!(
                "unknown fstype {t:?}; expected one of {}",
                FSTYPES.join(", ")
            ),
        )),
        (None, Some(_)) => Err(GenError::new(key, "a mount needs an fstype")),
        (_, Some(mp)) if !mp.starts_with('/') => Err(GenError::new(
            key,
            format!("{mp:?} is not an absolute path"),
        )),
        _ => Ok(()),
    }
}

fn custom_want(m: &Machine, i: usize, p: &CustomPartition) -> Result<Want, GenError> {
    let key = format!("partitions[{i}]");
    let disk = m
        .disks
        .iter()
        .position(|d| d.name == p.disk)
        .ok_or_else(|| {
            GenError::new(
                &format!("{key}.disk"),
                format!("no disk named {:?}", p.disk),
            )
        })?;
    check_mount(
        &format!("{key}.mount"),
        p.fstype.as_deref(),
        p.mount.as_deref(),
    )?;
    if let Some(mp) = &p.mount {
        if m.partitions[..i]
            .iter()
            .any(|o| o.mount.as_deref() == Some(mp))
        {
            return Err(GenError::new(
                &format!("{key}.mount"),
                format!("{mp} is mounted twice"),
            ));
        }
    }
    let role = match &p.raid {
        Some(name) => {
            if p.fstype.is_some() || p.encrypt.is_some() {
                return Err(GenError::new(
                    &format!("{key}.raid"),
                    "a raid member has no fstype or encrypt of its own (give them to the array)",
                ));
            }
            Role::Raid(name.clone(), p.spare)
        }
        None if p.spare => {
            return Err(GenError::new(
                &format!("{key}.spare"),
                "only used with `raid`",
            ))
        }
        None => Role::Plain,
    };
    if p.encrypt
        .as_ref()
        .is_some_and(|e| e.key.is_some() == e.keyfile.is_some())
    {
        return Err(GenError::new(
            &format!("{key}.encrypt"),
            "needs exactly one of key or keyfile",
        ));
    }
    let fs = p.fstype.as_ref().map(|t| Fs {
        fstype: t.clone(),
        label: p.label.clone(),
        mount: p.mount.clone(),
        options: p.mount_options.clone(),
        encrypt: p.encrypt.clone(),
    });
    let mut w = Want::new(disk, p.size, &format!("{key}.size"), fs, role);
    w.bootable = p.bootable;
    Ok(w)
}
