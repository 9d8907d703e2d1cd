//! Config errors that name the file, the line and column, and the key path
//! (`storage.config[3].size`), so that a user can go straight to the mistake.

use std::fmt;

/// One config error. `origin`, `line` and `column` are filled when the offending value can be
/// traced to a document (the last one that set the key, since later documents win).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `--set`, or `<file>#part N` for an archive part) the value came from.
    pub origin: Option<String>,
    /// 1-based line and column of the value in `origin`.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key path, e.g. `storage.config[3].size`; empty for a whole document.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    /// An error with a key path and no location yet.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: None,
            line: None,
            column: None,
            path: path.into(),
            message: message.into(),
        }
    }

    /// An error about a whole document.
    pub fn in_doc(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: Some(origin.into()),
            ..ConfigError::at("", message)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = &self.origin {
            write!(f, "{o}")?;
            if let (Some(l), Some(c)) = (self.line, self.column) {
                write!(f, ":{l}:{c}")?;
            }
            write!(f, ": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
