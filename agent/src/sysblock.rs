//! The kernel's view of block devices in sysfs: kernel names, partitions, `holders/` and
//! `slaves/`, device-mapper names and uuids, md and bcache attributes. Read-only.
//!
//! The sysfs root is injectable ([`Sysfs::at`]): the holder trees clear-holders plans from can
//! be tested on a temporary directory of the same shape (`class/block/<name>/{holders,slaves,
//! partition,dm/uuid,...}`; a partition is `class/block/<disk>/<part>/` and
//! `class/block/<part>` links to it, as in the real tree).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What a block device is, as curtin's clear-holders tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Disk,
    Partition,
    /// `bcacheN`.
    Bcache,
    /// A device-mapper device with an `LVM-` uuid (a logical volume).
    Lvm,
    /// `mdN` (not a partition of one).
    Raid,
    /// A device-mapper device with a `CRYPT-` uuid.
    Crypt,
    /// Another device-mapper device (multipath, a hand-made linear map...).
    OtherDm,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Disk => "disk",
            Kind::Partition => "partition",
            Kind::Bcache => "bcache",
            Kind::Lvm => "lvm",
            Kind::Raid => "raid",
            Kind::Crypt => "crypt",
            Kind::OtherDm => "device-mapper",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::at("/sys")
    }
}

impl Sysfs {
    /// A sysfs tree rooted at `root` (`/sys` on a real system).
    pub fn at(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/class/block/<name>`.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join("class/block").join(name)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.dir(name).exists()
    }

    fn read(&self, name: &str, attr: &str) -> Option<String> {
        let s = std::fs::read_to_string(self.dir(name).join(attr)).ok()?;
        Some(s.trim().to_string())
    }

    fn list(&self, name: &str, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir(name).join(sub))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The devices built on this one (`holders/`).
    pub fn holders(&self, name: &str) -> Vec<String> {
        self.list(name, "holders")
    }

    /// The devices this one is built on (`slaves/`).
    pub fn slaves(&self, name: &str) -> Vec<String> {
        self.list(name, "slaves")
    }

    /// The partitions of a disk (subdirectories with a `partition` file), by kernel name.
    pub fn partitions(&self, name: &str) -> Vec<String> {
        let dir = self.dir(name);
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join("partition").exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn is_partition(&self, name: &str) -> bool {
        self.dir(name).join("partition").exists()
    }

    /// The disk a partition is on (its parent directory in sysfs).
    pub fn disk_of(&self, part: &str) -> Option<String> {
        if !self.is_partition(part) {
            return None;
        }
        let real = std::fs::canonicalize(self.dir(part)).ok()?;
        Some(real.parent()?.file_name()?.to_string_lossy().into_owned())
    }

    pub fn dm_name(&self, name: &str) -> Option<String> {
        self.read(name, "dm/name")
    }

    pub fn dm_uuid(&self, name: &str) -> Option<String> {
        self.read(name, "dm/uuid")
    }

    /// Size in bytes (`size` is in 512-byte sectors whatever the logical sector size).
    pub fn size(&self, name: &str) -> Option<u64> {
        self.read(name, "size")?
            .parse::<u64>()
            .ok()
            .map(|s| s * 512)
    }

    /// `md/array_state` (`clean`, `active`, `inactive`...).
    pub fn md_state(&self, name: &str) -> Option<String> {
        self.read(name, "md/array_state")
    }

    /// The cache set uuid a bcache cache device belongs to (`bcache/set` links to
    /// `fs/bcache/<uuid>`), or that a backing device is attached to (`bcache/cache`).
    pub fn bcache_set(&self, name: &str) -> Option<String> {
        ["bcache/set", "bcache/cache"].iter().find_map(|l| {
            let target = std::fs::read_link(self.dir(name).join(l)).ok()?;
            Some(target.file_name()?.to_string_lossy().into_owned())
        })
    }

    /// A registered bcache backing device (its `bcache/` has a `stop`).
    pub fn is_bcache_backing(&self, name: &str) -> bool {
        self.dir(name).join("bcache/stop").exists()
    }

    /// What the device is (curtin's identify functions).
    pub fn kind(&self, name: &str) -> Kind {
        if self.is_partition(name) {
            return Kind::Partition;
        }
        if name.starts_with("dm-") {
            let uuid = self.dm_uuid(name).unwrap_or_default();
            return if uuid.starts_with("LVM-") {
                Kind::Lvm
            } else if uuid.starts_with("CRYPT-") {
                Kind::Crypt
            } else {
                Kind::OtherDm
            };
        }
        if name.starts_with("md") {
            return Kind::Raid;
        }
        if name.starts_with("bcache") {
            return Kind::Bcache;
        }
        Kind::Disk
    }

    /// The kernel name of a device node (`/dev/md/root` -> `md127`), by its device number.
    pub fn kname_of(&self, dev: &Path) -> Result<String> {
        let rdev = std::fs::metadata(dev)
            .with_context(|| format!("stat {}", dev.display()))?
            .rdev();
        let link = self.root.join(format!(
            "dev/block/{}:{}",
            libc::major(rdev),
            libc::minor(rdev)
        ));
        let real = std::fs::canonicalize(&link)
            .with_context(|| format!("resolving {}", link.display()))?;
        Ok(real
            .file_name()
            .context("a sysfs device has a name")?
            .to_string_lossy()
            .into_owned())
    }

    /// The device number (`8:1`) of a kernel name.
    pub fn devnum(&self, name: &str) -> Option<String> {
        self.read(name, "dev")
    }

    /// The whole disks a device is built on, following `slaves/` (and partitions to their
    /// disks) down to the bottom.
    pub fn base_disks(&self, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![name.to_string()];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if self.is_partition(&n) {
                if let Some(d) = self.disk_of(&n) {
                    stack.push(d);
                }
                continue;
            }
            let slaves = self.slaves(&n);
            if slaves.is_empty() {
                out.push(n);
            } else {
                stack.extend(slaves);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The dm device (`dm-3`) whose `dm/name` is `dm_name`.
    pub fn dm_by_name(&self, dm_name: &str) -> Option<String> {
        let rd = std::fs::read_dir(self.root.join("class/block")).ok()?;
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("dm-"))
            .collect();
        names.sort();
        names
            .into_iter()
            .find(|n| self.dm_name(n).as_deref() == Some(dm_name))
    }
}

/// Split a device-mapper LV name into volume group and logical volume: LVM joins them with `-`
/// and doubles any `-` inside either (`my--vg-root` is `my-vg` / `root`).
pub fn split_lvm_name(dm_name: &str) -> Option<(String, String)> {
    let b = dm_name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            let un = |s: &str| s.replace("--", "-");
            return Some((un(&dm_name[..i]), un(&dm_name[i + 1..])));
        }
        i += 1;
    }
    None
}

/// The device-mapper name of an LV (`my-vg`, `root` -> `my--vg-root`).
pub fn lvm_dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

#[cfg(test)]
pub mod fake {
    //! A fake sysfs tree for tests.
    use std::path::{Path, PathBuf};

    pub struct Tree {
        pub dir: tempfile::TempDir,
    }

    impl Default for Tree {
        fn default() -> Self {
            Tree::new()
        }
    }

    impl Tree {
        pub fn new() -> Tree {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("class/block")).unwrap();
            Tree { dir }
        }

        pub fn sysfs(&self) -> super::Sysfs {
            super::Sysfs::at(self.dir.path())
        }

        fn block(&self) -> PathBuf {
            self.dir.path().join("class/block")
        }

        fn mk(&self, p: &Path, size_sectors: u64) {
            for d in ["holders", "slaves"] {
                std::fs::create_dir_all(p.join(d)).unwrap();
            }
            std::fs::write(p.join("size"), format!("{size_sectors}\n")).unwrap();
        }

        /// A whole disk.
        pub fn disk(&self, name: &str) -> &Self {
            self.mk(&self.block().join(name), 2 << 21);
            self
        }

        /// A partition of `disk` (which must exist).
        pub fn part(&self, disk: &str, name: &str) -> &Self {
            let p = self.block().join(disk).join(name);
            self.mk(&p, 1 << 21);
            std::fs::write(p.join("partition"), "1\n").unwrap();
            std::os::unix::fs::symlink(&p, self.block().join(name)).unwrap();
            self
        }

        /// A virtual device `name` built on `slaves` (each gets it as a holder); `dm_uuid` for
        /// device-mapper devices (`LVM-...`, `CRYPT-...`), with `dm_name`.
        pub fn holder(&self, name: &str, slaves: &[&str], dm: Option<(&str, &str)>) -> &Self {
            let p = self.block().join(name);
            self.mk(&p, 1 << 20);
            for s in slaves {
                std::os::unix::fs::symlink(self.block().join(s), p.join("slaves").join(s)).unwrap();
                std::os::unix::fs::symlink(&p, self.block().join(s).join("holders").join(name))
                    .unwrap();
            }
            if let Some((dm_name, uuid)) = dm {
                std::fs::create_dir_all(p.join("dm")).unwrap();
                std::fs::write(p.join("dm/name"), format!("{dm_name}\n")).unwrap();
                std::fs::write(p.join("dm/uuid"), format!("{uuid}\n")).unwrap();
            }
            self
        }

        /// A bcache member: a cache device in set `uuid`, or a backing device attached to it.
        pub fn bcache_member(&self, name: &str, uuid: &str, backing: bool) -> &Self {
            let sets = self.dir.path().join("fs/bcache").join(uuid);
            std::fs::create_dir_all(&sets).unwrap();
            let b = self.block().join(name).join("bcache");
            std::fs::create_dir_all(&b).unwrap();
            let link = if backing {
                std::fs::write(b.join("stop"), "").unwrap();
                "cache"
            } else {
                "set"
            };
            std::os::unix::fs::symlink(&sets, b.join(link)).unwrap();
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_partitions_and_base_disks() {
        let t = fake::Tree::new();
        t.disk("vda")
            .part("vda", "vda1")
            .part("vda", "vda2")
            .disk("vdb")
            .part("vdb", "vdb1")
            .holder("md0", &["vda1", "vdb1"], None)
            .holder("dm-0", &["md0"], Some(("vg0-root", "LVM-abc")))
            .holder("dm-1", &["vda2"], Some(("secret", "CRYPT-LUKS2-x")));
        let s = t.sysfs();
        assert_eq!(s.partitions("vda"), ["vda1", "vda2"]);
        assert_eq!(s.disk_of("vda2").as_deref(), Some("vda"));
        assert_eq!(s.kind("vda"), Kind::Disk);
        assert_eq!(s.kind("vda1"), Kind::Partition);
        assert_eq!(s.kind("md0"), Kind::Raid);
        assert_eq!(s.kind("dm-0"), Kind::Lvm);
        assert_eq!(s.kind("dm-1"), Kind::Crypt);
        assert_eq!(s.holders("vda1"), ["md0"]);
        assert_eq!(s.base_disks("dm-0"), ["vda", "vdb"]);
        assert_eq!(s.dm_by_name("secret").as_deref(), Some("dm-1"));
    }

    #[test]
    fn lvm_names() {
        assert_eq!(
            split_lvm_name("my--vg-root--lv"),
            Some(("my-vg".into(), "root-lv".into()))
        );
        assert_eq!(
            split_lvm_name("vg0-root"),
            Some(("vg0".into(), "root".into()))
        );
        assert_eq!(split_lvm_name("nodash"), None);
        assert_eq!(lvm_dm_name("my-vg", "root"), "my--vg-root");
    }
}
