//! Disk image fixtures shared by the dd tests (write-image, the dd path of block-meta).

use std::path::Path;

use crate::sh;

/// A GPT disk image of `mib` MiB in `dir/name`: partition 1 (4 MiB ESP type, 1 MiB of random
/// bytes), partition 2 the root (`fstype`) with /curtin, /etc/os-release and 2 MiB of data.
pub fn build_disk(dir: &Path, name: &str, mib: u64, fstype: &str) {
    let d = dir.display();
    sh(&format!(
        "cd {d} && truncate -s {mib}M {name} && sgdisk -o -n1:2048:+4M -t1:ef00 -n2:0:0 -t2:8300 {name} >/dev/null \
         && sgdisk -i2 {name} | grep -q 'Linux filesystem' \
         && head -c 1M /dev/urandom | dd of={name} bs=512 seek=2048 conv=notrunc status=none \
         && mkdir -p root/curtin root/etc && echo ID=fixture > root/etc/os-release \
         && head -c 2M /dev/urandom > root/data"
    ));
    let info = sh(&format!("sgdisk -i2 {d}/{name}"));
    let sector = |key: &str| -> u64 {
        let l = info.lines().find(|l| l.starts_with(key)).unwrap();
        l.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let (first, last) = (sector("First sector:"), sector("Last sector:"));
    let bytes = (last - first + 1) * 512;
    let fs = format!("{d}/fs.img");
    sh(&format!("truncate -s {bytes} {fs}"));
    if fstype == "ext4" {
        sh(&format!("mkfs.ext4 -q -d {d}/root {fs}"));
    } else {
        sh(&format!("mkfs.{fstype} -q {fs}"));
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        sh(&format!(
            "mount -o loop {fs} {m} && cp -a {d}/root/. {m}/ && umount {m}",
            m = mnt.display()
        ));
    }
    sh(&format!(
        "dd if={fs} of={d}/{name} bs=1M oflag=seek_bytes seek={} conv=notrunc,sparse status=none && rm {fs}",
        first * 512
    ));
}
