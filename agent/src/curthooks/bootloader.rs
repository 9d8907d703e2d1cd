//! The bootloader step of the builtin curthooks (Debian family): initramfs, grub-install (UEFI
//! into the ESP with an NVRAM entry where efivars exist; BIOS onto the `grub_device` disks),
//! update-grub — all run in the target. A tool missing from the target is an error naming
//! the package that provides it.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use preseed::settings::{Boot, InstallDevices};
use preseed::storage::{Disk, Item, Storage};
use preseed::Config;

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

/// The `boot:` (or older `grub:`) settings, curtin's defaults when the config has neither.
pub(super) fn boot_cfg(cfg: &Config) -> Boot {
    cfg.boot.clone().unwrap_or_default()
}

/// What grub-install should target.
#[derive(Debug, PartialEq)]
pub(super) enum Devices {
    /// `install_devices: null`: no grub-install.
    None,
    List(Vec<PathBuf>),
}

pub(super) fn install_devices(cfg: &Config, boot: &Boot) -> Devices {
    let flagged = || grub_devices(cfg.storage.as_ref());
    match &boot.install_devices {
        InstallDevices::Nothing => Devices::None,
        InstallDevices::One(s) => Devices::List(vec![PathBuf::from(s)]),
        InstallDevices::Given(list) => match flagged() {
            // Storage items with `grub_device` win over a given list.
            f if !f.is_empty() => Devices::List(f),
            _ => Devices::List(list.iter().map(PathBuf::from).collect()),
        },
        InstallDevices::FromStorage => Devices::List(flagged()),
    }
}

/// The disks of storage entries with `grub_device: true` (a partition's disk for partitions).
fn grub_devices(storage: Option<&Storage>) -> Vec<PathBuf> {
    let Some(st) = storage else {
        return vec![];
    };
    let mut out = vec![];
    for it in &st.config {
        let disk = match it {
            Item::Disk(d) if d.grub_device => Some(d),
            Item::Partition(p) if p.grub_device => match st.get(&p.device) {
                Some(Item::Disk(d)) => Some(d),
                _ => {
                    tracing::warn!("grub_device {}: cannot find its disk", p.id);
                    None
                }
            },
            _ => None,
        };
        match disk.and_then(disk_path) {
            Some(p) if !out.contains(&p) => out.push(p),
            _ => {}
        }
    }
    out
}

/// A disk entry's device: its `path`, else found as the partitioning stage found it (wwn or
/// serial through sysfs or by-id): the ephemeral OS may have no udev, so no /dev/disk/by-id.
fn disk_path(disk: &Disk) -> Option<PathBuf> {
    if let Some(p) = &disk.path {
        return Some(PathBuf::from(p));
    }
    crate::block_meta::disk::find(disk)
        .map_err(|e| tracing::warn!("grub_device {}: {e:#}", disk.id))
        .ok()
}

/// False (logged) when `boot.bootloaders` lists no grub.
pub(super) fn grub_wanted(boot: &Boot) -> bool {
    if !boot.wants_grub() {
        tracing::info!("boot.bootloaders has no grub: skipping the bootloader");
        return false;
    }
    true
}

/// `update_nvram` (default true), and only where efivars can be written.
pub(super) fn update_nvram(boot: &Boot) -> bool {
    boot.update_nvram && Path::new("/sys/firmware/efi/efivars").is_dir()
}

/// The bootloader step.
pub fn setup(chroot: &Chroot, cfg: &Config) -> Result<()> {
    let boot = &boot_cfg(cfg);
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
fn write_grub_settings(root: &TargetRoot, boot: &Boot) -> Result<()> {
    let mut text = String::from("# Written by deployer (curtin's settings)\n");
    if !boot.probe_additional_os {
        text.push_str("GRUB_DISABLE_OS_PROBER=\"true\"\n");
    }
    let terminal = &boot.terminal;
    if terminal != "unmodified" {
        text.push_str(&format!("GRUB_TERMINAL=\"{terminal}\"\n"));
    }
    if boot.replace_linux_default {
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

    fn cfg(y: &str) -> Config {
        preseed::load::from_merged(yaml_serde::from_str(y).unwrap())
            .map(|l| l.config)
            .unwrap()
    }

    #[test]
    fn devices_from_storage_and_install_devices() {
        let c = cfg("{storage: {version: 1, config: [
               {id: d1, type: disk, path: /dev/vda, grub_device: true},
               {id: d2, type: disk, path: /dev/vdb},
               {id: p1, type: partition, device: d2, size: 1G, grub_device: 1}]}}");
        let both = Devices::List(vec!["/dev/vda".into(), "/dev/vdb".into()]);
        assert_eq!(install_devices(&c, &boot_cfg(&c)), both);
        // A given list yields to the storage items' grub_device, as in curtin.
        let mut given = c.clone();
        given.boot = Some(Boot {
            install_devices: InstallDevices::Given(vec!["/dev/sdz".into()]),
            ..Boot::default()
        });
        assert_eq!(install_devices(&given, &boot_cfg(&given)), both);
        let none = cfg("{grub: {install_devices: null}}");
        assert_eq!(install_devices(&none, &boot_cfg(&none)), Devices::None);
        let listed = cfg("{boot: {install_devices: [/dev/sdq]}}");
        assert_eq!(
            install_devices(&listed, &boot_cfg(&listed)),
            Devices::List(vec!["/dev/sdq".into()])
        );
        let e = preseed::load::from_merged(yaml_serde::from_str("{grub: {}, boot: {}}").unwrap());
        assert!(e.is_err());
    }
}
