//! The machine description a generator hands us (issue 7's field names; more are accepted).
//! Unknown keys are refused so that a typo does not silently drop a disk or an address.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One machine, as MAAS knows it at deploy time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub system_id: String,
    pub hostname: String,
    /// DNS domain; first entry of every search list, as MAAS puts the node's domain first.
    #[serde(default)]
    pub domain: Option<String>,
    /// `arch/subarch`, e.g. `amd64/generic`.
    pub architecture: String,
    pub boot_mode: BootMode,
    /// The metadata service root, e.g. `http://10.0.0.2:5248/MAAS/metadata/`.
    pub metadata_url: String,
    pub token: Token,
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub layout: Layout,
    /// Size of an ext4 `/boot` partition (flat and lvm layouts); none by default.
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub boot_size: Option<u64>,
    /// Size of the root partition (flat) or physical volume (lvm); the rest of the disk by default.
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub root_size: Option<u64>,
    /// lvm layout: volume group and logical volume names and the LV size (whole VG by default).
    #[serde(default)]
    pub vg_name: Option<String>,
    #[serde(default)]
    pub lv_name: Option<String>,
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub lv_size: Option<u64>,
    /// `layout: custom`: the partitions to make, in order.
    #[serde(default)]
    pub partitions: Vec<CustomPartition>,
    /// `layout: custom`: md arrays built from the partitions that name them (`raid:`).
    #[serde(default)]
    pub raids: Vec<CustomRaid>,
    /// bcache layout: the cache disk (the smallest other disk with `ssd: true` by default).
    #[serde(default)]
    pub cache_device: Option<String>,
    /// bcache layout: `writethrough` (default), `writeback` or `writearound`.
    #[serde(default)]
    pub cache_mode: Option<String>,
    /// bcache layout: the cache partition's size (the whole cache disk by default).
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub cache_size: Option<u64>,
    /// bcache layout: use the whole cache disk, no partition table on it.
    #[serde(default)]
    pub cache_no_part: bool,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub bonds: Vec<Bond>,
    #[serde(default)]
    pub vlans: Vec<Vlan>,
    #[serde(default)]
    pub bridges: Vec<Bridge>,
    #[serde(default)]
    pub dns: Dns,
    /// The Ubuntu archive the deployed OS uses (Ubuntu bases only).
    #[serde(default)]
    pub archive: Option<Archive>,
    /// HTTP proxy for apt/yum in the deployed OS.
    #[serde(default)]
    pub http_proxy: Option<String>,
    /// `verbosity: 3` and `showtrace: true`, as MAAS's `curtin_verbose` setting.
    #[serde(default)]
    pub verbose: bool,
    #[serde(default)]
    pub kernel_crash_dumps: bool,
    /// Swap file size for non-custom images (custom images never get `swap`).
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub swap_size: Option<u64>,
    /// Kernel package for non-custom images (custom images never get `kernel`).
    #[serde(default)]
    pub kernel_package: Option<String>,
    /// Owner e-mail: adds the `maas-ubuntu-sso` cloudconfig entry.
    #[serde(default)]
    pub owner_email: Option<String>,
    /// The rack's syslog `host:port` for the ephemeral OS (default: metadata host, port 5247).
    #[serde(default)]
    pub syslog: Option<String>,
    /// Network config v1 even where MAAS would send v2 (MAAS's `force_v1_network_yaml`).
    #[serde(default)]
    pub force_v1_network: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    Uefi,
    Bios,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub consumer_key: String,
    pub token_key: String,
    pub token_secret: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub name: String,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    /// A stable path such as `/dev/disk/by-id/...`, used when there is no serial.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(deserialize_with = "crate::size::de")]
    pub size: u64,
    #[serde(default = "default_block_size")]
    pub block_size: u64,
    #[serde(default)]
    pub boot: bool,
    /// Partition table for this disk; GPT by default, as MAAS makes new tables.
    #[serde(default)]
    pub ptable: Option<PtableKind>,
    /// MAAS's `ssd` tag: a candidate cache for the bcache layout.
    #[serde(default)]
    pub ssd: bool,
}

fn default_block_size() -> u64 {
    512
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PtableKind {
    Gpt,
    Msdos,
}

impl PtableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PtableKind::Gpt => "gpt",
            PtableKind::Msdos => "msdos",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Flat,
    Lvm,
    Bcache,
    Vmfs6,
    Vmfs7,
    Blank,
    Custom,
}

/// One partition of `layout: custom`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPartition {
    pub disk: String,
    /// Bytes or a size string; absent means the rest of the disk.
    #[serde(default, deserialize_with = "crate::size::de_opt")]
    pub size: Option<u64>,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub mount: Option<String>,
    #[serde(default)]
    pub mount_options: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub bootable: bool,
    /// A member of the array of this name (see `raids`); such a partition has no fstype.
    #[serde(default)]
    pub raid: Option<String>,
    /// With `raid`: a spare rather than an active member.
    #[serde(default)]
    pub spare: bool,
    /// Encrypt the partition (dm_crypt); its file system goes on the encrypted volume.
    #[serde(default)]
    pub encrypt: Option<Encrypt>,
}

/// One md array of `layout: custom`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRaid {
    pub name: String,
    /// 0, 1, 5, 6 or 10 (MAAS's levels).
    pub level: u32,
    #[serde(default)]
    pub fstype: Option<String>,
    #[serde(default)]
    pub mount: Option<String>,
    #[serde(default)]
    pub mount_options: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub encrypt: Option<Encrypt>,
}

/// dm_crypt for a volume: the passphrase, or a key file the config carries and the target
/// keeps (deployer's `keyfile: {path, content}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encrypt {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub keyfile: Option<EncryptKeyfile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptKeyfile {
    pub path: String,
    pub content: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Extra per-interface keys copied through, e.g. `accept-ra: true`.
    #[serde(default)]
    pub params: BTreeMap<String, yaml_serde::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bond {
    pub name: String,
    pub members: Vec<String>,
    pub mode: String,
    /// Bonding parameters, with or without the `bond-` prefix: miimon, lacp-rate,
    /// xmit-hash-policy, updelay, downdelay, num-grat-arp, num-unsol-na.
    #[serde(default)]
    pub params: BTreeMap<String, yaml_serde::Value>,
    /// The bond's MAC; the first member's by default.
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vlan {
    /// `<link>.<id>` by default.
    #[serde(default)]
    pub name: Option<String>,
    pub link: String,
    pub id: u16,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub addresses: Vec<Address>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bridge {
    pub name: String,
    pub members: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub stp: bool,
    #[serde(default = "default_forward_delay")]
    pub forward_delay: u32,
    #[serde(default)]
    pub addresses: Vec<Address>,
}

fn default_forward_delay() -> u32 {
    15
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressMode {
    Static,
    /// Both families when no `cidr` says which (MAAS's `dhcp`).
    Dhcp,
    Dhcp4,
    Dhcp6,
    LinkUp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub mode: AddressMode,
    /// The subnet, e.g. `10.0.0.0/24`.
    #[serde(default)]
    pub cidr: Option<String>,
    /// The address; may carry its own prefix (`10.0.0.10/24`) when `cidr` is absent.
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub dns: Vec<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub to: String,
    pub via: String,
    #[serde(default)]
    pub metric: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub search: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Archive {
    pub url: String,
    /// Keep `deb-src` lines active (MAAS comments them out by default).
    #[serde(default)]
    pub enable_sources: bool,
}

impl Machine {
    /// The disk MAAS boots from: the one marked `boot`, else the first.
    pub fn boot_disk(&self) -> Option<&Disk> {
        self.disks
            .iter()
            .find(|d| d.boot)
            .or_else(|| self.disks.first())
    }

    /// The part of `architecture` before the `/`.
    pub fn arch(&self) -> &str {
        self.architecture
            .split('/')
            .next()
            .unwrap_or(&self.architecture)
    }

    /// The metadata root with exactly one trailing slash.
    pub fn metadata_root(&self) -> String {
        format!("{}/", self.metadata_url.trim_end_matches('/'))
    }
}
