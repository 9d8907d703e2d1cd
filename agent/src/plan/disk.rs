//! Naming the disk a plan is for: `--target` (a block device or a disk image file, which may
//! not exist yet), or the disk the config identifies by wwn, serial or path. Read-only.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// What `--target` is.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    pub kind: TargetKind,
    /// Size in bytes, when known.
    pub size: Option<u64>,
    /// Logical sector size.
    pub lbs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    BlockDevice,
    File,
    Missing,
}

impl Target {
    pub fn inspect(path: &Path) -> anyhow::Result<Target> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Target {
                    path: path.to_path_buf(),
                    kind: TargetKind::Missing,
                    size: None,
                    lbs: 512,
                })
            }
            Err(e) => return Err(e).with_context(|| format!("looking at {}", path.display())),
        };
        let ft = meta.file_type();
        if ft.is_block_device() {
            let (maj, min) = (
                nix::sys::stat::major(meta.rdev()),
                nix::sys::stat::minor(meta.rdev()),
            );
            let sys = PathBuf::from(format!("/sys/dev/block/{maj}:{min}"));
            let num = |p: &str| -> Option<u64> {
                std::fs::read_to_string(sys.join(p))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            };
            Ok(Target {
                path: path.to_path_buf(),
                kind: TargetKind::BlockDevice,
                size: num("size").map(|s| s * 512),
                lbs: num("queue/logical_block_size").unwrap_or(512),
            })
        } else if ft.is_file() {
            Ok(Target {
                path: path.to_path_buf(),
                kind: TargetKind::File,
                size: Some(meta.len()),
                lbs: 512,
            })
        } else {
            anyhow::bail!(
                "--target {}: neither a block device nor a disk image file",
                path.display()
            )
        }
    }

    pub fn describe(&self) -> String {
        let p = self.path.display();
        match (self.kind, self.size) {
            (TargetKind::Missing, _) => {
                format!("{p} (disk image file, does not exist yet: would be created)")
            }
            (TargetKind::File, Some(s)) => format!("{p} (disk image file, {})", human(s)),
            (TargetKind::BlockDevice, Some(s)) => {
                format!(
                    "{p} (block device, {}, {}-byte sectors)",
                    human(s),
                    self.lbs
                )
            }
            (_, _) => format!("{p}"),
        }
    }
}

/// How the config's disk would be found on this machine (as curtin: wwn, serial, then path).
pub fn resolve(d: &preseed::storage::Disk) -> String {
    let by_id = |needle: &str| -> Option<PathBuf> {
        let needle = needle.replace(' ', "_");
        let mut hits: Vec<PathBuf> = std::fs::read_dir("/dev/disk/by-id")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(&needle))
            })
            .collect();
        hits.sort_by_key(|p| p.as_os_str().len());
        hits.into_iter().next()
    };
    let mut tried = Vec::new();
    for (key, val) in [("wwn", &d.wwn), ("serial", &d.serial)] {
        if let Some(v) = val {
            match by_id(v) {
                Some(p) => return format!("{key} {v} -> {}", p.display()),
                None => tried.push(format!("{key} {v}")),
            }
        }
    }
    if let Some(p) = &d.path {
        if Path::new(p).exists() {
            return format!("path {p}");
        }
        tried.push(format!("path {p}"));
    }
    format!("{} (not found on this machine)", tried.join(", "))
}

/// `512 MiB (536870912 bytes)`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (u, n) in UNITS {
        if bytes >= n {
            let v = bytes as f64 / n as f64;
            let v = if bytes.is_multiple_of(n) {
                format!("{}", bytes / n)
            } else {
                format!("{v:.2}")
            };
            return format!("{v} {u}");
        }
    }
    format!("{bytes} B")
}
