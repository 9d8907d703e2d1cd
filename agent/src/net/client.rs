//! The process's HTTP client: rustls, the config's `proxy:` over the environment's, one
//! User-Agent, connect and stall timeouts. Built once for each proxy setting (in practice once a
//! process) and shared, so images, configs and events share one connection pool.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use preseed::install::Proxy;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, DATE};
use reqwest::StatusCode;

use super::oauth::{self, OauthCreds};
use super::retry::{self, Backoff, Policy};

pub const USER_AGENT: &str = concat!("deployer/", env!("CARGO_PKG_VERSION"));

/// Connecting takes at most this long (a dead host should not cost a whole stall timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the wait for a response, or one read of its body, may make no progress before it
/// counts as a stall: 60 s, which suits mirrors behind slow proxies. `$DEPLOYER_HTTP_STALL_SECS`
/// exists for tests of the stall path.
pub fn stall_timeout() -> Duration {
    let secs = std::env::var("DEPLOYER_HTTP_STALL_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

static CLIENTS: Mutex<Vec<(Proxy, Client)>> = Mutex::new(Vec::new());

/// The client for `proxy` (the config's `proxy:` key; the default means the environment's).
pub fn client(proxy: &Proxy) -> Result<Client> {
    let mut built = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = built.iter().find(|(p, _)| p == proxy) {
        return Ok(c.clone());
    }
    let c = build(proxy)?;
    built.push((proxy.clone(), c.clone()));
    Ok(c)
}

fn build(proxy: &Proxy) -> Result<Client> {
    let stall = stall_timeout();
    let mut b = Client::builder()
        .user_agent(USER_AGENT)
        .timeout(stall)
        .connect_timeout(CONNECT_TIMEOUT.min(stall));
    // Without config proxies reqwest reads http_proxy, https_proxy, all_proxy and no_proxy from
    // the environment itself. With them, do what curtin does when it exports the config's keys
    // into its environment: a key the config sets wins, a key it leaves out keeps the
    // environment's value.
    if proxy != &Proxy::default() {
        let env = |k: &str| {
            std::env::var(k)
                .or_else(|_| std::env::var(k.to_ascii_uppercase()))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let http = proxy.http_proxy.clone().or_else(|| env("http_proxy"));
        let https = proxy.https_proxy.clone().or_else(|| env("https_proxy"));
        let no = proxy.no_proxy.clone().or_else(|| env("no_proxy"));
        let no = no.as_deref().and_then(reqwest::NoProxy::from_string);
        b = b.no_proxy();
        if let Some(p) = http {
            let px = reqwest::Proxy::http(&p).with_context(|| format!("http_proxy {p}"))?;
            b = b.proxy(px.no_proxy(no.clone()));
        }
        if let Some(p) = https {
            let px = reqwest::Proxy::https(&p).with_context(|| format!("https_proxy {p}"))?;
            b = b.proxy(px.no_proxy(no));
        }
    }
    b.build().context("building the HTTP client")
}

/// Why an exchange failed for good.
#[derive(Debug)]
pub struct Failure {
    /// The last status, or None for a connection error or timeout.
    pub status: Option<StatusCode>,
    pub tries: u32,
    pub error: String,
}

impl Failure {
    /// "after 3 attempts"
    pub fn attempts(&self) -> String {
        let s = if self.tries == 1 { "" } else { "s" };
        format!("after {} attempt{s}", self.tries)
    }
}

/// Send the request `build` makes until it succeeds, under `policy`: connection errors,
/// timeouts, 408, 429 and 5xx are tried again after the policy's wait (`Retry-After`
/// honoured); with `oauth`, each try is signed afresh, and a 401/403 whose `Date` shows a clock
/// skew is signed with the corrected clock and sent again at once (once). Any other status
/// fails at once. `what` names the exchange in the log.
pub fn send(
    what: &str,
    url: &str,
    oauth: Option<&OauthCreds>,
    policy: Policy,
    build: &dyn Fn() -> RequestBuilder,
) -> std::result::Result<Response, Failure> {
    let mut backoff = Backoff::new(policy);
    let mut skew_retry = true;
    loop {
        let mut req = build();
        if let Some(o) = oauth {
            req = req.header(AUTHORIZATION, o.header(url));
        }
        let (status, error, after) = match req.send() {
            Ok(r) if r.status().is_success() => return Ok(r),
            Ok(r) => {
                let st = r.status();
                if oauth.is_some() && matches!(st.as_u16(), 401 | 403) {
                    let date = r.headers().get(DATE).and_then(|d| d.to_str().ok());
                    if date.is_some_and(|d| oauth::learn_skew(url, d)) && skew_retry {
                        skew_retry = false;
                        continue;
                    }
                }
                let error = format!("HTTP {st}");
                if !retry::retryable(st) {
                    return Err(Failure {
                        status: Some(st),
                        tries: backoff.tries() + 1,
                        error,
                    });
                }
                (Some(st), error, retry::retry_after(r.headers()))
            }
            Err(e) => (None, error_chain(&e), None),
        };
        match backoff.failed(after) {
            Some(wait) => {
                tracing::warn!("{what} {url}: {error}; retrying in {wait:.1?}");
                std::thread::sleep(wait);
            }
            None => {
                return Err(Failure {
                    status,
                    tries: backoff.tries(),
                    error,
                })
            }
        }
    }
}

/// An error and its causes on one line (reqwest's own message hides the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}
