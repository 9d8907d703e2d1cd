//! TEMPORARY: a minimal merge of the `-c` YAML files (or $CONFIG) until `deployer::config::load`
//! lands from the config-model branch; only what block-meta and extract read.

use anyhow::{Context, Result};
use serde_yaml::Value;

/// Merge curtin-style: mappings recursively, everything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The merged config of the `-c` files, or of $CONFIG when none are given.
pub fn load(global: &crate::cli::Global) -> Result<Value> {
    let mut files = global.config.clone();
    if files.is_empty() {
        if let Ok(c) = std::env::var("CONFIG") {
            files.push(c);
        }
    }
    let mut merged = Value::Mapping(Default::default());
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading config {f}"))?;
        let v: Value =
            serde_yaml::from_str(&text).with_context(|| format!("parsing config {f}"))?;
        if !v.is_null() {
            merge(&mut merged, v);
        }
    }
    Ok(merged)
}
