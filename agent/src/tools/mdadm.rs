//! `mdadm`: creating, inspecting and stopping md arrays.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use preseed::storage::RaidLevel;

use super::run;

/// `mdadm --create`, with curtin's flags.
#[derive(Debug, Clone)]
pub struct Create<'a> {
    pub md: &'a Path,
    pub level: RaidLevel,
    pub devices: &'a [PathBuf],
    pub spares: &'a [PathBuf],
    /// `--metadata=`; mdadm's `default` when none.
    pub metadata: Option<&'a str>,
    /// `--name=` (curtin's `mdname`).
    pub name: Option<&'a str>,
    /// `--homehost=`, the running system's short hostname (curtin: `hostname -s`).
    pub homehost: Option<&'a str>,
}

impl Create<'_> {
    /// `--create MD --run --homehost=H --raid-devices=N --metadata=M --level=L [--name=N]
    /// DEVS [--spare-devices=N SPARES]`. No `--assume-clean`: RAID 4/5/6 parity must be
    /// computed before it can rebuild anything, and RAID 1/10 mirrors would differ where
    /// nothing was written. The initial resync runs in the background; the array is usable at
    /// once.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--create".into(), self.md.into(), "--run".into()];
        if let Some(h) = self.homehost {
            a.push(format!("--homehost={h}").into());
        }
        a.push(format!("--raid-devices={}", self.devices.len()).into());
        a.push(format!("--metadata={}", self.metadata.unwrap_or("default")).into());
        a.push(format!("--level={}", self.level.mdadm()).into());
        if let Some(n) = self.name.filter(|n| !n.is_empty()) {
            a.push(format!("--name={n}").into());
        }
        a.extend(self.devices.iter().map(|d| d.into()));
        if !self.spares.is_empty() {
            a.push(format!("--spare-devices={}", self.spares.len()).into());
            a.extend(self.spares.iter().map(|d| d.into()));
        }
        a
    }

    pub fn run(&self) -> Result<()> {
        run("mdadm", &self.args())
            .with_context(|| format!("creating the md array {}", self.md.display()))?;
        Ok(())
    }
}

/// `mdadm --detail --scan`: one `ARRAY <dev> metadata=.. name=.. UUID=..` line an array, the
/// text curtin puts in the target's mdadm.conf.
pub fn detail_scan() -> Result<String> {
    run("mdadm", &["--detail".into(), "--scan".into()])
}

/// `mdadm --detail --export MD` as key/value pairs (`MD_LEVEL=raid1`, `MD_DEVICE_dev_vda1_ROLE=0`...).
pub fn detail_export(md: &Path) -> Result<Vec<(String, String)>> {
    let out = run("mdadm", &["--detail".into(), "--export".into(), md.into()])?;
    Ok(parse_export(&out))
}

pub fn parse_export(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('\'').to_string(),
            )
        })
        .collect()
}

/// `mdadm --stop MD`.
pub fn stop(md: &Path) -> Result<()> {
    run("mdadm", &["--stop".into(), md.into()])?;
    Ok(())
}

/// `mdadm --zero-superblock --force DEV`: forget that a device was a member.
pub fn zero_superblock(dev: &Path) -> Result<()> {
    run(
        "mdadm",
        &["--zero-superblock".into(), "--force".into(), dev.into()],
    )?;
    Ok(())
}

/// `mdadm --assemble --scan --run`: bring up arrays an earlier deployment left, so that
/// clear-holders sees them. Failing is normal (there may be none): ignored, as curtin does.
pub fn assemble_scan() {
    if let Err(e) = run(
        "mdadm",
        &["--assemble".into(), "--scan".into(), "--run".into()],
    ) {
        tracing::debug!("mdadm --assemble --scan: {e:#}");
    }
}

/// `mdadm --incremental DEV`: add one member to its array, which starts once all its members
/// are there (what udev does with each member at boot).
pub fn incremental(dev: &Path) -> Result<()> {
    run("mdadm", &["--incremental".into(), dev.into()])?;
    Ok(())
}

/// `mdadm --incremental --run --scan`: start the arrays still waiting for members (degraded).
pub fn incremental_run_all() {
    if let Err(e) = run(
        "mdadm",
        &["--incremental".into(), "--run".into(), "--scan".into()],
    ) {
        tracing::debug!("mdadm --incremental --run --scan: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::tests::words;

    #[test]
    fn create_like_curtin() {
        let devs = [PathBuf::from("/dev/vda2"), PathBuf::from("/dev/vdb2")];
        let spares = [PathBuf::from("/dev/vdc2")];
        let c = Create {
            md: Path::new("/dev/md0"),
            level: RaidLevel::Raid1,
            devices: &devs,
            spares: &spares,
            metadata: None,
            name: Some("root"),
            homehost: Some("ephemeral"),
        };
        assert_eq!(
            words(c.args()),
            [
                "--create",
                "/dev/md0",
                "--run",
                "--homehost=ephemeral",
                "--raid-devices=2",
                "--metadata=default",
                "--level=raid1",
                "--name=root",
                "/dev/vda2",
                "/dev/vdb2",
                "--spare-devices=1",
                "/dev/vdc2"
            ]
        );
        let c = Create {
            level: RaidLevel::Raid5,
            spares: &[],
            metadata: Some("0.90"),
            name: None,
            homehost: None,
            ..c
        };
        let w = words(c.args());
        assert!(w.contains(&"--metadata=0.90".to_string()), "{w:?}");
        assert!(w.contains(&"--level=raid5".to_string()), "{w:?}");
        assert!(!w
            .iter()
            .any(|a| a.starts_with("--spare") || a.starts_with("--name")));
    }

    #[test]
    fn export_pairs() {
        let p = parse_export("MD_LEVEL=raid1\nMD_DEVICES=2\nMD_UUID=a:b:c:d\n");
        assert_eq!(p[0], ("MD_LEVEL".into(), "raid1".into()));
        assert_eq!(p.len(), 3);
    }
}
