//! The dd path of block-meta (curtin `meta_simple` with a dd source): whatever `storage` says,
//! the image is written to one disk (storage only chooses it), the root found in the image is
//! grown (unless `block-meta: {grow_root: false}`) and mounted at the target. No fstab is
//! written, as curtin: the image's own is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use preseed::sources::Source;

use super::config::Storage;
use super::mount::Mounts;
use crate::error::{Kind, KindExt};
use crate::report::Progress;
use crate::write_image::{self, Request};

/// Write `src` to the chosen disk and mount its root at `target`; returns the disk.
pub fn apply(
    src: &Source,
    loaded: &preseed::load::Loaded,
    devices: &[PathBuf],
    target: &Path,
) -> Result<PathBuf> {
    let cfg = &loaded.config;
    // `block-meta: {grow_root}` (true when absent; curtin never grows, see compatibility.md)
    // and `deployer: {raw_data}` (write a dd source that is not a disk image).
    let (grow, raw_data) = (cfg.block_meta.grow_root, cfg.deployer.raw_data);
    let storage: Option<&Storage> = cfg.storage.as_ref();
    let disk = super::simple::choose_disk(&cfg.block_meta, storage, devices).kind(Kind::Storage)?;
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
