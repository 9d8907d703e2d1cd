//! Where image bytes come from: fetching (http/https with Range resume, file://, paths),
//! magic-byte detection checked against the declared type, and decoding.

pub mod decode;
pub mod detect;
pub mod http;
pub mod igzip;
pub mod kind;
pub mod magic;
pub mod verify;

pub use detect::{Compression, Found};
pub use kind::{DdSpec, SourceType};
pub use verify::{Expect, VerifyReader};

use anyhow::{Context, Result};
use std::io::Read;
use std::time::Duration;

/// The config's `proxy` key (curtin: http_proxy, https_proxy, no_proxy).
#[derive(Debug, Clone, Default)]
pub struct ProxyConfig {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl From<&preseed::install::Proxy> for ProxyConfig {
    fn from(p: &preseed::install::Proxy) -> Self {
        ProxyConfig {
            http_proxy: p.http_proxy.clone(),
            https_proxy: p.https_proxy.clone(),
            no_proxy: p.no_proxy.clone(),
        }
    }
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub proxy: ProxyConfig,
    /// A read that makes no progress for this long is a stall: reconnect and resume.
    pub stall_timeout: Duration,
    /// Tries in a row without a single new byte before giving up.
    pub max_tries: u32,
    /// First backoff between tries; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        // DEPLOYER_HTTP_STALL_SECS exists for tests of the stall path; the default suits real
        // mirrors behind slow proxies.
        let stall = std::env::var("DEPLOYER_HTTP_STALL_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        FetchOptions {
            proxy: ProxyConfig::default(),
            stall_timeout: Duration::from_secs(stall),
            max_tries: 8,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// An open source stream, and its length as served when known.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    pub len: Option<u64>,
}

/// Open `uri` (http://, https://, file://, or a path) as a raw byte stream.
pub fn open(uri: &str, opts: &FetchOptions) -> Result<Opened> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        let r = http::RangeReader::open(uri, opts)?;
        let len = r.content_length();
        return Ok(Opened {
            reader: Box::new(Stoppable(r)),
            len,
        });
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
