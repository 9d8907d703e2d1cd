//! `/dev/disk/by-dname/<name>` udev rules, as curtin's `make_dname` writes them: for a disk
//! with a `name`, rules matching its partition table UUID and its serial/WWN ids (and
//! `<name>-part%n` for its partitions); for a named partition on a named disk, one matching
//! its partition UUID; for an array, a logical volume and a named bcache device, one matching
//! its MD_UUID, DM_NAME or backing device's bcache UUID. They go to `$WORKING_DIR/rules.d/<name>.rules`; curthooks copies them
//! into the target's `etc/udev/rules.d` ([`copy_into`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::target::TargetRoot;
use crate::tools;

/// The udev properties curtin matches a disk by, in its order (`DNAME_BYID_KEYS`).
const BYID_KEYS: [&str; 5] = [
    "DM_UUID",
    "ID_WWN_WITH_EXTENSION",
    "ID_WWN",
    "ID_SERIAL",
    "ID_SERIAL_SHORT",
];

/// What a rule file is made from.
pub enum Volume<'a> {
    /// A disk: its table's UUID (`PTUUID`) and its udev properties.
    Disk {
        ptuuid: Option<String>,
        props: &'a [(String, String)],
    },
    /// A partition: its `PARTUUID`.
    Partition { partuuid: Option<String> },
    /// An md array: its `MD_UUID` (mdadm's).
    Md { md_uuid: String },
    /// A logical volume: its device-mapper name (`vg-lv`, dashes doubled).
    Lv { dm_name: String },
    /// A bcache device: its backing device's `dev.uuid` (bcache minors change across boots).
    Bcache { cached_uuid: String },
}

/// curtin's `sanitize_dname`: letters, digits, `-` and `_`; anything else becomes `-`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn eq(key: &str, value: &str) -> String {
    format!("{key}==\"{value}\"")
}

/// The rule file's text, or `None` when there is nothing to match the volume by (curtin skips
/// it with a warning).
pub fn rules(name: &str, vol: &Volume) -> Option<String> {
    let dname = sanitize(name);
    let base = [eq("SUBSYSTEM", "block"), eq("ACTION", "add|change")];
    let mut matches: Vec<Vec<String>> = Vec::new();
    let mut part_rules: Vec<Vec<String>> = Vec::new();
    match vol {
        Volume::Disk { ptuuid, props } => {
            let byid: Vec<String> = BYID_KEYS
                .iter()
                .filter_map(|k| {
                    let v = props.iter().find(|(pk, _)| pk == k)?;
                    (!v.1.is_empty()).then(|| eq(&format!("ENV{{{k}}}"), &v.1))
                })
                .collect();
            if ptuuid.is_none() && byid.is_empty() {
                return None;
            }
            if let Some(u) = ptuuid {
                matches.push(vec![
                    eq("ENV{DEVTYPE}", "disk"),
                    eq("ENV{ID_PART_TABLE_UUID}", u),
                ]);
            }
            if !byid.is_empty() {
                let mut m = vec![eq("ENV{DEVTYPE}", "disk")];
                m.extend(byid.iter().cloned());
                matches.push(m);
                // Multipath partitions carry `part*-` before the disk's DM_UUID.
                let mut p = match byid.iter().find(|r| r.starts_with("ENV{DM_UUID}==\"mpath")) {
                    Some(r) => {
                        let uuid = r.split("==").nth(1).unwrap_or("").trim_matches('"');
                        vec![
                            eq("ENV{DEVTYPE}", "disk"),
                            eq("ENV{DM_UUID}", &format!("part*-{uuid}")),
                        ]
                    }
                    None => {
                        let mut p = vec![eq("ENV{DEVTYPE}", "partition")];
                        p.extend(byid.iter().cloned());
                        p
                    }
                };
                p.push(format!("SYMLINK+=\"disk/by-dname/{dname}-part%n\"\n"));
                part_rules.push(p);
            }
        }
        Volume::Partition { partuuid } => {
            let u = partuuid.as_ref()?;
            matches.push(vec![
                eq("ENV{DEVTYPE}", "partition"),
                eq("ENV{ID_PART_ENTRY_UUID}", u),
            ]);
        }
        Volume::Md { md_uuid } => matches.push(vec![eq("ENV{MD_UUID}", md_uuid)]),
        Volume::Lv { dm_name } => matches.push(vec![eq("ENV{DM_NAME}", dm_name)]),
        Volume::Bcache { cached_uuid } => matches.push(vec![eq("ENV{CACHED_UUID}", cached_uuid)]),
    }
    let mut lines = vec!["# Written by curtin".to_string()];
    for m in matches {
        let mut rule: Vec<String> = base.to_vec();
        rule.extend(m);
        rule.push(format!("SYMLINK+=\"disk/by-dname/{dname}\"\n"));
        lines.push(rule.join(", "));
    }
    for p in part_rules {
        let mut rule: Vec<String> = base.to_vec();
        rule.extend(p);
        lines.push(rule.join(", "));
    }
    Some(lines.join("\n"))
}

/// Where the rules go: `$WORKING_DIR/rules.d` (curtin's `state['scratch']`), when this runs as
/// a stage of an install.
pub fn rules_dir() -> Option<PathBuf> {
    std::env::var_os("WORKING_DIR").map(|w| PathBuf::from(w).join("rules.d"))
}

/// Write the rules for one named disk or partition at `dev`.
pub fn write(name: &str, dev: &Path, disk: bool) -> Result<()> {
    let Some(dir) = rules_dir() else {
        tracing::info!("no $WORKING_DIR: no by-dname rule for {name} (written by an install)");
        return Ok(());
    };
    let blk = tools::blkid_export(dev)?;
    let get = |k: &str| blk.iter().find(|(bk, _)| bk == k).map(|(_, v)| v.clone());
    let props;
    let vol = if disk {
        props = tools::udev_properties(dev)?;
        Volume::Disk {
            ptuuid: get("PTUUID"),
            props: &props,
        }
    } else {
        Volume::Partition {
            partuuid: get("PARTUUID"),
        }
    };
    match rules(name, &vol) {
        Some(text) => save(&dir, name, &text),
        None => {
            tracing::warn!("can't find a uuid for {}: no by-dname rule", dev.display());
            Ok(())
        }
    }
}

/// Write the rule of an array, a logical volume or a bcache device (curtin's make_dname for
/// raid, lvm_partition and bcache).
pub fn write_layer(name: &str, vol: &Volume) -> Result<()> {
    let Some(dir) = rules_dir() else {
        tracing::info!("no $WORKING_DIR: no by-dname rule for {name} (written by an install)");
        return Ok(());
    };
    match rules(name, vol) {
        Some(text) => save(&dir, name, &text),
        None => Ok(()),
    }
}

fn save(dir: &Path, name: &str, text: &str) -> Result<()> {
    let dname = sanitize(name);
    if dname != name {
        tracing::warn!("dname modified to remove invalid chars: {name:?} -> {dname:?}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("{dname}.rules"));
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))
}

/// curthooks' `copy_dname_rules`: every file of `rules_d` into the target's `etc/udev/rules.d`.
pub fn copy_into(rules_d: &Path, target: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(rules_d) else {
        return Ok(());
    };
    let root = TargetRoot::open(target)?;
    for e in entries {
        let e = e?;
        let name = e.file_name();
        let text =
            std::fs::read(e.path()).with_context(|| format!("reading {}", e.path().display()))?;
        let rel = Path::new("etc/udev/rules.d").join(&name);
        root.write_file(&rel, &text, 0o644, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_as_curtin_writes_them() {
        let props = vec![
            ("ID_SERIAL".to_string(), "QEMU_HARDDISK_disk-a".to_string()),
            ("ID_SERIAL_SHORT".to_string(), "disk-a".to_string()),
            ("DEVTYPE".to_string(), "disk".to_string()),
        ];
        let d = Volume::Disk {
            ptuuid: Some("1b2c".into()),
            props: &props,
        };
        assert_eq!(
            rules("main disk", &d).unwrap(),
            "# Written by curtin\n\
             SUBSYSTEM==\"block\", ACTION==\"add|change\", ENV{DEVTYPE}==\"disk\", ENV{ID_PART_TABLE_UUID}==\"1b2c\", SYMLINK+=\"disk/by-dname/main-disk\"\n\n\
             SUBSYSTEM==\"block\", ACTION==\"add|change\", ENV{DEVTYPE}==\"disk\", ENV{ID_SERIAL}==\"QEMU_HARDDISK_disk-a\", ENV{ID_SERIAL_SHORT}==\"disk-a\", SYMLINK+=\"disk/by-dname/main-disk\"\n\n\
             SUBSYSTEM==\"block\", ACTION==\"add|change\", ENV{DEVTYPE}==\"partition\", ENV{ID_SERIAL}==\"QEMU_HARDDISK_disk-a\", ENV{ID_SERIAL_SHORT}==\"disk-a\", SYMLINK+=\"disk/by-dname/main-disk-part%n\"\n"
        );
        let md = Volume::Md {
            md_uuid: "3a1b:2c3d:4e5f:6071".into(),
        };
        assert_eq!(
            rules("md0", &md).unwrap(),
            "# Written by curtin\nSUBSYSTEM==\"block\", ACTION==\"add|change\", ENV{MD_UUID}==\"3a1b:2c3d:4e5f:6071\", SYMLINK+=\"disk/by-dname/md0\"\n"
        );
        let lv = Volume::Lv {
            dm_name: "vg--a-root".into(),
        };
        assert!(rules("vg--a-root", &lv)
            .unwrap()
            .contains("ENV{DM_NAME}==\"vg--a-root\", SYMLINK+=\"disk/by-dname/vg--a-root\""));
        let bc = Volume::Bcache {
            cached_uuid: "5e1f".into(),
        };
        assert!(rules("srv cache", &bc)
            .unwrap()
            .contains("ENV{CACHED_UUID}==\"5e1f\", SYMLINK+=\"disk/by-dname/srv-cache\""));
        let p = Volume::Partition {
            partuuid: Some("ab-01".into()),
        };
        assert_eq!(
            rules("boot", &p).unwrap(),
            "# Written by curtin\nSUBSYSTEM==\"block\", ACTION==\"add|change\", ENV{DEVTYPE}==\"partition\", ENV{ID_PART_ENTRY_UUID}==\"ab-01\", SYMLINK+=\"disk/by-dname/boot\"\n"
        );
        let none = Volume::Disk {
            ptuuid: None,
            props: &[],
        };
        assert!(rules("x", &none).is_none());
    }
}
