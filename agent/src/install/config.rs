//! The install's config: the `-c` documents (files or URLs) merged in order over curtin's
//! CONFIG_BUILTIN, command-line sources added as `NN_cmdline`, and the `--target` disk
//! written into it.
//!
//! The documents themselves are read by [`crate::config::load`] (files, URLs, $CONFIG, the
//! kernel command line).

use std::path::Path;

use preseed::load::Loaded;
use preseed::Config;
use yaml_serde::{Mapping, Value};

use crate::error::{Kind, KindExt};

/// curtin's CONFIG_BUILTIN merged under the user's config, plus the command-line sources;
/// typed, and refused when it would only fail halfway.
pub fn effective(user: Value, cli_sources: &[String]) -> anyhow::Result<Loaded> {
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
    let loaded = preseed::load::from_merged(cfg)?;
    check(&loaded.config)?;
    Ok(loaded)
}

/// What would otherwise fail halfway and the model cannot see alone: an install with nothing
/// to install.
fn check(c: &Config) -> anyhow::Result<()> {
    let extracts = c.stages.iter().any(|s| s == "extract")
        && c.stage_commands("extract")
            .get("builtin")
            .is_some_and(Option::is_some);
    if c.sources.is_empty() && extracts {
        anyhow::bail!(
            "sources: nothing to install (no `sources` in the config and no source on the command line); curtin would only notice in its extract stage, after partitioning"
        );
    }
    Ok(())
}

/// Make `dev` the disk the install writes: simple mode's `block-meta.devices`, and the path of
/// the storage config's only disk (its serial/wwn dropped so that curtin's lookup, which
/// prefers them, finds this device). Several disks cannot map to one --target. The typed
/// config decides; the merged value (what `state/config` holds) is edited, then typed again.
pub fn set_target_disk(loaded: Loaded, dev: &Path) -> anyhow::Result<Loaded> {
    let disks: Vec<String> = loaded
        .config
        .storage
        .iter()
        .flat_map(|s| s.disks())
        .map(|d| d.id.clone())
        .collect();
    if disks.len() > 1 {
        anyhow::bail!(
            "--target names one disk, but the storage config has {} disks ({}): deploy to a machine, or use a config with one disk",
            disks.len(),
            disks.join(", ")
        )
    }
    let mut cfg = loaded.merged;
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
    if let [id] = disks.as_slice() {
        let items = root
            .get_mut("storage")
            .and_then(|s| s.get_mut("config"))
            .and_then(|c| c.as_sequence_mut());
        let id = Value::String(id.clone());
        for item in items.into_iter().flatten() {
            let Some(d) = item.as_mapping_mut() else {
                continue;
            };
            if d.get("id") != Some(&id) {
                continue;
            }
            for k in ["serial", "wwn", "name", "device_id"] {
                d.remove(k);
            }
            d.insert("path".into(), dev_s.clone());
        }
    }
    Ok(preseed::load::from_merged(cfg)?)
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
        assert_eq!(cfg.config.stages.len(), 7);
        assert_eq!(cfg.config.block_meta.devices.len(), 0);
        let cfg = cfg.merged;
        assert_eq!(
            cfg["sources"]["01_cmdline"],
            y("{type: dd-gz, uri: 'http://b/i.gz'}")
        );
        assert_eq!(cfg["late_commands"]["builtin"], y("[]"));
        assert_eq!(cfg["network_commands"]["builtin"], Value::Null);
        assert_eq!(cfg["extract_commands"]["builtin"], y("[curtin, extract]"));
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
        let l = |t: &str| preseed::load::from_merged(y(t)).unwrap();
        let cfg = l("storage: {version: 1, config: [{id: d, type: disk, serial: S, ptable: gpt}, {id: p, type: partition, device: d, size: 1G}]}");
        let done = set_target_disk(cfg, Path::new("/dev/loop7")).unwrap();
        assert_eq!(done.config.block_meta.devices, ["/dev/loop7"]);
        let cfg = done.merged;
        assert_eq!(cfg["block-meta"]["devices"], y("[/dev/loop7]"));
        assert_eq!(
            cfg["storage"]["config"][0]["path"],
            Value::from("/dev/loop7")
        );
        assert!(cfg["storage"]["config"][0].get("serial").is_none());
        let two = l("storage: {version: 1, config: [{id: a, type: disk, path: /dev/a}, {id: b, type: disk, path: /dev/b}]}");
        let e = set_target_disk(two, Path::new("/dev/loop7")).unwrap_err();
        assert!(e.to_string().contains("2 disks (a, b)"), "{e}");
    }
}
