//! The install's config: the `-c` documents (files or URLs) merged in order over curtin's
//! CONFIG_BUILTIN, command-line sources added as `NN_cmdline`, and the `--target` disk
//! written into it.
//!
//! The documents themselves are read by [`crate::config::load`] (files, URLs, $CONFIG, the
//! kernel command line).

use std::path::Path;

use anyhow::Context;
use yaml_serde::{Mapping, Value};

use crate::error::{Kind, KindExt};

/// curtin's CONFIG_BUILTIN merged under the user's config, plus the command-line sources.
pub fn effective(user: Value, cli_sources: &[String]) -> anyhow::Result<Value> {
    let mut cfg = preseed::load::builtin();
    preseed::load::merge(&mut cfg, user);
    let sources = cfg
        .as_mapping_mut()
        .expect("mapping")
        .entry("sources".into())
        .or_insert(Value::Mapping(Mapping::new()));
    if let Value::Sequence(list) = sources {
        // A list keeps its order as sorted keys.
        let m: Mapping = list
            .drain(..)
            .enumerate()
            .map(|(i, v)| (Value::String(format!("{i:02}")), v))
            .collect();
        *sources = Value::Mapping(m);
    }
    let Value::Mapping(m) = sources else {
        anyhow::bail!("sources: must be a mapping of name to source (or a list)");
    };
    for s in cli_sources {
        // As curtin's sanitize_source: a {type, uri} entry, which hooks' get_dd_images sees.
        let key = format!("{:02}_cmdline", m.len());
        let src = preseed::sources::parse(s);
        let mut entry = Mapping::new();
        entry.insert("type".into(), src.kind.prefix().into());
        entry.insert("uri".into(), src.uri.into());
        m.insert(key.into(), Value::Mapping(entry));
    }
    check(&cfg)?;
    Ok(cfg)
}

/// What would otherwise fail halfway: stage command sets that are not mappings, more than one
/// disk image.
fn check(cfg: &Value) -> anyhow::Result<()> {
    for stage in stages(cfg)? {
        let key = format!("{stage}_commands");
        match cfg.get(&key) {
            None | Some(Value::Null) | Some(Value::Mapping(_)) => {}
            Some(v) => anyhow::bail!(
                "{key}: must be a mapping of name to command (a list or a string), got {}",
                kind_name(v)
            ),
        }
    }
    let dd: Vec<String> = cfg
        .get("sources")
        .and_then(|s| s.as_mapping())
        .map(|m| {
            m.iter()
                .filter(|(_, s)| source_type(s).starts_with("dd-"))
                .map(|(k, _)| k.as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default();
    let no_sources = cfg
        .get("sources")
        .and_then(|s| s.as_mapping())
        .is_none_or(|m| m.is_empty());
    let extracts = stages(cfg)?.iter().any(|s| s == "extract")
        && cfg
            .get("extract_commands")
            .and_then(|c| c.get("builtin"))
            .is_some_and(|b| !matches!(b, Value::Null));
    if no_sources && extracts {
        anyhow::bail!(
            "sources: nothing to install (no `sources` in the config and no source on the command line); curtin would only notice in its extract stage, after partitioning"
        );
    }
    if dd.len() > 1 {
        anyhow::bail!(
            "sources: you may not use more than one disk image (dd sources: {})",
            dd.join(", ")
        );
    }
    Ok(())
}

pub fn stages(cfg: &Value) -> anyhow::Result<Vec<String>> {
    match cfg.get("stages") {
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .with_context(|| format!("stages: every entry must be a stage name, got {v:?}"))
            })
            .collect(),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => anyhow::bail!(
            "stages: must be a list of stage names, got {}",
            kind_name(v)
        ),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A source's type: a dict's `type`, or the prefix curtin's sanitize_source recognises.
pub fn source_type(s: &Value) -> String {
    match s {
        Value::Mapping(_) => s
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("tgz")
            .to_string(),
        Value::String(uri) => {
            const PREFIXES: [&str; 13] = [
                "tgz",
                "dd-tgz",
                "tbz",
                "dd-tbz",
                "txz",
                "dd-txz",
                "dd-tar",
                "dd-bz2",
                "dd-gz",
                "dd-xz",
                "dd-raw",
                "fsimage",
                "fsimage-layered",
            ];
            match uri.split_once(':') {
                Some((p, _)) if PREFIXES.contains(&p) || p == "dd-zst" || p == "tzst" => {
                    p.to_string()
                }
                _ => "tgz".to_string(),
            }
        }
        _ => "tgz".to_string(),
    }
}

/// Make `dev` the disk the install writes: simple mode's `block-meta.devices`, and the path of
/// the storage config's only disk (its serial/wwn dropped so that curtin's lookup, which
/// prefers them, finds this device). Several disks cannot map to one --target.
pub fn set_target_disk(cfg: &mut Value, dev: &Path) -> anyhow::Result<()> {
    let dev_s = Value::String(dev.display().to_string());
    let root = cfg.as_mapping_mut().expect("mapping");
    let bm = root
        .entry("block-meta".into())
        .or_insert(Value::Mapping(Mapping::new()));
    if !bm.is_mapping() {
        *bm = Value::Mapping(Mapping::new());
    }
    bm.as_mapping_mut()
        .expect("mapping")
        .insert("devices".into(), Value::Sequence(vec![dev_s.clone()]));
    let Some(items) = root
        .get_mut("storage")
        .and_then(|s| s.get_mut("config"))
        .and_then(|c| c.as_sequence_mut())
    else {
        return Ok(());
    };
    let disks: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.get("type").and_then(|t| t.as_str()) == Some("disk"))
        .map(|(n, _)| n)
        .collect();
    match disks.as_slice() {
        [] => Ok(()),
        [one] => {
            let d = items[*one]
                .as_mapping_mut()
                .expect("disk item is a mapping");
            for k in ["serial", "wwn", "name", "device_id"] {
                d.remove(k);
            }
            d.insert("path".into(), dev_s);
            Ok(())
        }
        many => {
            let ids: Vec<String> = many
                .iter()
                .map(|n| {
                    items[*n]
                        .get("id")
                        .and_then(|i| i.as_str())
                        .unwrap_or("?")
                        .to_string()
                })
                .collect();
            anyhow::bail!(
                "--target names one disk, but the storage config has {} disks ({}): deploy to a machine, or use a config with one disk",
                ids.len(),
                ids.join(", ")
            )
        }
    }
}

/// Errors of this module are config errors.
pub fn tag<T>(r: anyhow::Result<T>) -> anyhow::Result<T> {
    r.kind(Kind::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        yaml_serde::from_str(s).unwrap()
    }

    #[test]
    fn builtin_under_user_and_cmdline_sources() {
        let cfg = effective(
            y("sources: {05_x: 'http://a/r.tgz'}\nlate_commands: {01: [true]}\nnetwork_commands: {builtin: null}"),
            &["dd-gz:http://b/i.gz".into()],
        )
        .unwrap();
        assert_eq!(
            cfg["sources"]["01_cmdline"],
            y("{type: dd-gz, uri: 'http://b/i.gz'}")
        );
        assert_eq!(cfg["late_commands"]["builtin"], y("[]"));
        assert_eq!(cfg["network_commands"]["builtin"], Value::Null);
        assert_eq!(cfg["extract_commands"]["builtin"], y("[curtin, extract]"));
        assert_eq!(stages(&cfg).unwrap().len(), 7);
    }

    #[test]
    fn no_source_fails_before_any_stage() {
        let e = effective(y("{}"), &[]).unwrap_err();
        assert!(e.to_string().contains("nothing to install"), "{e}");
        effective(y("extract_commands: {builtin: null}"), &[]).unwrap();
        effective(y("stages: [early, late]"), &[]).unwrap();
    }

    #[test]
    fn bad_configs_are_named() {
        let e = effective(y("late_commands: [a, b]"), &[]).unwrap_err();
        assert!(
            e.to_string().contains("late_commands: must be a mapping"),
            "{e}"
        );
        let e =
            effective(y("sources: {a: 'dd-gz:x', b: {type: dd-raw, uri: y}}"), &[]).unwrap_err();
        assert!(e.to_string().contains("more than one disk image"), "{e}");
    }

    #[test]
    fn target_disk_rewrites_the_only_disk() {
        let mut cfg = y("storage: {version: 1, config: [{id: d, type: disk, serial: S, ptable: gpt}, {id: p, type: partition, device: d}]}");
        set_target_disk(&mut cfg, Path::new("/dev/loop7")).unwrap();
        assert_eq!(cfg["block-meta"]["devices"], y("[/dev/loop7]"));
        assert_eq!(
            cfg["storage"]["config"][0]["path"],
            Value::from("/dev/loop7")
        );
        assert!(cfg["storage"]["config"][0].get("serial").is_none());
        let mut two = y("storage: {config: [{id: a, type: disk}, {id: b, type: disk}]}");
        let e = set_target_disk(&mut two, Path::new("/dev/loop7")).unwrap_err();
        assert!(e.to_string().contains("2 disks (a, b)"), "{e}");
    }
}
