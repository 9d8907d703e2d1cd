//! Mounting the target's file systems (sys-mount) in path order, and unmounting in reverse.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sys_mount::{Mount, MountFlags, UnmountFlags};

use crate::target::TargetRoot;

/// Split an fstab option string into kernel flags and the file system's data string; fstab-only
/// options (`defaults`, `nofail`, `_netdev`, `x-*`...) are dropped for the install-time mount.
pub fn parse_options(opts: &str) -> (MountFlags, String) {
    let mut flags = MountFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => flags &= !MountFlags::RDONLY,
            "noatime" => flags |= MountFlags::NOATIME,
            "nodiratime" => flags |= MountFlags::NODIRATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "strictatime" => flags |= MountFlags::STRICTATIME,
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "sync" => flags |= MountFlags::SYNCHRONOUS,
            "dirsync" => flags |= MountFlags::DIRSYNC,
            "bind" => flags |= MountFlags::BIND,
            "rbind" => flags |= MountFlags::BIND | MountFlags::REC,
            "defaults" | "auto" | "noauto" | "user" | "nouser" | "users" | "nofail" | "_netdev"
            | "suid" | "dev" | "exec" | "async" | "sw" | "atime" | "diratime" => {}
            o if o.starts_with("x-") || o.starts_with("comment=") => {}
            o => data.push(o),
        }
    }
    (flags, data.join(","))
}

/// Mounts made by this stage, unmounted in reverse order by [`Mounts::unmount_all`] (and on drop
/// unless [`Mounts::keep`] was called: a failed stage leaves nothing mounted).
#[derive(Default)]
pub struct Mounts {
    points: Vec<PathBuf>,
    keep: bool,
}

impl Mounts {
    /// Mount on a host directory (the target itself), made if missing.
    pub fn mount(
        &mut self,
        dev: &Path,
        point: &Path,
        fstype: Option<&str>,
        options: &str,
    ) -> Result<()> {
        std::fs::create_dir_all(point)
            .with_context(|| format!("creating mount point {}", point.display()))?;
        self.mount_on(dev, point, point, fstype, options)
    }

    /// Mount at `path` inside the target (`/boot/efi`): the mount point is made and resolved
    /// inside the target, so that a symlink in it cannot lead the mount out.
    pub fn mount_in(
        &mut self,
        root: &TargetRoot,
        path: &str,
        dev: &Path,
        fstype: Option<&str>,
        options: &str,
    ) -> Result<()> {
        let mp = root.mount_point(path)?;
        self.mount_on(dev, &mp.proc_path(), mp.path(), fstype, options)
    }

    /// mount(2) onto `at`, which shows as `point` in the mount table.
    fn mount_on(
        &mut self,
        dev: &Path,
        at: &Path,
        point: &Path,
        fstype: Option<&str>,
        options: &str,
    ) -> Result<()> {
        let (flags, data) = parse_options(options);
        let mut b = Mount::builder().flags(flags);
        if let Some(t) = fstype.filter(|t| !matches!(*t, "none" | "bind")) {
            b = b.fstype(t);
        }
        if !data.is_empty() {
            b = b.data(&data);
        }
        b.mount(dev, at).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::ENODEV) {
                format!(
                    ": the running kernel does not support {} file systems",
                    fstype.unwrap_or("this type of")
                )
            } else {
                String::new()
            };
            anyhow::anyhow!(
                "mounting {} on {} (options {options:?}): {e}{hint}",
                dev.display(),
                point.display()
            )
        })?;
        self.points.push(point.to_path_buf());
        Ok(())
    }

    /// Keep everything mounted for the next stages.
    pub fn keep(mut self) {
        self.keep = true;
    }

    pub fn unmount_all(&mut self) -> Result<()> {
        let mut first_err = None;
        while let Some(p) = self.points.pop() {
            if let Err(e) = sys_mount::unmount(&p, UnmountFlags::empty()) {
                tracing::warn!("unmounting {}: {e}", p.display());
                if let Err(e2) = sys_mount::unmount(&p, UnmountFlags::DETACH) {
                    first_err.get_or_insert(anyhow::anyhow!("unmounting {}: {e2}", p.display()));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.unmount_all();
        }
    }
}

/// Unmount every mount at or below `target`, deepest first (`block-meta --umount`).
pub fn unmount_below(target: &Path) -> Result<()> {
    let target = target
        .canonicalize()
        .with_context(|| format!("{}", target.display()))?;
    let mut points = crate::mounts::under(&target);
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        sys_mount::unmount(&p, UnmountFlags::empty())
            .with_context(|| format!("unmounting {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let (f, d) = parse_options("defaults,noatime,ro,errors=remount-ro,x-systemd.automount");
        assert!(f.contains(MountFlags::NOATIME | MountFlags::RDONLY));
        assert_eq!(d, "errors=remount-ro");
    }
}
