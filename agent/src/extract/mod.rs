//! The extract stage: each non-dd source of the config, in sorted name order, unpacked into the
//! mounted target (curtin `extract`). Tarballs only here; dd images are written by block-meta.

pub mod acl;
pub mod stream;
pub mod unpack;

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

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

/// The sources of a merged config as `(name, uri)`, sorted by name, dd sources left out.
/// `sources` may be a mapping of name -> uri string or `{uri, type}`, or a list (curtin accepts
/// both); a `type:` prefix on the uri (`tgz:`, `dd-xz:`...) is stripped.
pub fn sources_of(cfg: &serde_yaml::Value) -> Result<Vec<(String, String)>> {
    use serde_yaml::Value;
    let mut out = Vec::new();
    let entry = |name: String, v: &Value| -> Result<Option<(String, String)>> {
        let (uri, ty) = match v {
            Value::String(s) => (s.clone(), None),
            Value::Mapping(m) => (
                m.get("uri").and_then(Value::as_str).context("source without uri")?.to_string(),
                m.get("type").and_then(Value::as_str).map(str::to_string),
            ),
            _ => bail!("source {name}: expected a uri or a mapping"),
        };
        let (prefix, rest) = match uri.split_once(':') {
            Some((p, r)) if KNOWN_PREFIXES.contains(&p) => (Some(p.to_string()), r.to_string()),
            _ => (None, uri.clone()),
        };
        let ty = ty.or(prefix).unwrap_or_else(|| "tgz".into());
        if ty.starts_with("dd-") {
            return Ok(None);
        }
        if ty.starts_with("fsimage") || ty == "cp" {
            bail!("source {name}: type {ty} is not supported by deployer's extract stage yet");
        }
        Ok(Some((name, rest)))
    };
    match cfg.get("sources") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let name = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)?.trim().to_string(),
                };
                out.extend(entry(name, v)?);
            }
        }
        Some(Value::Sequence(s)) => {
            for (i, v) in s.iter().enumerate() {
                out.extend(entry(format!("{i:02}"), v)?);
            }
        }
        Some(_) => bail!("sources: expected a mapping or a list"),
    }
    out.sort();
    Ok(out)
}

const KNOWN_PREFIXES: &[&str] = &[
    "tgz", "tbz", "txz", "tzst", "dd-tgz", "dd-tbz", "dd-txz", "dd-tar", "dd-bz2", "dd-gz",
    "dd-xz", "dd-raw", "dd-zst", "fsimage", "fsimage-layered", "cp",
];

pub fn run(g: &crate::cli::Global, a: &crate::cli::TargetArgs) -> Result<()> {
    let target = a
        .target_mount
        .clone()
        .context("no target: pass --target-mount DIR or set TARGET_MOUNT_POINT")
        .kind(Kind::Config)?;
    let cfg = crate::block_meta::localcfg::load(g).kind(Kind::Config)?;
    let sources = sources_of(&cfg).kind(Kind::Config)?;
    if sources.is_empty() {
        tracing::warn!("no tarball sources to extract");
    }
    for (name, uri) in sources {
        tracing::info!("acquiring and extracting image from {uri} (source {name})");
        let st = extract_uri(&uri, &target)?;
        tracing::info!("extracted {} entries, {} bytes", st.entries, st.bytes);
    }
    Ok(())
}
