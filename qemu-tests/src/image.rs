//! Test images: Debian roots built with mmdebstrap from the machine's own apt sources (never a
//! mirror named here), cached by recipe, packed as a root tarball (`tgz`) and as a bootable GPT
//! disk image (`ddgz`: BIOS boot partition + ESP + ext4 root, GRUB installed for BIOS and UEFI).

use crate::cache::{self, Outcome};
use crate::{run, shell};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use testkit::LoopDisk;

/// What goes into a root: the package set and mmdebstrap's variant.
#[derive(Debug, Clone, Copy)]
pub struct RootRecipe {
    pub name: &'static str,
    pub variant: &'static str,
    pub packages: &'static [&'static str],
}

/// A Debian root as MAAS custom images carry one: systemd, cloud-init, netplan, a kernel (its
/// initramfs made by initramfs-tools with the default MODULES=most, so virtio and ext4 are in),
/// GRUB for both firmwares (the -bin packages coexist; the agent's curthooks run grub-install in
/// the target), efibootmgr, growpart/resize2fs, and what a system booting from storage layers
/// needs (mdadm, lvm2, cryptsetup with its initramfs hooks, bcache-tools' udev rules, xfsprogs).
pub const CLOUD_ROOT: RootRecipe = RootRecipe {
    name: "debian-cloud",
    variant: "minbase",
    packages: &[
        "systemd-sysv",
        "udev",
        "dbus",
        "cloud-init",
        "netplan.io",
        "iproute2",
        "linux-image-amd64",
        "initramfs-tools",
        "grub2-common",
        "grub-pc-bin",
        "grub-efi-amd64-bin",
        "efibootmgr",
        "e2fsprogs",
        "dosfstools",
        "cloud-guest-utils",
        "mdadm",
        "lvm2",
        "cryptsetup",
        "cryptsetup-initramfs",
        "bcache-tools",
        "xfsprogs",
    ],
};

/// The failure case: a root with no cloud-init (and no kernel: it must never boot).
pub const NO_CLOUD_INIT_ROOT: RootRecipe = RootRecipe {
    name: "debian-no-cloud-init",
    variant: "minbase",
    packages: &["systemd-sysv", "udev"],
};

/// The release the machine runs (`VERSION_CODENAME`): its apt sources name that suite.
pub fn suite() -> Result<String> {
    let text = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|s| s.trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME")
}

/// The machine's apt source files (one-line `.list` and deb822 `.sources`), handed to mmdebstrap
/// as they are, so the images come from whatever mirror this machine is set up for.
pub fn apt_sources() -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let main = PathBuf::from("/etc/apt/sources.list");
    if std::fs::read_to_string(&main).is_ok_and(|t| {
        t.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    }) {
        files.push(main);
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "list" || e == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    if files.is_empty() {
        bail!("no apt sources on this machine (/etc/apt/sources.list, /etc/apt/sources.list.d/)");
    }
    Ok(files)
}

/// Removed from every root, as packer-maas's tarball step does: machine identity and the
/// hostname of the build host must not leak into deployed machines.
const CUSTOMIZE: &str = "rm -f \"$1/etc/hostname\"; : > \"$1/etc/machine-id\"; \
                         rm -rf \"$1/var/lib/cloud/instance\" \"$1/var/lib/cloud/instances\"";

fn root_recipe_text(r: &RootRecipe) -> Result<String> {
    let mut text = format!(
        "mmdebstrap root v1\nvariant={}\nsuite={}\npackages={}\ncustomize={CUSTOMIZE}\n",
        r.variant,
        suite()?,
        r.packages.join(",")
    );
    for f in apt_sources()? {
        let body =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        text.push_str(&format!("source {}:\n{body}\n", f.display()));
    }
    Ok(text)
}

/// `root.tar` of the recipe (uncompressed; the packers below read it), built on a cache miss.
pub fn root_tar(r: &RootRecipe) -> Result<(PathBuf, Outcome)> {
    let recipe = root_recipe_text(r)?;
    let (dir, outcome) = cache::entry(r.name, &recipe, |tmp| {
        let out = tmp.join("root.tar");
        let mut args: Vec<String> = vec![
            "--quiet".into(),
            format!("--variant={}", r.variant),
            format!("--include={}", r.packages.join(",")),
            format!("--customize-hook={CUSTOMIZE}"),
            suite()?,
            out.display().to_string(),
        ];
        args.extend(apt_sources()?.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        run("mmdebstrap", &args)?;
        Ok(())
    })?;
    Ok((dir.join("root.tar"), outcome))
}

/// The root packed as MAAS's `tgz` filetype (gzip of a tar of `./`), as packer-maas ships them.
pub fn tgz(r: &RootRecipe) -> Result<(PathBuf, Outcome)> {
    let (tar, _) = root_tar(r)?;
    let recipe = format!("tgz v1 gzip -1\n{}", root_recipe_text(r)?);
    let (dir, outcome) = cache::entry(&format!("{}-tgz", r.name), &recipe, |tmp| {
        shell(&format!(
            "gzip -1 -c '{}' > '{}'",
            tar.display(),
            tmp.join("root.tgz").display()
        ))?;
        Ok(())
    })?;
    Ok((dir.join("root.tgz"), outcome))
}

/// The root as `tgz` with `/curtin/curtin-hooks` (mode 0755) added, as packer-maas's tgz images
/// carry their hooks: a copy of the cached root tar with the hook appended, gzipped.
pub fn tgz_with_hook(r: &RootRecipe, name: &str, hook: &str) -> Result<(PathBuf, Outcome)> {
    let (tar, _) = root_tar(r)?;
    let recipe = format!(
        "tgz+hook v1 gzip -1\nhook={hook:?}\n{}",
        root_recipe_text(r)?
    );
    let (dir, outcome) = cache::entry(name, &recipe, |tmp| {
        let extra = tmp.join("extra");
        std::fs::create_dir_all(extra.join("curtin"))?;
        let hook_path = extra.join("curtin/curtin-hooks");
        std::fs::write(&hook_path, hook)?;
        shell(&format!(
            "chmod 0755 '{h}' '{d}/curtin' && cp --reflink=auto '{tar}' '{t}' && tar -rf '{t}' -C '{d}' ./curtin && gzip -1 -c '{t}' > '{out}' && rm '{t}'",
            h = hook_path.display(),
            d = extra.display(),
            tar = tar.display(),
            t = tmp.join("root.tar").display(),
            out = tmp.join("root.tgz").display()
        ))?;
        std::fs::remove_dir_all(&extra)?;
        Ok(())
    })?;
    Ok((dir.join("root.tgz"), outcome))
}

/// A GPT disk image of a root, as a dd image: partition 1 BIOS boot (1 MiB), 2 ESP (100 MiB,
/// FAT32), 3 the ext4 root filling the rest, GRUB installed for BIOS (core.img in partition 1)
/// and UEFI (a grub-mkimage loader on the removable path EFI/BOOT/BOOTX64.EFI, so no NVRAM
/// entry is needed), a `grub.cfg`
/// that finds the root by filesystem UUID, an fstab by UUID, and `/curtin/curtin-hooks` when given.
#[derive(Debug, Clone)]
pub struct DiskRecipe {
    pub name: &'static str,
    pub root: RootRecipe,
    /// The image's size (the deployed disk is larger: the agent grows the root to fill it).
    pub size: u64,
    pub curtin_hooks: Option<&'static str>,
}

/// The layout of [`DiskRecipe`] images, for tests that inspect a deployed disk.
pub const ROOT_PARTITION: u32 = 3;
pub const ESP_PARTITION: u32 = 2;
pub const ESP_SIZE_MIB: u64 = 100;

/// The hook of the ddgz scenario: it runs from the ephemeral OS (curtin executes
/// `/curtin/curtin-hooks` directly, with its own environment), and leaves its environment in the
/// target as proof of the variables it was given.
pub const MARKER_HOOK: &str = "#!/bin/sh\n\
# Test hook: record the environment curtin-compatible agents give image hooks.\n\
set -e\n\
env | sort > \"$TARGET_MOUNT_POINT/root/curtin-hooks.env\"\n\
echo ran > \"$TARGET_MOUNT_POINT/root/curtin-hooks.marker\"\n";

/// The dd image of scenario 2 (the cloud root with [`MARKER_HOOK`]), shared by the harness,
/// the scenarios and the inspect tests so the cache holds one.
pub const HOOKS_DISK: DiskRecipe = DiskRecipe {
    name: "debian-cloud-hooks-ddgz",
    root: CLOUD_ROOT,
    size: 2 << 30,
    curtin_hooks: Some(MARKER_HOOK),
};

/// `root.ddgz` of the recipe, built on a cache miss (needs root: loop device and mounts).
pub fn ddgz(d: &DiskRecipe) -> Result<(PathBuf, Outcome)> {
    let (tar, _) = root_tar(&d.root)?;
    let recipe = format!(
        "ddgz v2 gpt bios+esp{ESP_SIZE_MIB}M+ext4 grub bios+efi-removable\nsize={}\nhooks={:?}\n{}",
        d.size,
        d.curtin_hooks,
        root_recipe_text(&d.root)?
    );
    let (dir, outcome) = cache::entry(d.name, &recipe, |tmp| build_disk(d, &tar, tmp))?;
    Ok((dir.join("root.ddgz"), outcome))
}

fn build_disk(d: &DiskRecipe, tar: &Path, out: &Path) -> Result<()> {
    let disk = LoopDisk::new(d.size);
    let dev = disk.dev.display().to_string();
    run(
        "sgdisk",
        &[
            "-o",
            "-n",
            "1:2048:+1M",
            "-t",
            "1:EF02",
            "-c",
            "1:bios-boot",
            "-n",
            &format!("2:0:+{ESP_SIZE_MIB}M"),
            "-t",
            "2:EF00",
            "-c",
            "2:esp",
            "-n",
            "3:0:0",
            "-t",
            "3:8300",
            "-c",
            "3:root",
            &dev,
        ],
    )?;
    disk.partx();
    let (esp, root) = (disk.part(ESP_PARTITION), disk.part(ROOT_PARTITION));
    wait_for(&root)?;
    wait_for(&esp)?;
    let (esp_s, root_s) = (esp.display().to_string(), root.display().to_string());
    run("mkfs.vfat", &["-F", "32", "-n", "ESP", &esp_s])?;
    run("mkfs.ext4", &["-q", "-F", "-L", "cloudimg-rootfs", &root_s])?;
    let mnt = tempfile::tempdir()?;
    let m = mnt.path().display().to_string();
    run("mount", &[&root_s, &m])?;
    let _guard = testkit::MountGuard(mnt.path().to_path_buf());
    untar(tar, &m)?;
    std::fs::create_dir_all(mnt.path().join("boot/efi"))?;
    let boot = format!("--boot-directory={m}/boot");
    run("grub-install", &["--target=i386-pc", &boot, &dev])?;
    let root_uuid = run("blkid", &["-s", "UUID", "-o", "value", &root_s])?
        .trim()
        .to_string();
    let esp_uuid = run("blkid", &["-s", "UUID", "-o", "value", &esp_s])?
        .trim()
        .to_string();
    std::fs::write(
        mnt.path().join("boot/grub/grub.cfg"),
        format!(
            "set timeout=0\n\
             search --no-floppy --fs-uuid --set=root {root_uuid}\n\
             linux /vmlinuz root=UUID={root_uuid} ro console=tty0 console=ttyS0,115200\n\
             initrd /initrd.img\n\
             boot\n"
        ),
    )?;
    std::fs::write(
        mnt.path().join("etc/fstab"),
        format!(
            "UUID={root_uuid} / ext4 defaults 0 1\nUUID={esp_uuid} /boot/efi vfat umask=0077 0 1\n"
        ),
    )?;
    efi_loader(&esp_s, &root_uuid, out)?;
    if let Some(hook) = d.curtin_hooks {
        use std::os::unix::fs::PermissionsExt;
        let dir = mnt.path().join("curtin");
        std::fs::create_dir_all(&dir)?;
        let p = dir.join("curtin-hooks");
        std::fs::write(&p, hook)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    }
    run("umount", &[&m])?;
    shell(&format!(
        "gzip -1 -c '{}' > '{}'",
        disk.file.display(),
        out.join("root.ddgz").display()
    ))?;
    Ok(())
}

/// The UEFI loader on the ESP's removable path, made with grub-mkimage and copied with mtools:
/// the host kernel may have no vfat (the project's machines do not), so the ESP is never
/// mounted here. Its embedded config finds the root by UUID and reads /boot/grub/grub.cfg there.
fn efi_loader(esp: &str, root_uuid: &str, scratch: &Path) -> Result<()> {
    let early = scratch.join("early-grub.cfg");
    std::fs::write(
        &early,
        format!(
            "search --no-floppy --fs-uuid --set=root {root_uuid}\n\
             set prefix=($root)/boot/grub\n\
             configfile $prefix/grub.cfg\n"
        ),
    )?;
    let efi = scratch.join("BOOTX64.EFI");
    let (e, c) = (efi.display().to_string(), early.display().to_string());
    let mut args = vec![
        "-O",
        "x86_64-efi",
        "-d",
        "/usr/lib/grub/x86_64-efi",
        "-o",
        &e,
        "-c",
        &c,
        "-p",
        "/boot/grub",
    ];
    args.extend([
        "part_gpt",
        "part_msdos",
        "fat",
        "ext2",
        "search",
        "search_fs_uuid",
        "configfile",
        "normal",
        "linux",
        "gzio",
        "echo",
        "test",
        "all_video",
        "efi_gop",
        "serial",
        "terminal",
    ]);
    run("grub-mkimage", &args)?;
    run("mmd", &["-i", esp, "::/EFI", "::/EFI/BOOT"])?;
    run("mcopy", &["-i", esp, &e, "::/EFI/BOOT/BOOTX64.EFI"])?;
    std::fs::remove_file(&efi)?;
    std::fs::remove_file(&early)?;
    Ok(())
}

/// Unpack a root tarball into `dir`, owners, modes and xattrs kept.
fn untar(tar: &Path, dir: &str) -> Result<()> {
    run(
        "tar",
        &[
            "-xpf",
            &tar.display().to_string(),
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-C",
            dir,
        ],
    )?;
    Ok(())
}

/// Wait for a partition node the kernel was asked to add.
pub fn wait_for(p: &Path) -> Result<()> {
    for _ in 0..100 {
        if p.exists() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    bail!("{} did not appear", p.display())
}

/// Unpack a ddgz onto a raw disk file of `size` bytes (sparse), as `zcat | dd` would.
pub fn unpack_ddgz(ddgz: &Path, disk: &Path, size: u64) -> Result<()> {
    let f = std::fs::File::create(disk).with_context(|| format!("creating {}", disk.display()))?;
    f.set_len(size)?;
    drop(f);
    shell(&format!(
        "gzip -dc '{}' | dd of='{}' bs=4M conv=sparse,notrunc status=none",
        ddgz.display(),
        disk.display()
    ))?;
    Ok(())
}

/// packer-maas's Ubuntu LVM image, in shape: partition 1 BIOS boot (1 MiB), 2 `/boot` ext4
/// (512 MiB), 3 an LVM physical volume filling the rest with volume group `ubuntu-vg` and one
/// logical volume `ubuntu-lv` holding the ext4 root (and `/curtin`, the mark curtin looks for).
/// GRUB for BIOS, root=/dev/mapper/ubuntu--vg-ubuntu--lv (the image's initramfs activates it),
/// a `/curtin/curtin-hooks` (packer-maas's LVM image ships one, so the builtin curthooks do
/// not run; here [`MARKER_HOOK`]), and the storage report unit
/// ([`crate::seed::storage_report_files`]) in place of cloud-init.
///
/// The host kernel has no device-mapper: the volume group is written with LVM's tools on the
/// loop device without activating anything (`--driverloaded n`), and the root file system is
/// made through a second loop device at the logical volume's offset inside the partition.
#[derive(Debug, Clone)]
pub struct LvmDiskRecipe {
    pub name: &'static str,
    pub root: RootRecipe,
    pub size: u64,
}

pub const LVM_VG: &str = "ubuntu-vg";
pub const LVM_LV: &str = "ubuntu-lv";
pub const LVM_PV_PARTITION: u32 = 3;

/// `root.ddgz` of the LVM recipe, built on a cache miss (root, loop devices, mounts).
pub fn lvm_ddgz(d: &LvmDiskRecipe) -> Result<(PathBuf, Outcome)> {
    let (tar, _) = root_tar(&d.root)?;
    let report: String = crate::seed::storage_report_files()
        .iter()
        .map(|(p, m, c)| format!("{p} {m:o}\n{c}\n"))
        .collect();
    let recipe = format!(
        "lvm ddgz v1 gpt bios+boot512M+pv {LVM_VG}/{LVM_LV} ext4 grub bios\nsize={}\nhook={MARKER_HOOK:?}\nreport:\n{report}\n{}",
        d.size,
        root_recipe_text(&d.root)?
    );
    let (dir, outcome) = cache::entry(d.name, &recipe, |tmp| build_lvm_disk(d, &tar, tmp))?;
    Ok((dir.join("root.ddgz"), outcome))
}

/// A loop device over part of a file, detached on drop.
struct OffsetLoop(String);

impl Drop for OffsetLoop {
    fn drop(&mut self) {
        let _ = run("losetup", &["-d", &self.0]);
    }
}

fn build_lvm_disk(d: &LvmDiskRecipe, tar: &Path, out: &Path) -> Result<()> {
    let disk = LoopDisk::new(d.size);
    let dev = disk.dev.display().to_string();
    run(
        "sgdisk",
        &[
            "-o",
            "-n",
            "1:2048:+1M",
            "-t",
            "1:EF02",
            "-n",
            "2:0:+512M",
            "-t",
            "2:8300",
            "-n",
            "3:0:0",
            "-t",
            "3:8E00",
            &dev,
        ],
    )?;
    disk.partx();
    let (boot, pv) = (disk.part(2), disk.part(LVM_PV_PARTITION));
    wait_for(&boot)?;
    wait_for(&pv)?;
    let (boot_s, pv_s) = (boot.display().to_string(), pv.display().to_string());
    run("mkfs.ext4", &["-q", "-F", "-L", "boot", &boot_s])?;
    // LVM sees only this partition and keeps no backup on the host.
    let lvm = |args: &[&str]| -> Result<String> {
        let mut a = vec![
            args[0],
            "--devices",
            &pv_s,
            "--config",
            "devices{use_devicesfile=0}",
        ];
        a.extend_from_slice(&args[1..]);
        run("lvm", &a)
    };
    lvm(&["pvcreate", "-ff", "-y", &pv_s])?;
    lvm(&["vgcreate", "--autobackup", "n", LVM_VG, &pv_s])?;
    lvm(&[
        "lvcreate",
        "--driverloaded",
        "n",
        "--autobackup",
        "n",
        "-an",
        "-Zn",
        "-Wn",
        "-l",
        "100%FREE",
        "-n",
        LVM_LV,
        LVM_VG,
    ])?;
    let num = |s: String| -> Result<u64> {
        s.trim()
            .parse()
            .with_context(|| format!("not a number from lvm: {s:?}"))
    };
    let pe_start = num(lvm(&[
        "pvs",
        "-o",
        "pe_start",
        "--units",
        "b",
        "--nosuffix",
        "--noheadings",
        &pv_s,
    ])?)?;
    let lv_size = num(lvm(&[
        "lvs",
        "-o",
        "lv_size",
        "--units",
        "b",
        "--nosuffix",
        "--noheadings",
        LVM_VG,
    ])?)?;
    let first_pe = num(lvm(&["lvs", "-o", "seg_start_pe", "--noheadings", LVM_VG])?)?;
    if first_pe != 0 {
        bail!("{LVM_VG}/{LVM_LV} does not start at the first extent ({first_pe})");
    }
    // sysfs `start` is in 512-byte sectors.
    let part_start = 512
        * num(std::fs::read_to_string(format!(
            "/sys/class/block/{}/start",
            pv.file_name().unwrap_or_default().to_string_lossy()
        ))?)?;
    run("blockdev", &["--flushbufs", &dev])?;
    let lv = OffsetLoop(
        run(
            "losetup",
            &[
                "--find",
                "--show",
                "--offset",
                &(part_start + pe_start).to_string(),
                "--sizelimit",
                &lv_size.to_string(),
                &disk.file.display().to_string(),
            ],
        )?
        .trim()
        .to_string(),
    );
    run("mkfs.ext4", &["-q", "-F", "-L", "cloudimg-rootfs", &lv.0])?;
    let mnt = tempfile::tempdir()?;
    let m = mnt.path().display().to_string();
    run("mount", &[&lv.0, &m])?;
    let _root_guard = testkit::MountGuard(mnt.path().to_path_buf());
    std::fs::create_dir_all(mnt.path().join("boot"))?;
    run("mount", &[&boot_s, &format!("{m}/boot")])?;
    let _boot_guard = testkit::MountGuard(mnt.path().join("boot"));
    untar(tar, &m)?;
    let kver = std::fs::read_dir(mnt.path().join("boot"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("vmlinuz-")
                .map(String::from)
        })
        .next()
        .context("no kernel in the root's /boot")?;
    run(
        "grub-install",
        &[
            "--target=i386-pc",
            &format!("--boot-directory={m}/boot"),
            &dev,
        ],
    )?;
    let uuid = |p: &str| -> Result<String> {
        Ok(run("blkid", &["-s", "UUID", "-o", "value", p])?
            .trim()
            .to_string())
    };
    let (root_uuid, boot_uuid) = (uuid(&lv.0)?, uuid(&boot_s)?);
    let dm = format!(
        "/dev/mapper/{}-{}",
        LVM_VG.replace('-', "--"),
        LVM_LV.replace('-', "--")
    );
    std::fs::write(
        mnt.path().join("boot/grub/grub.cfg"),
        format!(
            "set timeout=0\n\
             search --no-floppy --fs-uuid --set=root {boot_uuid}\n\
             linux /vmlinuz-{kver} root={dm} ro console=tty0 console=ttyS0,115200\n\
             initrd /initrd.img-{kver}\n\
             boot\n"
        ),
    )?;
    std::fs::write(
        mnt.path().join("etc/fstab"),
        format!("UUID={root_uuid} / ext4 defaults 0 1\nUUID={boot_uuid} /boot ext4 defaults 0 2\n"),
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        let hook = mnt.path().join("curtin/curtin-hooks");
        std::fs::create_dir_all(hook.parent().unwrap())?;
        std::fs::write(&hook, MARKER_HOOK)?;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
        for (p, mode, content) in crate::seed::storage_report_files() {
            let f = mnt.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap())?;
            std::fs::write(&f, content)?;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode))?;
        }
        let wants = mnt
            .path()
            .join("etc/systemd/system/multi-user.target.wants");
        std::fs::create_dir_all(&wants)?;
        let link = wants.join("deployer-test-report.service");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/etc/systemd/system/deployer-test-report.service", link)?;
    }
    drop(_boot_guard);
    drop(_root_guard);
    drop(lv);
    shell(&format!(
        "gzip -1 -c '{}' > '{}'",
        disk.file.display(),
        out.join("root.ddgz").display()
    ))?;
    Ok(())
}
