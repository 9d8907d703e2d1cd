//! Simple mode (no storage config): one disk, curtin's flat layout, expressed as a storage
//! config and run by custom mode: `uefi` = ESP (partition 15, 512 MiB, vfat `uefi-boot`) + ext4
//! root (partition 1); `gpt` = bios_grub (15, 1 MiB) + root (1); `mbr` = root (1) only. The
//! root is labelled `cloudimg-rootfs`. fstab lines use `LABEL=` as curtin's simple mode does.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use preseed::settings::BlockMeta;

use super::config::{Disk, Flag, Format, Fstype, Item, Mount, Partition, Ptable, Storage};

/// The config model's `block-meta.format`.
pub use preseed::settings::SimpleLayout as Layout;

/// `block-meta: {format: ...}`, else UEFI when the machine booted with it, else mbr (amd64).
pub fn layout(bm: &BlockMeta) -> Layout {
    match bm.format {
        Some(l) => l,
        None if Path::new("/sys/firmware/efi").exists() => Layout::Uefi,
        None => Layout::Mbr,
    }
}

/// The disk simple mode installs to: `-D`, else `block-meta.devices`, else the storage config's
/// disk with `grub_device` and a `serial` (curtin) or a `path` (our extension; curtin ignores
/// `path` here). Never a guess in tests: installable-disk discovery
/// picks curtin's `sorted(valid)[0]` among unmounted, writable, non-removable disks >= 1 GiB.
pub fn choose_disk(
    bm: &BlockMeta,
    storage: Option<&Storage>,
    devices: &[PathBuf],
) -> Result<PathBuf> {
    if let Some(d) = devices.first() {
        return Ok(d.clone());
    }
    if let Some(d) = bm.devices.first() {
        return Ok(PathBuf::from(d));
    }
    if let Some(st) = storage {
        for i in &st.config {
            if let Item::Disk(d) = i {
                if d.grub_device && (d.serial.is_some() || d.path.is_some()) {
                    return super::disk::find(&Disk {
                        wwn: None,
                        ..d.clone()
                    });
                }
            }
        }
    }
    installable().context("simple mode: no disk given (-D) and none found")
}

fn installable() -> Result<PathBuf> {
    let mut valid = Vec::new();
    for n in super::disk::disks_seen() {
        let rd = |a: &str| {
            std::fs::read_to_string(format!("/sys/block/{n}/{a}"))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let size: u64 = rd("size").parse().unwrap_or(0) * 512;
        if n.starts_with("loop")
            || n.starts_with("ram")
            || n.starts_with("zram")
            || n.starts_with("dm-")
        {
            continue;
        }
        let dev = PathBuf::from(format!("/dev/{n}"));
        if rd("removable") == "1"
            || rd("ro") == "1"
            || size < (1 << 30)
            || crate::blockdev::check_not_busy(&dev).is_err()
        {
            continue;
        }
        valid.push(dev);
    }
    valid.sort();
    if valid.len() > 1 {
        tracing::warn!("several installable disks; using {}", valid[0].display());
    }
    valid
        .into_iter()
        .next()
        .context("No valid target devices found that curtin can install on.")
}

/// The flat layout on `disk` as a storage config.
pub fn storage_for(disk: &Path, layout: Layout) -> Storage {
    let mut items = vec![Item::Disk(Disk {
        id: "disk0".into(),
        ptable: Some(if layout == Layout::Mbr {
            Ptable::Msdos
        } else {
            Ptable::Gpt
        }),
        serial: None,
        wwn: None,
        path: Some(disk.display().to_string()),
        device_id: None,
        name: None,
        model: None,
        wipe: None,
        preserve: false,
        grub_device: true,
        multipath: None,
        nvme_controller: None,
    })];
    let part = |id: &str, number: u32, size: u64, flag: Option<Flag>| {
        Item::Partition(Partition {
            id: id.into(),
            device: "disk0".into(),
            size,
            number: Some(number),
            offset: None,
            flag,
            wipe: None,
            preserve: false,
            name: None,
            grub_device: false,
            path: None,
            uuid: None,
            partition_type: None,
            partition_name: None,
            attrs: vec![],
            resize: false,
        })
    };
    let fmt = |id: &str, vol: &str, fstype: Fstype, label: &str| {
        Item::Format(Format {
            id: id.into(),
            volume: vol.into(),
            fstype,
            label: Some(label.into()),
            uuid: None,
            extra_options: vec![],
            preserve: false,
        })
    };
    let mnt = |id: &str, dev: &str, path: &str, spec: &str| {
        Item::Mount(Mount {
            id: id.into(),
            device: Some(dev.into()),
            path: Some(path.into()),
            spec: Some(spec.into()),
            fstype: None,
            options: None,
            freq: None,
            passno: Some("0".into()),
        })
    };
    match layout {
        Layout::Uefi => {
            items.push(part("esp", 15, 512 << 20, Some(Flag::Boot)));
            items.push(part("root", 1, 0, Some(Flag::Linux)));
        }
        Layout::Gpt => {
            items.push(part("bios", 15, 1 << 20, Some(Flag::BiosGrub)));
            items.push(part("root", 1, 0, Some(Flag::Linux)));
        }
        Layout::Mbr => items.push(part("root", 1, 0, Some(Flag::Linux))),
    }
    items.push(fmt("root_fs", "root", Fstype::Ext4, "cloudimg-rootfs"));
    if layout == Layout::Uefi {
        items.push(fmt("esp_fs", "esp", Fstype::Fat32, "uefi-boot"));
    }
    items.push(mnt("root_mount", "root_fs", "/", "LABEL=cloudimg-rootfs"));
    if layout == Layout::Uefi {
        items.push(mnt("esp_mount", "esp_fs", "/boot/efi", "LABEL=uefi-boot"));
    }
    Storage {
        version: 1,
        config: items,
        device_map_path: None,
        disks_only: false,
    }
}
