//! Config errors (filled by issue 2).

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
