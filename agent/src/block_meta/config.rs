//! TEMPORARY narrow storage config v1 types, named as in the `preseed::storage` contract, until
//! the config-model branch lands; only the keys block-meta acts on.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_yaml::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct Storage {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub config: Vec<Item>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Disk(Disk),
    Partition(Partition),
    Format(Format),
    Mount(Mount),
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ptable {
    Gpt,
    #[serde(alias = "dos")]
    Msdos,
    Vtoc,
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wipe {
    Superblock,
    SuperblockRecursive,
    Zero,
    Random,
    Pvremove,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Disk {
    pub id: String,
    pub ptable: Option<Ptable>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub path: Option<String>,
    pub name: Option<String>,
    pub model: Option<String>,
    pub wipe: Option<Wipe>,
    #[serde(default)]
    pub preserve: bool,
    #[serde(default, deserialize_with = "truthy")]
    pub grub_device: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
pub struct Partition {
    pub id: String,
    pub device: String,
    /// Bytes; 0 = the rest of the disk (only for the last partition).
    #[serde(default, deserialize_with = "size")]
    pub size: u64,
    pub number: Option<u32>,
    #[serde(default, deserialize_with = "opt_size")]
    pub offset: Option<u64>,
    #[serde(default, deserialize_with = "flag")]
    pub flag: Option<Flag>,
    pub wipe: Option<Wipe>,
    #[serde(default)]
    pub preserve: bool,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "truthy")]
    pub grub_device: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Format {
    pub id: String,
    pub volume: String,
    pub fstype: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    #[serde(default)]
    pub extra_options: Vec<String>,
    #[serde(default)]
    pub preserve: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Mount {
    pub id: String,
    pub device: Option<String>,
    pub path: Option<String>,
    pub spec: Option<String>,
    pub fstype: Option<String>,
    pub options: Option<String>,
    #[serde(default, deserialize_with = "opt_num_str")]
    pub freq: Option<String>,
    #[serde(default, deserialize_with = "opt_num_str")]
    pub passno: Option<String>,
}

impl Item {
    pub fn id(&self) -> Option<&str> {
        match self {
            Item::Disk(d) => Some(&d.id),
            Item::Partition(p) => Some(&p.id),
            Item::Format(f) => Some(&f.id),
            Item::Mount(m) => Some(&m.id),
            Item::Unsupported => None,
        }
    }
}

impl Storage {
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.config.iter().find(|i| i.id() == Some(id))
    }

    /// The `storage` key of a merged config, if any.
    pub fn from_config(cfg: &Value) -> Result<Option<Storage>> {
        match cfg.get("storage") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let s: Storage =
                    serde_yaml::from_value(v.clone()).map_err(|e| anyhow::anyhow!("storage: {e}"))?;
                if s.config.iter().any(|i| matches!(i, Item::Unsupported)) {
                    bail!("storage: only disk, partition, format and mount entries are supported so far");
                }
                Ok(Some(s))
            }
        }
    }
}

fn truthy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_u64() != Some(0),
        Value::String(s) => !matches!(s.as_str(), "" | "0" | "false" | "False"),
        _ => false,
    })
}

fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Flag>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => serde_yaml::from_value(Value::String(s.clone()))
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("unknown partition flag {s:?}"))),
    }
}

fn opt_num_str<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(serde::de::Error::custom("expected a number")),
    })
}

fn size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(opt_size(d)?.unwrap_or(0))
}

fn opt_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid size {n}"))),
        Some(Value::String(s)) => human2bytes(&s).map(Some).map_err(serde::de::Error::custom),
        Some(_) => Err(serde::de::Error::custom("expected a size")),
    }
}

/// curtin's human2bytes: `<number>[K|M|G|T][B]`, powers of 1024, uppercase only.
pub fn human2bytes(s: &str) -> Result<u64> {
    let t = s.trim();
    let t = t.strip_suffix('B').unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        Some('T') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.parse().with_context(|| format!("'{s}' is not valid input."))?;
    let bytes = v * mult as f64;
    if v < 0.0 || bytes.fract() != 0.0 {
        bail!("'{s}' is not valid input.");
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_curtin() {
        assert_eq!(human2bytes("8G").unwrap(), 8 << 30);
        assert_eq!(human2bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(human2bytes("1.5G").unwrap(), 3 << 29);
        assert_eq!(human2bytes("1048576B").unwrap(), 1 << 20);
        assert!(human2bytes("1kB").is_err());
        assert!(human2bytes("100%").is_err());
    }
}
