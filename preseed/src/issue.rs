//! A problem at a key path, typed reading of part of a config, and values in messages: what
//! the config model and its sections share (below all of them, so none imports another back).

use serde::de::DeserializeOwned;
use yaml_serde::Value;

use crate::path::{parse_path, path_string, scalar_string, Seg};

/// A problem found at a key path, before it is placed in a file (see [`crate::load`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: Vec<Seg>,
    pub message: String,
}

impl Issue {
    /// `path` is relative, written as in messages: `config[3].size`, `[0]`, `` for here.
    pub fn new(path: impl AsRef<str>, message: impl Into<String>) -> Issue {
        Issue {
            path: parse_path(path.as_ref()),
            message: message.into(),
        }
    }

    /// The same issue one level down from `prefix` (a key, or `[i]`, or a dotted path).
    pub fn under(mut self, prefix: &str) -> Issue {
        let mut p = parse_path(prefix);
        p.append(&mut self.path);
        self.path = p;
        self
    }

    pub fn path_string(&self) -> String {
        path_string(&self.path)
    }
}

/// Deserialize a typed value from part of the config; the error keeps the key path inside it.
pub fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, Issue> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let path: Vec<Seg> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { .. }
                | serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        Issue {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// A mapping key as text.
pub fn key_string(k: &Value) -> String {
    scalar_string(k).unwrap_or_else(|| show(k))
}

/// A short rendering of a value for messages.
pub fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        other => crate::yaml::to_string(other)
            .map(|s| s.trim_end().to_string())
            .unwrap_or_else(|_| format!("{other:?}")),
    }
}
