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
