//! MAAS's metadata service, as the ephemeral OS sees it: the anonymous preseed behind
//! `cloud-config-url=` (with the node's OAuth credentials in `datasource.MAAS`), and the
//! OAuth-signed curtin installer (MAAS 3.8: `<metadata_url>/2012-03-01/curtin-installer`;
//! up to 3.7: `<metadata_url>/latest/user-data`). Fetches go through
//! [`crate::fetch_config::fetch`] (retries, OAuth PLAINTEXT, clock-skew retry).

use anyhow::{Context, Result};
use yaml_serde::Value;

use crate::fetch_config::{self, OauthCreds};

/// The preseed MAAS served at `cloud-config-url`.
#[derive(Debug, Clone)]
pub struct Preseed {
    pub url: String,
    pub value: Value,
    /// `datasource.MAAS.metadata_url`.
    pub metadata_url: Option<String>,
    pub creds: Option<OauthCreds>,
    /// Its `reporting` (curtin's keys), typed, for a failure before any config is read.
    pub reporting: preseed::Config,
    /// Its `power_state` (cloud-init's; curtin's keys), applied after a deployment.
    pub power_state: Option<preseed::install::PowerState>,
}

impl Preseed {
    pub fn parse(url: &str, text: &str) -> Result<Preseed> {
        let value: Value = yaml_serde::from_str(text)
            .with_context(|| format!("parsing the cloud-config from {url}"))?;
        let ds = value.get("datasource").and_then(|d| d.get("MAAS"));
        let metadata_url = ds
            .and_then(|d| d.get("metadata_url"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let creds = match ds {
            Some(d) => OauthCreds::from_value(d)
                .with_context(|| format!("datasource.MAAS in the cloud-config from {url}"))?,
            None => None,
        };
        // Only these two keys have curtin's meaning in a cloud-config: typed on their own.
        let at = |key: &str, i: preseed::config::Issue| {
            let sub = i.path_string();
            let sep = if sub.is_empty() { "" } else { "." };
            anyhow::anyhow!(
                "{key}{sep}{sub} in the cloud-config from {url}: {}",
                i.message
            )
        };
        let reporting = preseed::Config {
            reporting: preseed::reporting::from_value(
                value.get("reporting").unwrap_or(&Value::Null),
            )
            .map_err(|i| at("reporting", i))?,
            ..preseed::Config::default()
        };
        let power_state = match value.get("power_state") {
            None | Some(Value::Null) => None,
            Some(v) => Some(preseed::config::typed(v).map_err(|i| at("power_state", i))?),
        };
        Ok(Preseed {
            url: url.to_string(),
            value,
            metadata_url,
            creds,
            reporting,
            power_state,
        })
    }

    /// A deployment's preseed points the datasource at `.../MAAS/metadata/curtin` (curtin's
    /// metadata); commissioning, testing, rescue and enlistment point it at `/MAAS/metadata/`
    /// or have none.
    pub fn is_deployment(&self) -> bool {
        self.metadata_url
            .as_deref()
            .is_some_and(|u| u.trim_end_matches('/').ends_with("/curtin"))
    }

    /// Where the installer may be, in the order to try: MAAS 3.8's endpoint, then the
    /// user-data of MAAS up to 3.7.
    pub fn installer_urls(&self) -> Vec<String> {
        let Some(base) = self.metadata_url.as_deref() else {
            return vec![];
        };
        let base = base.trim_end_matches('/');
        vec![
            format!("{base}/2012-03-01/curtin-installer"),
            format!("{base}/latest/user-data"),
        ]
    }
}

/// GET the preseed (anonymous, as cloud-init fetches it).
pub fn fetch_preseed(url: &str) -> Result<Preseed> {
    let text = fetch_config::fetch(url, None)?;
    Preseed::parse(url, &text)
}

/// The installer text from the first endpoint that has one; None when every endpoint
/// answers 404 (MAAS has no installer for this node). Other failures are errors.
pub fn fetch_installer(p: &Preseed) -> Result<Option<(String, String)>> {
    for url in p.installer_urls() {
        match fetch_config::fetch_if_found(&url, p.creds.as_ref())
            .context("fetching the curtin installer from MAAS")?
        {
            Some(text) => return Ok(Some((url, text))),
            None => tracing::info!("{url}: 404"),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_or_not() {
        let dep = Preseed::parse(
            "u",
            "#cloud-config\ndatasource: {MAAS: {metadata_url: 'http://r:5248/MAAS/metadata/curtin', consumer_key: c, token_key: t, token_secret: s}}\n",
        )
        .unwrap();
        assert!(dep.is_deployment());
        assert_eq!(
            dep.installer_urls(),
            [
                "http://r:5248/MAAS/metadata/curtin/2012-03-01/curtin-installer",
                "http://r:5248/MAAS/metadata/curtin/latest/user-data"
            ]
        );
        assert_eq!(dep.creds.unwrap().token_secret, "s");
        let com = Preseed::parse(
            "u",
            "datasource: {MAAS: {metadata_url: 'http://r:5248/MAAS/metadata/', consumer_key: c, token_key: t, token_secret: s}}\n",
        )
        .unwrap();
        assert!(!com.is_deployment());
        assert!(!Preseed::parse("u", "#cloud-config\n{}")
            .unwrap()
            .is_deployment());
        assert!(Preseed::parse("u", "datasource: {MAAS: {consumer_key: c}}").is_err());
    }
}
