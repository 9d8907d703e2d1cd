//! Finding the disk a `disk` entry means, the way curtin does: `wwn`, then `serial`, then
//! `path` (then `name` as a kernel name); by-id substring matches must be unambiguous.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::Disk;
use crate::blockdev;

/// A disk found and opened for reading its geometry.
#[derive(Debug, Clone)]
pub struct FoundDisk {
    pub path: PathBuf,
    pub sector: u64,
    pub size: u64,
}

impl FoundDisk {
    pub fn open(path: &Path) -> Result<FoundDisk> {
        let md = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if !md.file_type().is_block_device() {
            bail!("{} is not a block device", path.display());
        }
        let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(FoundDisk {
            path: path.to_path_buf(),
            sector: blockdev::logical_sector_size(&f)
                .with_context(|| format!("reading the sector size of {}", path.display()))?
                as u64,
            size: blockdev::size_of(&f)
                .with_context(|| format!("reading the size of {}", path.display()))?,
        })
    }
}

fn sysfs_attr(dev: &str, names: &[&str]) -> Option<String> {
    for n in names {
        if let Ok(s) = std::fs::read_to_string(format!("/sys/class/block/{dev}/{n}")) {
            let s = s.trim().to_string();
            if !s.is_empty() {
                return Some(s);
            }
        }
    }
    None
}

/// Whole disks the kernel knows (no partitions), as kernel names.
pub fn disks_seen() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    std::fs::read_to_string(format!("/sys/block/{n}/size"))
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .is_some_and(|s| s > 0)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn describe_seen() -> String {
    let v: Vec<String> = disks_seen()
        .into_iter()
        .map(|n| {
            let serial = sysfs_attr(&n, &["device/serial", "serial"]).unwrap_or_else(|| "-".into());
            let wwn = sysfs_attr(&n, &["device/wwid", "wwid"]).unwrap_or_else(|| "-".into());
            format!("/dev/{n} (serial {serial}, wwn {wwn})")
        })
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// by-id names containing `needle` (spaces as `_`), realpath'd, partitions left out.
fn by_id(needle: &str) -> Vec<PathBuf> {
    let needle = needle.replace(' ', "_");
    let mut out: Vec<PathBuf> = std::fs::read_dir("/dev/disk/by-id")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.contains(&needle) && !n.contains("-part")
                })
                .filter_map(|e| e.path().canonicalize().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

/// Kernel disks whose sysfs attribute equals `value`.
fn by_sysfs(value: &str, attrs: &[&str]) -> Vec<PathBuf> {
    disks_seen()
        .into_iter()
        .filter(|n| {
            sysfs_attr(n, attrs).is_some_and(|v| {
                v == value || v.trim_start_matches("naa.") == value.trim_start_matches("0x")
            })
        })
        .map(|n| PathBuf::from(format!("/dev/{n}")))
        .collect()
}

fn one(id: &str, key: &str, value: &str, mut found: Vec<PathBuf>) -> Result<Option<PathBuf>> {
    found.sort();
    found.dedup();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => bail!(
            "disk '{id}': {key} {value:?} matches several disks ({}); give a longer {key} or a path",
            found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The block device a `disk` entry names.
pub fn find(d: &Disk) -> Result<PathBuf> {
    if let Some(w) = &d.wwn {
        let mut c = by_sysfs(w, &["device/wwid", "wwid"]);
        c.extend(by_id(&format!("wwn-{w}")));
        if let Some(p) = one(&d.id, "wwn", w, c)? {
            return Ok(p);
        }
    }
    if let Some(s) = &d.serial {
        let mut c = by_sysfs(s, &["device/serial", "serial"]);
        c.extend(by_id(s));
        if let Some(p) = one(&d.id, "serial", s, c)? {
            return Ok(p);
        }
    }
    if let Some(p) = &d.path {
        if let Ok(real) = Path::new(p).canonicalize() {
            return Ok(real);
        }
    }
    if d.wwn.is_none() && d.serial.is_none() && d.path.is_none() {
        if let Some(n) = &d.name {
            let p = PathBuf::from(format!("/dev/{n}"));
            if p.exists() {
                return Ok(p);
            }
        }
    }
    let mut wanted = Vec::new();
    for (k, v) in [
        ("wwn", &d.wwn),
        ("serial", &d.serial),
        ("path", &d.path),
        ("name", &d.name),
    ] {
        if let Some(v) = v {
            wanted.push(format!("{k} {v:?}"));
        }
    }
    if wanted.is_empty() {
        bail!(
            "disk '{}': no serial, wwn, path or name to find it by",
            d.id
        );
    }
    bail!(
        "disk '{}': no disk with {}; disks seen: {}",
        d.id,
        wanted.join(" or "),
        describe_seen()
    )
}
