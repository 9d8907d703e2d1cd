//! Where curtin puts partitions (storage config v1 `partition_handler`; v2 honours `offset`).
//! Pure arithmetic in logical sectors, shared by the plan and the partitioning stage.
//!
//! v1: partition 1 starts at 1 MiB; every later one starts right where the previous one ends
//! (no realignment); a partition of `size` bytes spans `size / lbs` sectors. The first logical
//! partition starts 1 MiB into the extended one, later logical ones 1 MiB after the previous
//! end, and the extended partition grows by 1 MiB per logical partition.

use crate::storage::{Flag, Partition, Ptable, Storage};

/// How a partition sits in an msdos table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsdosKind {
    Primary,
    Extended,
    Logical,
}

/// One partition, placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub id: String,
    pub number: u32,
    pub start: u64,
    /// Length in sectors.
    pub sectors: u64,
    pub kind: MsdosKind,
    pub flag: Option<Flag>,
}

impl Placed {
    pub fn end(&self) -> u64 {
        self.start + self.sectors
    }
}

/// Place the partitions of disk `disk_id` for logical sector size `lbs`.
pub fn layout(storage: &Storage, disk_id: &str, lbs: u64) -> Vec<Placed> {
    let align = (1 << 20) / lbs;
    let parts: Vec<&Partition> = storage.partitions_of(disk_id).collect();
    let nlogical = parts
        .iter()
        .filter(|p| p.flag == Some(Flag::Logical))
        .count() as u64;
    let mut out: Vec<Placed> = Vec::new();
    let mut extended: Option<usize> = None;
    let (mut primaries, mut logicals) = (0u32, 0u32);
    for p in parts {
        let kind = match p.flag {
            Some(Flag::Extended) => MsdosKind::Extended,
            Some(Flag::Logical) => MsdosKind::Logical,
            _ => MsdosKind::Primary,
        };
        let number = p.number.unwrap_or(match kind {
            MsdosKind::Logical => 5 + logicals,
            _ => 1 + primaries,
        });
        match kind {
            MsdosKind::Logical => logicals += 1,
            _ => primaries += 1,
        }
        let mut sectors = p.size / lbs;
        if kind == MsdosKind::Extended {
            sectors += nlogical * align;
        }
        let prev = out.last();
        let offset = p.offset.filter(|_| storage.version >= 2);
        let start = if let Some(offset) = offset {
            offset / lbs
        } else if kind == MsdosKind::Logical {
            match (prev, extended) {
                (Some(prev), Some(_)) if prev.kind == MsdosKind::Logical => prev.end() + align,
                (_, Some(e)) => out[e].start + align,
                (Some(prev), None) => prev.end() + align,
                (None, None) => align,
            }
        } else {
            match prev {
                None => align,
                Some(prev) if prev.kind == MsdosKind::Logical => {
                    // After the logical partitions: past the end of the extended one.
                    extended.map(|e| out[e].end()).unwrap_or(prev.end())
                }
                Some(prev) if storage.version >= 2 => prev.end().div_ceil(align) * align,
                Some(prev) => prev.end(),
            }
        };
        if kind == MsdosKind::Extended {
            extended = Some(out.len());
        }
        out.push(Placed {
            id: p.id.clone(),
            number,
            start,
            sectors,
            kind,
            flag: p.flag,
        });
    }
    out
}

/// The last sector a partition may use on a disk of `total` sectors: GPT keeps 33 sectors for
/// its backup header and table at the end.
pub fn last_usable(ptable: Option<Ptable>, total: u64, lbs: u64) -> u64 {
    match ptable {
        Some(Ptable::Gpt) | None => total.saturating_sub(1 + 16384 / lbs.max(1) + 1),
        _ => total.saturating_sub(1),
    }
}

/// The msdos partition type byte curtin's parted calls produce.
pub fn msdos_type(kind: MsdosKind, flag: Option<Flag>) -> u8 {
    match (kind, flag) {
        (MsdosKind::Extended, _) => 0x05,
        (_, Some(Flag::Swap)) => 0x82,
        _ => 0x83,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_documents;

    fn storage(yaml: &str) -> Storage {
        load_documents(vec![("t".into(), yaml.into())])
            .unwrap()
            .config
            .storage
            .unwrap()
    }

    #[test]
    fn v1_contiguous_from_1mib() {
        let s = storage("storage: {version: 1, config: [{id: d, type: disk, path: /x, ptable: gpt}, {id: a, type: partition, device: d, size: 512M, flag: boot}, {id: b, type: partition, device: d, size: 1G, offset: 100M}]}");
        let l = layout(&s, "d", 512);
        assert_eq!((l[0].number, l[0].start, l[0].sectors), (1, 2048, 1048576));
        // v1 ignores offset
        assert_eq!(
            (l[1].number, l[1].start, l[1].sectors),
            (2, 2048 + 1048576, 2097152)
        );
        let l = layout(&s, "d", 4096);
        assert_eq!((l[0].start, l[0].sectors), (256, 131072));
    }

    #[test]
    fn v2_honours_offset_and_msdos_logicals() {
        let s = storage("storage: {version: 2, config: [{id: d, type: disk, path: /x, ptable: gpt}, {id: a, type: partition, device: d, size: 1M}, {id: b, type: partition, device: d, size: 1G, offset: 100M}]}");
        assert_eq!(layout(&s, "d", 512)[1].start, 204800);
        let s = storage("storage: {version: 1, config: [{id: d, type: disk, path: /x, ptable: msdos}, {id: a, type: partition, device: d, size: 1G}, {id: e, type: partition, device: d, size: 2G, flag: extended}, {id: l1, type: partition, device: d, size: 512M, flag: logical}, {id: l2, type: partition, device: d, size: 512M, flag: logical}]}");
        let l = layout(&s, "d", 512);
        assert_eq!(l[1].kind, MsdosKind::Extended);
        assert_eq!(l[1].sectors, 4194304 + 2 * 2048);
        assert_eq!((l[2].number, l[2].start), (5, l[1].start + 2048));
        assert_eq!((l[3].number, l[3].start), (6, l[2].end() + 2048));
    }
}
