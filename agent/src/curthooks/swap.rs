//! The builtin curthooks' `setting-up-swap` (curtin's `add_swap` and `setup_swapfile`): a swap
//! file in the target (`/swap.img`), sized as `swap.size` says or by curtin's formula from this
//! machine's memory and the target's free space, and its line in the state fstab, which
//! becomes the target's etc/fstab next. `swap: {size: 0}` (MAAS's default) or a falsy `swap:`
//! makes none.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use preseed::settings::Swap;

use crate::target::TargetRoot;
use crate::workdir::WorkingDir;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// What the step will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    None(String),
    /// `path` inside the target, whole MiB, written with zeros (file systems where a
    /// fallocated file cannot be a swap file: btrfs, ext2, ext3, xfs) or fallocated.
    File {
        path: String,
        mib: u64,
        zeros: bool,
    },
}

/// curtin's `suggested_swapsize` for a target file system with `avail` free bytes.
pub fn suggested(mem: u64, maxsize: Option<u64>, avail: u64) -> u64 {
    let max = match maxsize {
        None => (avail / 4).min(8 * GIB),
        Some(m) if m as f64 > avail as f64 * 0.9 => (avail as f64 * 0.9) as u64,
        Some(m) => m,
    };
    // (memory up to, swap for that memory)
    type Formula = (u64, fn(u64) -> u64);
    let formulas: [Formula; 5] = [
        (GIB, |m| m * 2),
        (2 * GIB, |_| 2 * GIB),
        (4 * GIB, |m| m),
        (16 * GIB, |_| 4 * GIB),
        (64 * GIB, |m| m / 2),
    ];
    for (top, f) in formulas {
        if mem <= top {
            let size = f(mem).min(max);
            // Too small to be of use: none.
            if size < mem / 2 && size < 4 * GIB {
                return 0;
            }
            return size;
        }
    }
    max
}

/// Decide, for `swap` (None: the key is absent) on the target mounted at `target`.
pub fn plan(swap: Option<&Swap>, target: &Path) -> Result<Plan> {
    let default = Swap::default();
    let sw = swap.unwrap_or(&default);
    if sw.off {
        return Ok(Plan::None("swap: is falsy in the config".into()));
    }
    let name = sw.filename.as_deref().unwrap_or("/swap.img");
    let path = format!("/{}", name.trim_start_matches('/'));
    let size = match sw.size {
        Some(s) => s,
        None => {
            let st = nix::sys::statvfs::statvfs(target)
                .with_context(|| format!("statvfs {}", target.display()))?;
            let avail = st.blocks_free() * st.fragment_size();
            suggested(mem_total()?, sw.maxsize, avail)
        }
    };
    if size / MIB == 0 {
        return Ok(Plan::None(format!(
            "the swap size is 0 ({})",
            if sw.size.is_some() {
                "swap.size"
            } else {
                "curtin's suggestion for this memory and disk"
            }
        )));
    }
    let parent = Path::new(&path).parent().unwrap_or(Path::new("/"));
    // Its directory may not exist yet: then the target's root decides.
    let dir = TargetRoot::open(target)?
        .real_path(parent.strip_prefix("/").unwrap_or(parent))
        .unwrap_or_else(|_| target.to_path_buf());
    let fstype = fstype_of(&dir);
    match fstype.as_deref() {
        None => {
            return Ok(Plan::None(format!(
                "the file system of {} is unknown",
                dir.display()
            )))
        }
        Some("zfs") => return Ok(Plan::None("ZFS cannot hold a swap file".into())),
        // curtin asks the target's kernel package for 5.0 or later; deployer asks /boot.
        Some("btrfs") if !kernel_5_or_later(target) => {
            return Ok(Plan::None(
                "btrfs needs a kernel 5.0 or later in the target for a swap file".into(),
            ))
        }
        _ => {}
    }
    let zeros = matches!(fstype.as_deref(), Some("btrfs" | "ext2" | "ext3" | "xfs"));
    Ok(Plan::File {
        path,
        mib: size / MIB,
        zeros,
    })
}

/// The plan's line for `deployer plan` (no target to measure: the size may be suggested).
pub fn describe(swap: Option<&Swap>) -> String {
    match swap {
        Some(s) if s.off => "no swap file (swap: is falsy)".into(),
        Some(Swap { size: Some(0), .. }) => "no swap file (swap.size 0)".into(),
        s => {
            let name = s.and_then(|s| s.filename.as_deref()).unwrap_or("/swap.img");
            match s.and_then(|s| s.size) {
                Some(n) => format!("swap file {name} of {} MiB, in etc/fstab", n / MIB),
                None => format!(
                    "swap file {name} of curtin's suggested size (from memory and free space), in etc/fstab"
                ),
            }
        }
    }
}

/// The step: plan and apply on the working dir's target. A dd image (block-meta wrote no
/// fstab) keeps its own etc/fstab, so it gets no swap file either.
pub fn step(wd: &WorkingDir, swap: Option<&Swap>) -> Result<()> {
    let lines = std::fs::read_to_string(&wd.fstab).unwrap_or_default();
    if lines.trim().is_empty() {
        tracing::info!("no swap file: the image keeps its own etc/fstab");
        return Ok(());
    }
    apply(wd, &plan(swap, &wd.target)?)
}

/// Carry out the plan: the file (mode 0600, mkswap'd) and its state fstab line.
pub fn apply(wd: &WorkingDir, plan: &Plan) -> Result<()> {
    let (path, mib, zeros) = match plan {
        Plan::None(why) => {
            tracing::info!("no swap file: {why}");
            return Ok(());
        }
        Plan::File { path, mib, zeros } => (path, *mib, *zeros),
    };
    let root = TargetRoot::open(&wd.target)?;
    let rel = path.trim_start_matches('/');
    tracing::info!("creating swap file {path} of {mib} MiB");
    let made = (|| -> Result<()> {
        let _ = root.remove_file(rel);
        // Made inside the target (parents too): a linked parent cannot put it on the host.
        let mut f = root.create(rel, 0o600)?;
        if zeros {
            let chunk = vec![0u8; MIB as usize];
            for _ in 0..mib {
                f.write_all(&chunk)?;
            }
            f.sync_all()?;
        } else {
            use std::os::fd::AsRawFd;
            nix::fcntl::fallocate(
                f.as_raw_fd(),
                nix::fcntl::FallocateFlags::empty(),
                0,
                (mib * MIB) as i64,
            )
            .context("fallocate")?;
        }
        let host = root.real_path(rel)?;
        crate::tools::run("mkswap", &[host.into_os_string()])?;
        Ok(())
    })();
    if let Err(e) = made {
        let _ = root.remove_file(rel);
        return Err(e.context(format!("creating the swap file {path}")));
    }
    let mut fstab = std::fs::OpenOptions::new()
        .append(true)
        .open(&wd.fstab)
        .with_context(|| format!("opening {}", wd.fstab.display()))?;
    writeln!(fstab, "{path}\tnone\tswap\tsw\t0\t0").context("adding the swap file to the fstab")?;
    Ok(())
}

fn mem_total() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| anyhow!("no MemTotal in /proc/meminfo"))
}

/// The file system type of the mount holding `dir` (the longest mount point above it).
fn fstype_of(dir: &Path) -> Option<String> {
    crate::mounts::table()
        .into_iter()
        .filter(|m| dir.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .map(|m| m.fstype)
}

fn kernel_5_or_later(target: &Path) -> bool {
    super::steps::kernel_versions(&target.join("boot"))
        .iter()
        .filter_map(|v| v.split('.').next()?.parse::<u32>().ok())
        .any(|major| major >= 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curtins_suggestions() {
        let free = 100 * GIB;
        // Under 1 GiB of memory: double it.
        assert_eq!(suggested(512 * MIB, None, free), GIB);
        assert_eq!(suggested(2 * GIB, None, free), 2 * GIB);
        assert_eq!(suggested(3 * GIB, None, free), 3 * GIB);
        assert_eq!(suggested(8 * GIB, None, free), 4 * GIB);
        assert_eq!(suggested(32 * GIB, None, free), 8 * GIB); // 25% of free, at most 8 GiB
        assert_eq!(suggested(32 * GIB, Some(16 * GIB), free), 16 * GIB);
        assert_eq!(suggested(128 * GIB, Some(20 * GIB), free), 20 * GIB);
        // A small disk: a quarter of its free space is less than half the memory, so none.
        assert_eq!(suggested(4 * GIB, None, 2 * GIB), 0);
        // maxsize above 90% of the free space is cut to it.
        assert_eq!(suggested(GIB, Some(10 * GIB), GIB), 966_367_641);
    }

    #[test]
    fn what_the_config_says() {
        let t = Path::new("/");
        let off = Swap::off();
        assert!(matches!(plan(Some(&off), t).unwrap(), Plan::None(_)));
        let zero = Swap {
            size: Some(0),
            ..Swap::default()
        };
        assert!(matches!(plan(Some(&zero), t).unwrap(), Plan::None(_)));
        assert_eq!(describe(Some(&zero)), "no swap file (swap.size 0)");
        assert!(describe(None).contains("/swap.img of curtin's suggested size"));
    }
}
