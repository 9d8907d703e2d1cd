//! YAML as curtin and cloud-init read and write it: YAML 1.1, through PyYAML.
//!
//! - [`read`]: a config as PyYAML's `safe_load` reads it (`yes` is a boolean, `0644` is 420,
//!   a key given twice keeps its last value), with the position of every node.
//! - [`to_string`]: YAML that YAML 1.1 and 1.2 readers both read back as it was meant.
//!
//! The value type is yaml_serde's (the YAML organization's continuation of yaml_serde); the
//! parser is saphyr-parser, whose events carry the scalar style and position that PyYAML's
//! rules need. yaml_serde's own reader (YAML 1.2, duplicate keys refused) reads no config.

mod read;
pub mod resolve;
mod write;

pub use read::{from_str, read, Duplicate, Marks, Read, ReadError, MAX_NESTING, MAX_NODES};
pub use write::{is_yaml11_non_string, to_string};
