//! Mounting, probing and growing filesystems (used by the dd path and grow).

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Output};

/// Run a command; on failure the error names the command and carries its stderr.
fn run(cmd: &mut Command) -> Result<Output> {
    let desc = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().with_context(|| format!("running {desc}"))?;
    if !out.status.success() {
        bail!(
            "{desc} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// `mount -o OPTIONS DEV DIR` (mount(8) detects the filesystem type).
pub fn mount(dev: &Path, dir: &Path, options: &str) -> Result<()> {
    run(Command::new("mount")
        .arg("-o")
        .arg(options)
        .arg(dev)
        .arg(dir))
    .map(|_| ())
}

/// `umount DIR`.
pub fn umount(dir: &Path) -> Result<()> {
    run(Command::new("umount").arg(dir)).map(|_| ())
}

/// The filesystem type blkid sees on `dev`, if any (`blkid -p -o value -s TYPE`).
pub fn blkid_type(dev: &Path) -> Option<String> {
    let out = Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE"])
        .arg(dev)
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// `resize2fs DEV` (online when DEV is mounted): grow an ext2/3/4 filesystem to its device.
pub fn resize2fs(dev: &Path) -> Result<()> {
    run(Command::new("resize2fs").arg(dev)).map(|_| ())
}

/// `e2fsck -f -p DEV`: the full check resize2fs demands before an offline resize. Exit codes
/// 0 and 1 (errors fixed) are success.
pub fn e2fsck_force(dev: &Path) -> Result<()> {
    let out = Command::new("e2fsck")
        .args(["-f", "-p"])
        .arg(dev)
        .output()
        .with_context(|| format!("running e2fsck -f -p {}", dev.display()))?;
    match out.status.code() {
        Some(0) | Some(1) => Ok(()),
        _ => bail!(
            "e2fsck -f -p {} failed ({}): {}",
            dev.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim()
        ),
    }
}

/// `xfs_growfs MOUNTPOINT`: grow a mounted XFS to its device.
pub fn xfs_growfs(mountpoint: &Path) -> Result<()> {
    run(Command::new("xfs_growfs").arg(mountpoint)).map(|_| ())
}

/// `udevadm settle` (best effort: a system without udev has nothing to wait for).
pub fn udevadm_settle() {
    let _ = Command::new("udevadm")
        .args(["settle", "--timeout=10"])
        .output();
}

/// Everything `blkid -p -o export DEV` says of a device: the filesystem (`TYPE`, `LABEL`,
/// `UUID`, `VERSION`) and, for a partition, its table entry (`PART_ENTRY_TYPE`,
/// `PART_ENTRY_NAME`, `PART_ENTRY_FLAGS`...). Empty when blkid finds nothing.
pub fn blkid_probe(dev: &Path) -> std::collections::BTreeMap<String, String> {
    let Ok(out) = Command::new("blkid")
        .args(["-p", "-o", "export"])
        .arg(dev)
        .output()
    else {
        return Default::default();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every path on a FAT filesystem below `dir` (`mdir -i DEV -/ -b ::DIR`, mtools), read
/// without mounting: kernels without vfat (and read-only devices) can still be looked at.
/// Paths come back as `::/EFI/BOOT/BOOTX64.EFI`.
pub fn fat_list(dev: &Path, dir: &str) -> Result<Vec<String>> {
    let mut cmd = Command::new("mdir");
    cmd.env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(dev)
        .args(["-/", "-b"])
        .arg(format!("::{dir}"));
    let out = cmd
        .output()
        .context("running mdir (install the Debian package mtools)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // An absent directory is an empty listing, not a failure.
        if err.contains("not found") {
            return Ok(vec![]);
        }
        bail!(
            "mdir -i {} ::{dir} failed ({}): {}",
            dev.display(),
            out.status,
            err.trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}
