//! LVM through the `lvm` binary (`lvm vgcreate ...`: one program, whatever links a system has).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::run;

fn lvm(args: Vec<OsString>) -> Result<String> {
    run("lvm", &args)
}

/// `vgcreate --force --zero=y --yes NAME PV...` (curtin's flags).
pub fn vgcreate_args(name: &str, pvs: &[PathBuf]) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["vgcreate", "--force", "--zero=y", "--yes", name]
        .map(OsString::from)
        .to_vec();
    a.extend(pvs.iter().map(|p| p.into()));
    a
}

pub fn vgcreate(name: &str, pvs: &[PathBuf]) -> Result<()> {
    lvm(vgcreate_args(name, pvs)).with_context(|| format!("creating volume group {name}"))?;
    Ok(())
}

/// `lvcreate VG --name LV --zero=y --wipesignatures=y --yes (--size <N>B | --extents 100%FREE)`.
pub fn lvcreate_args(vg: &str, lv: &str, size: Option<u64>) -> Vec<OsString> {
    let mut a: Vec<OsString> = [
        "lvcreate",
        vg,
        "--name",
        lv,
        "--zero=y",
        "--wipesignatures=y",
        "--yes",
    ]
    .map(OsString::from)
    .to_vec();
    match size {
        Some(b) => {
            a.push("--size".into());
            a.push(format!("{b}B").into());
        }
        None => {
            a.push("--extents".into());
            a.push("100%FREE".into());
        }
    }
    a
}

pub fn lvcreate(vg: &str, lv: &str, size: Option<u64>) -> Result<()> {
    lvm(lvcreate_args(vg, lv, size))
        .with_context(|| format!("creating logical volume {vg}/{lv}"))?;
    Ok(())
}

/// `lvremove --force --force VG/LV`.
pub fn lvremove(vg: &str, lv: &str) -> Result<()> {
    lvm(["lvremove", "--force", "--force", &format!("{vg}/{lv}")]
        .map(OsString::from)
        .to_vec())?;
    Ok(())
}

/// `vgremove --force --force VG`.
pub fn vgremove(vg: &str) -> Result<()> {
    lvm(["vgremove", "--force", "--force", vg]
        .map(OsString::from)
        .to_vec())?;
    Ok(())
}

/// `pvremove --force --force --yes DEV`.
pub fn pvremove(dev: &Path) -> Result<()> {
    lvm(vec![
        "pvremove".into(),
        "--force".into(),
        "--force".into(),
        "--yes".into(),
        dev.into(),
    ])?;
    Ok(())
}

/// `vgchange --activate=y [VG]`: activate what an image or an earlier deployment holds.
pub fn activate(vg: Option<&str>) -> Result<String> {
    let mut a: Vec<OsString> = vec!["vgchange".into(), "--activate=y".into()];
    a.extend(vg.map(OsString::from));
    lvm(a)
}

/// `pvscan` then `vgscan`: LVM rereads the disks (curtin's `lvm_scan`). Errors are ignored:
/// there may be nothing to find.
pub fn scan() {
    for cmd in ["pvscan", "vgscan"] {
        if let Err(e) = lvm(vec![cmd.into()]) {
            tracing::debug!("lvm {cmd}: {e:#}");
        }
    }
}

/// `pvresize DEV`: take the space its partition grew by.
pub fn pvresize(dev: &Path) -> Result<()> {
    lvm(vec!["pvresize".into(), dev.into()])?;
    Ok(())
}

/// `lvextend --extents +100%FREE VG/LV`.
pub fn lvextend_all(vg: &str, lv: &str) -> Result<String> {
    lvm(
        ["lvextend", "--extents", "+100%FREE", &format!("{vg}/{lv}")]
            .map(OsString::from)
            .to_vec(),
    )
}

/// One row of an LVM JSON report, as field -> value.
pub type Row = std::collections::BTreeMap<String, String>;

/// `pvs`/`lvs --reportformat=json --units=B --nosuffix -o FIELDS`.
pub fn report(tool: &str, fields: &[&str]) -> Result<Vec<Row>> {
    let out = lvm([
        tool,
        "--reportformat=json",
        "--units=B",
        "--nosuffix",
        "--options",
        &fields.join(","),
    ]
    .map(OsString::from)
    .to_vec())?;
    parse_report(&out)
}

/// The rows of the first report in LVM's JSON (`{"report": [{"pv": [{...}]}]}`).
pub fn parse_report(json: &str) -> Result<Vec<Row>> {
    let v: serde_json::Value = serde_json::from_str(json).context("reading an LVM report")?;
    let first = v["report"][0]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|rows| rows.as_array())
        .cloned()
        .unwrap_or_default();
    Ok(first
        .iter()
        .filter_map(|r| r.as_object())
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::tests::words;

    #[test]
    fn command_lines_like_curtin() {
        assert_eq!(
            words(vgcreate_args("vg0", &[PathBuf::from("/dev/md0")])),
            ["vgcreate", "--force", "--zero=y", "--yes", "vg0", "/dev/md0"]
        );
        assert_eq!(
            words(lvcreate_args("vg0", "root", Some(4 << 30))),
            [
                "lvcreate",
                "vg0",
                "--name",
                "root",
                "--zero=y",
                "--wipesignatures=y",
                "--yes",
                "--size",
                "4294967296B"
            ]
        );
        let rest = words(lvcreate_args("vg0", "data", None));
        assert_eq!(rest[rest.len() - 2..], ["--extents", "100%FREE"]);
    }

    #[test]
    fn reports() {
        let rows = parse_report(r#"{"report": [{"pv": [{"pv_name": "/dev/vda3", "vg_name": "ubuntu-vg"}, {"pv_name": "/dev/vdb", "vg_name": ""}]}]}"#).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["vg_name"], "ubuntu-vg");
        assert_eq!(rows[1]["pv_name"], "/dev/vdb");
        assert!(parse_report("not json").is_err());
    }
}
