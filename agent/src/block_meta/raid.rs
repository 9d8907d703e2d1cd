//! `raid` items (curtin `raid_handler`): an md array from partitions, disks or other layers,
//! with `mdadm --create`. The array is used as soon as the kernel runs it: the initial resync
//! goes on in the background (no `--assume-clean`, see [`crate::tools::mdadm::Create`]), and
//! the install never waits for it. `mdadm --detail --scan` goes to `state/mdadm.conf`, which
//! curthooks installs as the target's `etc/mdadm/mdadm.conf`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::config::Raid;
use super::custom::Ctx;
use crate::tools::{self, mdadm};

/// `name: mdN` is `/dev/mdN`; any other name `/dev/md/<name>` (curtin's `md_path`).
pub fn md_path(name: &str) -> PathBuf {
    let n = name.strip_prefix("/dev/").unwrap_or(name);
    let is_mdn = n
        .strip_prefix("md")
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
    if is_mdn || n.starts_with("md/") {
        PathBuf::from("/dev").join(n)
    } else {
        PathBuf::from("/dev/md").join(n)
    }
}

/// What will be run for one array.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub cfg: &'a Raid,
    pub md: PathBuf,
}

pub fn plan(cfg: &Raid) -> Plan<'_> {
    Plan {
        cfg,
        md: md_path(&cfg.name),
    }
}

/// The array states in which it takes I/O (curtin's READWRITE_RAID_STATES).
const USABLE: &[&str] = &[
    "clean",
    "active",
    "active-idle",
    "read-auto",
    "write-pending",
];

impl Plan<'_> {
    pub fn describe(&self) -> String {
        let c = self.cfg;
        let mut s = format!(
            "raid {}: {} {} of {}",
            c.id,
            c.raidlevel.mdadm(),
            self.md.display(),
            c.devices.join(", ")
        );
        if !c.spare_devices.is_empty() {
            s += &format!(", spares {}", c.spare_devices.join(", "));
        }
        if c.preserve {
            s += " (preserve: verify level and members, create nothing)";
        } else {
            s += &format!(
                "; mdadm --create --metadata={}, used at once while it resyncs; ARRAY line into etc/mdadm/mdadm.conf",
                c.metadata.as_deref().unwrap_or("default")
            );
        }
        if let Some(t) = c.ptable {
            s += &format!(", partition table {t:?}").to_lowercase();
        }
        s
    }

    /// Create (or verify) the array; returns its device.
    pub fn apply(&self, ctx: &mut Ctx) -> Result<PathBuf> {
        let c = self.cfg;
        let devices: Vec<PathBuf> = c
            .devices
            .iter()
            .map(|d| ctx.dev(d).cloned())
            .collect::<Result<_>>()?;
        let spares: Vec<PathBuf> = c
            .spare_devices
            .iter()
            .map(|d| ctx.dev(d).cloned())
            .collect::<Result<_>>()?;
        if c.preserve {
            self.verify(&devices, &spares)?;
        } else {
            for d in devices.iter().chain(&spares) {
                // Old signatures make mdadm ask before it overwrites them (curtin zeroes the
                // members first).
                tools::wipefs_all(d)?;
            }
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host = host
                .trim()
                .split('.')
                .next()
                .unwrap_or_default()
                .to_string();
            mdadm::Create {
                md: &self.md,
                level: c.raidlevel,
                devices: &devices,
                spares: &spares,
                metadata: c.metadata.as_deref(),
                name: c.mdname.as_deref(),
                homehost: (!host.is_empty() && host != "(none)").then_some(host.as_str()),
            }
            .run()?;
        }
        let kname = wait_usable(ctx, &self.md)?;
        // As curtin: the whole scan, rewritten after every array.
        ctx.mdadm_conf = Some(mdadm::detail_scan()?);
        // curtin's make_dname: /dev/disk/by-dname/<name> by the array's MD_UUID.
        let detail = mdadm::detail_export(&self.md)?;
        if let Some((_, u)) = detail.iter().find(|(k, _)| k == "MD_UUID") {
            super::dname::write_layer(&c.name, &super::dname::Volume::Md { md_uuid: u.clone() })?;
        }
        Ok(PathBuf::from("/dev").join(kname))
    }

    /// `preserve: true`: the array runs (or assembles) at this level with these members.
    fn verify(&self, devices: &[PathBuf], spares: &[PathBuf]) -> Result<()> {
        let c = self.cfg;
        let detail = match mdadm::detail_export(&self.md) {
            Ok(d) => d,
            Err(_) => {
                mdadm::assemble_scan();
                mdadm::detail_export(&self.md).with_context(|| {
                    format!(
                        "raid '{}' (preserve: true): {} is not an md array",
                        c.id,
                        self.md.display()
                    )
                })?
            }
        };
        let get = |k: &str| {
            detail
                .iter()
                .find(|(kk, _)| kk == k)
                .map(|(_, v)| v.clone())
        };
        let level = get("MD_LEVEL").unwrap_or_default();
        if level != c.raidlevel.mdadm() {
            bail!(
                "raid '{}' (preserve: true): expected level {}, found {level:?}",
                c.id,
                c.raidlevel.mdadm()
            );
        }
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut found: Vec<PathBuf> = detail
            .iter()
            .filter(|(k, _)| k.starts_with("MD_DEVICE_") && k.ends_with("_DEV"))
            .map(|(_, v)| canon(Path::new(v)))
            .collect();
        let mut want: Vec<PathBuf> = devices.iter().chain(spares).map(|p| canon(p)).collect();
        found.sort();
        want.sort();
        if found != want {
            bail!(
                "raid '{}' (preserve: true): expected members {:?}, found {:?}",
                c.id,
                want,
                found
            );
        }
        Ok(())
    }
}

/// Wait for the array's node and for the kernel to run it (not for its resync); returns its
/// kernel name.
fn wait_usable(ctx: &Ctx, md: &Path) -> Result<String> {
    let t = Instant::now();
    let mut last = String::new();
    loop {
        if let Ok(kname) = ctx.sys.kname_of(md) {
            let state = ctx.sys.md_state(&kname).unwrap_or_default();
            if USABLE.contains(&state.as_str()) {
                tracing::info!("{} ({kname}) is {state}", md.display());
                return Ok(kname);
            }
            last = format!("{kname} is {state:?}");
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!(
                "{} did not become usable within 60 s ({})",
                md.display(),
                if last.is_empty() { "no device" } else { &last }
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md_paths_like_curtin() {
        assert_eq!(md_path("md0"), PathBuf::from("/dev/md0"));
        assert_eq!(md_path("/dev/md12"), PathBuf::from("/dev/md12"));
        assert_eq!(md_path("root"), PathBuf::from("/dev/md/root"));
        assert_eq!(md_path("mdroot"), PathBuf::from("/dev/md/mdroot"));
        assert_eq!(md_path("/dev/md/data"), PathBuf::from("/dev/md/data"));
    }
}
