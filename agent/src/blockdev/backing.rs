//! The file under a loop device, and the page cache a write target's data lands in.
//!
//! A loop device without direct I/O (losetup's default) writes into its backing file's page
//! cache, and a regular-file target is written through its own: either way the data sits dirty
//! in memory until the final sync, which then writes all of it as a phase of its own (0.4 s of
//! a 1.7 s deployment of the Debian image, docs/bench-dd.md). Knowing that file lets the writer
//! start its writeback as the image goes down. A real disk (opened O_DIRECT) has no such file.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

const LOOP_MAJOR: u32 = 7;
const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `struct loop_info64` of `linux/loop.h`: read here, written by `install::loopback`.
#[repr(C)]
pub(crate) struct LoopInfo64 {
    pub lo_device: u64,
    pub lo_inode: u64,
    pub lo_rdevice: u64,
    pub lo_offset: u64,
    pub lo_sizelimit: u64,
    pub lo_number: u32,
    pub lo_encrypt_type: u32,
    pub lo_encrypt_key_size: u32,
    pub lo_flags: u32,
    pub lo_file_name: [u8; 64],
    pub lo_crypt_name: [u8; 64],
    pub lo_encrypt_key: [u8; 32],
    pub lo_init: [u64; 2],
}

nix::ioctl_read_bad!(loop_get_status64, 0x4C05, LoopInfo64);

/// The backing file of loop device `name` (`loop3`) as sysfs names it; a deleted file's
/// " (deleted)" mark is dropped.
pub fn loop_backing_path(name: &str) -> Option<PathBuf> {
    let s = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    let p = s.trim_end_matches('\n');
    Some(PathBuf::from(p.strip_suffix(" (deleted)").unwrap_or(p)))
}

/// The file whose page cache holds what is written to `target`: the target itself when it is
/// a regular file, the backing file of a loop device that does buffered I/O, else none. The
/// backing file is opened read-only (enough to start its writeback) and only when it is the
/// very file the loop device holds (same device and inode), so a path that names another
/// file here (another mount namespace, a file renamed since) is never touched. Where the two
/// device numbers differ for the same file (btrfs subvolumes report their own), there is no
/// early writeback and the final sync does it all, as before.
pub fn page_cache_file(target: &File) -> Option<File> {
    let meta = target.metadata().ok()?;
    if meta.is_file() {
        return target.try_clone().ok();
    }
    if !meta.file_type().is_block_device() || libc::major(meta.rdev()) != LOOP_MAJOR {
        return None;
    }
    // SAFETY: LOOP_GET_STATUS64 fills one loop_info64; zeroed is a valid value of it.
    let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
    unsafe { loop_get_status64(target.as_raw_fd(), &mut info) }.ok()?;
    if info.lo_flags & LO_FLAGS_DIRECT_IO != 0 {
        return None;
    }
    // The minor number is the index only without partitions (max_part); lo_number is it.
    let backing = File::open(loop_backing_path(&format!("loop{}", info.lo_number))?).ok()?;
    let m = backing.metadata().ok()?;
    (m.dev() == info.lo_device && m.ino() == info.lo_inode).then_some(backing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_is_its_own_cache_and_a_char_device_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("disk.img")).unwrap();
        let c = page_cache_file(&f).expect("a regular file");
        assert_eq!(c.metadata().unwrap().ino(), f.metadata().unwrap().ino());
        assert!(page_cache_file(&File::open("/dev/null").unwrap()).is_none());
    }
}
