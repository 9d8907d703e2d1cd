//! The extract stage: each non-dd source of the config, in sorted name order, unpacked into the
//! mounted target (curtin `extract`). Tarballs only here; dd images are written by block-meta.

pub mod acl;
pub mod stream;
pub mod unpack;

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::{Kind, KindExt};

pub use unpack::Stats;

/// Unpack a tar stream (any compression, detected) into `target`, decoding on a second thread.
pub fn extract_tar<R: Read + Send + 'static>(reader: R, target: &Path) -> Result<Stats> {
    let decoded = stream::decoder(Box::new(reader)).kind(Kind::Source)?;
    let piped = stream::pipelined(decoded);
    let stats = unpack::unpack(piped, target)?;
    sync_fs(target)?;
    Ok(stats)
}

/// Extract one source uri (path, `file://`, `http(s)://`) into `target`.
pub fn extract_uri(uri: &str, target: &Path) -> Result<Stats> {
    let raw = stream::open_uri(uri).kind(Kind::Source)?;
    extract_tar(raw, target).with_context(|| format!("extracting {uri} into {}", target.display()))
}

/// curtin runs `sync` after tar: flush the target's file system before saying it is done.
fn sync_fs(target: &Path) -> Result<()> {
    let f = std::fs::File::open(target).with_context(|| format!("opening {}", target.display()))?;
    use std::os::fd::AsRawFd;
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("syncing the target file system");
    }
    Ok(())
}

/// Extract, keeping the fstab block-meta wrote into the target (the image's own fstab would
/// replace it): the image's header lines, then block-meta's entries (curtin's `copy_fstab`).
fn extract_with_fstab(uri: &str, target: &Path) -> Result<Stats> {
    let fstab = target.join("etc/fstab");
    let ours = std::fs::read_to_string(&fstab)
        .ok()
        .filter(|t| t.contains("during curtin installation") || t.contains("LABEL=cloudimg-rootfs"))
        .map(|t| {
            t.lines()
                .skip_while(|l| {
                    l.starts_with('#') && !l.contains("during curtin installation")
                        || l.trim().is_empty()
                })
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        });
    let st = extract_uri(uri, target)?;
    if let Some(body) = ours {
        crate::block_meta::fstab::install(target, &body)?;
    }
    Ok(st)
}

pub fn run(g: &crate::cli::Global, a: &crate::cli::TargetArgs) -> Result<()> {
    let target = a
        .target_mount
        .clone()
        .context("no target: pass --target-mount DIR or set TARGET_MOUNT_POINT")
        .kind(Kind::Config)?;
    let loaded = crate::config::load(g)?;
    let mut any = false;
    for src in loaded.config.sources_sorted() {
        if src.kind.is_dd() {
            continue;
        }
        if !src.kind.is_tarball() {
            return Err(anyhow::anyhow!(
                "source {}: type {} is not supported by the extract stage yet",
                src.name,
                src.kind.prefix()
            ))
            .kind(Kind::Config);
        }
        any = true;
        tracing::info!(
            "acquiring and extracting image from {} (source {})",
            src.uri,
            src.name
        );
        let st = extract_with_fstab(&src.uri, &target)?;
        tracing::info!("extracted {} entries, {} bytes", st.entries, st.bytes);
    }
    if !any {
        tracing::warn!("no tarball sources to extract");
    }
    Ok(())
}
