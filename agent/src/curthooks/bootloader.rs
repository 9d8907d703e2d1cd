//! The bootloader step of the builtin curthooks (Debian family): initramfs, grub-install (UEFI
//! into the ESP with an NVRAM entry where efivars exist; BIOS onto the `grub_device` disks),
//! update-grub — all run in the target. A tool missing from the target is an error naming
//! the package that provides it.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use yaml_serde::Value;

use crate::error::{Kind, KindExt};
use crate::target::{Chroot, TargetRoot};

/// A tool in the target and the Debian package that ships it.
pub(super) struct TargetTool {
    pub name: &'static str,
    pub package: &'static str,
}

const GRUB_INSTALL_BIOS: TargetTool = TargetTool {
    name: "grub-install",
    package: "grub-pc",
};
const GRUB_INSTALL_EFI: TargetTool = TargetTool {
    name: "grub-install",
    package: "grub-efi-amd64",
};
const UPDATE_GRUB: TargetTool = TargetTool {
    name: "update-grub",
    package: "grub2-common",
};
const UPDATE_INITRAMFS: TargetTool = TargetTool {
    name: "update-initramfs",
    package: "initramfs-tools",
};

pub(super) fn require(chroot: &Chroot, t: &TargetTool) -> Result<()> {
    let found = ["usr/sbin", "sbin", "usr/bin", "bin", "usr/local/sbin"]
        .iter()
        .any(|d| chroot.files().is_executable(format!("{d}/{}", t.name)));
    if found {
        Ok(())
    } else {
        Err(anyhow!(
            "{} is not in the target image: install the {} package in the image",
            t.name,
            t.package
        ))
        // A curthooks failure (6), not exit 7: 7 says the image lacks cloud-init (MAAS's check).
        .kind(Kind::Hook)
    }
}

pub(super) fn run_in(chroot: &Chroot, argv: &[&str]) -> Result<()> {
    // Announced before it runs: these take minutes on a slow machine, and the console shows
    // which one a stalled install is in.
    tracing::info!("running `{}` in the target", argv.join(" "));
    let out = chroot.output(argv)?;
    if !out.trim().is_empty() {
        tracing::info!("{}: {}", argv[0], out.trim_end());
    }
    Ok(())
}

/// The `boot:` (or legacy `grub:`) settings.
pub(super) fn boot_cfg(cfg: &Value) -> Result<Option<&Value>> {
    match (cfg.get("boot"), cfg.get("grub")) {
        (Some(_), Some(_)) => {
            Err(anyhow!("the config has both `grub` and `boot` keys")).kind(Kind::Config)
        }
        (Some(b), None) | (None, Some(b)) => Ok(Some(b)),
        (None, None) => Ok(None),
    }
}

/// What grub-install should target.
#[derive(Debug, PartialEq)]
pub(super) enum Devices {
    /// `install_devices: null`: no grub-install.
    None,
    List(Vec<PathBuf>),
}

pub(super) fn install_devices(cfg: &Value, boot: Option<&Value>) -> Devices {
    if let Some(b) = boot {
        match b.get("install_devices") {
            Some(Value::Null) => return Devices::None,
            Some(Value::String(s)) => return Devices::List(vec![PathBuf::from(s)]),
            Some(Value::Sequence(seq)) if !has_grub_devices(cfg) => {
                return Devices::List(
                    seq.iter()
                        .filter_map(Value::as_str)
                        .map(PathBuf::from)
                        .collect(),
                )
            }
            _ => {}
        }
    }
    Devices::List(grub_devices(cfg))
}

fn has_grub_devices(cfg: &Value) -> bool {
    !grub_devices(cfg).is_empty()
}

/// The disks of storage entries with `grub_device: true` (a partition's disk for partitions).
fn grub_devices(cfg: &Value) -> Vec<PathBuf> {
    let Some(Value::Sequence(items)) = cfg.get("storage").and_then(|s| s.get("config")) else {
        return vec![];
    };
    let by_id = |id: &str| {
        items
            .iter()
            .find(|i| i.get("id").and_then(Value::as_str) == Some(id))
    };
    let mut out = vec![];
    for it in items {
        // curtin: `if item.get('grub_device')`.
        let flagged = it
            .get("grub_device")
            .is_some_and(|v| !preseed::truth::falsy(v));
        if !flagged {
            continue;
        }
        let disk = match it.get("type").and_then(Value::as_str) {
            Some("disk") => Some(it),
            Some("partition") => it.get("device").and_then(Value::as_str).and_then(by_id),
            _ => None,
        };
        match disk.and_then(disk_path) {
            Some(p) if !out.contains(&p) => out.push(p),
            Some(_) => {}
            None => tracing::warn!("grub_device {:?}: cannot find its disk", it.get("id")),
        }
    }
    out
}

/// A disk entry's device: its `path`, else found as the partitioning stage found it (wwn or
/// serial through sysfs or by-id): the ephemeral OS may have no udev, so no /dev/disk/by-id.
fn disk_path(disk: &Value) -> Option<PathBuf> {
    if let Some(p) = disk.get("path").and_then(Value::as_str) {
        return Some(PathBuf::from(p));
    }
    let d: preseed::storage::Disk = yaml_serde::from_value(disk.clone()).ok()?;
    crate::block_meta::disk::find(&d)
        .map_err(|e| tracing::warn!("{e:#}"))
        .ok()
}

/// False (logged) when `boot.bootloaders` lists no grub.
pub(super) fn grub_wanted(boot: Option<&Value>) -> bool {
    if let Some(Value::Sequence(bl)) = boot.and_then(|b| b.get("bootloaders")) {
        if !bl.iter().any(|b| b.as_str() == Some("grub")) {
            tracing::info!("boot.bootloaders has no grub: skipping the bootloader");
            return false;
        }
    }
    true
}

/// `update_nvram` (default true), and only where efivars can be written.
pub(super) fn update_nvram(boot: Option<&Value>) -> bool {
    boot.and_then(|b| b.get("update_nvram"))
        .map(preseed::truth::value_as_boolean)
        .unwrap_or(true)
        && Path::new("/sys/firmware/efi/efivars").is_dir()
}

/// The bootloader step.
pub fn setup(chroot: &Chroot, cfg: &Value) -> Result<()> {
    let boot = boot_cfg(cfg)?;
    if !grub_wanted(boot) {
        return Ok(());
    }
    write_grub_settings(chroot.files(), boot)?;
    require(chroot, &UPDATE_INITRAMFS)?;
    run_in(chroot, &["update-initramfs", "-u"]).context("update-initramfs")?;
    let uefi = Path::new("/sys/firmware/efi").is_dir();
    match install_devices(cfg, boot) {
        Devices::None => tracing::info!("install_devices is null: no grub-install"),
        Devices::List(devs) if uefi => {
            let _ = devs; // UEFI installs into the ESP mounted at /boot/efi.
            require(chroot, &GRUB_INSTALL_EFI)?;
            let id = crate::image_check::os_id(&crate::image_check::MountedRoot(chroot.root()))
                .unwrap_or_else(|| "debian".into());
            let nvram = update_nvram(boot);
            let bootloader_id = format!("--bootloader-id={id}");
            let mut argv = vec![
                "grub-install",
                "--target=x86_64-efi",
                "--efi-directory=/boot/efi",
                bootloader_id.as_str(),
                "--recheck",
            ];
            if !nvram {
                argv.push("--no-nvram");
            }
            run_in(chroot, &argv).context("grub-install (UEFI)")?;
        }
        Devices::List(devs) => {
            if devs.is_empty() {
                tracing::warn!("no grub_device in the storage config and no boot.install_devices: no grub-install");
            } else {
                require(chroot, &GRUB_INSTALL_BIOS)?;
            }
            for d in devs {
                let d = d.to_string_lossy().into_owned();
                run_in(
                    chroot,
                    &["grub-install", "--target=i386-pc", "--recheck", &d],
                )
                .with_context(|| format!("grub-install {d}"))?;
            }
        }
    }
    require(chroot, &UPDATE_GRUB)?;
    run_in(chroot, &["update-grub"]).context("update-grub")?;
    Ok(())
}

/// `etc/default/grub.d/50-curtin-settings.cfg` as curtin writes it.
fn write_grub_settings(root: &TargetRoot, boot: Option<&Value>) -> Result<()> {
    let get = |k: &str| boot.and_then(|b| b.get(k));
    let mut text = String::from("# Written by deployer (curtin's settings)\n");
    // curtin's BootCfg reads these with value_as_boolean.
    let probe = get("probe_additional_os")
        .map(preseed::truth::value_as_boolean)
        .unwrap_or(false);
    if !probe {
        text.push_str("GRUB_DISABLE_OS_PROBER=\"true\"\n");
    }
    let terminal = get("terminal").and_then(Value::as_str).unwrap_or("console");
    if terminal != "unmodified" {
        text.push_str(&format!("GRUB_TERMINAL=\"{terminal}\"\n"));
    }
    let replace_default = get("replace_linux_default")
        .map(preseed::truth::value_as_boolean)
        .unwrap_or(true);
    if replace_default {
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let carry = carryover_params(&cmdline);
        text.push_str(&format!("GRUB_CMDLINE_LINUX_DEFAULT=\"{carry}\"\n"));
    }
    root.write_file(
        "etc/default/grub.d/50-curtin-settings.cfg",
        text.as_bytes(),
        0o644,
        None,
    )
}

/// curtin's `get_carryover_params`: the ephemeral kernel's arguments after ` --- ` (or the legacy
/// ` -- `), minus BOOTIF=, initrd= and BOOT_IMAGE=, plus its `console=` arguments before it.
pub fn carryover_params(cmdline: &str) -> String {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let sep = words
        .iter()
        .position(|w| *w == "---")
        .or_else(|| words.iter().position(|w| *w == "--"));
    let (before, after) = match sep {
        Some(i) => (&words[..i], &words[i + 1..]),
        None => (&words[..], &[][..]),
    };
    let dropped = |w: &&&str| {
        !(w.starts_with("BOOTIF=") || w.starts_with("initrd=") || w.starts_with("BOOT_IMAGE="))
    };
    let mut out: Vec<&str> = after.iter().filter(dropped).copied().collect();
    for c in before.iter().filter(|w| w.starts_with("console=")) {
        if !out.contains(c) {
            out.push(c);
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn carryover() {
        let c = "BOOT_IMAGE=/vmlinuz ro root=x console=tty0 console=ttyS0,115200 --- quiet BOOTIF=01-aa initrd=x nomodeset";
        assert_eq!(
            super::carryover_params(c),
            "quiet nomodeset console=tty0 console=ttyS0,115200"
        );
        assert_eq!(super::carryover_params("ro root=x"), "");
    }

    use super::*;

    #[test]
    fn devices_from_storage_and_install_devices() {
        let cfg: Value = yaml_serde::from_str(
            "{storage: {version: 1, config: [
               {id: d1, type: disk, path: /dev/vda, grub_device: true},
               {id: d2, type: disk, path: /dev/vdb},
               {id: p1, type: partition, device: d2, grub_device: 1}]}}",
        )
        .unwrap();
        assert_eq!(
            install_devices(&cfg, None),
            Devices::List(vec!["/dev/vda".into(), "/dev/vdb".into()])
        );
        let cfg2: Value = yaml_serde::from_str("{grub: {install_devices: null}}").unwrap();
        assert_eq!(
            install_devices(&cfg2, boot_cfg(&cfg2).unwrap()),
            Devices::None
        );
        let both: Value = yaml_serde::from_str("{grub: {}, boot: {}}").unwrap();
        assert!(boot_cfg(&both).is_err());
    }
}
