//! TEMPORARY: reads the `-c` files (or $CONFIG) with `preseed::load` until the agent-side
//! `deployer::config::load` (URLs, `--set`) lands; then this file goes.

use std::path::PathBuf;

use anyhow::Result;

pub fn load(global: &crate::cli::Global) -> Result<preseed::load::Loaded> {
    let mut files: Vec<PathBuf> = global.config.iter().map(PathBuf::from).collect();
    if files.is_empty() {
        if let Some(c) = std::env::var_os("CONFIG") {
            files.push(PathBuf::from(c));
        }
    }
    Ok(preseed::load::load_files(&files)?)
}
