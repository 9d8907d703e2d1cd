//! An HTTP(S) body reader that survives short bodies, resets and stalls by asking again with a
//! `Range` header from the last byte received, so that the decoder downstream never restarts.
//!
//! Retried: connection errors, timeouts (a read that makes no progress for the stall timeout),
//! bodies shorter than Content-Length, 5xx, 408 and 429. Any other 4xx fails at once. The try
//! counter resets whenever a byte arrives, so a flaky but moving transfer keeps going while a
//! dead one gives up after `max_tries`.

use anyhow::{anyhow, bail, Context, Result};
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use std::io::{self, Read};

use super::FetchOptions;

pub struct RangeReader {
    client: Client,
    url: String,
    resp: Option<Response>,
    pos: u64,
    len: Option<u64>,
    opts: FetchOptions,
    tries: u32,
}

/// Build a client: rustls, the config's proxies (or the environment's), the stall timeout.
pub fn client(opts: &FetchOptions) -> Result<Client> {
    let mut b = Client::builder()
        .timeout(opts.stall_timeout)
        .connect_timeout(opts.stall_timeout.min(std::time::Duration::from_secs(15)));
    let no_proxy = opts
        .proxy
        .no_proxy
        .as_deref()
        .and_then(reqwest::NoProxy::from_string);
    if let Some(p) = &opts.proxy.http_proxy {
        let px = reqwest::Proxy::http(p).with_context(|| format!("http_proxy {p}"))?;
        b = b.proxy(px.no_proxy(no_proxy.clone()));
    }
    if let Some(p) = &opts.proxy.https_proxy {
        let px = reqwest::Proxy::https(p).with_context(|| format!("https_proxy {p}"))?;
        b = b.proxy(px.no_proxy(no_proxy.clone()));
    }
    // Without config proxies, reqwest reads HTTP_PROXY/HTTPS_PROXY/NO_PROXY from the environment.
    b.build().context("building the HTTP client")
}

enum Attempt {
    Ok(Response),
    Retry(String),
}

impl RangeReader {
    /// Send the first request (with retries); fails on a fatal status.
    pub fn open(url: &str, opts: &FetchOptions) -> Result<Self> {
        let mut r = RangeReader {
            client: client(opts)?,
            url: url.to_string(),
            resp: None,
            pos: 0,
            len: None,
            opts: opts.clone(),
            tries: 0,
        };
        r.connect().map_err(|e| anyhow!(e))?;
        Ok(r)
    }

    /// Content-Length of the whole resource, when the server said.
    pub fn content_length(&self) -> Option<u64> {
        self.len
    }

    fn attempt(&mut self) -> Result<Attempt> {
        let mut req = self.client.get(&self.url);
        if self.pos > 0 {
            req = req.header(RANGE, format!("bytes={}-", self.pos));
        }
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Retry(error_chain(&e))),
        };
        let st = resp.status();
        if st == StatusCode::PARTIAL_CONTENT && self.pos > 0 {
            let cr = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !cr.starts_with(&format!("bytes {}-", self.pos)) {
                bail!(
                    "{}: asked to resume at byte {} but the server sent range {cr:?}",
                    self.url,
                    self.pos
                );
            }
            return Ok(Attempt::Ok(resp));
        }
        if st.is_success() {
            if self.len.is_none() {
                self.len = resp.content_length();
            }
            let mut resp = resp;
            if self.pos > 0 {
                // The server ignored Range: skip what we already have.
                tracing::warn!(
                    "{}: the server does not honour Range; skipping {} bytes",
                    self.url,
                    self.pos
                );
                let skipped = io::copy(&mut (&mut resp).take(self.pos), &mut io::sink())?;
                if skipped < self.pos {
                    return Ok(Attempt::Retry(
                        "short body while skipping to the resume point".into(),
                    ));
                }
            }
            return Ok(Attempt::Ok(resp));
        }
        let retryable = st.is_server_error()
            || st == StatusCode::REQUEST_TIMEOUT
            || st == StatusCode::TOO_MANY_REQUESTS;
        if retryable {
            return Ok(Attempt::Retry(format!("HTTP {st}")));
        }
        bail!("fetching {}: HTTP {st}", self.url)
    }

    fn connect(&mut self) -> io::Result<()> {
        loop {
            match self.attempt() {
                Ok(Attempt::Ok(r)) => {
                    self.resp = Some(r);
                    return Ok(());
                }
                Ok(Attempt::Retry(why)) => self.backoff(&why)?,
                Err(e) => return Err(io::Error::other(format!("{e:#}"))),
            }
        }
    }

    fn backoff(&mut self, why: &str) -> io::Result<()> {
        self.tries += 1;
        if self.tries >= self.opts.max_tries {
            return Err(io::Error::other(format!(
                "fetching {}: giving up after {} tries at byte {}: {why}",
                self.url, self.tries, self.pos
            )));
        }
        let wait = self
            .opts
            .backoff
            .saturating_mul(1 << (self.tries - 1).min(16))
            .min(self.opts.max_backoff);
        tracing::warn!(
            "fetching {} at byte {}: {why}; retrying in {wait:?}",
            self.url,
            self.pos
        );
        std::thread::sleep(wait);
        Ok(())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.len.is_some_and(|l| self.pos >= l) {
                // All of it is here; whatever the connection does next does not matter.
                self.resp = None;
                return Ok(0);
            }
            if self.resp.is_none() {
                self.connect()?;
            }
            let resp = self.resp.as_mut().expect("connected");
            match resp.read(buf) {
                Ok(0) => {
                    self.resp = None;
                    match self.len {
                        Some(l) if self.pos < l => self.backoff(&format!(
                            "the body ended early ({} of {l} bytes)",
                            self.pos
                        ))?,
                        Some(l) if self.pos > l => {
                            return Err(io::Error::other(format!(
                                "{}: the server sent {} bytes, more than its Content-Length {l}",
                                self.url, self.pos
                            )))
                        }
                        _ => return Ok(0),
                    }
                }
                Ok(n) => {
                    self.pos += n as u64;
                    self.tries = 0;
                    return Ok(n);
                }
                Err(e) => {
                    self.resp = None;
                    self.backoff(&error_chain(&e))?;
                }
            }
        }
    }
}
