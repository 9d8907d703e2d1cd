//! The dd path of block-meta (curtin `meta_simple` with a dd source): whatever `storage` says,
//! the image is written to one disk (storage only chooses it), the root found in the image is
//! grown (unless `block-meta: {grow_root: false}`) and mounted at the target. No fstab is
//! written, as curtin: the image's own is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use preseed::sources::Source;
use yaml_serde::Value;

use super::config::Storage;
use super::mount::Mounts;
use crate::error::{Kind, KindExt};
use crate::report::Progress;
use crate::write_image::{self, Request};

/// `block-meta: {grow_root: BOOL}`; true when absent (curtin never grows; see compatibility.md).
pub fn grow_root(cfg: &Value) -> Result<bool> {
    match cfg.get("block-meta").and_then(|b| b.get("grow_root")) {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => anyhow::bail!("block-meta.grow_root must be true or false, not {other:?}"),
    }
}

/// `deployer: {raw_data: BOOL}`: write a dd source that is not a disk image (false when absent).
pub fn raw_data(cfg: &Value) -> Result<bool> {
    match cfg.get("deployer").and_then(|b| b.get("raw_data")) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => anyhow::bail!("deployer.raw_data must be true or false, not {other:?}"),
    }
}

/// Write `src` to the chosen disk and mount its root at `target`; returns the disk.
pub fn apply(
    src: &Source,
    loaded: &preseed::load::Loaded,
    devices: &[PathBuf],
    target: &Path,
) -> Result<PathBuf> {
    let cfg = &loaded.merged;
    let grow = grow_root(cfg).kind(Kind::Config)?;
    let raw_data = raw_data(cfg).kind(Kind::Config)?;
    let storage: Option<&Storage> = loaded.config.storage.as_ref();
    let disk = super::simple::choose_disk(cfg, storage, devices).kind(Kind::Storage)?;
    // As curtin's block_meta: the disks with `wipe` are cleared first, and the image's disk.
    let mut clear = vec![("dd target".to_string(), disk.clone())];
    for d in storage.iter().flat_map(|s| s.disks()) {
        if d.wipe.is_some() && !d.preserve {
            if let Ok(p) = super::disk::find(d) {
                if p != disk {
                    clear.push((d.id.clone(), p));
                }
            }
        }
    }
    super::clear_holders::clear_disks(&clear, target).kind(Kind::Storage)?;
    tracing::info!(
        "dd source {}: writing {} to {} (storage config used only to choose the disk)",
        src.name,
        src.uri,
        disk.display()
    );
    let mut req = Request::new(&src.uri, &disk);
    req.declared = Some(src.kind);
    req.sha256 = src.sha256.clone();
    req.sha512 = src.sha512.clone();
    req.size = src.size;
    req.grow = grow;
    req.raw_data = raw_data;
    req.fetch.proxy = loaded.config.proxy.clone();
    req.mirrors = src.mirrors.clone();
    // Created at the first callback: by then the served length is known when the config
    // gave no `size`.
    let what = format!("writing image to {}", disk.display());
    let progress: Arc<Mutex<Option<Progress>>> = Arc::default();
    let pr = progress.clone();
    let declared = src.size;
    req.on_progress = Some(Box::new(move |s| {
        if let Ok(mut p) = pr.lock() {
            p.get_or_insert_with(|| Progress::new(&what, declared.or(s.source_total)))
                .update(s.read);
        }
    }));
    let summary = write_image::write_image(req)?;
    if let Ok(mut p) = progress.lock() {
        if let Some(p) = p.as_mut() {
            p.done(summary.bytes_read);
        }
    }
    tracing::info!("grow: {}", summary.grow);
    let root = summary
        .root
        .context("no root file system found in the image")
        .kind(Kind::Image)?;
    std::fs::create_dir_all(target).with_context(|| format!("creating {}", target.display()))?;
    let mut mounts = Mounts::default();
    mounts
        .mount(&root.device, target, None, "defaults")
        .with_context(|| {
            format!(
                "mounting the image's root {} at {}",
                root.device.display(),
                target.display()
            )
        })
        .kind(Kind::Storage)?;
    mounts.keep();
    tracing::info!(
        "root {} (has /{}) mounted at {}",
        root.device.display(),
        root.marker,
        target.display()
    );
    Ok(disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_root_key() {
        let v = |s: &str| yaml_serde::from_str::<Value>(s).unwrap();
        assert!(grow_root(&v("{}")).unwrap());
        assert!(grow_root(&v("block-meta: {grow_root: true}")).unwrap());
        assert!(!grow_root(&v("block-meta: {grow_root: false}")).unwrap());
        let e = grow_root(&v("block-meta: {grow_root: no-thanks}")).unwrap_err();
        assert!(e
            .to_string()
            .contains("block-meta.grow_root must be true or false"));
    }
}
