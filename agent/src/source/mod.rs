//! Where image bytes come from: fetching (http/https with checked Range resume and mirrors,
//! file://, paths), a pass run again from byte 0 when the object is replaced on the server
//! ([`with_restarts`]), magic-byte detection checked against the declared type, and decoding.

pub mod compression;
pub mod decode;
pub mod detect;
pub mod http;
pub mod igzip;
pub mod kind;
pub mod magic;
pub mod verify;
pub mod xz;

pub use compression::Compression;
pub use detect::Found;
pub use kind::{DdSpec, SourceType};
pub use verify::{Expect, VerifyReader};

use anyhow::{anyhow, Context, Result};
use preseed::install::Proxy;
use std::io::Read;
use std::sync::{Arc, Mutex};

use crate::error::{Kind, KindExt};
use crate::net::{self, Policy};

/// How to fetch: through which proxy, retrying how.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub proxy: Proxy,
    pub policy: Policy,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            proxy: Proxy::default(),
            policy: Policy::download(),
        }
    }
}

/// An open source stream, and its length as served when known.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub len: Option<u64>,
}

fn is_http(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

/// Open `uri` (http://, https://, file://, or a path) as a raw byte stream, for one pass: an
/// HTTP object replaced mid-stream is an error here (see [`with_restarts`]).
pub fn open(uri: &str, opts: &FetchOptions) -> Result<Opened> {
    open_with(uri, &[], opts, None).with_context(|| format!("opening the source {uri}"))
}

fn open_with(
    uri: &str,
    mirrors: &[String],
    opts: &FetchOptions,
    handover: Option<http::Handover>,
) -> Result<Opened> {
    if let Some(m) = mirrors.iter().find(|m| !is_http(m)) {
        return Err(anyhow!("the mirror {m} is not an http:// or https:// URL"));
    }
    if is_http(uri) {
        let urls = std::iter::once(uri.to_string())
            .chain(mirrors.iter().cloned())
            .collect();
        let client = net::client(&opts.proxy)?;
        let r = http::RangeReader::open(urls, client, opts.policy.clone(), handover)?;
        let len = r.content_length();
        return Ok(Opened {
            reader: Box::new(Stoppable(r)),
            len,
        });
    }
    if !mirrors.is_empty() {
        return Err(anyhow!("{uri}: mirrors are for http(s) sources only"));
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let f = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let meta = f
        .metadata()
        .with_context(|| format!("reading the size of {path}"))?;
    let len = meta.is_file().then_some(meta.len());
    Ok(Opened {
        reader: Box::new(Stoppable(f)),
        len,
    })
}

/// A pass over an object replaced this many times in a row is given up on.
pub const MAX_RESTARTS: u32 = 3;

/// Run `pass` over the bytes of `uri` (or of its `mirrors`) from byte 0. When the object turns
/// out to have been replaced mid-stream (a 200 to a resume, another length or ETag, a mirror
/// with another copy), the pass has consumed bytes of the old one: it fails, and runs again
/// from byte 0 over the new object, so that whatever it writes (a disk, an extracted tree) is
/// redone from the start, never patched together from two objects.
pub fn with_restarts<T>(
    uri: &str,
    mirrors: &[String],
    opts: &FetchOptions,
    mut pass: impl FnMut(Opened) -> Result<T>,
) -> Result<T> {
    let slot: http::Handover = Arc::new(Mutex::new(None));
    let mut opened = open_with(uri, mirrors, opts, Some(slot.clone()))
        .with_context(|| format!("opening the source {uri}"))
        .kind(Kind::Source)?;
    let mut restarts = 0;
    loop {
        let err = match pass(opened) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(next) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Err(err);
        };
        restarts += 1;
        if restarts > MAX_RESTARTS {
            return Err(err.context(format!(
                "{uri} was replaced on the server {MAX_RESTARTS} times during the download; giving up"
            )))
            .kind(Kind::Source);
        }
        tracing::warn!("{}; starting over from byte 0", crate::error::render(&err));
        opened = Opened {
            len: next.content_length(),
            reader: Box::new(next),
        };
    }
}

/// A source that stops with an error once deployer got SIGTERM or SIGINT, so that a long
/// download or extraction ends and is cleaned up as a failure.
struct Stoppable<R>(R);

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(sig) = crate::signals::received() {
            return Err(std::io::Error::other(format!(
                "stopped: deployer received {}",
                crate::signals::name(sig)
            )));
        }
        self.0.read(buf)
    }
}
