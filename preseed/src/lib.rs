//! The curtin configuration model, and a MAAS-style generator of deployment configs.
//!
//! `preseed` is the language, `deployer` (the agent) the engine: this crate reads, merges,
//! validates and writes configs and never touches a disk.
//!
//! - [`load`]: reading YAML/JSON documents and config archives, merging them in curtin's order.
//! - [`nesting`]: refusing absurdly deep nesting before the YAML parser recurses into it.
//! - [`config`]: the typed top-level [`config::Config`] and its warnings for unknown keys.
//! - [`sources`], [`storage`], [`network`], [`commands`], [`reporting`], [`install`]: one module
//!   per top-level key family.
//! - [`size`]: curtin's size units.
//! - [`error`]: errors that name the file, line, column and key path.
//! - [`yaml`]: writing YAML that YAML 1.1 readers (curtin, cloud-init) read back the same.
//! - [`generate`]: configs and user-data the way MAAS builds them for custom images.

pub mod commands;
pub mod config;
pub mod error;
pub mod generate;
pub mod install;
pub mod issue;
pub mod load;
pub mod nesting;
pub mod network;
pub mod path;
pub mod reporting;
pub mod settings;
pub mod size;
pub mod sources;
pub mod storage;
pub mod truth;
pub mod yaml;

pub use config::Config;
pub use error::{ConfigError, Result};
