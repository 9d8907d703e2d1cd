//! `lvm_volgroup` and `lvm_partition` items (curtin's LVM handlers): `vgcreate` over
//! partitions, disks or arrays, then `lvcreate` of a size or of the rest of the group.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::config::{LvmPartition, LvmVolgroup, Storage};
use super::custom::Ctx;
use crate::sysblock::lvm_dm_name;
use crate::tools::lvm;

pub fn describe_vg(v: &LvmVolgroup) -> String {
    let what = if v.preserve {
        "preserve: verify its physical volumes, create nothing"
    } else {
        "vgcreate --force --zero=y"
    };
    format!(
        "lvm_volgroup {}: volume group {} on {}; {what}",
        v.id,
        v.name,
        v.devices.join(", ")
    )
}

/// The volume group's name of a logical volume.
fn vg_name<'a>(s: &'a Storage, l: &LvmPartition) -> Result<&'a str> {
    match s.get(&l.volgroup) {
        Some(super::config::Item::LvmVolgroup(v)) => Ok(&v.name),
        _ => bail!(
            "lvm_partition '{}': volgroup '{}' is not an lvm_volgroup",
            l.id,
            l.volgroup
        ),
    }
}

pub fn describe_lv(s: &Storage, l: &LvmPartition) -> String {
    let vg = vg_name(s, l).unwrap_or("?");
    let size = match l.size {
        Some(b) => format!("{b} bytes"),
        None => "the rest of the group".into(),
    };
    let what = if l.preserve {
        "preserve: verify it exists (and its size), create nothing"
    } else {
        "lvcreate --zero=y --wipesignatures=y"
    };
    format!(
        "lvm_partition {}: /dev/{vg}/{}, {size}; {what}",
        l.id, l.name
    )
}

pub fn apply_vg(ctx: &mut Ctx, v: &LvmVolgroup) -> Result<()> {
    let pvs: Vec<PathBuf> = v
        .devices
        .iter()
        .map(|d| ctx.dev(d).cloned())
        .collect::<Result<_>>()?;
    if v.preserve {
        lvm::activate(Some(&v.name))
            .with_context(|| format!("lvm_volgroup '{}' (preserve: true)", v.id))?;
        let rows = lvm::report("pvs", &["pv_name", "vg_name"])?;
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut found: Vec<PathBuf> = rows
            .iter()
            .filter(|r| r.get("vg_name").map(String::as_str) == Some(v.name.as_str()))
            .filter_map(|r| r.get("pv_name"))
            .map(|p| canon(Path::new(p)))
            .collect();
        let mut want: Vec<PathBuf> = pvs.iter().map(|p| canon(p)).collect();
        found.sort();
        want.sort();
        if found != want {
            bail!(
                "lvm_volgroup '{}' (preserve: true): expected physical volumes {want:?} in {}, found {found:?}",
                v.id,
                v.name
            );
        }
    } else {
        lvm::vgcreate(&v.name, &pvs)?;
    }
    lvm::scan();
    Ok(())
}

/// Create (or verify) the logical volume; returns its device.
pub fn apply_lv(ctx: &mut Ctx, s: &Storage, l: &LvmPartition) -> Result<PathBuf> {
    let vg = vg_name(s, l)?;
    if l.preserve {
        let rows = lvm::report("lvs", &["lv_name", "vg_name", "lv_size"])?;
        let row = rows
            .iter()
            .find(|r| {
                r.get("vg_name").map(String::as_str) == Some(vg)
                    && r.get("lv_name") == Some(&l.name)
            })
            .with_context(|| {
                format!(
                    "lvm_partition '{}' (preserve: true): no logical volume {vg}/{}",
                    l.id, l.name
                )
            })?;
        if let Some(want) = l.size {
            let found: u64 = row.get("lv_size").and_then(|s| s.parse().ok()).unwrap_or(0);
            if found != want {
                bail!(
                    "lvm_partition '{}' (preserve: true): expected {want} bytes, found {found}",
                    l.id
                );
            }
        }
        lvm::activate(Some(vg))?;
    } else {
        lvm::lvcreate(vg, &l.name, l.size)?;
    }
    // curtin's make_dname: /dev/disk/by-dname/<vg-lv> by its device-mapper name.
    let dm_name = lvm_dm_name(vg, &l.name);
    super::dname::write_layer(&dm_name.clone(), &super::dname::Volume::Lv { dm_name })?;
    lv_device(ctx, vg, &l.name)
}

/// `/dev/<vg>/<lv>`, or the device-mapper node when nothing made that link (no udev).
pub fn lv_device(ctx: &Ctx, vg: &str, lv: &str) -> Result<PathBuf> {
    let link = PathBuf::from("/dev").join(vg).join(lv);
    if link.exists() {
        return Ok(link);
    }
    let dm = lvm_dm_name(vg, lv);
    let mapper = PathBuf::from("/dev/mapper").join(&dm);
    if mapper.exists() {
        return Ok(mapper);
    }
    match ctx.sys.dm_by_name(&dm) {
        Some(k) => Ok(PathBuf::from("/dev").join(k)),
        None => bail!(
            "logical volume {vg}/{lv} has no device node (no {})",
            link.display()
        ),
    }
}
