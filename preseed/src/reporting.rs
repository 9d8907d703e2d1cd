//! `reporting`: named event handlers (curtin `reporter.update_configuration`). A falsy value
//! unregisters a handler; webhook handlers may carry OAuth 1.0 PLAINTEXT credentials (MAAS).

use serde::Deserialize;
use std::collections::BTreeMap;
use yaml_serde::Value;

use crate::issue::{typed, Issue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerType {
    Webhook,
    Log,
    Print,
    Journald,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Handler {
    #[serde(rename = "type")]
    pub kind: HandlerType,
    pub endpoint: Option<String>,
    pub consumer_key: Option<String>,
    #[serde(default)]
    pub consumer_secret: Option<String>,
    pub token_key: Option<String>,
    pub token_secret: Option<String>,
    /// Stored by curtin, not used for filtering by its webhook handler.
    pub level: Option<Value>,
    pub timeout: Option<f64>,
    /// Seconds to sleep between attempts; absent means one attempt.
    pub retries: Option<Vec<f64>>,
    /// `journald` handlers' identifier.
    pub identifier: Option<String>,
}

impl Handler {
    /// OAuth credentials, when configured: (consumer_key, consumer_secret, token_key, token_secret).
    pub fn oauth(&self) -> Option<(&str, &str, &str, &str)> {
        Some((
            self.consumer_key.as_deref()?,
            self.consumer_secret.as_deref().unwrap_or(""),
            self.token_key.as_deref()?,
            self.token_secret.as_deref()?,
        ))
    }
}

/// curtin's `DEFAULT_CONFIG`: `logging: {type: log}`, which a config may override or disable.
pub fn defaults() -> BTreeMap<String, Handler> {
    let log = Handler {
        kind: HandlerType::Log,
        endpoint: None,
        consumer_key: None,
        consumer_secret: None,
        token_key: None,
        token_secret: None,
        level: None,
        timeout: None,
        retries: None,
        identifier: None,
    };
    BTreeMap::from([("logging".to_string(), log)])
}

/// The handlers in effect: curtin's defaults updated by `reporting:` (a falsy value removes
/// a handler, as curtin's `update_configuration` unregisters it).
pub fn from_value(v: &Value) -> Result<BTreeMap<String, Handler>, Issue> {
    let mut out = defaults();
    let m = match v {
        Value::Null => return Ok(out),
        Value::Mapping(m) => m,
        _ => return Err(Issue::new("", "must be a mapping of name -> handler")),
    };
    for (k, v) in m {
        let name = crate::issue::key_string(k);
        if crate::truth::falsy(v) {
            out.remove(&name);
            continue;
        }
        let h: Handler = typed(v).map_err(|e| e.under(&name))?;
        if h.kind == HandlerType::Webhook && h.endpoint.as_deref().unwrap_or("").is_empty() {
            return Err(Issue::new(
                format!("{name}.endpoint"),
                "a webhook handler needs an endpoint",
            ));
        }
        let set = [&h.consumer_key, &h.token_key, &h.token_secret].map(|o| o.is_some());
        if set.iter().any(|b| *b) && !set.iter().all(|b| *b) {
            return Err(Issue::new(
                name,
                "consumer_key, token_key and token_secret must be all set or all absent",
            ));
        }
        out.insert(name, h);
    }
    Ok(out)
}
