//! The typed top-level config (filled by issue 2).

/// The merged deployment config.
#[derive(Debug, Clone, Default)]
pub struct Config {}
