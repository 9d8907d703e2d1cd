//! File-backed loop devices that the test creates and always tears down: everything mounted
//! from the device or its partitions is unmounted, then the device is detached, also when the
//! test panics (the guard runs in `Drop`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A sparse backing file attached to a fresh loop device with partition scanning on.
pub struct LoopDisk {
    /// `/dev/loopN`.
    pub dev: PathBuf,
    /// The backing file.
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

impl LoopDisk {
    /// A disk of `size` bytes with 512-byte logical sectors.
    pub fn new(size: u64) -> Self {
        Self::with_sector_size(size, 512)
    }

    /// A disk of `size` bytes with the given logical sector size (4096 for a 4Kn disk).
    pub fn with_sector_size(size: u64, sector: u32) -> Self {
        crate::require_root();
        // Backing files live on disk, not tmpfs: images are large and the point is to stream.
        let dir = tempfile::Builder::new()
            .prefix("deployer-test-")
            .tempdir_in(scratch_root())
            .expect("tempdir");
        let file = dir.path().join("disk.img");
        let f = std::fs::File::create(&file).expect("create backing file");
        f.set_len(size).expect("size backing file");
        drop(f);
        Self::attach(file, sector, dir)
    }

    /// Attach an existing image file (copied by the caller into a temp dir it hands over).
    pub fn from_file(file: PathBuf, dir: tempfile::TempDir) -> Self {
        crate::require_root();
        Self::attach(file, 512, dir)
    }

    fn attach(file: PathBuf, sector: u32, dir: tempfile::TempDir) -> Self {
        let out = Command::new("losetup")
            .args(["--find", "--show", "--partscan", "--sector-size"])
            .arg(sector.to_string())
            .arg(&file)
            .output()
            .expect("run losetup");
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        LoopDisk {
            dev,
            file,
            _dir: dir,
        }
    }

    /// `/dev/loopNpK`.
    pub fn part(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}p{}", self.dev.display(), n))
    }

    /// Make the kernel add partition nodes of a table written by a test fixture.
    pub fn partx(&self) {
        let _ = Command::new("partx").arg("-u").arg(&self.dev).status();
        let _ = Command::new("partx").arg("-a").arg(&self.dev).status();
        let _ = Command::new("udevadm").arg("settle").status();
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.file).expect("stat").len()
    }

    /// Read `len` bytes at `offset` of the device.
    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&self.dev).expect("open loop dev");
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).expect("read loop dev");
        buf
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        unmount_all_from(&self.dev);
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// Where test scratch files go: $DEPLOYER_TEST_DIR, else /var/tmp (on disk, unlike /tmp on
/// many systems).
pub fn scratch_root() -> PathBuf {
    std::env::var_os("DEPLOYER_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

/// Unmount, deepest first, every mount whose source is `dev` or one of its partitions, and
/// every mount below such a mount point.
pub fn unmount_all_from(dev: &Path) {
    let dev = dev.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut points: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let src = it.next()?;
            let mp = it.next()?;
            let is_ours = src == dev || src.strip_prefix(&dev).is_some_and(|r| r.starts_with('p'));
            is_ours.then(|| mp.replace("\\040", " "))
        })
        .collect();
    // Mounts stacked below ours (binds into a target) go first.
    let below: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(|s| s.to_string()))
        .filter(|mp| {
            points
                .iter()
                .any(|p| mp != p && mp.starts_with(&format!("{p}/")))
        })
        .collect();
    points.extend(below);
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for mp in points {
        let _ = Command::new("umount").arg("-l").arg(&mp).status();
    }
}

/// Unmounts a mount point (and anything below it) when dropped.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
