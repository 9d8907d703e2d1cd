//! The small sections that steer the stages: `block-meta`, `boot` (or curtin's older `grub`),
//! `deployer`, `swap`, `kernel` and `image`. Each is read once, here; the stages take these
//! types. Keys a section does not know are warnings, as for top-level keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use yaml_serde::Value;

use crate::issue::{key_string, show, typed, Issue};
use crate::truth::value_as_boolean;

/// Simple mode's partition layout (`block-meta.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimpleLayout {
    Uefi,
    Gpt,
    Mbr,
}

/// `block-meta:`: simple mode's disk and layout, and deployer's `grow_root`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct BlockMeta {
    /// Simple mode's disks; the first is used.
    #[serde(default)]
    pub devices: Vec<String>,
    /// None: UEFI when the machine booted with it, else mbr.
    pub format: Option<SimpleLayout>,
    /// Grow the root of a dd image (true when absent; curtin never grows).
    #[serde(default = "yes", deserialize_with = "boolean")]
    pub grow_root: bool,
    /// curtin's other simple-mode keys (`boot-partition`, ...), carried.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Default for BlockMeta {
    fn default() -> Self {
        BlockMeta {
            devices: vec![],
            format: None,
            grow_root: true,
            other: BTreeMap::new(),
        }
    }
}

/// `deployer:`, deployer's own settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Deployer {
    /// Check the target for cloud-init and netplan (MAAS's late check); true when absent.
    #[serde(default = "yes", deserialize_with = "boolean")]
    pub image_check: bool,
    /// A directory holding a `curtin` Python package for the hooks (after the installer's).
    pub python_curtin: Option<String>,
    /// Write a dd source that is not a disk image (no partition table, no root to grow).
    #[serde(default, deserialize_with = "boolean")]
    pub raw_data: bool,
    #[serde(flatten)]
    /// Keys deployer does not know (each a warning).
    pub unknown: BTreeMap<String, Value>,
}

impl Default for Deployer {
    fn default() -> Self {
        Deployer {
            image_check: true,
            python_curtin: None,
            raw_data: false,
            unknown: BTreeMap::new(),
        }
    }
}

/// What grub-install targets (`boot.install_devices`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub enum InstallDevices {
    /// Not given: the disks of the storage items with `grub_device`.
    #[default]
    FromStorage,
    /// `null`: no grub-install at all.
    Nothing,
    /// Used when no storage item has `grub_device` (which wins, as in curtin).
    Given(Vec<String>),
    /// A single string: always this one.
    One(String),
}

/// `boot:` (curtin's BootCfg; `grub:` is its older name).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Boot {
    pub install_devices: InstallDevices,
    /// `bootloaders`: none given means grub.
    pub bootloaders: Option<Vec<String>>,
    pub update_nvram: bool,
    pub probe_additional_os: bool,
    /// `GRUB_TERMINAL`; `unmodified` leaves it out.
    pub terminal: String,
    /// Write the ephemeral kernel's carried-over arguments as GRUB_CMDLINE_LINUX_DEFAULT.
    pub replace_linux_default: bool,
    /// The other BootCfg keys curtin knows (UEFI boot order), carried.
    pub other: BTreeMap<String, Value>,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            install_devices: InstallDevices::FromStorage,
            bootloaders: None,
            update_nvram: true,
            probe_additional_os: false,
            terminal: "console".into(),
            replace_linux_default: true,
            other: BTreeMap::new(),
        }
    }
}

/// BootCfg keys that deployer carries without acting on them.
const BOOT_CARRIED: &[&str] = &[
    "remove_old_uefi_loaders",
    "reorder_uefi",
    "reorder_uefi_force_fallback",
    "remove_duplicate_entries",
    "firmware",
    "platform",
];

impl Boot {
    /// Does `bootloaders` leave grub in (or say nothing)?
    pub fn wants_grub(&self) -> bool {
        self.bootloaders
            .as_ref()
            .is_none_or(|b| b.iter().any(|x| x == "grub"))
    }

    pub fn from_value(v: &Value, warnings: &mut Vec<Issue>) -> Result<Boot, Issue> {
        let mut b = Boot::default();
        let m = match v {
            Value::Null => return Ok(b),
            Value::Mapping(m) => m,
            other => {
                return Err(Issue::new(
                    "",
                    format!("must be a mapping, got {}", show(other)),
                ))
            }
        };
        for (k, v) in m {
            let key = key_string(k);
            match key.as_str() {
                "install_devices" => {
                    b.install_devices = match v {
                        Value::Null => InstallDevices::Nothing,
                        Value::String(s) => InstallDevices::One(s.clone()),
                        v => InstallDevices::Given(typed(v).map_err(|e| e.under(&key))?),
                    }
                }
                "bootloaders" => b.bootloaders = typed(v).map_err(|e| e.under(&key))?,
                "update_nvram" => b.update_nvram = value_as_boolean(v),
                "probe_additional_os" => b.probe_additional_os = value_as_boolean(v),
                "replace_linux_default" => b.replace_linux_default = value_as_boolean(v),
                "terminal" => {
                    b.terminal = crate::path::scalar_string(v).ok_or_else(|| {
                        Issue::new(&key, format!("must be a string, got {}", show(v)))
                    })?
                }
                k if BOOT_CARRIED.contains(&k) => {
                    b.other.insert(key.clone(), v.clone());
                }
                _ => {
                    warnings.push(Issue::new(&key, "unknown key, ignored"));
                    b.other.insert(key.clone(), v.clone());
                }
            }
        }
        Ok(b)
    }
}

/// `swap:` (curtin's add_swap): the swap file the builtin curthooks make in the target.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Swap {
    /// A falsy `swap:` (null, `{}`): no swap file, as curtin's `'swap' in cfg and not cfg['swap']`.
    #[serde(skip)]
    pub off: bool,
    /// In the target's root; `/swap.img` when absent.
    pub filename: Option<String>,
    /// Bytes (curtin's human2bytes); 0 makes none; absent: curtin's suggested size.
    #[serde(default, deserialize_with = "bytes")]
    pub size: Option<u64>,
    #[serde(default, deserialize_with = "bytes")]
    pub maxsize: Option<u64>,
    /// Read but unused, as curtin's add_swap does not pass it on.
    #[serde(default, deserialize_with = "boolean")]
    pub force: bool,
    pub fstype: Option<String>,
    #[serde(flatten)]
    /// Keys deployer does not know (each a warning).
    pub unknown: BTreeMap<String, Value>,
}

impl Swap {
    /// A falsy `swap:` value.
    pub fn off() -> Swap {
        Swap {
            off: true,
            ..Swap::default()
        }
    }
}

/// `kernel:` (curtin's install_kernel settings); carried for hooks, checked here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Kernel {
    pub package: Option<String>,
    #[serde(rename = "fallback-package")]
    pub fallback_package: Option<String>,
    pub mapping: Option<Value>,
    #[serde(default, deserialize_with = "maybe_boolean")]
    pub install: Option<bool>,
    #[serde(flatten)]
    /// Keys deployer does not know (each a warning).
    pub unknown: BTreeMap<String, Value>,
}

/// `image: {name, base_image, type}` (deployer's): carried on every report event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Image {
    pub name: Option<String>,
    pub base_image: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(flatten)]
    /// Keys deployer does not know (each a warning).
    pub unknown: BTreeMap<String, Value>,
}

/// A section with unknown keys: they become warnings (one per key).
pub trait Known {
    fn unknown_keys(&self) -> Vec<String>;
}

macro_rules! known {
    ($($t:ty),*) => {$(
        impl Known for $t {
            fn unknown_keys(&self) -> Vec<String> {
                self.unknown.keys().cloned().collect()
            }
        }
    )*};
}
known!(Deployer, Swap, Kernel, Image);

/// Read a section with serde, turning its unknown keys into warnings.
pub fn section<T: serde::de::DeserializeOwned + Known + Default>(
    v: &Value,
    warnings: &mut Vec<Issue>,
) -> Result<T, Issue> {
    if v.is_null() {
        return Ok(T::default());
    }
    let t: T = typed(v)?;
    for k in t.unknown_keys() {
        warnings.push(Issue::new(&k, "unknown key, ignored"));
    }
    Ok(t)
}

fn yes() -> bool {
    true
}

/// A boolean as YAML 1.1 gives it (`yes`, `off`, ...); anything else is refused.
fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(maybe_boolean(d)?.unwrap_or(false))
}

fn maybe_boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        other => Err(serde::de::Error::custom(format!(
            "must be true or false, got {}",
            show(&other)
        ))),
    }
}

/// A size as curtin reads it: Python truthiness first (`0`, `''` and null are "not given"
/// and then 0), else `human2bytes(str(value))`.
fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    if crate::truth::falsy(&v) {
        return Ok(Some(0));
    }
    let text = crate::path::scalar_string(&v)
        .ok_or_else(|| serde::de::Error::custom(format!("not a size: {}", show(&v))))?;
    crate::size::human2bytes(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        crate::yaml::from_str(s).unwrap()
    }

    #[test]
    fn block_meta_defaults_and_refusals() {
        let mut w = vec![];
        let b: BlockMeta = typed(&y("{devices: [/dev/vda], format: gpt}")).unwrap();
        assert_eq!(b.devices, ["/dev/vda"]);
        assert_eq!(b.format, Some(SimpleLayout::Gpt));
        assert!(b.grow_root);
        let b: BlockMeta = typed(&y("{grow_root: no}")).unwrap();
        assert!(!b.grow_root);
        let e = typed::<BlockMeta>(&y("{grow_root: maybe}")).unwrap_err();
        assert_eq!(e.path_string(), "grow_root");
        assert!(e.message.contains("must be true or false"), "{e:?}");
        assert!(typed::<BlockMeta>(&y("{format: zfs}")).is_err());
        let d: Deployer = section(&y("{image_check: off, colour: blue}"), &mut w).unwrap();
        assert!(!d.image_check && !d.raw_data);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].path_string(), "colour");
    }

    #[test]
    fn boot_as_curtin_reads_it() {
        let mut w = vec![];
        let b =
            Boot::from_value(&y("{install_devices: null, update_nvram: 'no'}"), &mut w).unwrap();
        assert_eq!(b.install_devices, InstallDevices::Nothing);
        // value_as_boolean: the string 'no' is true, as in curtin.
        assert!(b.update_nvram);
        let b = Boot::from_value(
            &y("{install_devices: [/dev/sda], bootloaders: [uefi]}"),
            &mut w,
        )
        .unwrap();
        assert_eq!(
            b.install_devices,
            InstallDevices::Given(vec!["/dev/sda".into()])
        );
        assert!(!b.wants_grub());
        assert!(Boot::default().wants_grub());
        assert!(w.is_empty());
        Boot::from_value(&y("{reorder_uefi: true, colour: 1}"), &mut w).unwrap();
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn swap_sizes_as_curtin_reads_them() {
        let sw = |t: &str| typed::<Swap>(&y(t));
        assert_eq!(sw("{size: 0B}").unwrap().size, Some(0));
        assert_eq!(sw("{size: 0}").unwrap().size, Some(0));
        assert_eq!(sw("{size: 2G, maxsize: 512M}").unwrap().size, Some(2 << 30));
        assert_eq!(sw("{maxsize: 512M}").unwrap().maxsize, Some(512 << 20));
        assert_eq!(sw("{filename: swap.img}").unwrap().size, None);
        assert!(sw("{size: auto}").is_err());
    }
}
