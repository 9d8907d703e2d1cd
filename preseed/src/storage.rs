//! `storage`: curtin's storage config (version 1, and 2 which differs only in how preserved
//! partitions and offsets are treated). `disk`, `partition`, `format`, `mount`, `raid`,
//! `lvm_volgroup`, `lvm_partition`, `bcache` and `dm_crypt` are typed in full and checked
//! (references, levels, device counts, keys); curtin's other types (`zpool`, `zfs`, `dasd`,
//! `nvme_controller`, ...) are carried and named "not supported yet".
//!
//! With a dd source curtin applies no layout (the image brings its own; storage only chooses
//! the disk), so only the `disk` items are typed then and everything else is carried as it is
//! ([`Storage::disks_only`]): MAAS's VMFS layouts for ESXi load.

use serde::{Deserialize, Serialize};
use yaml_serde::Value;

use crate::issue::{typed, Issue};

mod keys;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Storage {
    /// 1 or 2.
    pub version: u32,
    /// Items in list order (curtin handles them strictly in this order).
    pub config: Vec<Item>,
    /// Where curtin writes the `{id: /dev/path}` map, if asked.
    pub device_map_path: Option<String>,
    /// Read for a dd source: only the disks are typed (they choose the disk), the other items
    /// are carried unchecked, as curtin's simple mode never looks at them.
    #[serde(skip)]
    pub disks_only: bool,
}

impl Storage {
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.config.iter().find(|i| i.id() == id)
    }

    /// The first item deployer cannot install yet, as `not supported yet: <type> id=<id>`.
    /// A dd source applies no layout: nothing in it can be unsupported.
    pub fn check_supported(&self) -> Result<(), String> {
        if self.disks_only {
            return Ok(());
        }
        match self.config.iter().find_map(Item::unsupported) {
            Some(m) => Err(m),
            None => Ok(()),
        }
    }

    pub fn disks(&self) -> impl Iterator<Item = &Disk> {
        self.config.iter().filter_map(|i| match i {
            Item::Disk(d) => Some(d),
            _ => None,
        })
    }

    /// Partitions on `device`, in list order.
    pub fn partitions_of<'a>(&'a self, device: &'a str) -> impl Iterator<Item = &'a Partition> {
        self.config.iter().filter_map(move |i| match i {
            Item::Partition(p) if p.device == device => Some(p),
            _ => None,
        })
    }
}

/// One storage item, by its `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Disk(Disk),
    Partition(Partition),
    Format(Format),
    Mount(Mount),
    LvmVolgroup(LvmVolgroup),
    LvmPartition(LvmPartition),
    Raid(Raid),
    Bcache(Bcache),
    DmCrypt(DmCrypt),
    /// A curtin type deployer only carries (`zpool`, `zfs`, `dasd`, `nvme_controller`, `device`, `image`).
    Other(Other),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Other {
    pub kind: String,
    pub id: String,
    pub value: Value,
}

/// Types curtin knows that deployer carries without a model.
const CARRIED: &[&str] = &["zpool", "zfs", "dasd", "nvme_controller", "device", "image"];

impl Item {
    pub fn id(&self) -> &str {
        match self {
            Item::Disk(x) => &x.id,
            Item::Partition(x) => &x.id,
            Item::Format(x) => &x.id,
            Item::Mount(x) => &x.id,
            Item::LvmVolgroup(x) => &x.id,
            Item::LvmPartition(x) => &x.id,
            Item::Raid(x) => &x.id,
            Item::Bcache(x) => &x.id,
            Item::DmCrypt(x) => &x.id,
            Item::Other(x) => &x.id,
        }
    }

    /// The `type` as written in the config.
    pub fn type_name(&self) -> &str {
        match self {
            Item::Disk(_) => "disk",
            Item::Partition(_) => "partition",
            Item::Format(_) => "format",
            Item::Mount(_) => "mount",
            Item::LvmVolgroup(_) => "lvm_volgroup",
            Item::LvmPartition(_) => "lvm_partition",
            Item::Raid(_) => "raid",
            Item::Bcache(_) => "bcache",
            Item::DmCrypt(_) => "dm_crypt",
            Item::Other(o) => &o.kind,
        }
    }

    /// `Some("not supported yet: <type> id=<id>...")` for items deployer cannot install yet:
    /// curtin's zpool, zfs, dasd, nvme_controller, device and image types, ZFS roots, iSCSI
    /// and multipath disks, and IMSM/DDF container arrays.
    pub fn unsupported(&self) -> Option<String> {
        let (what, why) = match self {
            Item::Other(_) => (String::new(), String::new()),
            Item::Disk(d) if d.multipath.is_some() => (
                " on multipath".into(),
                format!(" ({})", d.multipath.as_deref().unwrap_or_default()),
            ),
            Item::Disk(d) if d.path.as_deref().is_some_and(|p| p.starts_with("iscsi:")) => (
                " on iSCSI".into(),
                format!(" ({})", d.path.as_deref().unwrap_or_default()),
            ),
            Item::Format(f) if f.fstype == Fstype::Zfsroot => {
                (" with fstype zfsroot".into(), " (a ZFS pool for /)".into())
            }
            Item::Raid(r) if r.container.is_some() || r.raidlevel == RaidLevel::Container => {
                (String::new(), " (a container array)".into())
            }
            _ => return None,
        };
        Some(format!(
            "not supported yet: {} id={}{what}{why}",
            self.type_name(),
            self.id()
        ))
    }

    /// The ids this item refers to, with the key each is under.
    pub fn refs(&self) -> Vec<(&'static str, &str)> {
        let mut r: Vec<(&'static str, &str)> = Vec::new();
        match self {
            Item::Partition(p) => r.push(("device", &p.device)),
            Item::Format(f) => r.push(("volume", &f.volume)),
            Item::Mount(m) => r.extend(m.device.as_deref().map(|d| ("device", d))),
            Item::LvmVolgroup(v) => r.extend(v.devices.iter().map(|d| ("devices", d.as_str()))),
            Item::LvmPartition(l) => r.push(("volgroup", &l.volgroup)),
            Item::Raid(x) => {
                r.extend(x.devices.iter().map(|d| ("devices", d.as_str())));
                r.extend(
                    x.spare_devices
                        .iter()
                        .map(|d| ("spare_devices", d.as_str())),
                );
                r.extend(x.container.as_deref().map(|d| ("container", d)));
            }
            Item::Bcache(b) => {
                r.extend(b.backing_device.as_deref().map(|d| ("backing_device", d)));
                r.extend(b.cache_device.as_deref().map(|d| ("cache_device", d)));
            }
            Item::DmCrypt(c) => r.push(("volume", &c.volume)),
            Item::Disk(_) | Item::Other(_) => {}
        }
        r
    }
}

/// `ptable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ptable {
    Gpt,
    #[serde(alias = "dos")]
    Msdos,
    Vtoc,
    Unsupported,
}

/// `wipe` modes (`block.wipe_volume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wipe {
    Superblock,
    SuperblockRecursive,
    Zero,
    Random,
    Pvremove,
}

/// Partition `flag` (curtin's schema enum; `""` means none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    BiosGrub,
    Boot,
    Extended,
    Home,
    Linux,
    Logical,
    Lvm,
    Mbr,
    Msftres,
    Prep,
    Raid,
    Swap,
}

impl Wipe {
    pub fn name(self) -> &'static str {
        match self {
            Wipe::Superblock => "superblock",
            Wipe::SuperblockRecursive => "superblock-recursive",
            Wipe::Zero => "zero",
            Wipe::Random => "random",
            Wipe::Pvremove => "pvremove",
        }
    }
}

impl Flag {
    /// The flag as written in a config (`bios_grub`).
    pub fn name(self) -> &'static str {
        match self {
            Flag::BiosGrub => "bios_grub",
            Flag::Boot => "boot",
            Flag::Extended => "extended",
            Flag::Home => "home",
            Flag::Linux => "linux",
            Flag::Logical => "logical",
            Flag::Lvm => "lvm",
            Flag::Mbr => "mbr",
            Flag::Msftres => "msftres",
            Flag::Prep => "prep",
            Flag::Raid => "raid",
            Flag::Swap => "swap",
        }
    }
}

/// Filesystems curtin's `mkfs` knows; anything else is an error at validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fstype {
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Fat,
    Fat12,
    Fat16,
    Fat32,
    Swap,
    F2fs,
    Jfs,
    Ntfs,
    Reiserfs,
    Zfsroot,
}

impl Fstype {
    pub fn name(self) -> &'static str {
        match self {
            Fstype::Ext2 => "ext2",
            Fstype::Ext3 => "ext3",
            Fstype::Ext4 => "ext4",
            Fstype::Xfs => "xfs",
            Fstype::Btrfs => "btrfs",
            Fstype::Vfat => "vfat",
            Fstype::Fat => "fat",
            Fstype::Fat12 => "fat12",
            Fstype::Fat16 => "fat16",
            Fstype::Fat32 => "fat32",
            Fstype::Swap => "swap",
            Fstype::F2fs => "f2fs",
            Fstype::Jfs => "jfs",
            Fstype::Ntfs => "ntfs",
            Fstype::Reiserfs => "reiserfs",
            Fstype::Zfsroot => "zfsroot",
        }
    }

    /// The type mount and fstab use (`fat*` is reported as `vfat`).
    pub fn mount_type(self) -> &'static str {
        match self {
            Fstype::Fat | Fstype::Fat12 | Fstype::Fat16 | Fstype::Fat32 => "vfat",
            f => f.name(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub id: String,
    #[serde(default, deserialize_with = "de_ptable")]
    pub ptable: Option<Ptable>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub path: Option<String>,
    pub device_id: Option<String>,
    pub name: Option<String>,
    pub model: Option<String>,
    #[serde(default, deserialize_with = "de_wipe")]
    pub wipe: Option<Wipe>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
    #[serde(default, deserialize_with = "crate::truth::de::truthy")]
    pub grub_device: bool,
    pub multipath: Option<String>,
    pub nvme_controller: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partition {
    pub id: String,
    /// The disk (or raid, bcache) the partition is on.
    pub device: String,
    /// Bytes.
    #[serde(deserialize_with = "crate::size::de")]
    pub size: u64,
    pub number: Option<u32>,
    /// Bytes; honoured by storage version 2 only (curtin v1 ignores it).
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub offset: Option<u64>,
    #[serde(default, deserialize_with = "de_flag")]
    pub flag: Option<Flag>,
    #[serde(default, deserialize_with = "de_wipe")]
    pub wipe: Option<Wipe>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::truth::de::truthy")]
    pub grub_device: bool,
    pub path: Option<String>,
    pub uuid: Option<String>,
    pub partition_type: Option<String>,
    pub partition_name: Option<String>,
    /// v2: GPT attribute bits in sfdisk's words (`RequiredPartition`, `GUID:63`, ...).
    #[serde(default)]
    pub attrs: Vec<String>,
    #[serde(default, deserialize_with = "crate::truth::de::truthy")]
    pub resize: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Format {
    pub id: String,
    pub volume: String,
    pub fstype: Fstype,
    pub label: Option<String>,
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "de_words")]
    pub extra_options: Vec<String>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    pub id: String,
    /// A format id; may be absent when `spec` and `fstype` are given.
    pub device: Option<String>,
    /// Where in the target (`/`, `/boot/efi`, or `none` for swap).
    pub path: Option<String>,
    pub spec: Option<String>,
    pub fstype: Option<String>,
    pub options: Option<String>,
    #[serde(default, deserialize_with = "de_stringish")]
    pub freq: Option<String>,
    #[serde(default, deserialize_with = "de_stringish")]
    pub passno: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LvmVolgroup {
    pub id: String,
    pub name: String,
    pub devices: Vec<String>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LvmPartition {
    pub id: String,
    pub volgroup: String,
    pub name: String,
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
    #[serde(default, deserialize_with = "de_wipe")]
    pub wipe: Option<Wipe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Raid {
    pub id: String,
    /// `mdN` (-> `/dev/mdN`) or a name (-> `/dev/md/<name>`).
    pub name: String,
    pub raidlevel: RaidLevel,
    #[serde(default)]
    pub devices: Vec<String>,
    #[serde(default)]
    pub spare_devices: Vec<String>,
    pub container: Option<String>,
    /// mdadm's `--metadata` (`1.2` when absent: mdadm's default).
    #[serde(default, deserialize_with = "de_metadata")]
    pub metadata: Option<String>,
    /// mdadm's `--name` (the array's name in its superblock).
    #[serde(default, deserialize_with = "de_stringish")]
    pub mdname: Option<String>,
    #[serde(default, deserialize_with = "de_ptable")]
    pub ptable: Option<Ptable>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
    #[serde(default, deserialize_with = "de_wipe")]
    pub wipe: Option<Wipe>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bcache {
    pub id: String,
    pub backing_device: Option<String>,
    pub cache_device: Option<String>,
    pub cache_mode: Option<CacheMode>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
    #[serde(default, deserialize_with = "de_wipe")]
    pub wipe: Option<Wipe>,
    #[serde(default, deserialize_with = "de_ptable")]
    pub ptable: Option<Ptable>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DmCrypt {
    pub id: String,
    pub volume: String,
    /// The mapping's name (`/dev/mapper/<dm_name>`); the id when absent.
    pub dm_name: Option<String>,
    /// The passphrase itself (curtin writes it to a 0600 temporary file).
    #[serde(default, deserialize_with = "de_stringish")]
    pub key: Option<String>,
    pub keyfile: Option<Keyfile>,
    #[serde(default, deserialize_with = "de_stringish")]
    pub keysize: Option<String>,
    pub cipher: Option<String>,
    /// crypttab options (`[luks]` when absent).
    #[serde(default, deserialize_with = "de_words_comma")]
    pub options: Vec<String>,
    pub recovery_keyfile: Option<String>,
    #[serde(default, deserialize_with = "crate::truth::de::value_as_boolean")]
    pub preserve: bool,
    #[serde(default, deserialize_with = "de_wipe")]
    pub wipe: Option<Wipe>,
}

impl DmCrypt {
    /// `/dev/mapper/<dm_name>` uses this name.
    pub fn mapping_name(&self) -> &str {
        self.dm_name.as_deref().unwrap_or(&self.id)
    }
}

/// `keyfile`: a path on the machine running the install (curtin), or, as a deployer extension,
/// `{path, content}`: a key the config carries, used for the volume and installed at `path` in
/// the target so that its crypttab opens the volume at boot without a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Keyfile {
    Path(String),
    Given { path: String, content: String },
}

impl Keyfile {
    /// `/dev/urandom` or `/dev/random`: plain dm-crypt with a random key (no LUKS header).
    pub fn is_random(&self) -> bool {
        matches!(self, Keyfile::Path(p) if p == "/dev/urandom" || p == "/dev/random")
    }
}

/// mdadm levels, as curtin accepts them (`1`, `raid1`, `mirror`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RaidLevel {
    Linear,
    Raid0,
    Raid1,
    Raid4,
    Raid5,
    Raid6,
    Raid10,
    Container,
}

impl RaidLevel {
    pub fn parse(s: &str) -> Option<RaidLevel> {
        Some(match s {
            "linear" => RaidLevel::Linear,
            "0" | "raid0" | "stripe" => RaidLevel::Raid0,
            "1" | "raid1" | "mirror" => RaidLevel::Raid1,
            "4" | "raid4" => RaidLevel::Raid4,
            "5" | "raid5" => RaidLevel::Raid5,
            "6" | "raid6" => RaidLevel::Raid6,
            "10" | "raid10" => RaidLevel::Raid10,
            "container" => RaidLevel::Container,
            _ => return None,
        })
    }

    /// mdadm's `--level=` word.
    pub fn mdadm(self) -> &'static str {
        match self {
            RaidLevel::Linear => "linear",
            RaidLevel::Raid0 => "raid0",
            RaidLevel::Raid1 => "raid1",
            RaidLevel::Raid4 => "raid4",
            RaidLevel::Raid5 => "raid5",
            RaidLevel::Raid6 => "raid6",
            RaidLevel::Raid10 => "raid10",
            RaidLevel::Container => "container",
        }
    }

    /// curtin's `md_minimum_devices` (it asks 4 for raid10, more than mdadm needs).
    pub fn min_devices(self) -> usize {
        match self {
            RaidLevel::Raid5 => 3,
            RaidLevel::Raid6 | RaidLevel::Raid10 => 4,
            RaidLevel::Raid4 => 1,
            _ => 2,
        }
    }

    /// Levels that take `spare_devices` (curtin's SPARE_RAID_LEVELS).
    pub fn takes_spares(self) -> bool {
        !matches!(
            self,
            RaidLevel::Linear | RaidLevel::Raid0 | RaidLevel::Container
        )
    }
}

impl<'de> Deserialize<'de> for RaidLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        crate::path::scalar_string(&v)
            .and_then(|s| RaidLevel::parse(&s))
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "invalid raidlevel {} (one of: 0, 1, 4, 5, 6, 10, raid0..raid10, linear, stripe, mirror, container)",
                    crate::issue::show(&v)
                ))
            })
    }
}

/// bcache `cache_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    Writethrough,
    Writeback,
    Writearound,
    None,
}

impl CacheMode {
    /// The word the kernel takes in `bcache/cache_mode`.
    pub fn name(self) -> &'static str {
        match self {
            CacheMode::Writethrough => "writethrough",
            CacheMode::Writeback => "writeback",
            CacheMode::Writearound => "writearound",
            CacheMode::None => "none",
        }
    }
}

/// `metadata: 1.2` reads as a float; `0.90` as 0.9, which mdadm spells `0.90`.
fn de_metadata<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(de_stringish(d)?.map(|s| if s == "0.9" { "0.90".into() } else { s }))
}

/// crypttab options: a list (curtin) or one comma-separated string.
fn de_words_comma<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    words(Value::deserialize(d)?, |s| {
        s.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    })
}

/// A list of words, or one string cut into words by `split`.
fn words<E: serde::de::Error>(
    v: Value,
    split: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<String>, E> {
    match v {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(split(&s)),
        Value::Sequence(items) => items
            .iter()
            .map(|v| {
                crate::path::scalar_string(v).ok_or_else(|| E::custom("expected a list of strings"))
            })
            .collect(),
        _ => Err(E::custom("expected a list of strings")),
    }
}

/// `flag: ""` means no flag.
fn de_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Flag>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) if s.is_empty() => Ok(None),
        v => named(
            v,
            "partition flag",
            "bios_grub, boot, extended, home, linux, logical, lvm, mbr, msftres, prep, raid, swap",
        ),
    }
}

fn de_ptable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Ptable>, D::Error> {
    named(
        Value::deserialize(d)?,
        "partition table type",
        "gpt, msdos (or dos), vtoc, unsupported",
    )
}

/// curtin wipes when `value_as_boolean(wipe)`: `''`, `0`, `false`, `none` wipe nothing.
fn de_wipe<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Wipe>, D::Error> {
    let v = Value::deserialize(d)?;
    if !crate::truth::value_as_boolean(&v) {
        return Ok(None);
    }
    named(
        v,
        "wipe mode",
        "superblock, superblock-recursive, zero, random, pvremove",
    )
}

/// One of a fixed set of names, or null; anything else (a number included) is an error that
/// lists the names.
fn named<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    v: Value,
    what: &str,
    names: &str,
) -> Result<Option<T>, E> {
    if v.is_null() {
        return Ok(None);
    }
    T::deserialize(v.clone()).map(Some).map_err(|_| {
        E::custom(format!(
            "unknown {what} {} (one of: {names})",
            crate::issue::show(&v)
        ))
    })
}

/// `extra_options`: a list of words, or one string split on whitespace.
fn de_words<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    words(Value::deserialize(d)?, |s| {
        s.split_whitespace().map(String::from).collect()
    })
}

/// A scalar kept as text (`passno: 1` or `"1"`, `raidlevel: 1` or `raid1`).
fn de_stringish<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => crate::path::scalar_string(&v)
            .map(Some)
            .ok_or_else(|| D::Error::custom("expected a number or a string")),
    }
}

fn need_str(m: &yaml_serde::Mapping, key: &str) -> Result<String, Issue> {
    match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(crate::path::scalar_string(v).unwrap()),
        Some(_) => Err(Issue::new(key, "must be a non-empty string")),
        None => Err(Issue::new("", format!("missing field `{key}`"))),
    }
}

/// Read one item; the type decides the model. Errors carry the key path below the item.
pub fn item_from_value(v: &Value) -> Result<Item, Issue> {
    let m = v
        .as_mapping()
        .ok_or_else(|| Issue::new("", "a storage item must be a mapping with `id` and `type`"))?;
    let kind = need_str(m, "type")?;
    let id = need_str(m, "id")?;
    // Ids are strings in curtin; a numeric id is accepted and read as text.
    let mut v = v.clone();
    v.as_mapping_mut()
        .unwrap()
        .insert(Value::from("id"), Value::from(id.clone()));
    v.as_mapping_mut().unwrap().remove("type");
    Ok(match kind.as_str() {
        "disk" => Item::Disk(typed(&v)?),
        "partition" => Item::Partition(typed(&v)?),
        "format" => Item::Format(typed(&v)?),
        "mount" => Item::Mount(typed(&v)?),
        "lvm_volgroup" => Item::LvmVolgroup(typed(&v)?),
        "lvm_partition" => Item::LvmPartition(typed(&v)?),
        "raid" => Item::Raid(typed(&v)?),
        "bcache" => Item::Bcache(typed(&v)?),
        "dm_crypt" => Item::DmCrypt(typed(&v)?),
        k if CARRIED.contains(&k) => Item::Other(Other {
            kind: k.to_string(),
            id,
            value: v,
        }),
        k => {
            return Err(Issue::new(
                "type",
                format!(
                    "unknown storage type '{k}' (curtin knows: disk, partition, format, mount, lvm_volgroup, lvm_partition, raid, bcache, dm_crypt, {})",
                    CARRIED.join(", ")
                ),
            ))
        }
    })
}

/// With a dd source: a `disk` is read as usual, anything else carried (MAAS's `vmfs6`, a
/// format of fstype `vmfs6`...).
fn carried_unless_disk(v: &Value) -> Result<Item, Issue> {
    let m = v
        .as_mapping()
        .ok_or_else(|| Issue::new("", "a storage item must be a mapping with `id` and `type`"))?;
    let kind = need_str(m, "type")?;
    if kind == "disk" {
        return item_from_value(v);
    }
    Ok(Item::Other(Other {
        id: need_str(m, "id")?,
        kind,
        value: v.clone(),
    }))
}

#[derive(Deserialize)]
struct Raw {
    version: Option<Value>,
    #[serde(default)]
    config: Vec<Value>,
    device_map_path: Option<String>,
}

/// Read and check the `storage` value. `warnings` gets what is suspicious but curtin accepts.
/// `disks_only` (a dd source): type the disks, carry the rest unchecked.
pub fn from_value(
    v: &Value,
    disks_only: bool,
    warnings: &mut Vec<Issue>,
) -> Result<Storage, Issue> {
    let raw: Raw = typed(v)?;
    let version = match &raw.version {
        Some(Value::Number(n)) if n.as_u64() == Some(1) || n.as_u64() == Some(2) => {
            n.as_u64().unwrap() as u32
        }
        Some(other) => {
            return Err(Issue::new(
                "version",
                format!(
                    "storage version {} is not supported (1 or 2)",
                    crate::issue::show(other)
                ),
            ))
        }
        None => {
            return Err(Issue::new(
                "version",
                "missing: storage needs `version: 1` (or 2)",
            ))
        }
    };
    let mut config = Vec::with_capacity(raw.config.len());
    for (i, item) in raw.config.iter().enumerate() {
        let it = if disks_only {
            carried_unless_disk(item)
        } else {
            item_from_value(item)
        }
        .map_err(|e| e.under(&format!("config[{i}]")))?;
        if let (false, Some(m)) = (disks_only, item.as_mapping()) {
            for k in keys::unknown(it.type_name(), m) {
                warnings.push(Issue::new(
                    format!("config[{i}].{k}"),
                    "unknown key, ignored (curtin ignores it too)",
                ));
            }
        }
        config.push(it);
    }
    let storage = Storage {
        version,
        config,
        device_map_path: raw.device_map_path,
        disks_only,
    };
    if !disks_only {
        check(&storage, warnings)?;
    }
    Ok(storage)
}

fn describe(i: usize, item: &Item) -> String {
    format!(
        "storage.config[{i}] ({} id={})",
        item.type_name(),
        item.id()
    )
}

/// Which item types a reference under `key` of an item of type `from` may point at.
fn allowed(from: &str, key: &str) -> &'static [&'static str] {
    match (from, key) {
        ("partition", _) => &["disk", "raid", "bcache", "device"],
        ("format", _) | ("dm_crypt", _) => &[
            "disk",
            "partition",
            "lvm_partition",
            "raid",
            "bcache",
            "dm_crypt",
            "device",
        ],
        ("mount", _) => &["format"],
        ("lvm_partition", _) => &["lvm_volgroup"],
        ("raid", "container") => &["raid"],
        _ => &[
            "disk",
            "partition",
            "raid",
            "bcache",
            "dm_crypt",
            "lvm_partition",
            "device",
        ],
    }
}

/// A mount's `path` in normal form (`/`, `/boot/efi`), or `None` when it mounts nothing
/// (absent, empty, `none`). Absolute, without `..`: it is a place inside the target.
pub fn mount_path(m: &Mount) -> Result<Option<String>, String> {
    let Some(p) = m.path.as_deref().filter(|p| !p.is_empty() && *p != "none") else {
        return Ok(None);
    };
    if !p.starts_with('/') {
        return Err(format!(
            "path {p:?} is not absolute: a mount path is a place in the target, like /boot"
        ));
    }
    let mut parts = vec![];
    for c in p.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err(format!(
                "path {p:?} has a '..' component: a mount path must stay inside the target"
            ));
        }
        parts.push(c);
    }
    Ok(Some(format!("/{}", parts.join("/"))))
}

/// Mount paths: each valid, and no two items mounting at the same place.
fn check_mount_paths(s: &Storage) -> Result<(), Issue> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, item) in s.config.iter().enumerate() {
        let Item::Mount(m) = item else { continue };
        let at = format!("config[{i}].path");
        let path =
            mount_path(m).map_err(|e| Issue::new(&at, format!("{}: {e}", describe(i, item))))?;
        let Some(path) = path else { continue };
        if let Some(&j) = seen.get(&path) {
            return Err(Issue::new(
                at,
                format!(
                    "{} mounts at {path}, as {} does: each mount path may be used once",
                    describe(i, item),
                    describe(j, &s.config[j])
                ),
            ));
        }
        seen.insert(path, i);
    }
    Ok(())
}

/// The keys of a raid, LVM, bcache or dm_crypt item that curtin's handlers insist on, as
/// `(".key", message)`.
/// A partition's `attrs` as GPT attribute bits: sfdisk's `RequiredPartition` (bit 0),
/// `NoBlockIOProtocol` (1), `LegacyBIOSBootable` (2) and `GUID:N[,M...]` (bits 48-63), each
/// entry one or more of these separated by spaces or commas.
pub fn gpt_attribute_bits(attrs: &[String]) -> Result<u64, String> {
    let mut bits = 0u64;
    for a in attrs {
        let mut guid = false;
        for w in a.split([' ', ',']).filter(|w| !w.is_empty()) {
            let bit = match w {
                "RequiredPartition" => 0,
                "NoBlockIOProtocol" => 1,
                "LegacyBIOSBootable" => 2,
                w => {
                    let n = match w.strip_prefix("GUID:") {
                        Some(n) => {
                            guid = true;
                            n
                        }
                        // `GUID:52,53`: the numbers after the first belong to it.
                        None if guid => w,
                        None => return Err(format!("{w:?} is not a GPT attribute (RequiredPartition, NoBlockIOProtocol, LegacyBIOSBootable, GUID:48-63)")),
                    };
                    match n.parse::<u32>() {
                        Ok(b @ 48..=63) => b,
                        _ => return Err(format!("GUID:{n} is not a bit of 48-63")),
                    }
                }
            };
            bits |= 1 << bit;
        }
    }
    Ok(bits)
}

/// `8-4-4-4-12` hex digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn check_layer(item: &Item) -> Result<(), (&'static str, String)> {
    match item {
        Item::Raid(r) => {
            if r.name.is_empty() || (r.name.contains('/') && !r.name.starts_with("/dev/md")) {
                return Err((".name", format!("{:?} is not an md device name", r.name)));
            }
            if r.devices.is_empty() && r.container.is_none() {
                return Err((
                    ".devices",
                    "a raid needs `devices` (or a `container`)".into(),
                ));
            }
            let level = r.raidlevel;
            if r.container.is_none() && r.devices.len() < level.min_devices() {
                return Err((
                    ".devices",
                    format!(
                        "{} needs at least {} devices, got {}",
                        level.mdadm(),
                        level.min_devices(),
                        r.devices.len()
                    ),
                ));
            }
            if !r.spare_devices.is_empty() && !level.takes_spares() {
                return Err((
                    ".spare_devices",
                    format!("{} takes no spare devices", level.mdadm()),
                ));
            }
            let mut all: Vec<&String> = r.devices.iter().chain(&r.spare_devices).collect();
            all.sort();
            if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
                return Err((".devices", format!("'{}' is listed twice", w[0])));
            }
        }
        Item::LvmVolgroup(v) => {
            if v.name.is_empty() {
                return Err((".name", "a volume group needs a name".into()));
            }
            if v.devices.is_empty() {
                return Err((
                    ".devices",
                    "a volume group needs at least one device".into(),
                ));
            }
        }
        Item::LvmPartition(l) if l.name.is_empty() => {
            return Err((".name", "a logical volume needs a name".into()));
        }
        Item::Partition(p) => {
            if let Some(u) = p.uuid.as_deref().filter(|u| !is_guid(u)) {
                return Err((".uuid", format!("{u:?} is not a GUID")));
            }
            let byte = |t: &str| {
                let h = t.strip_prefix("0x").unwrap_or(t);
                (1..=2).contains(&h.len()) && u8::from_str_radix(h, 16).is_ok()
            };
            if let Some(t) = p
                .partition_type
                .as_deref()
                .filter(|t| !is_guid(t) && !byte(t))
            {
                return Err((
                    ".partition_type",
                    format!("{t:?} is neither a GPT type GUID nor an msdos type byte (83, 0x83)"),
                ));
            }
        }
        Item::DmCrypt(c) => match (&c.key, &c.keyfile) {
            (Some(_), Some(_)) => return Err(("", "cannot specify both key and keyfile".into())),
            (None, None) => return Err(("", "encryption key or keyfile must be specified".into())),
            (_, Some(Keyfile::Given { path, .. })) if !path.starts_with('/') => {
                return Err((
                    ".keyfile.path",
                    format!("{path:?} must be an absolute path in the target"),
                ))
            }
            _ => {}
        },
        Item::Bcache(b) if b.backing_device.is_none() || b.cache_device.is_none() => {
            return Err((
                "",
                "backing device and cache device for bcache must be specified".into(),
            ));
        }
        _ => {}
    }
    Ok(())
}

fn check(s: &Storage, warnings: &mut Vec<Issue>) -> Result<(), Issue> {
    use std::collections::HashMap;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, item) in s.config.iter().enumerate() {
        if let Some(prev) = index.insert(item.id(), i) {
            return Err(Issue::new(
                format!("config[{i}].id"),
                format!(
                    "duplicate id '{}': also used by {}",
                    item.id(),
                    describe(prev, &s.config[prev])
                ),
            ));
        }
    }
    for (i, item) in s.config.iter().enumerate() {
        let at = |k: &str| format!("config[{i}].{k}");
        for (key, target) in item.refs() {
            let Some(&j) = index.get(target) else {
                return Err(Issue::new(
                    at(key),
                    format!(
                        "{} refers to '{target}', which no item has as id",
                        describe(i, item)
                    ),
                ));
            };
            let t = &s.config[j];
            let ok = allowed(item.type_name(), key);
            if !ok.contains(&t.type_name()) {
                return Err(Issue::new(
                    at(key),
                    format!(
                        "{} cannot be on {}: `{key}` must name a {}",
                        describe(i, item),
                        describe(j, t),
                        ok.join(" or ")
                    ),
                ));
            }
            if j > i {
                warnings.push(Issue::new(
                    at(key),
                    format!(
                        "{} refers to {}, listed after it; curtin handles items in list order",
                        describe(i, item),
                        describe(j, t)
                    ),
                ));
            }
        }
        let no_identity = |d: &Disk| {
            d.serial.is_none() && d.wwn.is_none() && d.path.is_none() && d.device_id.is_none()
        };
        match item {
            Item::Disk(d) if no_identity(d) => {
                return Err(Issue::new(
                    format!("config[{i}]"),
                    format!(
                        "{} needs one of serial, wwn or path to find the disk",
                        describe(i, item)
                    ),
                ));
            }
            Item::Mount(m) if m.device.is_none() && (m.spec.is_none() || m.fstype.is_none()) => {
                return Err(Issue::new(
                    format!("config[{i}]"),
                    format!(
                        "{} needs `device`, or `spec` and `fstype`",
                        describe(i, item)
                    ),
                ));
            }
            _ => {}
        }
    }
    check_mount_paths(s)?;
    // Cycles: depth-first over every reference; a reference back into the current path names
    // both ends.
    fn visit(
        s: &Storage,
        index: &HashMap<&str, usize>,
        i: usize,
        state: &mut [u8],
    ) -> Result<(), Issue> {
        state[i] = 1;
        for (key, target) in s.config[i].refs() {
            let j = index[target];
            if state[j] == 1 {
                return Err(Issue::new(
                    format!("config[{i}].{key}"),
                    format!(
                        "reference cycle: {} refers back to {}",
                        describe(i, &s.config[i]),
                        describe(j, &s.config[j])
                    ),
                ));
            }
            if state[j] == 0 {
                visit(s, index, j, state)?;
            }
        }
        state[i] = 2;
        Ok(())
    }
    let mut state = vec![0u8; s.config.len()];
    for i in 0..s.config.len() {
        if state[i] == 0 {
            visit(s, &index, i, &mut state)?;
        }
    }
    for (i, item) in s.config.iter().enumerate() {
        check_layer(item).map_err(|(key, msg)| {
            Issue::new(
                format!("config[{i}]{key}"),
                format!("{}: {msg}", describe(i, item)),
            )
        })?;
    }
    // A volume holds one thing: a file system, or membership of one array, volume group,
    // bcache (as its backing device) or encryption. A cache device may serve several bcaches.
    let mut used: HashMap<&str, usize> = HashMap::new();
    for (i, item) in s.config.iter().enumerate() {
        for (key, target) in item.refs() {
            let consumes = matches!(
                (item, key),
                (Item::Format(_) | Item::DmCrypt(_), "volume")
                    | (Item::Raid(_), "devices" | "spare_devices")
                    | (Item::LvmVolgroup(_), "devices")
                    | (Item::Bcache(_), "backing_device")
            );
            if !consumes {
                continue;
            }
            if let Some(prev) = used.insert(target, i) {
                return Err(Issue::new(
                    format!("config[{i}].{key}"),
                    format!(
                        "'{target}' is used by both {} and {}",
                        describe(prev, &s.config[prev]),
                        describe(i, item)
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_attributes_in_sfdisks_words() {
        let a =
            |v: &[&str]| gpt_attribute_bits(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&[]), Ok(0));
        assert_eq!(a(&["RequiredPartition", "LegacyBIOSBootable"]), Ok(0b101));
        assert_eq!(
            a(&["GUID:52,53 NoBlockIOProtocol"]),
            Ok((1 << 52) | (1 << 53) | 2)
        );
        assert!(a(&["GUID:3"]).unwrap_err().contains("48-63"));
        assert!(a(&["Hidden"]).unwrap_err().contains("not a GPT attribute"));
    }
}
