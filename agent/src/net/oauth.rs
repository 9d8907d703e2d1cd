//! OAuth 1.0 PLAINTEXT headers as curtin (oauthlib) and MAAS send them, and the clock-skew
//! correction curtin applies when the server rejects a timestamp.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;

/// The MAAS node credentials (`consumer_secret` is empty in MAAS).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct OauthCreds {
    pub consumer_key: String,
    #[serde(default)]
    pub consumer_secret: String,
    pub token_key: String,
    pub token_secret: String,
}

impl OauthCreds {
    /// From a mapping with curtin's key names; all three keys, or none (curtin raises otherwise).
    pub fn from_value(v: &yaml_serde::Value) -> anyhow::Result<Option<Self>> {
        let get = |k: &str| v.get(k).and_then(value_str);
        let (ck, tk, ts) = (get("consumer_key"), get("token_key"), get("token_secret"));
        match (ck, tk, ts) {
            (None, None, None) => Ok(None),
            (Some(ck), Some(tk), Some(ts)) => Ok(Some(OauthCreds {
                consumer_key: ck,
                consumer_secret: get("consumer_secret").unwrap_or_default(),
                token_key: tk,
                token_secret: ts,
            })),
            _ => anyhow::bail!(
                "OAuth credentials need all of consumer_key, token_key and token_secret, or none of them"
            ),
        }
    }

    /// The `Authorization` header value for a request to `url`.
    pub fn header(&self, url: &str) -> String {
        let ts = (unix_now() + skew_for(url)).max(0);
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let sig = format!("{}&{}", pct(&self.consumer_secret), pct(&self.token_secret));
        let params = [
            ("oauth_nonce", nonce),
            ("oauth_timestamp", ts.to_string()),
            ("oauth_version", "1.0".to_string()),
            ("oauth_signature_method", "PLAINTEXT".to_string()),
            ("oauth_consumer_key", self.consumer_key.clone()),
            ("oauth_token", self.token_key.clone()),
            ("oauth_signature", sig),
        ];
        let body: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", pct(v)))
            .collect();
        format!("OAuth {}", body.join(", "))
    }
}

fn value_str(v: &yaml_serde::Value) -> Option<String> {
    match v {
        yaml_serde::Value::String(s) => Some(s.clone()),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// RFC 5849 percent-encoding: everything but unreserved characters.
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Per-host skew (server − local, seconds). Shared with child processes through a small JSON
/// file as curtin does (`/run/oauth_skew.json`; `$DEPLOYER_OAUTH_SKEW_FILE` overrides).
static SKEW: Mutex<Option<HashMap<String, i64>>> = Mutex::new(None);

fn skew_file() -> PathBuf {
    std::env::var_os("DEPLOYER_OAUTH_SKEW_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/oauth_skew.json"))
}

fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_string()))
        .unwrap_or_default()
}

fn with_skews<T>(f: impl FnOnce(&mut HashMap<String, i64>) -> T) -> T {
    let mut g = SKEW.lock().unwrap_or_else(|e| e.into_inner());
    let map = g.get_or_insert_with(|| {
        std::fs::read(skew_file())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    });
    f(map)
}

pub fn skew_for(url: &str) -> i64 {
    let host = host_of(url);
    with_skews(|m| m.get(&host).copied().unwrap_or(0))
}

/// After a 401/403: learn the skew from the server's `Date`. Returns true when it changed by
/// more than 5 s (curtin's threshold), i.e. when a retry with a corrected timestamp may help.
pub fn learn_skew(url: &str, date_header: &str) -> bool {
    let Ok(server) = httpdate::parse_http_date(date_header) else {
        return false;
    };
    let server = server
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let skew = server - unix_now();
    let host = host_of(url);
    with_skews(|m| {
        let old = m.get(&host).copied().unwrap_or(0);
        if (skew - old).abs() <= 5 {
            return false;
        }
        m.insert(host, skew);
        if let Ok(j) = serde_json::to_vec(m) {
            let _ = std::fs::write(skew_file(), j);
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_header_has_every_field() {
        let c = OauthCreds {
            consumer_key: "ck".into(),
            consumer_secret: String::new(),
            token_key: "tk".into(),
            token_secret: "s3/cr+t".into(),
        };
        let h = c.header("http://127.0.0.1:1/x");
        assert!(h.starts_with("OAuth "), "{h}");
        for f in [
            "oauth_version=\"1.0\"",
            "oauth_signature_method=\"PLAINTEXT\"",
            "oauth_consumer_key=\"ck\"",
            "oauth_token=\"tk\"",
            // "&" + pct(secret), percent-encoded again in the header
            "oauth_signature=\"%26s3%252Fcr%252Bt\"",
            "oauth_nonce=\"",
            "oauth_timestamp=\"",
        ] {
            assert!(h.contains(f), "{f} missing in {h}");
        }
    }

    #[test]
    fn all_or_none() {
        let v: yaml_serde::Value = yaml_serde::from_str("consumer_key: a\ntoken_key: b").unwrap();
        assert!(OauthCreds::from_value(&v).is_err());
        let v: yaml_serde::Value = yaml_serde::from_str("type: webhook").unwrap();
        assert_eq!(OauthCreds::from_value(&v).unwrap(), None);
    }
}
