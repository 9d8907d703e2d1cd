//! The storage config types block-meta works from: the config model's.

pub use preseed::storage::*;
