//! Block device ioctls block-meta needs: sizes, the kernel's view of a new partition table
//! (BLKRRPART, then BLKPG as `partx -a` does when a reread is refused), zeroing ranges.
//! NOTE for the merge: overlaps with `blockdev.rs` (wt-dd); unify there.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const BLKRRPART: libc::c_ulong = 0x125f;
const BLKSSZGET: libc::c_ulong = 0x1268;
const BLKGETSIZE64: libc::c_ulong = 0x80081272;
const BLKPG: libc::c_ulong = 0x1269;
const BLKZEROOUT: libc::c_ulong = 0x127f;
const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;

#[repr(C)]
struct BlkpgPartition {
    start: i64,
    length: i64,
    pno: libc::c_int,
    devname: [u8; 64],
    volname: [u8; 64],
}

#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// Logical sector size in bytes.
pub fn sector_size(f: &File) -> Result<u64> {
    let mut v: libc::c_int = 0;
    if unsafe { libc::ioctl(f.as_raw_fd(), BLKSSZGET as _, &mut v) } != 0 {
        return Err(std::io::Error::last_os_error()).context("BLKSSZGET");
    }
    Ok(v as u64)
}

/// Size in bytes.
pub fn size_bytes(f: &File) -> Result<u64> {
    let mut v: u64 = 0;
    if unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64 as _, &mut v) } != 0 {
        return Err(std::io::Error::last_os_error()).context("BLKGETSIZE64");
    }
    Ok(v)
}

/// Zero `len` bytes at `off` (the device may do it without writing: loop punches holes).
pub fn zero_range(f: &File, off: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    let range = [off, len];
    if unsafe { libc::ioctl(f.as_raw_fd(), BLKZEROOUT as _, range.as_ptr()) } == 0 {
        return Ok(());
    }
    // Fallback: write zeros.
    use std::os::unix::fs::FileExt;
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

fn blkpg(f: &File, op: libc::c_int, pno: u32, start: u64, length: u64) -> std::io::Result<()> {
    let mut part = BlkpgPartition {
        start: start as i64,
        length: length as i64,
        pno: pno as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let mut arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    if unsafe { libc::ioctl(f.as_raw_fd(), BLKPG as _, &mut arg) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `/dev/sda` + 1 -> `/dev/sda1`; `/dev/loop0`, `/dev/nvme0n1` + 1 -> `...p1`.
pub fn part_path(disk: &Path, n: u32) -> PathBuf {
    let s = disk.to_string_lossy();
    if s.ends_with(|c: char| c.is_ascii_digit()) {
        PathBuf::from(format!("{s}p{n}"))
    } else {
        PathBuf::from(format!("{s}{n}"))
    }
}

fn sysfs_part(disk: &Path, n: u32) -> PathBuf {
    let name = part_path(disk, n);
    let name = name.file_name().unwrap_or_default().to_owned();
    PathBuf::from("/sys/class/block").join(name)
}

fn sysfs_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Make the kernel's partitions of `disk` match `parts` (number, start byte, length bytes) and
/// wait for their device nodes.
pub fn reread(f: &File, disk: &Path, parts: &[(u32, u64, u64)]) -> Result<()> {
    let _ = unsafe { libc::fsync(f.as_raw_fd()) };
    let reread_ok = unsafe { libc::ioctl(f.as_raw_fd(), BLKRRPART as _) } == 0;
    let matches = |n: u32, start: u64, len: u64| {
        let sp = sysfs_part(disk, n);
        sysfs_u64(&sp.join("start")) == Some(start / 512)
            && sysfs_u64(&sp.join("size")) == Some(len / 512)
    };
    if !reread_ok || parts.iter().any(|&(n, s, l)| !matches(n, s, l)) {
        // Remove what the kernel has that we did not write, then add ours.
        for n in 1..=128u32 {
            if sysfs_part(disk, n).exists()
                && !parts.iter().any(|&(pn, s, l)| pn == n && matches(pn, s, l))
            {
                let _ = blkpg(f, BLKPG_DEL_PARTITION, n, 0, 0);
            }
        }
        for &(n, start, len) in parts {
            if !matches(n, start, len) {
                blkpg(f, BLKPG_ADD_PARTITION, n, start, len).with_context(|| {
                    format!(
                        "telling the kernel about partition {n} of {} (BLKPG)",
                        disk.display()
                    )
                })?;
            }
        }
    }
    for &(n, _, _) in parts {
        wait_for_node(&part_path(disk, n))?;
    }
    Ok(())
}

/// Wait up to 10 s for a block device node.
pub fn wait_for_node(p: &Path) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if let Ok(md) = std::fs::metadata(p) {
            use std::os::unix::fs::FileTypeExt;
            if md.file_type().is_block_device() {
                return Ok(());
            }
        }
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("{} did not appear within 10 s", p.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
