//! `network`: placeholder until the network model lands (network work replaces this file with
//! typed version 1). Holds the `network:` value, `version` included.
//!
//! Contract used by `config.rs`: `Network: serde::Deserialize` from the `network:` value.

use serde::Deserialize;
use serde_yaml::Value;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Network {
    V1(Value),
    V2(Value),
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        match v.get("version").and_then(Value::as_u64) {
            Some(1) => Ok(Network::V1(v)),
            Some(2) => Ok(Network::V2(v)),
            _ => Err(D::Error::custom(
                "network needs `version: 1` or `version: 2`",
            )),
        }
    }
}
