//! Storage config v1 the way MAAS's `CurtinStorageGenerator` writes it (maas-preseed.md §4):
//! disks (with a generated bios_grub partition on BIOS+GPT amd64), volume groups, logical
//! volumes, partitions, formats, reordered so that every dependency comes first, then mounts
//! sorted by path. Sizes are bytes with a `B` suffix, rounded down to 4 MiB.

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
    /// Becomes a physical volume of the layout's volume group.
    pv: bool,
}

struct Fs {
    fstype: String,
    label: Option<String>,
    mount: Option<String>,
    options: Option<String>,
}

fn fs(fstype: &str, label: &str, mount: &str) -> Option<Fs> {
    Some(Fs {
        fstype: fstype.into(),
        label: Some(label.into()),
        mount: Some(mount.into()),
        options: None,
    })
}

/// The `partitioning_commands` + `storage` fragment.
pub fn generate(m: &Machine) -> Result<Value, GenError> {
    check_disks(m)?;
    let arch = m.arch();
    let boot_idx = m.disks.iter().position(|d| d.boot).unwrap_or(0);
    let uefi = m.boot_mode == BootMode::Uefi;

    let wants = layout_wants(m, boot_idx)?;

    // Partition tables: the disk's own choice, GPT for any disk that gets partitions or grub.
    let ptables: Vec<Option<PtableKind>> = m
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.ptable.or_else(|| {
                let used = wants.iter().any(|w| w.disk == i);
                if used || i == boot_idx {
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
        .map(|p| *p == Some(PtableKind::Gpt) && arch == "amd64" && !uefi)
        .collect();

    // ppc64el: grub goes into a PReP partition on the boot disk, not the disk's header.
    let prep: Vec<bool> = (0..m.disks.len())
        .map(|i| arch == "ppc64el" && i == boot_idx && ptables[i].is_some())
        .collect();

    let mut items: Vec<Mapping> = Vec::new();
    for (i, d) in m.disks.iter().enumerate() {
        items.push(disk_item(d, ptables[i], i == boot_idx && !prep[i]));
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

    // Number and size the partitions, per disk.
    let mut partitions = Vec::new();
    let mut formats = Vec::new();
    let mut mounts: Vec<(String, Mapping)> = Vec::new();
    let mut pvs: Vec<(String, u64)> = Vec::new();
    for (i, d) in m.disks.iter().enumerate() {
        let mine: Vec<&Want> = wants.iter().filter(|w| w.disk == i).collect();
        if mine.is_empty() {
            continue;
        }
        let overhead = TABLE_OVERHEAD
            + if bios_grub[i] { BIOS_GRUB_SIZE } else { 0 }
            + if prep[i] { PREP_SIZE } else { 0 };
        let available = align_down(d.size.saturating_sub(overhead));
        let fixed: u64 = mine.iter().filter_map(|w| w.size.map(align_down)).sum();
        if mine.iter().filter(|w| w.size.is_none()).count() > 1 {
            return Err(GenError::new(
                "partitions",
                format!(
                    "disk {}: only one partition may take the rest of the disk (no size)",
                    d.name
                ),
            ));
        }
        if fixed > available {
            return Err(GenError::new(
                &mine.last().map(|w| w.origin.clone()).unwrap_or_default(),
                format!(
                    "the partitions on disk {} need {fixed} bytes but only {available} are available",
                    d.name
                ),
            ));
        }
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
            let number = first_number + k as u64;
            let size = match w.size {
                Some(s) => align_down(s),
                None => available - fixed,
            };
            if size < ALIGN {
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
            if w.pv {
                pvs.push((id.clone(), size));
            }
            if let Some(f) = &w.fs {
                add_fs(&id, f, &mut formats, &mut mounts);
            }
        }
    }

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
            &mut formats,
            &mut mounts,
        );
    }

    items.extend(lvm);
    items.extend(partitions);
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

fn add_fs(vol: &str, f: &Fs, formats: &mut Vec<Mapping>, mounts: &mut Vec<(String, Mapping)>) {
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
        for key in ["device", "volume", "volgroup"] {
            if let Some(Value::String(s)) = m.get(key) {
                out.push(s.clone());
            }
        }
        if let Some(Value::Sequence(devs)) = m.get("devices") {
            out.extend(devs.iter().filter_map(|v| v.as_str().map(String::from)));
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

/// The partitions a layout asks for (`create_basic_layout` and friends).
fn layout_wants(m: &Machine, boot: usize) -> Result<Vec<Want>, GenError> {
    let uefi = m.boot_mode == BootMode::Uefi;
    let boot_gpt = m.disks[boot].ptable != Some(PtableKind::Msdos);
    let mut wants = Vec::new();
    match m.layout {
        Layout::Blank => {
            if !m.partitions.is_empty() {
                return Err(GenError::new("partitions", "only used with layout: custom"));
            }
        }
        Layout::Flat | Layout::Lvm => {
            if !m.partitions.is_empty() {
                return Err(GenError::new("partitions", "only used with layout: custom"));
            }
            if uefi && boot_gpt && m.arch() != "ppc64el" {
                wants.push(Want {
                    disk: boot,
                    size: Some(EFI_SIZE),
                    origin: "layout".into(),
                    bootable: true,
                    fs: fs("fat32", "efi", "/boot/efi"),
                    pv: false,
                });
            }
            let boot_size = match m.boot_size {
                None if !uefi && m.arch() == "arm64" => Some(MIN_BOOT_SIZE),
                s => s,
            };
            if let Some(s) = boot_size {
                if s < MIN_BOOT_SIZE {
                    return Err(GenError::new("boot_size", "must be at least 512 MiB"));
                }
                wants.push(Want {
                    disk: boot,
                    size: Some(s),
                    origin: "boot_size".into(),
                    bootable: true,
                    fs: fs("ext4", "boot", "/boot"),
                    pv: false,
                });
            }
            if let Some(s) = m.root_size {
                if s < MIN_ROOT_SIZE {
                    return Err(GenError::new("root_size", "must be at least 3 GiB"));
                }
            }
            let lvm = m.layout == Layout::Lvm;
            wants.push(Want {
                disk: boot,
                size: m.root_size,
                origin: "root_size".into(),
                bootable: false,
                fs: if lvm { None } else { fs("ext4", "root", "/") },
                pv: lvm,
            });
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
    const FSTYPES: &[&str] = &[
        "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "fat12", "fat16", "fat32", "swap",
    ];
    let fs = match &p.fstype {
        Some(t) if !FSTYPES.contains(&t.as_str()) => {
            return Err(GenError::new(
                &format!("{key}.fstype"),
                format!(
                    "unknown fstype {t:?}; expected one of {}",
                    FSTYPES.join(", ")
                ),
            ))
        }
        Some(t) => {
            if let Some(mp) = &p.mount {
                if !mp.starts_with('/') {
                    return Err(GenError::new(
                        &format!("{key}.mount"),
                        format!("{mp:?} is not an absolute path"),
                    ));
                }
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
            Some(Fs {
                fstype: t.clone(),
                label: p.label.clone(),
                mount: p.mount.clone(),
                options: p.mount_options.clone(),
            })
        }
        None => {
            if p.mount.is_some() {
                return Err(GenError::new(
                    &format!("{key}.mount"),
                    "a mount needs an fstype",
                ));
            }
            None
        }
    };
    Ok(Want {
        disk,
        size: p.size,
        origin: format!("{key}.size"),
        bootable: p.bootable,
        fs,
        pv: false,
    })
}
