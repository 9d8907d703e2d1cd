//! Partition placement, the one geometry (install and `deployer plan` both use [`place`]), and
//! writing the table: GPT with gptman, msdos with mbrman.
//!
//! Placement follows curtin, in the disk's logical sectors. Version 1 (`partition_handler`):
//! the first partition at 1 MiB, each later one right where the previous one ends; the first
//! logical partition one MiB into the extended one, later ones one MiB after the previous end
//! (room for each EBR), and the extended partition grows by 1 MiB per logical partition so they
//! fit; `offset` is ignored. Version 2 (sfdisk): `offset` is honoured, a partition without one
//! starts at the next MiB boundary, and the extended partition keeps its size. A last partition
//! without a size takes the rest. Everything is checked before anything is written.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::config::{Flag, Partition, Ptable};
use super::disk::FoundDisk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Primary,
    Extended,
    Logical,
}

/// A partition with its place on the disk.
#[derive(Debug, Clone)]
pub struct Placed {
    pub id: String,
    pub number: u32,
    /// First sector (logical sectors of the disk).
    pub start: u64,
    /// Length in sectors.
    pub len: u64,
    pub flag: Option<Flag>,
    pub kind: Kind,
    pub preserve: bool,
    pub name: Option<String>,
    /// Storage v2's `partition_type`: a GPT type GUID or an msdos type byte (`83`, `0x83`).
    pub type_code: Option<String>,
    /// Storage v2's `uuid`: the GPT partition's own GUID.
    pub uuid: Option<String>,
    /// Storage v2's `attrs` as GPT attribute bits.
    pub attrs: u64,
}

impl Placed {
    pub fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// GPT: the entry array is 16 KiB; MBR: nothing but sector 0.
pub fn usable(disk: &FoundDisk, ptable: Ptable) -> (u64, u64) {
    let total = disk.size / disk.sector;
    match ptable {
        Ptable::Gpt => {
            let array = 16384u64.div_ceil(disk.sector);
            (2 + array, total - 2 - array)
        }
        _ => (1, total.min(u32::MAX as u64) - 1),
    }
}

/// A partition that does not fit the disk (the plan says so instead of failing), and the
/// partitions placed before it (the plan shows where the room went).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DoesNotFit {
    pub message: String,
    pub placed: Vec<Placed>,
}

/// Place every partition of one disk, in config order, or say exactly what does not fit.
pub fn place(
    disk: &FoundDisk,
    disk_id: &str,
    ptable: Ptable,
    parts: &[&Partition],
    version: u32,
) -> Result<Vec<Placed>> {
    let lbs = disk.sector;
    let align = (1u64 << 20) / lbs;
    let (first_usable, last_usable) = usable(disk, ptable);
    let logical_count = parts
        .iter()
        .filter(|p| p.flag == Some(Flag::Logical))
        .count() as u64;
    let align_up = |s: u64| {
        if version >= 2 {
            s.div_ceil(align) * align
        } else {
            s
        }
    };
    let mut out: Vec<Placed> = Vec::new();
    let mut primaries = 0u32;
    let mut logicals = 0u32;
    for (i, p) in parts.iter().enumerate() {
        let kind = match p.flag {
            Some(Flag::Extended) => Kind::Extended,
            Some(Flag::Logical) => Kind::Logical,
            _ => Kind::Primary,
        };
        if ptable == Ptable::Gpt && kind != Kind::Primary {
            bail!(
                "partition '{}': extended/logical partitions need ptable msdos",
                p.id
            );
        }
        if ptable == Ptable::Msdos && p.flag == Some(Flag::Prep) {
            bail!(
                "partition '{}': PReP partitions require a GPT partition table",
                p.id
            );
        }
        let number = match p.number {
            Some(n) => n,
            None if kind == Kind::Logical => 5 + logicals,
            None => primaries + logicals + 1,
        };
        match kind {
            Kind::Logical => logicals += 1,
            _ => primaries += 1,
        }
        let extended = out.iter().find(|q| q.kind == Kind::Extended).cloned();
        // Bytes that are not whole sectors round down, as curtin's `bytes // sector_bytes`.
        let start = if let Some(off) = p.offset.filter(|_| version >= 2) {
            off / lbs
        } else if kind == Kind::Logical {
            let ext = extended.as_ref().with_context(|| {
                format!(
                    "partition '{}': a logical partition needs an extended partition before it",
                    p.id
                )
            })?;
            let prev_logical = out.iter().rev().find(|q| q.kind == Kind::Logical);
            align_up(prev_logical.map(|q| q.end()).unwrap_or(ext.start) + align)
        } else {
            // After logical partitions this is the extended one: the next primary goes past it.
            match out.iter().rev().find(|q| q.kind != Kind::Logical) {
                Some(prev) => align_up(prev.end()),
                None => align,
            }
        };
        let limit = match (kind, &extended) {
            (Kind::Logical, Some(ext)) => ext.end() - 1,
            _ => last_usable,
        };
        let len = if p.size == 0 {
            if i + 1 != parts.len() && kind != Kind::Extended {
                bail!(
                    "partition '{}': no size, and it is not the last partition of disk '{disk_id}'",
                    p.id
                );
            }
            (limit + 1).saturating_sub(start)
        } else if kind == Kind::Extended && version < 2 {
            // curtin v1: room for the EBR in front of each logical partition.
            p.size / lbs + logical_count * align
        } else {
            p.size / lbs
        };
        if len == 0 || start < first_usable || start + len - 1 > limit {
            return Err(DoesNotFit {
                message: format!(
                    "partition '{}' does not fit on disk '{disk_id}' ({}): it would span bytes {}..{} but the usable area is {}..{} ({} bytes in {lbs}-byte sectors)",
                    p.id,
                    disk.path.display(),
                    start * lbs,
                    (start + len) * lbs,
                    first_usable * lbs,
                    (limit + 1) * lbs,
                    disk.size
                ),
                placed: out,
            }
            .into());
        }
        if let Some(q) = out.iter().find(|q| q.number == number) {
            bail!(
                "partition '{}': number {number} is already used by '{}'",
                p.id,
                q.id
            );
        }
        let overlaps = out.iter().find(|q| {
            let same_space = (q.kind == Kind::Logical) == (kind == Kind::Logical);
            same_space && start < q.end() && q.start < start + len
        });
        if let Some(q) = overlaps {
            bail!("partition '{}' overlaps partition '{}'", p.id, q.id);
        }
        if kind != Kind::Logical && number > 4 && ptable == Ptable::Msdos {
            bail!(
                "partition '{}': msdos primary/extended partitions are numbered 1-4",
                p.id
            );
        }
        out.push(Placed {
            id: p.id.clone(),
            number,
            start,
            len,
            flag: p.flag,
            kind,
            preserve: p.preserve,
            name: p.name.clone(),
            type_code: None,
            uuid: None,
            attrs: 0,
        });
    }
    Ok(out)
}

/// curtin's sgdisk type codes, as GPT type GUIDs.
pub fn gpt_type(flag: Option<Flag>) -> (&'static str, &'static str) {
    match flag {
        Some(Flag::BiosGrub) => ("ef02", "21686148-6449-6E6F-744E-656564454649"),
        Some(Flag::Boot) => ("ef00", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        Some(Flag::Prep) => ("4100", "9E1A2D38-C612-4316-AA26-8B49521E5A8B"),
        Some(Flag::Swap) => ("8200", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
        Some(Flag::Lvm) => ("8e00", "E6D6D379-F507-44C2-A23C-238F2A3DF928"),
        Some(Flag::Raid) => ("fd00", "A19D880F-05FC-4D3B-A006-743F0F84911E"),
        Some(Flag::Msftres) => ("0c01", "E3C9E316-0B5C-4DB8-817D-F92DF00215AE"),
        Some(Flag::Home) => ("8302", "933AC7E1-2EB4-4F13-B844-0E14E2AEF915"),
        _ => ("8300", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
    }
}

/// MBR system id and boot flag, as curtin's parted calls leave them: 0x83 for everything but
/// extended (0x05) and swap (0x82) — `lvm` and `raid` partitions too.
pub fn mbr_type(flag: Option<Flag>) -> (u8, bool) {
    let sys = match flag {
        Some(Flag::Extended) => 0x05,
        Some(Flag::Swap) => 0x82,
        _ => 0x83,
    };
    (sys, flag == Some(Flag::Boot))
}

fn guid_le(s: &str) -> [u8; 16] {
    uuid::Uuid::parse_str(s).expect("static GUID").to_bytes_le()
}

/// A partition's GPT type GUID (upper case): its v2 `partition_type`, else from its flag.
pub fn gpt_type_of(p: &Placed) -> Result<String> {
    match &p.type_code {
        None => Ok(gpt_type(p.flag).1.to_string()),
        Some(t) => uuid::Uuid::parse_str(t)
            .map(|u| u.to_string().to_uppercase())
            .map_err(|_| {
                anyhow::anyhow!(
                    "partition '{}': partition_type {t:?} is not a GPT type GUID (the disk's table is gpt)",
                    p.id
                )
            }),
    }
}

/// A partition's msdos type byte: its v2 `partition_type` (`83`, `0x83`), else from its flag.
pub fn mbr_sys_of(p: &Placed) -> Result<u8> {
    match &p.type_code {
        None => Ok(mbr_type(p.flag).0),
        Some(t) => u8::from_str_radix(t.trim_start_matches("0x"), 16).map_err(|_| {
            anyhow::anyhow!(
                "partition '{}': partition_type {t:?} is not an msdos type byte like 83 (the disk's table is msdos)",
                p.id
            )
        }),
    }
}

/// Write a new GPT with exactly `parts` (and a protective MBR).
pub fn write_gpt(f: &mut File, disk: &FoundDisk, parts: &[Placed]) -> Result<()> {
    let mut gpt = gptman::GPT::new_from(f, disk.sector, *uuid::Uuid::new_v4().as_bytes())
        .context("creating the GPT")?;
    for p in parts {
        let unique = match &p.uuid {
            Some(u) => uuid::Uuid::parse_str(u)
                .with_context(|| format!("partition '{}': uuid {u:?} is not a GUID", p.id))?
                .to_bytes_le(),
            None => *uuid::Uuid::new_v4().as_bytes(),
        };
        gpt[p.number] = gptman::GPTPartitionEntry {
            partition_type_guid: guid_le(&gpt_type_of(p)?),
            unique_partition_guid: unique,
            starting_lba: p.start,
            ending_lba: p.end() - 1,
            attribute_bits: p.attrs,
            partition_name: p.name.as_deref().unwrap_or("").into(),
        };
    }
    gpt.write_into(f).context("writing the GPT")?;
    gptman::GPT::write_protective_mbr_into(f, disk.sector).context("writing the protective MBR")?;
    Ok(())
}

/// Write a new msdos table with exactly `parts`.
pub fn write_msdos(f: &mut File, disk: &FoundDisk, parts: &[Placed]) -> Result<()> {
    let sig = *uuid::Uuid::new_v4().as_bytes();
    let mut mbr = mbrman::MBR::new_from(f, disk.sector as u32, [sig[0], sig[1], sig[2], sig[3]])
        .context("creating the msdos table")?;
    let align = ((1u64 << 20) / disk.sector) as u32;
    mbr.align = align;
    for p in parts.iter().filter(|p| p.kind != Kind::Logical) {
        let (sys, boot) = (mbr_sys_of(p)?, mbr_type(p.flag).1);
        mbr[p.number as usize] = mbrman::MBRPartitionEntry {
            boot: if boot {
                mbrman::BOOT_ACTIVE
            } else {
                mbrman::BOOT_INACTIVE
            },
            first_chs: mbrman::CHS::empty(),
            sys,
            last_chs: mbrman::CHS::empty(),
            starting_lba: p.start as u32,
            sectors: p.len as u32,
        };
    }
    for p in parts.iter().filter(|p| p.kind == Kind::Logical) {
        let (sys, boot) = (mbr_sys_of(p)?, mbr_type(p.flag).1);
        let l = mbr
            .push(
                sys,
                (p.start - align as u64) as u32,
                (p.len + align as u64) as u32,
            )
            .with_context(|| format!("adding logical partition '{}'", p.id))?;
        if boot {
            l.partition.boot = mbrman::BOOT_ACTIVE;
        }
        // mbrman rounds the size up to the alignment; keep the exact size asked for.
        l.partition.sectors = p.len as u32;
    }
    mbr.write_into(f).context("writing the msdos table")?;
    Ok(())
}

/// The partitions of an existing table: (number, start sector, sectors, gpt type guid or mbr sys).
pub fn read_existing(
    f: &mut File,
    disk: &FoundDisk,
    ptable: Ptable,
) -> Result<Vec<(u32, u64, u64, String)>> {
    let mut out = Vec::new();
    match ptable {
        Ptable::Gpt => {
            let gpt = gptman::GPT::read_from(f, disk.sector)
                .or_else(|_| gptman::GPT::find_from(f))
                .context("reading the existing GPT")?;
            for (n, e) in gpt.iter().filter(|(_, e)| e.is_used()) {
                let ty = uuid::Uuid::from_bytes_le(e.partition_type_guid)
                    .to_string()
                    .to_uppercase();
                out.push((n, e.starting_lba, e.ending_lba - e.starting_lba + 1, ty));
            }
        }
        _ => {
            let mbr = mbrman::MBR::read_from(f, disk.sector as u32)
                .context("reading the existing msdos table")?;
            for (n, e) in mbr.iter().filter(|(_, e)| e.is_used()) {
                out.push((
                    n as u32,
                    e.starting_lba as u64,
                    e.sectors as u64,
                    format!("{:02x}", e.sys),
                ));
            }
        }
    }
    Ok(out)
}

/// `preserve: true`: the partition must exist with the same place, size and type.
pub fn verify_preserved(
    existing: &[(u32, u64, u64, String)],
    p: &Placed,
    ptable: Ptable,
    disk: &Path,
) -> Result<()> {
    let Some((_, start, len, ty)) = existing.iter().find(|e| e.0 == p.number) else {
        bail!(
            "partition '{}' (preserve: true): {} has no partition {}",
            p.id,
            disk.display(),
            p.number
        );
    };
    if *len != p.len {
        bail!(
            "partition '{}' (preserve: true): expected {} sectors, found {len}",
            p.id,
            p.len
        );
    }
    if *start != p.start {
        bail!(
            "partition '{}' (preserve: true): expected start sector {}, found {start}",
            p.id,
            p.start
        );
    }
    let want = match ptable {
        Ptable::Gpt => gpt_type_of(p)?,
        _ => format!("{:02x}", mbr_sys_of(p)?),
    };
    if *ty != want {
        bail!(
            "partition '{}' (preserve: true): expected type {want}, found {ty}",
            p.id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::config::Storage;
    use super::*;

    #[test]
    fn version_2_aligns_partitions_without_offset() {
        let storage = |v: u32| {
            preseed::load::load_documents(vec![(
                "t".into(),
                format!("storage: {{version: {v}, config: [{{id: d, type: disk, path: /x, ptable: gpt}}, {{id: a, type: partition, device: d, size: 1536K}}, {{id: b, type: partition, device: d, size: 1M}}]}}"),
            )])
            .unwrap()
            .config
            .storage
            .unwrap()
        };
        let disk = FoundDisk {
            path: "/x".into(),
            sector: 512,
            size: 64 << 20,
        };
        for (v, want) in [(1, 2048 + 3072), (2, 6144)] {
            let s = storage(v);
            let parts: Vec<&Partition> = s.partitions_of("d").collect();
            let placed = place(&disk, "d", Ptable::Gpt, &parts, v).unwrap();
            assert_eq!(placed[1].start, want, "version {v}");
        }
    }

    fn storage(yaml: &str) -> Storage {
        preseed::load::load_documents(vec![("t".into(), yaml.into())])
            .unwrap()
            .config
            .storage
            .unwrap()
    }

    fn disk(sector: u64, size: u64) -> FoundDisk {
        FoundDisk {
            path: "/x".into(),
            sector,
            size,
        }
    }

    #[test]
    fn version_1_ignores_offset_and_counts_in_logical_sectors() {
        let s = storage("storage: {version: 1, config: [{id: d, type: disk, path: /x, ptable: gpt}, {id: a, type: partition, device: d, size: 512M, flag: boot, offset: 4M}, {id: b, type: partition, device: d, size: 1G, offset: 600M}]}");
        let parts: Vec<&Partition> = s.partitions_of("d").collect();
        let l = place(&disk(512, 4 << 30), "d", Ptable::Gpt, &parts, 1).unwrap();
        assert_eq!((l[0].number, l[0].start, l[0].len), (1, 2048, 1048576));
        assert_eq!(
            (l[1].number, l[1].start, l[1].len),
            (2, 2048 + 1048576, 2097152)
        );
        let l = place(&disk(4096, 4 << 30), "d", Ptable::Gpt, &parts, 1).unwrap();
        assert_eq!((l[0].start, l[0].len), (256, 131072));
        let l = place(&disk(512, 4 << 30), "d", Ptable::Gpt, &parts, 2).unwrap();
        assert_eq!((l[0].start, l[1].start), (8192, 1228800));
    }

    #[test]
    fn version_1_extended_grows_a_mib_per_logical() {
        // The logical partitions fill the extended one exactly as its size says: curtin adds
        // 1 MiB per logical partition for the EBRs, so this fits.
        let s = storage("storage: {version: 1, config: [{id: d, type: disk, path: /x, ptable: msdos}, {id: a, type: partition, device: d, size: 1G}, {id: e, type: partition, device: d, size: 2G, flag: extended}, {id: l1, type: partition, device: d, size: 1G, flag: logical}, {id: l2, type: partition, device: d, size: 1G, flag: logical}]}");
        let parts: Vec<&Partition> = s.partitions_of("d").collect();
        let l = place(&disk(512, 8 << 30), "d", Ptable::Msdos, &parts, 1).unwrap();
        assert_eq!(
            (l[1].number, l[1].kind, l[1].len),
            (2, Kind::Extended, 4194304 + 2 * 2048)
        );
        assert_eq!((l[2].number, l[2].start), (5, l[1].start + 2048));
        assert_eq!((l[3].number, l[3].start), (6, l[2].end() + 2048));
        assert_eq!(l[3].end(), l[1].end());
        let e = place(&disk(512, 8 << 30), "d", Ptable::Msdos, &parts, 2).unwrap_err();
        assert!(e.downcast_ref::<DoesNotFit>().is_some(), "{e}");
    }

    #[test]
    fn a_partition_past_the_end_does_not_fit() {
        let s = storage("storage: {version: 1, config: [{id: d, type: disk, path: /x, ptable: gpt}, {id: a, type: partition, device: d, size: 64M}]}");
        let parts: Vec<&Partition> = s.partitions_of("d").collect();
        let e = place(&disk(512, 64 << 20), "d", Ptable::Gpt, &parts, 1).unwrap_err();
        assert!(e.downcast_ref::<DoesNotFit>().is_some(), "{e}");
        assert!(e.to_string().contains("partition 'a' does not fit"), "{e}");
        let s = storage("storage: {version: 1, config: [{id: d, type: disk, path: /x, ptable: gpt}, {id: a, type: partition, device: d, size: 16M}, {id: b, type: partition, device: d, size: 64M}]}");
        let parts: Vec<&Partition> = s.partitions_of("d").collect();
        let e = place(&disk(512, 64 << 20), "d", Ptable::Gpt, &parts, 1).unwrap_err();
        let dnf = e.downcast_ref::<DoesNotFit>().unwrap();
        assert_eq!(dnf.placed.len(), 1);
        assert_eq!(dnf.placed[0].id, "a");
    }

    #[test]
    fn msdos_type_bytes_match_parted() {
        // curtin's `parted mkpart primary` leaves lvm and raid partitions at 0x83.
        assert_eq!(mbr_type(Some(Flag::Lvm)), (0x83, false));
        assert_eq!(mbr_type(Some(Flag::Raid)), (0x83, false));
        assert_eq!(mbr_type(Some(Flag::Swap)), (0x82, false));
        assert_eq!(mbr_type(Some(Flag::Extended)), (0x05, false));
        assert_eq!(mbr_type(Some(Flag::Boot)), (0x83, true));
        assert_eq!(mbr_type(None), (0x83, false));
    }
}
