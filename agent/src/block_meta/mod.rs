//! The partitioning stage (curtin `block-meta`): take apart what an earlier deployment left
//! (clear-holders), then partition, build arrays, volume groups, bcache and encrypted volumes,
//! format and mount what the storage config says (custom mode), or curtin's flat layout on one
//! disk (simple mode); write the fstab lines to `$OUTPUT_FSTAB` and the target's `/etc/fstab`,
//! and `crypttab` and `mdadm.conf` beside `$OUTPUT_FSTAB` for curthooks to install.

pub mod bcache;
pub mod clear_holders;
pub mod config;
pub mod crypt;
pub mod custom;
pub mod dd;
pub mod disk;
pub mod dname;
pub mod fstab;
pub mod lvm;
pub mod mount;
pub mod partition;
pub mod raid;
pub mod simple;

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{BlockMetaArgs, BlockMetaMode, Global};
use crate::error::{Kind, KindExt};

/// Apply a storage config and leave the target mounted; returns the fstab text.
pub fn apply(storage: &config::Storage, target: &Path) -> Result<String> {
    let out = custom::apply(storage, target).kind(Kind::Storage)?;
    let body = fstab::render(&out.fstab);
    write_fstab(target, &body)?;
    write_state(&out)?;
    if let Some(p) = &storage.device_map_path {
        // curtin's `{id: /dev/path}` of every item that has a device.
        let map: serde_json::Map<String, serde_json::Value> = out
            .devices
            .iter()
            .map(|(id, dev)| (id.clone(), dev.display().to_string().into()))
            .collect();
        std::fs::write(p, serde_json::Value::Object(map).to_string())
            .with_context(|| format!("writing the device map {p}"))?;
    }
    out.mounts.keep();
    Ok(body)
}

/// `crypttab` and `mdadm.conf` in the state directory (beside `$OUTPUT_FSTAB`), as curtin
/// leaves them for curthooks; without one they are not written, as in curtin.
fn write_state(out: &custom::Outcome) -> Result<()> {
    let files = [
        (STATE_MDADM_CONF, out.mdadm_conf.clone()),
        (
            STATE_CRYPTTAB,
            (!out.crypttab.is_empty()).then(|| out.crypttab.join("\n") + "\n"),
        ),
    ];
    if files.iter().all(|(_, body)| body.is_none()) {
        return Ok(());
    }
    let Some(dir) = state_dir() else {
        tracing::info!("no OUTPUT_FSTAB in the environment: not writing crypttab and mdadm.conf");
        return Ok(());
    };
    for (name, body) in files {
        if let Some(body) = body {
            let p = dir.join(name);
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok(())
}

/// The state files block-meta leaves beside `$OUTPUT_FSTAB` for curthooks.
pub const STATE_MDADM_CONF: &str = "mdadm.conf";
pub const STATE_CRYPTTAB: &str = "crypttab";

/// The directory of `$OUTPUT_FSTAB`.
pub fn state_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("OUTPUT_FSTAB")
        .filter(|p| !p.is_empty())
        .and_then(|p| Path::new(&p).parent().map(Path::to_path_buf))
}

/// `$OUTPUT_FSTAB` when set (curtin's state file), and the target's `/etc/fstab`.
fn write_fstab(target: &Path, body: &str) -> Result<()> {
    if let Some(p) = std::env::var_os("OUTPUT_FSTAB").filter(|p| !p.is_empty()) {
        std::fs::write(&p, body).with_context(|| format!("writing {}", Path::new(&p).display()))?;
    }
    fstab::install(target, body)
}

pub fn run(g: &Global, a: &BlockMetaArgs) -> Result<()> {
    let target = a
        .target
        .target_mount
        .clone()
        .context("no target: pass --target-mount DIR or set TARGET_MOUNT_POINT")
        .kind(Kind::Config)?;
    if a.umount {
        return mount::unmount_below(&target).kind(Kind::Storage);
    }
    let loaded = crate::config::load(g)?;
    // A dd source means simple mode whatever `storage` says (curtin's block_meta): the image
    // brings its own layout; storage only chooses the disk.
    if let Some(src) = loaded.config.dd_source() {
        let disk = dd::apply(src, &loaded, &a.devices, &target)?;
        tracing::info!(
            "image written to {}, root mounted at {}",
            disk.display(),
            target.display()
        );
        return Ok(());
    }
    let bm = &loaded.config.block_meta;
    std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    // curtin's block_meta: a `storage` config means custom mode even when the command says
    // `simple` (its builtin partitioning command is `curtin block-meta simple`, and MAAS sends
    // `storage`); the mode argument only matters without one.
    let storage = match loaded.config.storage.clone() {
        Some(s) => {
            if matches!(
                a.mode,
                Some(BlockMetaMode::Simple | BlockMetaMode::SimpleBoot)
            ) {
                tracing::debug!("storage config present: custom mode despite the simple argument");
            }
            s
        }
        None => {
            let disk = simple::choose_disk(bm, None, &a.devices).kind(Kind::Storage)?;
            let layout = simple::layout(bm);
            tracing::info!("simple mode: {layout:?} layout on {}", disk.display());
            simple::storage_for(&disk, layout)
        }
    };
    let body = apply(&storage, &target)?;
    tracing::info!("storage ready under {}\n{body}", target.display());
    Ok(())
}
