//! The builtin curthooks for the RHEL family (CentOS, RHEL, Rocky, AlmaLinux, Oracle Linux,
//! Fedora): what curtin's `builtin_curthooks` does for `DISTROS.redhat`, so that packer-maas's
//! hook-less RHEL-like images (centos7-9, rhel7-10, rocky, ol) deploy. The steps are the Debian
//! ones where the files are the same (cloudconfig, fstab, dname rules, crypttab, key files);
//! these differ: the network config always goes to the target's cloud-init (it renders
//! sysconfig itself), `mdadm.conf` is `etc/mdadm.conf`, `/.autorelabel` is created for SELinux,
//! dracut rebuilds the initramfs when the storage has RAID or LVM, and GRUB is `grub2-*` with
//! its settings in `etc/default/grub`, using the image's signed shim on UEFI when it has one.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use preseed::settings::Boot;
use preseed::storage::Item;
use preseed::Config;

use super::bootloader::{self, Devices, TargetTool};
use crate::error::{Kind, KindExt};
use crate::target::{Chroot, TargetRoot};
use crate::workdir::WorkingDir;

/// os-release IDs (ID or ID_LIKE) of curtin's redhat family.
const IDS: &[&str] = &[
    "rhel",
    "centos",
    "fedora",
    "rocky",
    "almalinux",
    "ol",
    "redhat",
    "eurolinux",
    "virtuozzo",
    "cloudlinux",
    "openeuler",
];

pub fn is_redhat(ids: &[String]) -> bool {
    ids.iter().any(|i| IDS.contains(&i.as_str()))
}

const GRUB2_INSTALL_BIOS: TargetTool = TargetTool {
    name: "grub2-install",
    package: "grub2-pc",
};
const GRUB2_INSTALL_EFI: TargetTool = TargetTool {
    name: "grub2-install",
    package: "grub2-efi-x64-modules",
};
const GRUB2_MKCONFIG: TargetTool = TargetTool {
    name: "grub2-mkconfig",
    package: "grub2-tools",
};
const DRACUT: TargetTool = TargetTool {
    name: "dracut",
    package: "dracut",
};
const EFIBOOTMGR: TargetTool = TargetTool {
    name: "efibootmgr",
    package: "efibootmgr",
};

/// The whole builtin sequence on a RHEL-family target (the chroot is entered).
pub fn builtin(wd: &WorkingDir, cfg: &Config, chroot: &Chroot) -> Result<()> {
    use crate::report::within;
    let target = &wd.target;
    within("installing-kernel", "installing kernel", || {
        super::check_kernel(target, cfg);
        Ok(())
    })?;
    within("setting-up-swap", "setting up swap", || {
        super::swap::step(wd, cfg.swap.as_ref())
    })
    .context("setting-up-swap")?;
    super::write_cloudconfig(target, cfg).context("cloudconfig")?;
    let applied =
        crate::network::apply_with(chroot, wd, true).context("apply-networking-config")?;
    tracing::info!("network: {applied:?}");
    super::copy_fstab(wd, target).context("writing-etc-fstab")?;
    super::storage::install(wd, cfg, target, "etc/mdadm.conf").context("configuring-storage")?;
    crate::block_meta::dname::copy_into(&wd.scratch.join("rules.d"), target)
        .context("copying the by-dname udev rules")?;
    // curtin's redhat_apply_selinux_autorelabel: files written here have no SELinux labels.
    chroot
        .files()
        .write_file(".autorelabel", b"", 0o644, None)
        .context("enabling-selinux-autorelabel")?;
    update_initramfs(chroot, cfg).context("final-kernel-configuration")?;
    setup_grub(chroot, cfg).context("configuring-bootloader")
}

/// curtin's `redhat_update_initramfs`: only when the storage config has RAID or LVM, a dracut
/// config adding their modules, then `dracut -f` for the installed kernels.
fn update_initramfs(chroot: &Chroot, cfg: &Config) -> Result<()> {
    let Some(text) = dracut_storage_conf(cfg) else {
        tracing::info!("no RAID or LVM in the storage config: the image's initramfs is kept");
        return Ok(());
    };
    chroot
        .files()
        .write_file(
            "etc/dracut.conf.d/50-curtin-storage.conf",
            text.as_bytes(),
            0o644,
            None,
        )
        .context("writing the dracut config")?;
    bootloader::require(chroot, &DRACUT)?;
    let kernels: Vec<String> = super::steps::kernel_versions(&chroot.root().join("boot"))
        .into_iter()
        .filter(|v| !v.starts_with("0-rescue"))
        .collect();
    if kernels.is_empty() {
        return Err(anyhow!(
            "no kernel in the target's /boot to build an initramfs for"
        ))
        .kind(Kind::Image);
    }
    for v in kernels {
        let img = format!("/boot/initramfs-{v}.img");
        bootloader::run_in(chroot, &["dracut", "-f", &img, &v])
            .with_context(|| format!("dracut -f {img} {v}"))?;
    }
    Ok(())
}

/// `etc/dracut.conf.d/50-curtin-storage.conf` as curtin writes it, or None when the storage
/// config has neither RAID nor LVM.
pub fn dracut_storage_conf(cfg: &Config) -> Option<String> {
    let items = &cfg.storage.as_ref()?.config;
    let (mut modules, mut confs) = (vec![], vec![]);
    for it in items {
        let (m, c) = match it {
            Item::Raid(_) => ("mdraid", "mdadmconf"),
            Item::LvmVolgroup(_) | Item::LvmPartition(_) => ("lvm", "lvmconf"),
            _ => continue,
        };
        if !modules.contains(&m) {
            modules.push(m);
            confs.push(c);
        }
    }
    if modules.is_empty() {
        return None;
    }
    let mut text = format!(
        "# Written by curtin for custom storage config\nadd_dracutmodules+=\" {}\"\n",
        modules.join(" ")
    );
    for c in confs {
        text.push_str(&format!("{c}=\"yes\"\n"));
    }
    Some(text)
}

/// curtin's install_grub for the redhat family.
pub fn setup_grub(chroot: &Chroot, cfg: &Config) -> Result<()> {
    let boot = &bootloader::boot_cfg(cfg);
    if !bootloader::grub_wanted(boot) {
        return Ok(());
    }
    write_grub_defaults(chroot.files(), boot)?;
    let devices = bootloader::install_devices(cfg, boot);
    let mkconfig = |out: &str| -> Result<()> {
        bootloader::require(chroot, &GRUB2_MKCONFIG)?;
        bootloader::run_in(chroot, &["grub2-mkconfig", "-o", out])
            .with_context(|| format!("grub2-mkconfig -o {out}"))
    };
    if Path::new("/sys/firmware/efi").is_dir() {
        let id = match crate::image_check::os_id(&crate::image_check::MountedRoot(chroot.root()))
            .as_deref()
        {
            // RHEL and Oracle Linux keep their loaders under EFI/redhat.
            Some("rhel" | "ol") | None => "redhat".to_string(),
            Some(other) => other.to_string(),
        };
        let nvram = bootloader::update_nvram(boot);
        if let Some(loader) = signed_loader(chroot.files(), &id) {
            // The image's signed shim and grub: grub2-install would put an unsigned grub in
            // their place and break Secure Boot.
            if nvram {
                add_boot_entry(chroot, &id, &loader)?;
            }
            return mkconfig(&format!("/boot/efi/EFI/{id}/grub.cfg"));
        }
        bootloader::require(chroot, &GRUB2_INSTALL_EFI)?;
        let bootloader_id = format!("--bootloader-id={id}");
        let mut argv = vec![
            "grub2-install",
            "--target=x86_64-efi",
            "--efi-directory=/boot/efi",
            bootloader_id.as_str(),
            "--recheck",
        ];
        if !nvram {
            argv.push("--no-nvram");
        }
        bootloader::run_in(chroot, &argv).context("grub2-install (UEFI)")?;
        return mkconfig("/boot/grub2/grub.cfg");
    }
    match devices {
        Devices::None => tracing::info!("install_devices is null: no grub2-install"),
        Devices::List(devs) => {
            if devs.is_empty() {
                tracing::warn!("no grub_device in the storage config and no boot.install_devices: no grub2-install");
            } else {
                bootloader::require(chroot, &GRUB2_INSTALL_BIOS)?;
            }
            for d in devs {
                let d = d.to_string_lossy().into_owned();
                bootloader::run_in(chroot, &["grub2-install", &d])
                    .with_context(|| format!("grub2-install {d}"))?;
            }
        }
    }
    mkconfig("/boot/grub2/grub.cfg")
}

/// curtin's `find_efi_loader`: the ESP path of a loader the image ships.
fn signed_loader(root: &TargetRoot, id: &str) -> Option<String> {
    [
        format!("EFI/{id}/shimx64.efi"),
        "EFI/BOOT/BOOTX64.EFI".into(),
        format!("EFI/{id}/grubx64.efi"),
    ]
    .into_iter()
    .find(|p| root.is_file(format!("boot/efi/{p}")))
    .map(|p| format!("/{p}"))
}

/// `efibootmgr --create` for the loader, on the ESP mounted at the target's /boot/efi.
fn add_boot_entry(chroot: &Chroot, id: &str, loader: &str) -> Result<()> {
    let esp = chroot.root().join("boot/efi");
    let (disk, part) = esp_partition(&esp)
        .with_context(|| format!("finding the partition mounted at {}", esp.display()))?;
    bootloader::require(chroot, &EFIBOOTMGR)?;
    let (disk, part) = (disk.to_string_lossy().into_owned(), part.to_string());
    bootloader::run_in(
        chroot,
        &[
            "efibootmgr",
            "--create",
            "--write-signature",
            "--label",
            id,
            "--disk",
            &disk,
            "--part",
            &part,
            "--loader",
            loader,
        ],
    )
    .context("efibootmgr --create")
}

/// The disk and partition number of the filesystem mounted at `mountpoint`.
fn esp_partition(mountpoint: &Path) -> Result<(PathBuf, u32)> {
    let dev = crate::mounts::table()
        .into_iter()
        .rev()
        .find(|m| m.point == mountpoint)
        .map(|m| PathBuf::from(m.source))
        .ok_or_else(|| anyhow!("nothing is mounted there"))?;
    let sys = crate::sysblock::Sysfs::default();
    let kname = sys.kname_of(&dev)?;
    let disk = sys
        .disk_of(&kname)
        .ok_or_else(|| anyhow!("{} is not a partition", dev.display()))?;
    let number = std::fs::read_to_string(format!("/sys/class/block/{kname}/partition"))?
        .trim()
        .parse()?;
    Ok((PathBuf::from("/dev").join(disk), number))
}

/// curtin's `write_grub_config` for non-Debian targets: `etc/default/grub` itself, its
/// GRUB_CMDLINE_LINUX_DEFAULT replaced by the carried-over arguments plus `rd.auto=1`, the
/// os-prober and terminal settings appended.
fn write_grub_defaults(root: &TargetRoot, boot: &Boot) -> Result<()> {
    let path = "etc/default/grub";
    let mut text = root.read_to_string_opt(path).unwrap_or_default();
    if boot.replace_linux_default {
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let mut carry = bootloader::carryover_params(&cmdline);
        if !carry.split_whitespace().any(|w| w == "rd.auto=1") {
            carry = format!("{carry} rd.auto=1").trim_start().to_string();
        }
        let line = format!("GRUB_CMDLINE_LINUX_DEFAULT=\"{carry}\"");
        text = replace_or_append(&text, "GRUB_CMDLINE_LINUX_DEFAULT=", &line);
    }
    if !boot.probe_additional_os {
        text = replace_or_append(
            &text,
            "GRUB_DISABLE_OS_PROBER=",
            "GRUB_DISABLE_OS_PROBER=\"true\"",
        );
    }
    let terminal = &boot.terminal;
    if terminal != "unmodified" {
        text = replace_or_append(
            &text,
            "GRUB_TERMINAL=",
            &format!("GRUB_TERMINAL=\"{terminal}\""),
        );
    }
    root.write_file(path, text.as_bytes(), 0o644, None)
}

/// `text` with the line starting with `key` replaced by `line` (or `line` appended).
fn replace_or_append(text: &str, key: &str, line: &str) -> String {
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(key) && !found {
                found = true;
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dracut_conf_as_curtin_writes_it() {
        let cfg = |y: &str| {
            preseed::load::from_merged(yaml_serde::from_str(y).unwrap())
                .unwrap()
                .config
        };
        let cfg = cfg(
            "{storage: {version: 1, config: [{id: d1, type: disk, path: /dev/vda},
              {id: d2, type: disk, path: /dev/vdb},
              {id: md0, type: raid, name: md0, raidlevel: 1, devices: [d1, d2]},
              {id: vg, type: lvm_volgroup, name: vg0, devices: [md0]},
              {id: lv, type: lvm_partition, volgroup: vg, name: root}]}}",
        );
        assert_eq!(
            dracut_storage_conf(&cfg).unwrap(),
            "# Written by curtin for custom storage config\nadd_dracutmodules+=\" mdraid lvm\"\nmdadmconf=\"yes\"\nlvmconf=\"yes\"\n"
        );
        let flat = preseed::load::from_merged(
            yaml_serde::from_str(
                "{storage: {version: 1, config: [{id: d, type: disk, path: /dev/vda}]}}",
            )
            .unwrap(),
        )
        .unwrap()
        .config;
        assert_eq!(dracut_storage_conf(&flat), None);
    }

    #[test]
    fn grub_defaults_replace_their_line() {
        let t = "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n";
        assert_eq!(
            replace_or_append(
                t,
                "GRUB_CMDLINE_LINUX_DEFAULT=",
                "GRUB_CMDLINE_LINUX_DEFAULT=\"x\""
            ),
            "GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT=\"x\"\n"
        );
        assert_eq!(replace_or_append("", "A=", "A=1"), "A=1\n");
    }

    #[test]
    fn family() {
        assert!(is_redhat(&["rocky".into(), "rhel".into()]));
        assert!(!is_redhat(&["debian".into()]));
    }
}
