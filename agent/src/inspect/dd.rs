//! A dd image, read-only: the image file on a read-only loop device with partition scanning,
//! each partition probed by blkid (filesystem, label, table entry), the root found by curtin's
//! rule and our fallback (mounted read-only without journal replay), the firmware it boots
//! under (MBR code, BIOS boot partition, the ESP read with mtools: no vfat needed), and the
//! root's OS checks.
//!
//! A raw image given as a path is attached as it is. Anything else (compressed, in a tar, or
//! behind a URL) cannot be looped without decompressing it, and ext4 or xfs cannot be read
//! from a stream (directories point backwards and forwards): it is streamed once through the
//! dd pipeline ([`crate::write_image`], bounded buffers, zero runs not written) into a sparse
//! file in a temporary directory on disk. A tmpfs there would put the image in RAM: refused.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::format::{Format, Layout};
use super::os::Base;
use super::report::{self, human, Report};
use super::tree::Mounted;
use super::{hooks, os};
use crate::blockdev::{self, Part, Probe};
use crate::error::{Kind, KindExt};
use crate::install::loopback::TargetDisk;
use crate::source::compression::Compression;
use crate::source::FetchOptions;
use crate::tools;

const BIOS_BOOT: &str = "21686148-6449-6e6f-744e-656564454649";
const ESP: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/// Inspect the dd image at `uri` (its format already detected).
pub fn inspect(
    r: &mut Report,
    uri: &str,
    fmt: Format,
    base: &Base,
    fetch: &FetchOptions,
) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(anyhow!(
            "inspecting a dd image needs root: it attaches the image to a read-only loop device and mounts its root read-only"
        ))
        .kind(Kind::Storage);
    }
    let local = uri.strip_prefix("file://").unwrap_or(uri);
    let is_url = uri.starts_with("http://") || uri.starts_with("https://");
    let plain = fmt.compression == Compression::None && fmt.layout == Layout::Disk;
    let (image, _scratch) = if plain && !is_url && Path::new(local).is_file() {
        (PathBuf::from(local), None)
    } else {
        let dir = scratch_dir()?;
        let file = dir.path().join("image.raw");
        tracing::info!(
            "decompressing {uri} into the sparse file {} to read its partitions",
            file.display()
        );
        let mut req = crate::write_image::Request::new(uri, &file);
        req.grow = false;
        // A scratch copy: nothing boots it, and a sync would wait on every other writer.
        req.durable = false;
        req.fetch = fetch.clone();
        crate::write_image::write_image(req).with_context(|| {
            format!(
                "streaming the image into {} (a sparse file: only its data takes space)",
                file.display()
            )
        })?;
        (file, Some(dir))
    };
    let size = std::fs::metadata(&image)
        .with_context(|| format!("reading the size of {}", image.display()))?
        .len();
    let disk = TargetDisk::open_read_only(&image).kind(Kind::Storage)?;
    let res = inspect_disk(r, &image, &disk.device, size, base);
    drop(disk);
    res
}

/// A temporary directory for the decompressed copy: $TMPDIR (else /var/tmp: /tmp is often a
/// tmpfs), never a RAM filesystem.
fn scratch_dir() -> Result<tempfile::TempDir> {
    let parent = std::env::var_os("TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"));
    let st = nix::sys::statfs::statfs(&parent)
        .with_context(|| format!("looking at the temporary directory {}", parent.display()))?;
    let t = st.filesystem_type();
    // ramfs: nix names no constant for it (linux/magic.h RAMFS_MAGIC).
    let ramfs = nix::sys::statfs::FsType(0x858458f6_u32 as _);
    if t == nix::sys::statfs::TMPFS_MAGIC || t == ramfs {
        bail!(
            "{} is a RAM filesystem (tmpfs): a compressed dd image is decompressed into a sparse file there to be read, which would put the image in memory; set TMPDIR to a directory on disk",
            parent.display()
        );
    }
    tempfile::Builder::new()
        .prefix("deployer-inspect-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))
}

/// One partition as blkid sees it.
struct Seen {
    part: Part,
    node: PathBuf,
    info: std::collections::BTreeMap<String, String>,
}

impl Seen {
    fn get(&self, k: &str) -> Option<&str> {
        self.info
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
    fn fstype(&self) -> Option<&str> {
        self.get("TYPE")
    }
    fn entry_type(&self) -> String {
        self.get("PART_ENTRY_TYPE")
            .unwrap_or("")
            .to_ascii_lowercase()
    }
    fn is_esp(&self) -> bool {
        matches!(self.entry_type().as_str(), ESP | "0xef")
    }
}

fn type_name(t: &str) -> Option<&'static str> {
    Some(match t {
        BIOS_BOOT => "BIOS boot",
        ESP | "0xef" => "EFI system",
        "0fc63daf-8483-4772-8e79-3d69d8477de4" | "0x83" => "Linux filesystem",
        "4f68bce3-e8cd-4db1-96e7-fbcaf984b709" => "Linux root (x86-64)",
        "bc13c2ff-59e6-4262-a352-b275fd6f7172" => "Linux extended boot",
        "e6d6d379-f507-44c2-a23c-238f2a3df928" | "0x8e" => "Linux LVM",
        "a19d880f-05fc-4d3b-a006-743f0f84911e" | "0xfd" => "Linux RAID",
        "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f" | "0x82" => "Linux swap",
        "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7" | "0x07" => "Microsoft basic data",
        "e3c9e316-0b5c-4db8-817d-f92df00215ae" => "Microsoft reserved",
        "de94bba4-06d1-4d40-a16a-bfd50179d6ac" => "Windows recovery",
        "0x0c" | "0x0b" => "FAT32",
        _ => return None,
    })
}

/// The read-only mount options that replay nothing: a read-only device cannot take a journal
/// replay, and inspect must not change the image anyway.
fn ro_options(fstype: Option<&str>) -> String {
    match fstype {
        Some("ext2" | "ext3" | "ext4") => "ro,noload",
        Some("xfs") => "ro,norecovery",
        Some("btrfs") => "ro,rescue=nologreplay",
        _ => "ro",
    }
    .into()
}

fn inspect_disk(r: &mut Report, image: &Path, dev: &Path, size: u64, base: &Base) -> Result<()> {
    let mut f = File::open(dev).with_context(|| format!("opening {}", dev.display()))?;
    let Some(table) = blockdev::read_table(&mut f, 512)? else {
        r.error(
            "partition-table",
            format!("no partition table (GPT or msdos) on the {} image: curtin finds no partition to take as the root", human(size)),
        );
        return Ok(());
    };
    let kind = match table.kind {
        blockdev::TableKind::Gpt => "gpt",
        blockdev::TableKind::Msdos => "msdos",
    };
    r.facts.partition_table = Some(kind.into());
    r.ok(
        "partition-table",
        format!(
            "{} with {} partition{} on a {} image",
            kind.to_uppercase(),
            table.parts.len(),
            if table.parts.len() == 1 { "" } else { "s" },
            human(size)
        ),
    );
    // The kernel may not have scanned the table (or have no nodes for it): set its
    // partitions from the table we read, as the dd path does after writing.
    blockdev::sync_partitions(&f, dev, &table.parts).kind(Kind::Storage)?;
    let mut seen = vec![];
    for p in &table.parts {
        let node = blockdev::partition_path(dev, p.number);
        seen.push(Seen {
            part: *p,
            info: tools::blkid_probe(&node),
            node,
        });
    }
    for s in &seen {
        let et = s.entry_type();
        let tn = type_name(&et);
        let fs = match (s.fstype(), s.get("LABEL")) {
            (Some(t), Some(l)) => format!("{t} '{l}'"),
            (Some(t), None) => t.to_string(),
            _ => "no filesystem".into(),
        };
        let name = s
            .get("PART_ENTRY_NAME")
            .map(|n| format!(" \"{n}\""))
            .unwrap_or_default();
        r.ok(
            format!("partition {}", s.part.number),
            format!(
                "{}, {}{name}: {fs}",
                human(s.part.len),
                tn.map(str::to_string)
                    .unwrap_or_else(|| format!("type {et}"))
            ),
        );
        r.facts.partitions.push(report::Partition {
            number: s.part.number,
            start: s.part.start,
            size: s.part.len,
            entry_type: (!et.is_empty()).then(|| et.clone()),
            type_name: tn.map(Into::into),
            name: s.get("PART_ENTRY_NAME").map(Into::into),
            fstype: s.fstype().map(Into::into),
            label: s.get("LABEL").map(Into::into),
        });
    }

    let parts: Vec<(Part, PathBuf)> = seen.iter().map(|s| (s.part, s.node.clone())).collect();
    let types: std::collections::BTreeMap<PathBuf, Option<String>> = seen
        .iter()
        .map(|s| (s.node.clone(), s.fstype().map(str::to_string)))
        .collect();
    let mut probes = blockdev::probe_roots(&parts, &|n| {
        ro_options(types.get(n).and_then(|t| t.as_deref()))
    })?;
    fat_markers(&seen, &mut probes);
    let root = root(r, &seen, &probes, &table.parts);
    firmware(r, image, &seen)?;
    let Some(root) = root else {
        return Ok(());
    };
    if root.fstype() == Some("vfat") {
        r.warn(
            "os",
            format!("the root (partition {}) is a FAT filesystem (ESXi?): not a Linux root, the Linux checks are skipped", root.part.number),
        );
        return Ok(());
    }
    let mnt = tempfile::Builder::new()
        .prefix("deployer-inspect-root-")
        .tempdir()?;
    if let Err(e) = tools::mount(&root.node, mnt.path(), &ro_options(root.fstype())) {
        r.warn(
            "os",
            format!(
                "the root (partition {}, {}) does not mount read-only on this machine, its contents were not inspected: {}",
                root.part.number,
                root.fstype().unwrap_or("unknown filesystem"),
                crate::error::render(&e)
            ),
        );
        return Ok(());
    }
    let tree = Mounted(mnt.path().to_path_buf());
    let has_hook = hooks::has_curthooks(&tree);
    os::check(r, &tree, base, has_hook);
    hooks::check(r, &tree);
    if r.facts.firmware.is_empty() && !has_hook {
        // Nothing boots it yet: the builtin curthooks must install GRUB.
        os::builtin_bootloader(r, &tree, false);
    }
    let um = tools::umount(mnt.path());
    um.with_context(|| format!("unmounting {}", mnt.path().display()))
}

/// FAT partitions the kernel here cannot mount (it may lack vfat) are looked into with mtools
/// for curtin's markers: ESXi images keep `/curtin` on their FAT partition 1.
fn fat_markers(seen: &[Seen], probes: &mut [Probe]) {
    for p in probes.iter_mut().filter(|p| !p.mounted) {
        let Some(s) = seen.iter().find(|s| s.node == p.node) else {
            continue;
        };
        if s.fstype() != Some("vfat") {
            continue;
        }
        let Ok(top) = tools::fat_list(&s.node, "/") else {
            continue;
        };
        let has = |dir: &str| {
            let want = format!("::/{dir}/").to_ascii_lowercase();
            top.iter().any(|l| l.to_ascii_lowercase() == want)
        };
        p.marker = blockdev::ROOT_MARKERS
            .iter()
            .find(|m| !m.contains('/') && has(m))
            .map(|m| m.to_string());
        p.os_release = top
            .iter()
            .any(|l| l.eq_ignore_ascii_case("::/etc/os-release"));
    }
}

/// The root by curtin's rule and our fallback, and whether it grows.
fn root<'a>(
    r: &mut Report,
    seen: &'a [Seen],
    probes: &[Probe],
    parts: &[Part],
) -> Option<&'a Seen> {
    let curtin = blockdev::root_by_markers(probes);
    let fallback = blockdev::root_by_os_release(probes);
    let lvm: Vec<u32> = seen
        .iter()
        .filter(|s| s.fstype() == Some("LVM2_member"))
        .map(|s| s.part.number)
        .collect();
    let mut facts = report::Root {
        curtin_rule: curtin.as_ref().map(|c| c.number),
        fallback: fallback.as_ref().map(|c| c.number),
        ..Default::default()
    };
    let lvm_note = || {
        format!(
            "LVM root: not inspected yet (partition {} is an LVM physical volume; curtin activates its volume groups and looks for /curtin on the logical volumes too)",
            lvm.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        )
    };
    let chosen = match (&curtin, &fallback) {
        (Some(c), _) => {
            facts.marker = Some(c.marker.clone());
            let agree = match &fallback {
                Some(f) if f.number != c.number => format!(
                    "; deployer's fallback would have taken partition {} (etc/os-release)",
                    f.number
                ),
                _ => String::new(),
            };
            r.ok(
                "root",
                format!(
                    "partition {} holds /{}: curtin's rule picks it{agree}",
                    c.number, c.marker
                ),
            );
            if !lvm.is_empty() {
                r.warn("lvm", lvm_note());
            }
            Some(c.number)
        }
        (None, _) if !lvm.is_empty() => {
            // Hook point for LVM (the storage helper's work): activate the volume group of a
            // copy-on-write snapshot and probe its logical volumes like partitions.
            r.warn("root", lvm_note());
            None
        }
        (None, Some(f)) => {
            r.error(
                "root",
                format!(
                    "no partition holds /curtin (or system-data/var/lib/snapd, snaps): MAAS's curtin fails with \"Did not find any filesystem on ['sda'] that contained one of ['curtin', 'system-data/var/lib/snapd', 'snaps']\"; deployer's fallback takes partition {} (etc/os-release); add a /curtin directory to the root",
                    f.number
                ),
            );
            Some(f.number)
        }
        (None, None) => {
            let unmounted: Vec<String> = probes
                .iter()
                .filter(|p| !p.mounted)
                .map(|p| p.part.number.to_string())
                .collect();
            r.error(
                "root",
                format!(
                    "no partition holds /curtin or etc/os-release: curtin (and deployer) find no root{}",
                    if unmounted.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (partitions {} did not mount here)",
                            unmounted.join(", ")
                        )
                    }
                ),
            );
            None
        }
    };
    let root = chosen.and_then(|n| seen.iter().find(|s| s.part.number == n));
    if let Some(s) = root {
        facts.partition = Some(s.part.number);
        let last = parts.iter().all(|p| p.start <= s.part.start);
        let growable = matches!(s.fstype(), Some("ext2" | "ext3" | "ext4" | "xfs" | "btrfs"));
        facts.last = Some(last);
        facts.grows = Some(last && growable);
        if !last {
            let after: Vec<String> = parts
                .iter()
                .filter(|p| p.start > s.part.start)
                .map(|p| p.number.to_string())
                .collect();
            r.warn(
                "root-grow",
                format!(
                    "root will not grow: partition {} is not the last partition (partition {} follows); the deployed root stays {}",
                    s.part.number,
                    after.join(", "),
                    human(s.part.len)
                ),
            );
        } else if !growable {
            r.warn(
                "root-grow",
                format!(
                    "root will not grow: deployer grows ext4, xfs and btrfs, not {}",
                    s.fstype().unwrap_or("this filesystem")
                ),
            );
        } else {
            r.ok(
                "root-grow",
                format!(
                    "the root is the last partition: deployer grows it and its {} filesystem to fill the disk (curtin leaves that to cloud-init's growpart)",
                    s.fstype().unwrap_or("")
                ),
            );
        }
    }
    r.facts.root = Some(facts);
    root
}

/// BIOS (boot code in the MBR, with a BIOS boot partition on GPT) and UEFI (an ESP with a
/// loader).
fn firmware(r: &mut Report, image: &Path, seen: &[Seen]) -> Result<()> {
    let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let mut mbr = [0u8; 512];
    f.read_exact_at(&mut mbr, 0)
        .with_context(|| format!("reading the MBR of {}", image.display()))?;
    let code = mbr[..440].iter().any(|b| *b != 0);
    let grub = mbr.windows(4).any(|w| w == b"GRUB");
    let gpt = seen
        .iter()
        .any(|s| s.get("PART_ENTRY_SCHEME") == Some("gpt"));
    let bios_boot = seen.iter().find(|s| s.entry_type() == BIOS_BOOT);
    let mut found = vec![];
    let bios = match (code, gpt, bios_boot) {
        (false, _, _) => None,
        (true, true, Some(b)) => {
            let mut first = [0u8; 512];
            f.read_exact_at(&mut first, b.part.start)?;
            first.iter().any(|x| *x != 0).then(|| {
                format!(
                    "BIOS ({} in the MBR, core.img in partition {}, BIOS boot)",
                    if grub { "GRUB" } else { "boot code" },
                    b.part.number
                )
            })
        }
        (true, true, None) if grub => None, // GRUB on GPT needs a BIOS boot partition
        (true, _, _) => Some(format!(
            "BIOS ({} in the MBR)",
            if grub { "GRUB" } else { "boot code" }
        )),
    };
    if let Some(b) = bios {
        found.push(b);
        r.facts.firmware.push("bios".into());
    }
    let mut uefi = vec![];
    for s in seen.iter().filter(|s| s.is_esp()) {
        if s.fstype() != Some("vfat") {
            r.warn(
                "esp",
                format!(
                    "partition {} is an EFI system partition without a FAT filesystem ({})",
                    s.part.number,
                    s.fstype().unwrap_or("none")
                ),
            );
            continue;
        }
        let files = tools::fat_list(&s.node, "/EFI").unwrap_or_default();
        let efi: Vec<String> = files
            .iter()
            .filter(|p| p.to_ascii_lowercase().ends_with(".efi"))
            .map(|p| p.trim_start_matches("::/").to_string())
            .collect();
        let removable = efi
            .iter()
            .find(|p| p.eq_ignore_ascii_case("EFI/BOOT/BOOTX64.EFI"));
        match removable {
            Some(p) => uefi.push(format!("UEFI ({p} on partition {}: boots without an NVRAM entry)", s.part.number)),
            None if !efi.is_empty() => uefi.push(format!(
                "UEFI ({} on partition {}: boots with an NVRAM entry, which grub-install in the target or the image's hook must add)",
                efi.join(", "),
                s.part.number
            )),
            None => {}
        }
    }
    if !uefi.is_empty() {
        r.facts.firmware.push("uefi".into());
        found.extend(uefi);
    }
    if found.is_empty() {
        r.warn(
            "firmware",
            "no bootloader in the image (no boot code in the MBR, no EFI loader on an ESP)",
        );
    } else {
        r.ok("firmware", found.join("; "));
    }
    Ok(())
}
