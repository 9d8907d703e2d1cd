//! The block-device layer shared by the dd path and the storage stage.
//!
//! - [`open_target`]: open a disk or disk image file for writing, with its size and logical
//!   sector size, after the safety checks ([`check_not_busy`]).
//! - [`read_table`], [`reread_partitions`], [`partition_path`]: make the kernel see a newly
//!   written table (BLKRRPART, else BLKPG like `partx -a`) and wait for the nodes.
//! - [`find_root`]: curtin's rule for the root of a dd image.
//! - [`sync_partitions`]: make the kernel's partitions exactly the ones just written.
//! - [`wipe_ends`], [`zero_range`]: zero the ends of a disk, or any range (BLKZEROOUT).

mod backing;
mod busy;

pub(crate) use backing::LoopInfo64;
pub use busy::check_not_busy;

use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

nix::ioctl_read!(blk_getsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blk_sszget, 0x1268, libc::c_int);
nix::ioctl_none!(blk_rrpart, 0x12, 95);
nix::ioctl_write_ptr_bad!(blk_pg, 0x1269, BlkpgIoctlArg);
nix::ioctl_write_ptr_bad!(blk_zeroout, 0x127f, [u64; 2]);

#[repr(C)]
pub struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

const BLKPG_ADD: libc::c_int = 1;
const BLKPG_DEL: libc::c_int = 2;
const BLKPG_RESIZE: libc::c_int = 3;

/// An open write target.
pub struct Target {
    pub path: PathBuf,
    /// Opened for buffered writes (and reads).
    pub file: File,
    /// Opened O_DIRECT when the device allows it, else another buffered handle.
    pub direct: File,
    /// Size in bytes; `None` for a new (or empty) image file, which grows to the image.
    pub size: Option<u64>,
    pub sector: u32,
    pub is_block: bool,
    /// A file we just created (or found empty): every unwritten byte reads as zero.
    pub fresh: bool,
    /// The file did not exist: a failed write removes it rather than leave a stub behind.
    pub created: bool,
    /// The file whose page cache the writes land in (this file, or a loop device's backing
    /// file), for starting its writeback early; none for a disk written O_DIRECT.
    pub page_cache: Option<File>,
}

/// Size in bytes of a block device or file.
pub fn size_of(f: &File) -> io::Result<u64> {
    let m = f.metadata()?;
    if m.file_type().is_block_device() {
        let mut n = 0u64;
        // SAFETY: BLKGETSIZE64 writes one u64.
        unsafe { blk_getsize64(f.as_raw_fd(), &mut n) }.map_err(io::Error::from)?;
        Ok(n)
    } else {
        Ok(m.len())
    }
}

/// Logical sector size (512 for files).
pub fn logical_sector_size(f: &File) -> io::Result<u32> {
    if !f.metadata()?.file_type().is_block_device() {
        return Ok(512);
    }
    let mut n: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int.
    unsafe { blk_sszget(f.as_raw_fd(), &mut n) }.map_err(io::Error::from)?;
    Ok(n as u32)
}

/// Open `path` for writing an image, after [`check_not_busy`] (a file that backs a busy loop
/// device is refused too). A block device is opened exclusively (O_EXCL: the kernel refuses it
/// while anything holds it); a missing file is created.
pub fn open_target(path: &Path) -> Result<Target> {
    check_not_busy(path)?;
    let meta = std::fs::metadata(path);
    let is_block = meta.as_ref().is_ok_and(|m| m.file_type().is_block_device());
    if is_block {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_EXCL)
            .open(path)
            .with_context(|| format!("opening {} exclusively", path.display()))?;
        // O_DIRECT keeps gigabytes of image out of the page cache (and the final fsync short).
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .or_else(|_| file.try_clone())
            .with_context(|| format!("opening {}", path.display()))?;
        let size =
            size_of(&file).with_context(|| format!("reading the size of {}", path.display()))?;
        let sector = logical_sector_size(&file)
            .with_context(|| format!("reading the sector size of {}", path.display()))?;
        let page_cache = backing::page_cache_file(&file);
        return Ok(Target {
            path: path.into(),
            file,
            direct,
            size: Some(size),
            sector,
            is_block,
            fresh: false,
            created: false,
            page_cache,
        });
    }
    if let Ok(m) = &meta {
        if !m.is_file() {
            bail!(
                "{} is neither a block device nor a regular file",
                path.display()
            );
        }
    }
    let fresh = meta.as_ref().map(|m| m.len() == 0).unwrap_or(true);
    let created = meta.is_err();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let direct = file.try_clone()?;
    let size = (!fresh).then(|| meta.map(|m| m.len()).unwrap_or(0));
    let page_cache = backing::page_cache_file(&file);
    Ok(Target {
        path: path.into(),
        file,
        direct,
        size,
        sector: 512,
        is_block: false,
        fresh,
        created,
        page_cache,
    })
}

/// `/dev/sda` + 2 -> `/dev/sda2`; `/dev/nvme0n1` + 2 -> `/dev/nvme0n1p2` (a `p` when the disk
/// name ends in a digit, as the kernel names them).
pub fn partition_path(disk: &Path, n: u32) -> PathBuf {
    let s = disk.to_string_lossy();
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        PathBuf::from(format!("{s}p{n}"))
    } else {
        PathBuf::from(format!("{s}{n}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Gpt,
    Msdos,
}

/// One partition, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub number: u32,
    pub start: u64,
    pub len: u64,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub kind: TableKind,
    pub parts: Vec<Part>,
}

/// Read the partition table (GPT, else msdos) of an open disk.
pub fn read_table(f: &mut File, sector: u32) -> Result<Option<Table>> {
    let ss = sector as u64;
    if let Ok(gpt) = gptman::GPT::read_from(f, ss).or_else(|_| gptman::GPT::find_from(f)) {
        let parts = gpt
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(n, p)| Part {
                number: n,
                start: p.starting_lba * gpt.sector_size,
                len: (p.ending_lba - p.starting_lba + 1) * gpt.sector_size,
            })
            .collect();
        return Ok(Some(Table {
            kind: TableKind::Gpt,
            parts,
        }));
    }
    if let Ok(mbr) = mbrman::MBR::read_from(f, sector) {
        let parts = mbr
            .iter()
            .filter(|(_, p)| p.is_used() && p.sys != 0x05 && p.sys != 0x0f && p.sys != 0x85)
            .map(|(n, p)| Part {
                number: n as u32,
                start: p.starting_lba as u64 * ss,
                len: p.sectors as u64 * ss,
            })
            .collect::<Vec<_>>();
        if !parts.is_empty() {
            return Ok(Some(Table {
                kind: TableKind::Msdos,
                parts,
            }));
        }
    }
    Ok(None)
}

fn blkpg(f: &File, op: libc::c_int, p: Part) -> io::Result<()> {
    let mut part = BlkpgPartition {
        start: p.start as i64,
        length: p.len as i64,
        pno: p.number as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: &mut part as *mut _ as *mut libc::c_void,
    };
    // SAFETY: arg points to a valid blkpg_partition for the duration of the call.
    unsafe { blk_pg(f.as_raw_fd(), &arg) }
        .map(|_| ())
        .map_err(io::Error::from)
}

/// Tell the kernel a partition changed size (BLKPG_RESIZE_PARTITION).
pub fn resize_partition(f: &File, p: Part) -> io::Result<()> {
    blkpg(f, BLKPG_RESIZE, p)
}

/// A whole disk held with `flock(LOCK_EX)` while it is being partitioned and formatted: udevd
/// (systemd's block device locking) then neither re-reads its partition table behind our back
/// when a writer closes it — which drops and re-adds every partition node, so a node that was
/// just made vanishes for a moment — nor probes it half-written. Released on drop; the caller
/// settles udev afterwards.
pub struct DiskLock(#[allow(dead_code)] File);

/// How many [`DiskLock`]s this process holds: udev's queue cannot drain while one is held
/// (it postpones events of locked disks), so `udevadm settle` would only sit out its timeout.
static LOCKS_HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `udevadm settle`, unless a [`DiskLock`] is held (then after it is released).
pub fn settle() {
    if LOCKS_HELD.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tools::udevadm_settle();
    }
}

impl DiskLock {
    pub fn take(disk: &Path) -> Result<DiskLock> {
        let f = File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
        // SAFETY: flock on a descriptor owned here.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("locking {} against udev", disk.display()));
        }
        LOCKS_HELD.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(DiskLock(f))
    }
}

impl Drop for DiskLock {
    fn drop(&mut self) {
        LOCKS_HELD.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // udevd saw the closes it could not act on while locked: let it catch up now.
        settle();
    }
}

/// Make the kernel see the table now on `disk`: read it, then [`sync_partitions`] and settle
/// udev. Returns the partitions and their nodes.
pub fn reread_partitions(disk: &Path) -> Result<Vec<(Part, PathBuf)>> {
    let mut f = File::open(disk).with_context(|| format!("opening {}", disk.display()))?;
    let sector = logical_sector_size(&f)?;
    let table = read_table(&mut f, sector)?;
    let parts = table.map(|t| t.parts).unwrap_or_default();
    sync_partitions(&f, disk, &parts)?;
    settle();
    Ok(parts
        .into_iter()
        .map(|p| (p, partition_path(disk, p.number)))
        .collect())
}

/// `/sys/class/block/<partition name>`.
fn sysfs_part(disk: &Path, n: u32) -> PathBuf {
    let name = partition_path(disk, n);
    let name = name.file_name().unwrap_or_default().to_owned();
    PathBuf::from("/sys/class/block").join(name)
}

fn sysfs_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Make the kernel's partitions of `disk` exactly `parts` (bytes; an msdos extended container
/// is 1 KiB to the kernel) and wait for their nodes: BLKRRPART, and where it is refused (loop
/// devices without partscan, a busy disk) or the kernel's view differs (no parser for this
/// table, stale partitions), delete and add with BLKPG as `partx` does.
pub fn sync_partitions(f: &File, disk: &Path, parts: &[Part]) -> Result<()> {
    // SAFETY: fsync and BLKRRPART take no pointer.
    let _ = unsafe { libc::fsync(f.as_raw_fd()) };
    let rr = unsafe { blk_rrpart(f.as_raw_fd()) };
    // sysfs `start` and `size` are in 512-byte units whatever the logical sector size.
    let matches = |p: &Part| {
        let sp = sysfs_part(disk, p.number);
        sysfs_u64(&sp.join("start")) == Some(p.start / 512)
            && sysfs_u64(&sp.join("size")) == Some(p.len / 512)
    };
    if rr.is_err() || !parts.iter().all(matches) {
        tracing::info!(
            "the kernel's partitions of {} differ from the table ({}); setting them with BLKPG",
            disk.display(),
            rr.err()
                .map(|e| format!("BLKRRPART: {e}"))
                .unwrap_or_else(|| "BLKRRPART left them out".into())
        );
        for n in 1..=128u32 {
            if sysfs_part(disk, n).exists() && !parts.iter().any(|p| p.number == n && matches(p)) {
                let del = Part {
                    number: n,
                    start: 0,
                    len: 0,
                };
                let _ = blkpg(f, BLKPG_DEL, del);
            }
        }
        for p in parts.iter().filter(|p| !matches(p)) {
            blkpg(f, BLKPG_ADD, *p).with_context(|| {
                format!(
                    "telling the kernel about partition {} of {} (BLKPG)",
                    p.number,
                    disk.display()
                )
            })?;
        }
    }
    for p in parts {
        wait_for_node(&partition_path(disk, p.number), Duration::from_secs(10))?;
    }
    Ok(())
}

use crate::tools;

/// Wait for a block device node to appear.
pub fn wait_for_node(node: &Path, max: Duration) -> Result<()> {
    let t = Instant::now();
    loop {
        if std::fs::metadata(node).is_ok_and(|m| m.file_type().is_block_device()) {
            return Ok(());
        }
        if t.elapsed() > max {
            bail!("{} did not appear within {max:?}", node.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Zero `len` bytes at `off`: BLKZEROOUT (the device may do it without writing; loop devices
/// punch holes), else zeros written.
pub fn zero_range(f: &File, off: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let range = [off, len];
    // SAFETY: BLKZEROOUT reads two u64 (start, length).
    if unsafe { blk_zeroout(f.as_raw_fd(), &range) }.is_ok() {
        return Ok(());
    }
    let buf = vec![0u8; 4 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        f.write_all_at(&buf[..n], off + done)
            .with_context(|| format!("zeroing at byte {}", off + done))?;
        done += n as u64;
    }
    Ok(())
}

/// Zero the first and last MiB: both GPT headers, the MBR, and most filesystem signatures at
/// the start, so that nothing boots or mounts a partial image. Synced.
pub fn wipe_ends(f: &File, size: u64) -> io::Result<()> {
    let zeros = vec![0u8; MIB as usize];
    let first = size.min(MIB) as usize;
    f.write_all_at(&zeros[..first], 0)?;
    if size > MIB {
        let start = size.saturating_sub(MIB).max(MIB);
        f.write_all_at(&zeros[..(size - start) as usize], start)?;
    }
    f.sync_all()
}

/// Which partition holds the image's root, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RootFound {
    pub device: PathBuf,
    pub number: u32,
    /// The marker that matched: `curtin`, `system-data/var/lib/snapd`, `snaps`, or
    /// `etc/os-release` (the fallback).
    pub marker: String,
}

/// The markers curtin looks for (`block.get_root_device`), in its order.
pub const ROOT_MARKERS: &[&str] = &["curtin", "system-data/var/lib/snapd", "snaps"];

/// What one partition holds, as the root search sees it.
#[derive(Debug, Clone)]
pub struct Probe {
    pub part: Part,
    pub node: PathBuf,
    /// It mounted (with the options asked for).
    pub mounted: bool,
    /// The first of [`ROOT_MARKERS`] it holds as a directory.
    pub marker: Option<String>,
    pub os_release: bool,
}

/// Mount each partition read-only (`options(node)` gives the mount options), note the markers
/// and `/etc/os-release`, unmount. Partitions that do not mount are listed as such.
pub fn probe_roots(
    parts: &[(Part, PathBuf)],
    options: &dyn Fn(&Path) -> String,
) -> Result<Vec<Probe>> {
    let mut out = Vec::with_capacity(parts.len());
    for (p, node) in parts {
        let mut probe = Probe {
            part: *p,
            node: node.clone(),
            mounted: false,
            marker: None,
            os_release: false,
        };
        let dir = tempfile::Builder::new()
            .prefix("deployer-probe-")
            .tempdir()?;
        if tools::mount(node, dir.path(), &options(node)).is_ok() {
            probe.mounted = true;
            probe.marker = ROOT_MARKERS
                .iter()
                .find(|m| dir.path().join(m).is_dir())
                .map(|m| m.to_string());
            probe.os_release = dir.path().join("etc/os-release").exists();
            tools::umount(dir.path())?;
        }
        out.push(probe);
    }
    Ok(out)
}

/// curtin's rule: the last partition holding a marker directory.
pub fn root_by_markers(probes: &[Probe]) -> Option<RootFound> {
    probes.iter().rev().find_map(|p| {
        Some(RootFound {
            device: p.node.clone(),
            number: p.part.number,
            marker: p.marker.clone()?,
        })
    })
}

/// Our fallback: the last partition holding `/etc/os-release`.
pub fn root_by_os_release(probes: &[Probe]) -> Option<RootFound> {
    probes
        .iter()
        .rev()
        .find(|p| p.os_release)
        .map(|p| RootFound {
            device: p.node.clone(),
            number: p.part.number,
            marker: "etc/os-release".into(),
        })
}

/// curtin's rule: mount each partition, the last one holding a marker directory wins; if none
/// does, the (last) one with `/etc/os-release`. Mounted read-only here (curtin mounts rw).
pub fn find_root(parts: &[(Part, PathBuf)]) -> Result<RootFound> {
    let probes = probe_roots(parts, &|_| "ro".to_string())?;
    root_by_markers(&probes)
        .or_else(|| root_by_os_release(&probes))
        .with_context(|| {
            format!(
                "did not find any filesystem on the image's {} partitions that contained one of {:?} or etc/os-release",
                parts.len(),
                ROOT_MARKERS
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn partition_names() {
        assert_eq!(
            partition_path(Path::new("/dev/sda"), 2),
            PathBuf::from("/dev/sda2")
        );
        assert_eq!(
            partition_path(Path::new("/dev/nvme0n1"), 1),
            PathBuf::from("/dev/nvme0n1p1")
        );
        assert_eq!(
            partition_path(Path::new("/dev/loop7"), 3),
            PathBuf::from("/dev/loop7p3")
        );
    }
}
