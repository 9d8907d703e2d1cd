//! Grow a freshly written dd image to its disk: move the GPT backup header and table to the
//! true end of the disk, grow the root partition when it is the last one, and grow its
//! filesystem (ext2/3/4 online via EXT4_IOC_RESIZE_FS or resize2fs, xfs via xfs_growfs,
//! btrfs via BTRFS_IOC_RESIZE). A root on LVM (packer-maas's Ubuntu LVM image) grows through
//! its layers: the partition holding the physical volume, `pvresize`, `lvextend` into the
//! free extents, then the filesystem. curtin leaves all of this to cloud-init at first boot
//! (which does not extend LVM).

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::blockdev::{self, Part, RootFound, TableKind};
use crate::sysblock::{split_lvm_name, Kind, Sysfs};
use crate::tools::{self, lvm};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrowOutcome {
    Grown {
        partition: PathBuf,
        from: u64,
        to: u64,
        fs: String,
    },
    Skipped(String),
}

impl std::fmt::Display for GrowOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrowOutcome::Grown {
                partition,
                from,
                to,
                fs,
            } => {
                write!(
                    f,
                    "grew {} ({fs}) from {from} to {to} bytes",
                    partition.display()
                )
            }
            GrowOutcome::Skipped(why) => write!(f, "not grown: {why}"),
        }
    }
}

nix::ioctl_write_ptr!(ext4_resize_fs, b'f', 16, u64);

#[repr(C)]
pub struct BtrfsVolArgs {
    fd: i64,
    name: [u8; 4088],
}
nix::ioctl_write_ptr!(btrfs_resize, 0x94, 3, BtrfsVolArgs);

/// Grow the root partition of `disk` and its filesystem. Moves the GPT backup header in any
/// case; skips the rest, saying why, when the root is not the last partition.
pub fn grow_root(disk: &Path, root: &RootFound) -> Result<GrowOutcome> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .with_context(|| format!("opening {}", disk.display()))?;
    let sector = blockdev::logical_sector_size(&f)?;
    let disk_size = blockdev::size_of(&f)?;
    let Some(table) = blockdev::read_table(&mut f, sector)? else {
        return Ok(GrowOutcome::Skipped(format!(
            "no partition table on {}",
            disk.display()
        )));
    };
    let Some(part) = table
        .parts
        .iter()
        .find(|p| p.number == root.number)
        .copied()
    else {
        bail!(
            "partition {} is not in the table of {}",
            root.number,
            disk.display()
        );
    };
    let last = table.parts.iter().all(|p| p.start <= part.start);
    // A filesystem we cannot grow (NTFS, FAT...) keeps its partition as the image made it: a
    // grown partition around it would help nothing, and a failure here wipes the disk. curtin
    // never grows dd images; Windows extends its own partition on first boot.
    let lv = logical_volume(&root.device);
    let fs = tools::blkid_type(&root.device).unwrap_or_default();
    if lv.is_none() && !growable(&fs) {
        if table.kind == TableKind::Gpt {
            grow_gpt(&mut f, sector, part, false)?;
            f.sync_all()?;
        }
        return Ok(GrowOutcome::Skipped(format!(
            "the root {} holds {}, which deployer does not grow",
            root.device.display(),
            if fs.is_empty() {
                "no filesystem blkid knows".to_string()
            } else {
                format!("a {fs} filesystem")
            }
        )));
    }
    let new = match table.kind {
        TableKind::Gpt => grow_gpt(&mut f, sector, part, last)?,
        TableKind::Msdos => grow_msdos(&f, sector, disk_size, part, last)?,
    };
    f.sync_all()?;
    let Some(new) = new else {
        return Ok(GrowOutcome::Skipped(format!(
            "the root partition {} is not the last partition on {}",
            root.device.display(),
            disk.display()
        )));
    };
    if new.len <= part.len {
        return Ok(GrowOutcome::Skipped(
            "the root partition already fills the disk".into(),
        ));
    }
    if let Err(e) = blockdev::resize_partition(&f, new) {
        tracing::info!("BLKPG resize refused ({e}); re-reading the table");
        drop(f);
        blockdev::reread_partitions(disk)?;
    }
    if let Some(lv) = lv {
        let pv = blockdev::partition_path(disk, part.number);
        return grow_lvm(&root.device, &lv, &pv);
    }
    let fs = grow_fs(&root.device, new.len)?;
    Ok(GrowOutcome::Grown {
        partition: root.device.clone(),
        from: part.len,
        to: new.len,
        fs,
    })
}

/// The device-mapper name of `dev` when it is a logical volume.
fn logical_volume(dev: &Path) -> Option<String> {
    let sys = Sysfs::default();
    let k = sys.kname_of(dev).ok()?;
    (sys.kind(&k) == Kind::Lvm).then(|| sys.dm_name(&k))?
}

/// The partition under the root's physical volume has grown: the PV, the LV, its filesystem.
fn grow_lvm(root: &Path, dm_name: &str, pv: &Path) -> Result<GrowOutcome> {
    let (vg, lv) = split_lvm_name(dm_name)
        .with_context(|| format!("{dm_name:?} is not a logical volume name"))?;
    let size = || -> Result<u64> {
        let f = File::open(root).with_context(|| format!("opening {}", root.display()))?;
        Ok(blockdev::size_of(&f)?)
    };
    let from = size()?;
    lvm::pvresize(pv).with_context(|| format!("growing the physical volume {}", pv.display()))?;
    if let Err(e) = lvm::lvextend_all(&vg, &lv) {
        // No free extents after all: nothing more for the root.
        tracing::info!("lvextend {vg}/{lv}: {e:#}");
    }
    let to = size()?;
    if to <= from {
        return Ok(GrowOutcome::Skipped(format!(
            "the logical volume {vg}/{lv} already fills its volume group"
        )));
    }
    let fs = grow_fs(root, to)?;
    Ok(GrowOutcome::Grown {
        partition: root.to_path_buf(),
        from,
        to,
        fs,
    })
}

/// The partitions of a freshly written image, each followed by the logical volumes on it, as
/// curtin's root search sees them (`lsblk` of the disk, after `vgchange --activate=y`). The
/// volume groups are activated only when a partition carries a physical volume. A logical
/// volume is listed with the partition that holds its physical volume.
pub fn with_logical_volumes(parts: &[(Part, PathBuf)]) -> Vec<(Part, PathBuf)> {
    let has_pv = parts
        .iter()
        .any(|(_, n)| tools::blkid_type(n).as_deref() == Some("LVM2_member"));
    if !has_pv {
        return parts.to_vec();
    }
    if tools::which("lvm").is_none() {
        tracing::warn!("the image has LVM physical volumes but lvm is not installed: its logical volumes are not searched for the root");
        return parts.to_vec();
    }
    lvm::scan();
    match lvm::activate(None) {
        Ok(out) => tracing::info!("vgchange --activate=y: {}", out.trim()),
        Err(e) => tracing::warn!("activating the image's volume groups: {e:#}"),
    }
    tools::udevadm_settle();
    let sys = Sysfs::default();
    let mut out = Vec::new();
    for (p, node) in parts {
        out.push((*p, node.clone()));
        let Ok(k) = sys.kname_of(node) else { continue };
        for h in sys.holders(&k) {
            if sys.kind(&h) != Kind::Lvm {
                continue;
            }
            let mapper = sys
                .dm_name(&h)
                .map(|n| PathBuf::from("/dev/mapper").join(n))
                .filter(|m| m.exists())
                .unwrap_or_else(|| PathBuf::from("/dev").join(&h));
            out.push((*p, mapper));
        }
    }
    out
}

/// Move the backup GPT to the disk's end; extend `part` to the last usable, 1 MiB-aligned
/// sector when it is last. Returns the new geometry, or None when it is not last.
fn grow_gpt(f: &mut File, sector: u32, part: Part, last: bool) -> Result<Option<Part>> {
    let ss = sector as u64;
    let mut gpt = gptman::GPT::read_from(f, ss).context("reading the GPT")?;
    gpt.header
        .update_from(f, ss)
        .context("moving the GPT backup header")?;
    let mut out = None;
    if last {
        let align = (1 << 20) / ss;
        let end = ((gpt.header.last_usable_lba + 1) / align * align).saturating_sub(1);
        let e = &mut gpt[part.number];
        if end > e.ending_lba {
            e.ending_lba = end;
        }
        out = Some(Part {
            number: part.number,
            start: e.starting_lba * ss,
            len: (e.ending_lba - e.starting_lba + 1) * ss,
        });
    }
    gpt.write_into(f).context("writing the GPT")?;
    fix_protective_mbr(f, ss)?;
    Ok(out)
}

/// The protective MBR's 0xEE entry must cover the disk (capped at 2^32-1 sectors).
fn fix_protective_mbr(f: &File, ss: u64) -> Result<()> {
    let mut mbr = [0u8; 512];
    f.read_exact_at(&mut mbr, 0)?;
    if mbr[510..512] != [0x55, 0xaa] || mbr[446 + 4] != 0xee {
        return Ok(()); // hybrid or no MBR: leave it as the image has it
    }
    let sectors = blockdev::size_of(f)? / ss;
    let n = (sectors - 1).min(u32::MAX as u64) as u32;
    mbr[446 + 12..446 + 16].copy_from_slice(&n.to_le_bytes());
    f.write_all_at(&mbr, 0)?;
    Ok(())
}

/// Extend a primary msdos partition to the end of the disk (capped at 2^32 sectors).
fn grow_msdos(
    f: &File,
    sector: u32,
    disk_size: u64,
    part: Part,
    last: bool,
) -> Result<Option<Part>> {
    if !last {
        return Ok(None);
    }
    if part.number > 4 {
        bail!(
            "the root is logical partition {}: growing extended partitions is not supported",
            part.number
        );
    }
    let ss = sector as u64;
    let start = part.start / ss;
    let sectors = (disk_size / ss).min(u32::MAX as u64) - start;
    let mut mbr = [0u8; 512];
    f.read_exact_at(&mut mbr, 0)?;
    let at = 446 + (part.number as usize - 1) * 16 + 12;
    mbr[at..at + 4].copy_from_slice(&(sectors as u32).to_le_bytes());
    f.write_all_at(&mbr, 0)?;
    Ok(Some(Part {
        number: part.number,
        start: part.start,
        len: sectors * ss,
    }))
}

/// The filesystems [`grow_fs`] grows.
fn growable(fs: &str) -> bool {
    matches!(fs, "ext2" | "ext3" | "ext4" | "xfs" | "btrfs")
}

/// Grow the filesystem on `dev` to `len` bytes; returns its type.
fn grow_fs(dev: &Path, len: u64) -> Result<String> {
    let fs = tools::blkid_type(dev).unwrap_or_default();
    if !growable(&fs) {
        bail!(
            "growing a {fs:?} filesystem is not supported (on {})",
            dev.display()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("deployer-grow-")
        .tempdir()?;
    tools::mount(dev, dir.path(), "rw")?;
    let mut offline = false;
    let res = (|| -> Result<()> {
        let mp = File::open(dir.path())?;
        match fs.as_str() {
            "xfs" => tools::xfs_growfs(dir.path()),
            "btrfs" => {
                let mut a = BtrfsVolArgs {
                    fd: 0,
                    name: [0; 4088],
                };
                a.name[..3].copy_from_slice(b"max");
                // SAFETY: a valid, NUL-terminated vol args struct.
                unsafe { btrfs_resize(mp.as_raw_fd(), &a) }.context("BTRFS_IOC_RESIZE")?;
                Ok(())
            }
            _ => {
                let bsize = nix::sys::statvfs::fstatvfs(&mp)?.block_size();
                let blocks = len / bsize;
                // SAFETY: EXT4_IOC_RESIZE_FS reads one u64.
                if let Err(e) = unsafe { ext4_resize_fs(mp.as_raw_fd(), &blocks) } {
                    // Online resize needs CAP_SYS_RESOURCE (missing in some containers) and
                    // the resize_inode/meta_bg features: fall back to offline below.
                    tracing::info!("EXT4_IOC_RESIZE_FS: {e}; resizing offline with resize2fs");
                    offline = true;
                }
                Ok(())
            }
        }
    })();
    let um = tools::umount(dir.path());
    res.with_context(|| format!("growing the {fs} filesystem on {}", dev.display()))?;
    um?;
    if offline {
        tools::e2fsck_force(dev)?;
        tools::resize2fs(dev)
            .with_context(|| format!("growing the {fs} filesystem on {}", dev.display()))?;
    }
    Ok(fs)
}
