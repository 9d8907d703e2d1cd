//! Config from the network: plain or OAuth1-signed (MAAS metadata) HTTP(S) fetches with
//! retries, and discovery from the kernel command line (`deployer.config=URL`, MAAS's
//! `cloud-config-url=URL`), so that a unit in the ephemeral OS can start the agent with no
//! arguments.

use anyhow::Context;
use yaml_serde::Value;

pub use crate::net::OauthCreds;
use crate::net::{self, Policy};

pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// GET `url` (OAuth-signed when `oauth` is given) through the shared client under
/// [`Policy::config`]; a status that retries cannot fix fails with a hint of what it means.
pub fn fetch(url: &str, oauth: Option<&OauthCreds>) -> anyhow::Result<String> {
    fetch_if_found(url, oauth)?.ok_or_else(|| {
        anyhow::anyhow!("fetching config {url}: HTTP 404 Not Found (no such config on the server)")
    })
}

/// [`fetch`], with a 404 as `None`: for URLs that may rightly have nothing (MAAS's installer
/// for a node that is not being deployed).
pub fn fetch_if_found(url: &str, oauth: Option<&OauthCreds>) -> anyhow::Result<Option<String>> {
    // Configs come before the config's `proxy:` is known: the environment's proxies apply.
    let client = net::client(&Default::default())?;
    let resp = match net::send("fetching config", url, oauth, Policy::config(), &|| {
        client.get(url)
    }) {
        Ok(r) => r,
        Err(f) if f.status.map(|s| s.as_u16()) == Some(404) => return Ok(None),
        Err(f) => {
            let hint = match f.status.map(|s| s.as_u16()) {
                Some(401 | 403) if oauth.is_none() => {
                    " (the server wants credentials: is this a MAAS metadata URL that needs OAuth?)"
                }
                Some(401 | 403) => " (the server refused the OAuth credentials)",
                _ => "",
            };
            return Err(anyhow::anyhow!(
                "fetching config {url} ({}): {}{hint}",
                f.attempts(),
                f.error
            ));
        }
    };
    resp.text()
        .map(Some)
        .with_context(|| format!("reading config from {url}"))
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
        let v: Value = preseed::yaml::from_str(&text)
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
    let v: Value = preseed::yaml::from_str(&text).ok()?;
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
