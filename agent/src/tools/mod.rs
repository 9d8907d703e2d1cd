//! Every external command the agent runs, typed. A missing tool is an error that names the
//! Debian package that provides it.

pub mod bcache;
pub mod cryptsetup;
mod disk;
pub mod lvm;
pub mod mdadm;
pub use disk::*;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Find `tool` on PATH (plus the sbin directories, which a non-login PATH may lack).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The Debian package that ships a tool, for error messages.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "mkfs.ext2" | "mkfs.ext3" | "mkfs.ext4" | "e2fsck" | "resize2fs" => "e2fsprogs",
        "mkfs.xfs" => "xfsprogs",
        "mkfs.btrfs" => "btrfs-progs",
        "mkfs.vfat" => "dosfstools",
        "mkfs.f2fs" => "f2fs-tools",
        "jfs_mkfs" => "jfsutils",
        "mkntfs" => "ntfs-3g",
        "mkfs.reiserfs" => "reiserfsprogs",
        "mkswap" | "wipefs" | "blkid" | "swapoff" => "util-linux",
        "lvm" | "pvremove" => "lvm2",
        "mdadm" => "mdadm",
        "cryptsetup" => "cryptsetup-bin",
        "make-bcache" | "bcache-super-show" => "bcache-tools",
        _ => "the package providing it",
    }
}

/// The tool's path, or an error naming its package.
pub fn require(tool: &str) -> Result<PathBuf> {
    which(tool).with_context(|| {
        format!(
            "{tool} not found: install the Debian package {}",
            package_of(tool)
        )
    })
}

/// Device-mapper users (LVM, cryptsetup) wait for udev to make their `/dev` nodes; without
/// udev (a minimal ephemeral OS) they are told to make them themselves.
fn dm_env(cmd: &mut Command, tool: &str) {
    if matches!(tool, "lvm" | "cryptsetup" | "dmsetup") && !Path::new("/run/udev/control").exists()
    {
        cmd.env("DM_DISABLE_UDEV", "1");
    }
}

/// Run a command; on failure the error carries its stderr.
pub fn run(tool: &str, args: &[OsString]) -> Result<String> {
    // After SIGTERM/SIGINT no further tool runs: the stage stops and cleans up.
    crate::signals::check()?;
    let exe = require(tool)?;
    let mut cmd = Command::new(&exe);
    dm_env(&mut cmd, tool);
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} {} failed ({}): {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The file system families curtin knows, with their mkfs conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsFamily {
    Ext(u8),
    Xfs,
    Btrfs,
    /// FAT with an optional `-F 12|16|32`.
    Vfat(Option<u8>),
    Swap,
    F2fs,
    Jfs,
    Ntfs,
    Reiserfs,
}

impl FsFamily {
    /// curtin's fstype names.
    pub fn parse(fstype: &str) -> Result<FsFamily> {
        Ok(match fstype {
            "ext2" => FsFamily::Ext(2),
            "ext3" => FsFamily::Ext(3),
            "ext4" => FsFamily::Ext(4),
            "xfs" => FsFamily::Xfs,
            "btrfs" => FsFamily::Btrfs,
            "vfat" | "fat" => FsFamily::Vfat(None),
            "fat12" => FsFamily::Vfat(Some(12)),
            "fat16" => FsFamily::Vfat(Some(16)),
            "fat32" => FsFamily::Vfat(Some(32)),
            "swap" => FsFamily::Swap,
            "f2fs" => FsFamily::F2fs,
            "jfs" => FsFamily::Jfs,
            "ntfs" => FsFamily::Ntfs,
            "reiserfs" => FsFamily::Reiserfs,
            other => bail!("unsupported fs type {other:?} (supported: ext2, ext3, ext4, xfs, btrfs, vfat, fat12, fat16, fat32, swap, f2fs, jfs, ntfs, reiserfs)"),
        })
    }

    pub fn tool(self) -> &'static str {
        match self {
            FsFamily::Ext(2) => "mkfs.ext2",
            FsFamily::Ext(3) => "mkfs.ext3",
            FsFamily::Ext(_) => "mkfs.ext4",
            FsFamily::Xfs => "mkfs.xfs",
            FsFamily::Btrfs => "mkfs.btrfs",
            FsFamily::Vfat(_) => "mkfs.vfat",
            FsFamily::Swap => "mkswap",
            FsFamily::F2fs => "mkfs.f2fs",
            FsFamily::Jfs => "jfs_mkfs",
            FsFamily::Ntfs => "mkntfs",
            FsFamily::Reiserfs => "mkfs.reiserfs",
        }
    }

    /// The label length limit (curtin truncates to it).
    pub fn label_max(self) -> usize {
        match self {
            FsFamily::Ext(_) => 16,
            FsFamily::Xfs => 12,
            FsFamily::Btrfs => 256,
            FsFamily::Vfat(_) => 11,
            FsFamily::Swap => 15,
            FsFamily::F2fs => 512,
            FsFamily::Jfs | FsFamily::Reiserfs => 16,
            FsFamily::Ntfs => 32,
        }
    }

    /// The type name for mount and fstab (`fat*` is `vfat`).
    pub fn mount_type(self) -> &'static str {
        match self {
            FsFamily::Ext(2) => "ext2",
            FsFamily::Ext(3) => "ext3",
            FsFamily::Ext(_) => "ext4",
            FsFamily::Xfs => "xfs",
            FsFamily::Btrfs => "btrfs",
            FsFamily::Vfat(_) => "vfat",
            FsFamily::Swap => "swap",
            FsFamily::F2fs => "f2fs",
            FsFamily::Jfs => "jfs",
            FsFamily::Ntfs => "ntfs",
            FsFamily::Reiserfs => "reiserfs",
        }
    }
}

/// What to make on a device.
#[derive(Debug, Clone)]
pub struct Mkfs<'a> {
    pub family: FsFamily,
    pub device: &'a Path,
    pub label: Option<&'a str>,
    /// Not for vfat (curtin passes none; the volume id is random).
    pub uuid: Option<&'a str>,
    pub sector_size: u64,
    pub extra: &'a [String],
}

impl Mkfs<'_> {
    /// The argument list, curtin's flags: force, label (truncated), uuid, sector size, extras.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        match self.family {
            FsFamily::Ext(_) => push("-F"),
            FsFamily::Xfs => push("-f"),
            FsFamily::Btrfs => push("--force"),
            FsFamily::Vfat(bits) => {
                push("-I");
                if let Some(b) = bits {
                    push("-F");
                    push(&b.to_string());
                }
            }
            FsFamily::Swap | FsFamily::Ntfs => push("--force"),
            FsFamily::F2fs | FsFamily::Reiserfs => push("-f"),
            FsFamily::Jfs => push("-q"),
        }
        if let Some(l) = self.label {
            let l: String = l.chars().take(self.family.label_max()).collect();
            match self.family {
                FsFamily::Ext(_) | FsFamily::Xfs | FsFamily::Jfs => push("-L"),
                FsFamily::Btrfs | FsFamily::Swap | FsFamily::Ntfs | FsFamily::Reiserfs => {
                    push("--label")
                }
                FsFamily::Vfat(_) => push("-n"),
                FsFamily::F2fs => push("-l"),
            }
            push(&l);
        }
        if let Some(u) = self.uuid {
            match self.family {
                FsFamily::Ext(_) => {
                    push("-U");
                    push(u);
                }
                FsFamily::Xfs => {
                    push("-m");
                    push(&format!("uuid={u}"));
                }
                FsFamily::Btrfs | FsFamily::Swap | FsFamily::Reiserfs => {
                    push("--uuid");
                    push(u);
                }
                FsFamily::F2fs => {
                    push("-U");
                    push(u);
                }
                // curtin passes none: the tools pick one, read back with blkid.
                FsFamily::Vfat(_) | FsFamily::Jfs | FsFamily::Ntfs => {}
            }
        }
        if self.sector_size > 512 {
            let s = self.sector_size.to_string();
            match self.family {
                FsFamily::Ext(_) => {
                    push("-b");
                    push(&s);
                }
                FsFamily::Xfs => {
                    push("-s");
                    push(&format!("size={s}"));
                }
                FsFamily::Vfat(_) => {
                    push("-S");
                    push(&s);
                    push("-s");
                    push("1");
                }
                FsFamily::Btrfs => {
                    push("--sectorsize");
                    push(&s);
                }
                FsFamily::F2fs => {
                    push("-w");
                    push(&s);
                }
                FsFamily::Ntfs => {
                    push("--sector-size");
                    push(&s);
                }
                FsFamily::Reiserfs => {
                    push("--block-size");
                    push(&s);
                }
                FsFamily::Swap | FsFamily::Jfs => {}
            }
        }
        if matches!(self.family, FsFamily::Ext(_)) {
            push("-q");
        }
        for e in self.extra {
            push(e);
        }
        a.push(self.device.as_os_str().to_owned());
        a
    }

    pub fn run(&self) -> Result<()> {
        run(self.family.tool(), &self.args()).with_context(|| {
            format!(
                "making {} on {}",
                self.family.mount_type(),
                self.device.display()
            )
        })?;
        Ok(())
    }
}

/// `wipefs --all --force DEV`.
pub fn wipefs_all(dev: &Path) -> Result<()> {
    run(
        "wipefs",
        &["--all".into(), "--force".into(), dev.as_os_str().to_owned()],
    )?;
    Ok(())
}

/// `pvremove --force --force --yes DEV` when LVM tools exist (rc 5, "not a PV", is fine).
pub fn pvremove(dev: &Path) -> Result<()> {
    let Some(exe) = which("lvm") else {
        tracing::info!("lvm not installed: skipping LVM wipe of {}", dev.display());
        return Ok(());
    };
    let mut cmd = Command::new(exe);
    dm_env(&mut cmd, "lvm");
    let st = cmd
        .args(["pvremove", "--force", "--force", "--yes"])
        .arg(dev)
        .output()
        .context("running lvm pvremove")?;
    match st.status.code() {
        Some(0) | Some(5) => Ok(()),
        _ => bail!(
            "pvremove {} failed: {}",
            dev.display(),
            String::from_utf8_lossy(&st.stderr).trim()
        ),
    }
}

/// Whether the running kernel can do `what` (`md`, `dm`, `bcache`): its module is loaded (or
/// built in), after a best-effort `modprobe` as curtin does for bcache. Checked before
/// anything is written, so a kernel without it stops the install with the disks untouched.
pub fn kernel_supports(what: &str) -> bool {
    let (module, present): (&str, &[&str]) = match what {
        "md" => ("md_mod", &["/proc/mdstat", "/sys/module/md_mod"]),
        "dm" => ("dm_mod", &["/sys/module/dm_mod", "/dev/mapper/control"]),
        "bcache" => ("bcache", &["/sys/fs/bcache/register"]),
        _ => return false,
    };
    let here = || present.iter().any(|p| Path::new(p).exists());
    if here() {
        return true;
    }
    if let Some(m) = which("modprobe") {
        let _ = Command::new(m).arg(module).output();
    }
    here()
}

/// `swapoff DEV`.
pub fn swapoff(dev: &Path) -> Result<()> {
    run("swapoff", &[dev.as_os_str().to_owned()])?;
    Ok(())
}

/// `blkid -o export DEV`: the `KEY=value` lines (PTUUID, PARTUUID, ...); none for a device
/// blkid finds nothing on (its exit 2).
pub fn blkid_export(dev: &Path) -> Result<Vec<(String, String)>> {
    let out = Command::new(require("blkid")?)
        .args(["-o", "export"])
        .arg(dev)
        .output()
        .context("running blkid")?;
    Ok(key_values(&String::from_utf8_lossy(&out.stdout)))
}

/// `udevadm info --query=property --name=DEV` (ID_SERIAL, ID_WWN, ...); none without udev.
pub fn udev_properties(dev: &Path) -> Result<Vec<(String, String)>> {
    let Some(exe) = which("udevadm") else {
        return Ok(vec![]);
    };
    let out = Command::new(exe)
        .args(["info", "--query=property", "--name"])
        .arg(dev)
        .output()
        .context("running udevadm info")?;
    Ok(key_values(&String::from_utf8_lossy(&out.stdout)))
}

fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The file system UUID of a device (`blkid -o value -s UUID`), if it has one.
pub fn blkid_uuid(dev: &Path) -> Result<Option<String>> {
    let out = Command::new(require("blkid")?)
        .args(["-p", "-o", "value", "-s", "UUID"])
        .arg(dev)
        .output()
        .context("running blkid")?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!s.is_empty()).then_some(s))
}

/// curtin's `get_volume_id`: `("UUID", ..)`, else `("PARTUUID", ..)`, else `("PTUUID", ..)`
/// of a device (`blkid -p -o export`).
pub fn volume_id(dev: &Path) -> Result<Option<(String, String)>> {
    let out = Command::new(require("blkid")?)
        .args(["-p", "-o", "export"])
        .arg(dev)
        .output()
        .context("running blkid")?;
    Ok(pick_volume_id(&String::from_utf8_lossy(&out.stdout)))
}

fn pick_volume_id(export: &str) -> Option<(String, String)> {
    let get = |k: &str| {
        export
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
    };
    [
        ("UUID", "UUID"),
        ("PARTUUID", "PART_ENTRY_UUID"),
        ("PTUUID", "PTUUID"),
    ]
    .iter()
    .find_map(|(name, key)| get(key).map(|v| (name.to_string(), v.to_string())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An argument list as strings, for comparing command lines.
    pub(crate) fn words(a: Vec<OsString>) -> Vec<String> {
        a.into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn volume_ids_in_curtins_order() {
        assert_eq!(
            pick_volume_id("DEVNAME=/dev/vdc2\nUUID=abc\nTYPE=crypto_LUKS\nPART_ENTRY_UUID=p1\n"),
            Some(("UUID".into(), "abc".into()))
        );
        assert_eq!(
            pick_volume_id("PART_ENTRY_UUID=p1\nPTUUID=t\n"),
            Some(("PARTUUID".into(), "p1".into()))
        );
        assert_eq!(pick_volume_id("TYPE=x\n"), None);
    }

    #[test]
    fn mkfs_flags_like_curtin() {
        let m = Mkfs {
            family: FsFamily::Xfs,
            device: Path::new("/dev/x1"),
            label: Some("a-very-long-label"),
            uuid: Some("u"),
            sector_size: 4096,
            extra: &[],
        };
        let a: Vec<String> = m
            .args()
            .iter()
            .map(|s| s.to_string_lossy().into())
            .collect();
        assert_eq!(
            a,
            [
                "-f",
                "-L",
                "a-very-long-",
                "-m",
                "uuid=u",
                "-s",
                "size=4096",
                "/dev/x1"
            ]
        );
        assert!(require("mkfs.nonexistent-fs")
            .unwrap_err()
            .to_string()
            .contains("not found"));
        assert_eq!(package_of("mkfs.xfs"), "xfsprogs");
    }
}
