//! A NoCloud seed for the deployed OS's first boot: a small FAT disk labelled `cidata` with
//! `meta-data` (instance id, hostname) and `user-data` whose `runcmd` reports what a user would
//! check (hostname, addresses, firmware, root device and size, fstab, the netplan cloud-init
//! wrote, the hook's marker) as `DEPLOYER-RESULT key=value` lines on the `results` virtio port
//! and the console, then powers the machine off.

use crate::run;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The report the deployed OS sends; one line per fact, `|` standing for newlines.
const REPORT: &str = r#"r() { echo "DEPLOYER-RESULT $*" | tee -a /dev/virtio-ports/results > /dev/ttyS0; }
      flat() { tr '\n' '|' < "$1" 2>/dev/null; }
      r "hostname=$(hostname)"
      r "addresses=$(ip -4 -o addr show scope global | awk '{print $2" "$4}' | tr '\n' ',')"
      r "routes=$(ip -4 route show default | tr '\n' ',')"
      r "firmware=$([ -d /sys/firmware/efi ] && echo uefi || echo bios)"
      r "root-source=$(findmnt -no SOURCE /)"
      r "root-size=$(df -B1 --output=size / | tail -1 | tr -d ' ')"
      r "root-disk-size=$(lsblk -bdno SIZE /dev/vda)"
      r "fstab=$(flat /etc/fstab)"
      r "netplan=$(cat /etc/netplan/*.yaml 2>/dev/null | tr '\n' '|')"
      r "curtin-networking=$(flat /etc/cloud/cloud.cfg.d/50-curtin-networking.cfg)"
      r "hook-marker=$(cat /root/curtin-hooks.marker 2>/dev/null)"
      r "curtin-dir=$(ls -d /curtin 2>/dev/null)"
      r "hook-env=$(flat /root/curtin-hooks.env)"
      r "done=1""#;

/// Write `seed.img` in `dir` for a machine called `hostname`.
pub fn nocloud(dir: &Path, hostname: &str) -> Result<PathBuf> {
    let meta = dir.join("meta-data");
    let user = dir.join("user-data");
    std::fs::write(
        &meta,
        format!("instance-id: iid-{hostname}\nlocal-hostname: {hostname}\n"),
    )?;
    std::fs::write(
        &user,
        format!(
            "#cloud-config\nruncmd:\n  - |\n      {REPORT}\npower_state:\n  mode: poweroff\n  delay: now\n  condition: true\n"
        ),
    )?;
    let img = dir.join("seed.img");
    let _ = std::fs::remove_file(&img);
    let s = img.display().to_string();
    run("mkfs.vfat", &["-n", "CIDATA", "-C", &s, "2048"])?;
    run(
        "mcopy",
        &[
            "-i",
            &s,
            &meta.display().to_string(),
            &user.display().to_string(),
            "::",
        ],
    )?;
    Ok(img)
}

/// The report of the storage scenarios' boots, without cloud-init (which they switch off: it
/// costs minutes under TCG and is not what they test): a systemd unit run once the local file
/// systems and crypttab's volumes are up, reporting the storage stack, then powering off.
pub const STORAGE_REPORT_SCRIPT: &str = r#"#!/bin/sh
r() { echo "DEPLOYER-RESULT $*" | tee -a /dev/virtio-ports/results > /dev/ttyS0; }
flat() { tr '\n' '|' < "$1" 2>/dev/null; }
r "root-source=$(findmnt -no SOURCE /)"
r "root-size=$(df -B1 --output=size / | tail -1 | tr -d ' ')"
r "mounts=$(findmnt -rn -o TARGET,SOURCE,FSTYPE -t ext4,xfs,vfat,btrfs | tr '\n' ',')"
r "lsblk=$(lsblk -rno NAME,TYPE,FSTYPE,MOUNTPOINT | tr '\n' ',')"
r "mdstat=$(flat /proc/mdstat)"
r "fstab=$(flat /etc/fstab)"
r "crypttab=$(flat /etc/crypttab)"
r "mdadm-conf=$(flat /etc/mdadm/mdadm.conf)"
r "crypt-status=$(cryptsetup status secret 2>&1 | tr '\n' '|')"
r "bcache-mode=$(cat /sys/block/bcache0/bcache/cache_mode 2>/dev/null)"
r "dnames=$(ls /dev/disk/by-dname 2>/dev/null | sort | tr '\n' ',')"
r "lvs=$(lvs --noheadings -o vg_name,lv_name,lv_size --units b 2>/dev/null | tr -s ' ' | tr '\n' ',')"
r "failed-units=$(systemctl --failed --no-legend --plain | tr -s ' ' | tr '\n' ',')"
r "done=1"
systemctl poweroff
"#;

pub const STORAGE_REPORT_UNIT: &str = "[Unit]
Description=deployer test report
After=local-fs.target remote-fs.target cryptsetup.target systemd-udev-settle.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/deployer-test-report
[Install]
WantedBy=multi-user.target
";

/// Where the report files go in a root: (path, mode, content).
pub fn storage_report_files() -> [(&'static str, u32, &'static str); 3] {
    [
        (
            "usr/local/sbin/deployer-test-report",
            0o755,
            STORAGE_REPORT_SCRIPT,
        ),
        (
            "etc/systemd/system/deployer-test-report.service",
            0o644,
            STORAGE_REPORT_UNIT,
        ),
        // cloud-init stays installed (the install's image check wants it) but does not run.
        ("etc/cloud/cloud-init.disabled", 0o644, ""),
    ]
}
