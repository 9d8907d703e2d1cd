//! `deployer validate` and `deployer plan`: load the config, and say what each stage of an
//! install would do with it, in curtin's stage order. Nothing is opened for writing: a plan
//! reads the config, and looks at the target and /dev/disk/by-id only to name the disk.

mod disk;
mod stages;

pub use disk::human;

use std::io::Write;

use crate::cli::{Global, PlanArgs, ValidateArgs};

/// Load and check the config; warnings to stderr; `--print` dumps the merged config as YAML.
pub fn validate(g: &Global, a: &ValidateArgs) -> anyhow::Result<()> {
    let loaded = crate::config::load(g)?;
    for w in warnings(&loaded) {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    if a.print {
        write!(out, "{}", preseed::yaml::to_string(&loaded.merged)?)?;
    } else {
        writeln!(out, "config is valid: {}", summary(&loaded))?;
    }
    Ok(())
}

/// The dry run.
pub fn run(g: &Global, a: &PlanArgs) -> anyhow::Result<()> {
    let loaded = crate::config::load(g)?;
    for w in warnings(&loaded) {
        eprintln!("warning: {w}");
    }
    let target = a.target.as_deref().map(disk::Target::inspect).transpose()?;
    let lines = stages::plan(&loaded.config, target.as_ref());
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(())
}

/// The plan's lines for a loaded config and no `--target` (what `deployer inspect` shows).
pub fn lines(c: &preseed::Config) -> Vec<String> {
    stages::plan(c, None)
}

/// The loader's warnings, plus what an install could not do yet.
fn warnings(l: &preseed::load::Loaded) -> Vec<String> {
    let mut w = l.warnings.clone();
    if let Some(s) = l.config.storage.as_ref().filter(|s| !s.disks_only) {
        w.extend(
            s.config
                .iter()
                .filter_map(|i| i.unsupported())
                .map(|m| format!("storage: an install would stop here: {m}")),
        );
    }
    w
}

fn summary(l: &preseed::load::Loaded) -> String {
    let c = &l.config;
    let mut parts = vec![format!(
        "{} source{}",
        c.sources.len(),
        if c.sources.len() == 1 { "" } else { "s" }
    )];
    if let Some(s) = &c.storage {
        parts.push(format!(
            "storage v{} with {} items",
            s.version,
            s.config.len()
        ));
    }
    match c.network.as_ref().map(|n| &n.body) {
        Some(preseed::network::Body::V1(_)) => parts.push("network v1".into()),
        Some(preseed::network::Body::V2) => parts.push("network v2".into()),
        Some(preseed::network::Body::Disabled) => parts.push("network disabled".into()),
        None => {}
    }
    if !c.reporting.is_empty() {
        parts.push(format!("{} reporting handler(s)", c.reporting.len()));
    }
    parts.join(", ")
}
