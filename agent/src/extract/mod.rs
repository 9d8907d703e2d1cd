//! The extract stage: each non-dd source of the config, in sorted name order, unpacked into the
//! mounted target, then the config's `write_files` written there (curtin `extract`). Tarballs
//! only here; dd images are written by block-meta.

pub mod acl;
pub mod copy;
pub mod fsimage;
pub mod tree;
pub mod unpack;

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use crate::error::{Kind, KindExt};
use crate::source::{self, decode, Expect, FetchOptions, VerifyReader};
use preseed::sources::Source;

pub use unpack::Stats;

const CHUNK: usize = 512 * 1024;
const DEPTH: usize = 8;

/// Unpack a tar stream (any compression, detected) into `target`, decoding on a second thread.
/// The stream is read to its end, so that a [`VerifyReader`] under it has checked the source.
pub fn extract_tar<R: Read + Send + 'static>(reader: R, target: &Path) -> Result<Stats> {
    let decoded = decode::tar_stream(reader).kind(Kind::Source)?;
    let piped = crate::io::pipelined(Box::new(decoded), "extract-decode", CHUNK, DEPTH)
        .context("starting the decode thread")?;
    let mut input = Watched {
        inner: piped,
        failed: false,
    };
    // The final sync would otherwise write back every file at the end; this starts early.
    let fs =
        std::fs::File::open(target).with_context(|| format!("opening {}", target.display()))?;
    let mut flush = crate::io::EarlyFlush::new(move || syncfs(&fs), crate::io::flush::FLUSH_EVERY)
        .context("starting the flush thread")
        .kind(Kind::Storage)?;
    let stats = match unpack::unpack(&mut input, target, &mut flush) {
        Ok(s) => s,
        // A read error is the source's (fetch, decode, checksum), not the target's.
        Err(e) if input.failed => return Err(e).kind(Kind::Source),
        // Refusals of the archive are tagged Source where made; the rest is the target's.
        Err(e) => return Err(e).kind(Kind::Storage),
    };
    std::io::copy(&mut input, &mut std::io::sink())
        .context("reading the end of the archive")
        .kind(Kind::Source)?;
    flush
        .finish()
        .context("syncing the target file system")
        .kind(Kind::Storage)?;
    sync_fs(target)?;
    Ok(stats)
}

/// Remembers whether a read failed, to tell source errors from target errors.
struct Watched<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.inner.read(buf);
        self.failed |= r.is_err();
        r
    }
}

/// Fetch (HTTP with Range resume and mirrors, file://, a path), verify (`sha256`, `sha512`,
/// `size`) and extract one source into `target`. An object replaced on the server mid-stream
/// is extracted again from its start into the same target.
pub fn extract_source(src: &Source, fetch: &FetchOptions, target: &Path) -> Result<Stats> {
    let uri = &src.uri;
    source::with_restarts(uri, &src.mirrors, fetch, |opened| {
        if let (Some(want), Some(len)) = (src.size, opened.len) {
            if want != len {
                return Err(anyhow::anyhow!(
                    "the source {uri} is {len} bytes, not the declared size {want}"
                ))
                .kind(Kind::Source);
            }
        }
        let expect = Expect {
            sha256: src.sha256.clone(),
            sha512: src.sha512.clone(),
            size: src.size,
        };
        let shown = crate::report::Progress::new(&format!("extracting {uri}"), opened.len)
            .reader(opened.reader);
        let raw = VerifyReader::new(shown, expect, uri);
        extract_tar(raw, target)
            .with_context(|| format!("extracting {uri} into {}", target.display()))
    })
}

/// curtin runs `sync` after tar: flush the target's file system before saying it is done.
fn sync_fs(target: &Path) -> Result<()> {
    let f = std::fs::File::open(target).with_context(|| format!("opening {}", target.display()))?;
    syncfs(&f).context("syncing the target file system")
}

fn syncfs(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a valid fd.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Extract, keeping the fstab block-meta wrote into the target (the image's own fstab would
/// replace it): the image's header lines, then block-meta's entries (curtin's `copy_fstab`).
fn extract_with_fstab(src: &Source, fetch: &FetchOptions, target: &Path) -> Result<Stats> {
    keeping_fstab(target, || {
        if fsimage::is_copied(src) {
            let st = fsimage::extract(src, fetch, target)?;
            sync_fs(target)?;
            Ok(Stats {
                entries: st.entries,
                bytes: st.bytes,
            })
        } else {
            extract_source(src, fetch, target)
        }
    })
}

fn keeping_fstab(target: &Path, f: impl FnOnce() -> Result<Stats>) -> Result<Stats> {
    let ours = crate::target::TargetRoot::open(target)
        .kind(Kind::Storage)?
        .read_to_string_opt(crate::block_meta::fstab::PATH)
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
    let st = f()?;
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
    let fetch = FetchOptions {
        proxy: loaded.config.proxy.clone(),
        ..FetchOptions::default()
    };
    let mut any = false;
    for src in loaded.config.sources_sorted() {
        if src.kind.is_dd() {
            continue;
        }
        if !src.kind.is_tarball() && !fsimage::is_copied(src) {
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
        let st = crate::report::within(
            "",
            &format!("acquiring and extracting image from {}", src.uri),
            || extract_with_fstab(src, &fetch, &target),
        )?;
        tracing::info!("extracted {} entries, {} bytes", st.entries, st.bytes);
    }
    if !any {
        tracing::warn!("no tarball sources to extract");
    }
    // curtin writes `write_files` into the target after all sources (dd installs too).
    if !loaded.config.write_files.is_empty() {
        crate::commands::write_files(&target, &loaded.config.write_files)?;
        tracing::info!(
            "wrote {} write_files entries into {}",
            loaded.config.write_files.len(),
            target.display()
        );
    }
    Ok(())
}
