//! The one busy check, called by every path that writes a disk (the dd path, block-meta custom
//! and simple, write-image, `install --target`) before a byte is written.
//!
//! A block device is busy when it or one of its partitions is mounted (the running root
//! included), is an active swap area, or is held by another device (LVM, RAID, dm-crypt,
//! bcache: `holders/` in sysfs). A loop device is also busy when another loop device over the
//! same backing file is. A regular file is busy when any loop device backed by it is; the
//! backing file is matched by device and inode, not by name, so a renamed or hard-linked
//! image file is still recognised.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::mounts;

/// Refuse `path` when anything holds it; the error names the path and what holds it. A path
/// that does not exist (a disk image file still to be created) is not busy.
pub fn check_not_busy(path: &Path) -> Result<()> {
    let d = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("stat {d}")),
    };
    if meta.file_type().is_block_device() {
        if let Some(why) = block_busy(path)? {
            bail!("refusing to write {d}: {why}");
        }
        // Another loop device over the same file shares every byte with this one.
        if let Some(name) = kernel_name(path)?.filter(|n| n.starts_with("loop")) {
            if let Some(id) = backing_id(&name) {
                for other in loops_backed_by(id).into_iter().filter(|o| *o != name) {
                    let dev = PathBuf::from(format!("/dev/{other}"));
                    if let Some(why) = block_busy(&dev)? {
                        bail!(
                            "refusing to write {d}: its backing file also backs {}, and {why}",
                            dev.display()
                        );
                    }
                }
            }
        }
        return Ok(());
    }
    if meta.is_file() {
        for name in loops_backed_by((meta.dev(), meta.ino())) {
            let dev = PathBuf::from(format!("/dev/{name}"));
            if let Some(why) = block_busy(&dev)? {
                bail!(
                    "refusing to write {d}: it backs {}, and {why}",
                    dev.display()
                );
            }
        }
    }
    Ok(())
}

/// Why a block device (or one of its partitions) is in use, if it is.
fn block_busy(dev: &Path) -> Result<Option<String>> {
    let parts = disk_and_parts(dev)?;
    let find = |num: &str| {
        parts
            .iter()
            .find(|(n, _, _)| n == num)
            .map(|(_, name, _)| name)
    };
    for m in mounts::table() {
        let by_source = m
            .source
            .starts_with('/')
            .then(|| rdev_of(Path::new(&m.source)))
            .flatten();
        let hit = find(&m.dev).or_else(|| by_source.as_deref().and_then(find));
        if let Some(name) = hit {
            if m.point == Path::new("/") {
                return Ok(Some(format!(
                    "/dev/{name} holds the running system's root filesystem"
                )));
            }
            return Ok(Some(format!(
                "/dev/{name} is mounted at {}",
                m.point.display()
            )));
        }
    }
    for s in mounts::swaps() {
        if let Some(name) = rdev_of(&s).as_deref().and_then(find) {
            return Ok(Some(format!("/dev/{name} is in use as swap")));
        }
    }
    for (_, name, dir) in &parts {
        let holders: Vec<String> = std::fs::read_dir(dir.join("holders"))
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !holders.is_empty() {
            return Ok(Some(format!(
                "/dev/{name} is held by {} (LVM, RAID, dm-crypt or bcache); stop it first",
                holders.join(", ")
            )));
        }
    }
    Ok(None)
}

/// `major:minor` of a block device node, if `p` is one.
fn rdev_of(p: &Path) -> Option<String> {
    let m = std::fs::metadata(p).ok()?;
    m.file_type()
        .is_block_device()
        .then(|| format!("{}:{}", libc::major(m.rdev()), libc::minor(m.rdev())))
}

/// The sysfs directory of a block device, from its device number.
fn sysfs_dir(dev: &Path) -> Result<PathBuf> {
    let num = rdev_of(dev).with_context(|| format!("{} is not a block device", dev.display()))?;
    let link = PathBuf::from(format!("/sys/dev/block/{num}"));
    std::fs::canonicalize(&link).with_context(|| format!("resolving {}", link.display()))
}

/// The kernel name (`sda`, `loop3`) of a block device.
fn kernel_name(dev: &Path) -> Result<Option<String>> {
    Ok(sysfs_dir(dev)?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned()))
}

/// The device numbers ("8:0"), kernel names and sysfs dirs of a disk and its partitions.
fn disk_and_parts(dev: &Path) -> Result<Vec<(String, String, PathBuf)>> {
    let dir = sysfs_dir(dev)?;
    let read = |d: &Path| std::fs::read_to_string(d.join("dev")).map(|s| s.trim().to_string());
    let name = dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut out = vec![(read(&dir)?, name, dir.clone())];
    for e in std::fs::read_dir(&dir)?.flatten() {
        let p = e.path();
        if p.join("partition").exists() {
            out.push((read(&p)?, e.file_name().to_string_lossy().into_owned(), p));
        }
    }
    Ok(out)
}

/// (device, inode) of the file behind loop device `name`, from sysfs (no device is opened).
fn backing_id(name: &str) -> Option<(u64, u64)> {
    let m = std::fs::metadata(super::backing::loop_backing_path(name)?).ok()?;
    Some((m.dev(), m.ino()))
}

/// Kernel names of the loop devices whose backing file is `id` (device, inode).
fn loops_backed_by(id: (u64, u64)) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("loop") && backing_id(n) == Some(id))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_and_an_unattached_file_are_free() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("disk.img");
        check_not_busy(&f).unwrap();
        std::fs::write(&f, b"x").unwrap();
        check_not_busy(&f).unwrap();
    }
}
