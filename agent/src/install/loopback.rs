//! `--target FILE`: a disk image file attached to a free loop device (with partition
//! scanning), detached at the end. Done with the loop ioctls directly: no losetup needed.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::blockdev::LoopInfo64;

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_PARTSCAN: u32 = 8;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// The disk an install writes: a block device as given, or a loop device over an image file.
pub struct TargetDisk {
    pub device: PathBuf,
    /// Set when we attached it (and must detach it).
    attached: Option<File>,
}

impl TargetDisk {
    /// A block device is used as is; a file (created sparse with `size` when missing) is
    /// attached to a loop device. Either is refused before anything is written (a file grown)
    /// when it is busy: a file is busy when a loop device backed by it is.
    pub fn open(path: &Path, size: Option<u64>) -> anyhow::Result<Self> {
        crate::blockdev::check_not_busy(path)?;
        match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_block_device() => {
                return Ok(TargetDisk {
                    device: path.to_path_buf(),
                    attached: None,
                })
            }
            Ok(m) if m.is_file() => {
                if let Some(s) = size {
                    if s > m.len() {
                        let f = OpenOptions::new().write(true).open(path)?;
                        f.set_len(s)
                            .with_context(|| format!("growing {} to {s} bytes", path.display()))?;
                    }
                }
            }
            Ok(_) => anyhow::bail!(
                "--target {}: neither a block device nor a disk image file",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = size.with_context(|| {
                    format!(
                        "--target {} does not exist: give --size (e.g. --size 4G) to create a disk image file",
                        path.display()
                    )
                })?;
                let f =
                    File::create(path).with_context(|| format!("creating {}", path.display()))?;
                f.set_len(s)
                    .with_context(|| format!("sizing {} to {s} bytes", path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("--target {}", path.display())),
        }
        let (device, file) = attach(path, false, LO_FLAGS_PARTSCAN)?;
        tracing::info!("attached {} to {}", path.display(), device.display());
        Ok(TargetDisk {
            device,
            attached: Some(file),
        })
    }

    /// An existing image file on a read-only loop device with partition scanning, for reading
    /// its partitions (`deployer inspect`): the kernel refuses every write to it.
    pub fn open_read_only(path: &Path) -> anyhow::Result<Self> {
        Self::read_only(path, LO_FLAGS_PARTSCAN)
    }

    /// A file system image attached read-only (no partition scan; the device goes away with
    /// its last user, so a mount made on it outlives this handle only until unmounted).
    pub fn attach_read_only(path: &Path) -> anyhow::Result<Self> {
        Self::read_only(path, LO_FLAGS_AUTOCLEAR)
    }

    fn read_only(path: &Path, flags: u32) -> anyhow::Result<Self> {
        let (device, file) = attach(path, true, flags)?;
        tracing::info!(
            "attached {} read-only to {}",
            path.display(),
            device.display()
        );
        Ok(TargetDisk {
            device,
            attached: Some(file),
        })
    }

    pub fn detach(&mut self) {
        if let Some(f) = self.attached.take() {
            // SAFETY: a valid loop device fd; LOOP_CLR_FD takes no argument. On a device that
            // is still busy the kernel detaches it when the last user closes it.
            let r = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD as _, 0) };
            if r != 0 {
                tracing::warn!(
                    "detaching {}: {}",
                    self.device.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

impl Drop for TargetDisk {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Attach `path` to a free loop device with `flags`. Read-only: both the file and the device
/// are opened without write access, which makes the kernel set LO_FLAGS_READ_ONLY.
fn attach(path: &Path, read_only: bool, flags: u32) -> anyhow::Result<(PathBuf, File)> {
    let backing = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let ctl = File::open("/dev/loop-control")
        .context("opening /dev/loop-control (is the loop module loaded?)")?;
    // Another process may take the free device between GET_FREE and SET_FD: try again.
    for _ in 0..20 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("finding a free loop device");
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let f = match OpenOptions::new().read(true).write(!read_only).open(&dev) {
            Ok(f) => f,
            Err(_) => continue,
        };
        // SAFETY: both fds are valid for the duration of the call.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_SET_FD as _, backing.as_raw_fd()) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EBUSY) {
                continue;
            }
            return Err(e)
                .with_context(|| format!("attaching {} to {}", path.display(), dev.display()));
        }
        // SAFETY: zeroed is a valid loop_info64.
        let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
        info.lo_flags = flags;
        let name = path.as_os_str().as_encoded_bytes();
        let len = name.len().min(63);
        info.lo_file_name[..len].copy_from_slice(&name[..len]);
        // SAFETY: info is a properly laid out loop_info64 that outlives the call.
        let r = unsafe {
            libc::ioctl(
                f.as_raw_fd(),
                LOOP_SET_STATUS64 as _,
                &info as *const LoopInfo64,
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: as above.
            unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD as _, 0) };
            return Err(e).with_context(|| format!("setting up {}", dev.display()));
        }
        return Ok((dev, f));
    }
    anyhow::bail!("no free loop device for {} after 20 tries", path.display())
}
