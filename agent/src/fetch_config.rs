//! Config from the network: plain or OAuth1-signed (MAAS metadata) HTTP(S) fetches with
//! retries, and discovery from the kernel command line (`deployer.config=URL`, MAAS's
//! `cloud-config-url=URL`), so that a unit in the ephemeral OS can start the agent with no
//! arguments.

use std::time::Duration;

use anyhow::Context;
use serde_yaml::Value;

pub use crate::report::OauthCreds;

/// Sleeps between attempts: 5 attempts over about 15 s, as a metadata service that is
/// briefly unreachable at boot deserves.
const BACKOFF: [u64; 4] = [1, 2, 4, 8];

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// GET `url` (OAuth-signed when `oauth` is given), retrying connection failures, timeouts,
/// 5xx, 408 and 429; 4xx other than those fail at once with the status in the message.
pub fn fetch(url: &str, oauth: Option<&OauthCreds>) -> anyhow::Result<String> {
    let backoff: Vec<Duration> = match std::env::var("DEPLOYER_FETCH_BACKOFF_MS") {
        // Tests shorten the waits.
        Ok(ms) => {
            let ms: u64 = ms.parse().unwrap_or(10);
            BACKOFF.iter().map(|_| Duration::from_millis(ms)).collect()
        }
        Err(_) => BACKOFF.iter().map(|s| Duration::from_secs(*s)).collect(),
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("deployer/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let mut attempt = 0;
    let mut skew_retry = true;
    loop {
        let mut req = client.get(url);
        if let Some(o) = oauth {
            req = req.header("Authorization", o.header(url));
        }
        let (err, retry) = match req.send() {
            Ok(resp) if resp.status().is_success() => {
                return resp
                    .text()
                    .with_context(|| format!("reading config from {url}"));
            }
            Ok(resp) => {
                let status = resp.status();
                let code = status.as_u16();
                if oauth.is_some() && matches!(code, 401 | 403) && skew_retry {
                    if let Some(d) = resp.headers().get("date").and_then(|d| d.to_str().ok()) {
                        if crate::report::oauth::learn_skew(url, d) {
                            skew_retry = false;
                            continue;
                        }
                    }
                }
                let hint = match code {
                    401 | 403 if oauth.is_none() => " (the server wants credentials: is this a MAAS metadata URL that needs OAuth?)",
                    401 | 403 => " (the server refused the OAuth credentials)",
                    404 => " (no such config on the server)",
                    _ => "",
                };
                (
                    anyhow::anyhow!("HTTP {status}{hint}"),
                    status.is_server_error() || matches!(code, 408 | 429),
                )
            }
            Err(e) => (anyhow::Error::from(e), true),
        };
        if !retry || attempt >= backoff.len() {
            let tries = attempt + 1;
            return Err(err.context(format!(
                "fetching config {url} (after {tries} attempt{})",
                if tries == 1 { "" } else { "s" }
            )));
        }
        tracing::warn!("fetching config {url}: {err:#}; retrying");
        std::thread::sleep(backoff[attempt]);
        attempt += 1;
    }
}

/// The kernel command line (`$DEPLOYER_CMDLINE_FILE` overrides /proc/cmdline for tests).
pub fn kernel_cmdline() -> String {
    let path = std::env::var("DEPLOYER_CMDLINE_FILE").unwrap_or_else(|_| "/proc/cmdline".into());
    std::fs::read_to_string(path).unwrap_or_default()
}

/// What the kernel command line says about where the config is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CmdlineConfig {
    /// `deployer.config=URL` (repeatable; merged in order).
    pub configs: Vec<String>,
    /// MAAS's `cloud-config-url=URL` (anonymous preseed with the node's credentials).
    pub cloud_config_url: Option<String>,
}

pub fn parse_cmdline(cmdline: &str) -> CmdlineConfig {
    let mut out = CmdlineConfig::default();
    for word in cmdline.split_whitespace() {
        if word == "---" {
            break; // what follows is for the installed OS
        }
        if let Some(v) = word.strip_prefix("deployer.config=") {
            out.configs.push(v.to_string());
        } else if let Some(v) = word.strip_prefix("cloud-config-url=") {
            out.cloud_config_url = Some(v.to_string());
        }
    }
    out
}

/// The config documents named on the kernel command line, fetched, in merge order: the MAAS
/// preseed from `cloud-config-url` first (it carries `reporting`), then each
/// `deployer.config` URL, signed with the preseed's `datasource.MAAS` credentials if any.
pub fn from_cmdline() -> anyhow::Result<Vec<(String, String)>> {
    let c = parse_cmdline(&kernel_cmdline());
    if c.configs.is_empty() && c.cloud_config_url.is_none() {
        anyhow::bail!(
            "no config: pass -c FILE_OR_URL (repeatable), set $CONFIG, or boot with deployer.config=URL (or MAAS's cloud-config-url=URL) on the kernel command line"
        );
    }
    let mut docs = Vec::new();
    let mut creds = None;
    if let Some(u) = &c.cloud_config_url {
        let text = fetch(u, None)?;
        let v: Value = serde_yaml::from_str(&text)
            .with_context(|| format!("parsing the cloud-config from {u}"))?;
        if let Some(ds) = v.get("datasource").and_then(|d| d.get("MAAS")) {
            creds = OauthCreds::from_value(ds)
                .with_context(|| format!("datasource.MAAS in the cloud-config from {u}"))?;
        }
        docs.push((u.clone(), text));
    }
    for u in &c.configs {
        docs.push((u.clone(), fetch(u, creds.as_ref())?));
    }
    Ok(docs)
}

/// The MAAS node credentials from the preseed at `cloud-config-url`, when the kernel command
/// line has one (used to sign `-c` URLs on the metadata service); None on any failure.
pub fn cmdline_creds() -> Option<OauthCreds> {
    let u = parse_cmdline(&kernel_cmdline()).cloud_config_url?;
    let text = fetch(&u, None).ok()?;
    let v: Value = serde_yaml::from_str(&text).ok()?;
    OauthCreds::from_value(v.get("datasource")?.get("MAAS")?).ok()?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_words() {
        let c = parse_cmdline(
            "ro root=squash:http://x cloud-config-url=http://r:5248/MAAS/metadata/latest/by-id/abc/?op=get_preseed deployer.config=http://a/1 deployer.config=http://a/2 --- deployer.config=http://no",
        );
        assert_eq!(c.configs, vec!["http://a/1", "http://a/2"]);
        assert_eq!(
            c.cloud_config_url.as_deref(),
            Some("http://r:5248/MAAS/metadata/latest/by-id/abc/?op=get_preseed")
        );
        assert_eq!(parse_cmdline("quiet"), CmdlineConfig::default());
    }
}
