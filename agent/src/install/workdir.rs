//! curtin's WorkingDir: a top directory with `state/` (config JSON, fstab, network files),
//! `scratch/` and `target/`, and the environment every stage command gets.
//!
//! Local to install until `deployer::workdir` (branch wt-target) lands.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_yaml::Value;

pub struct WorkingDir {
    pub top: PathBuf,
    pub state: PathBuf,
    pub scratch: PathBuf,
    pub target: PathBuf,
    pub config: PathBuf,
    pub fstab: PathBuf,
    pub network_config: PathBuf,
    pub network_state: PathBuf,
    pub interfaces: PathBuf,
    /// Holds the `curtin` link to this binary, first on the stage commands' PATH.
    pub bin: PathBuf,
}

impl WorkingDir {
    /// Create the directories and state files; `target` from `install.target` or `top/target`
    /// (which must be empty, as in curtin).
    pub fn create(cfg: &Value) -> anyhow::Result<Self> {
        let top = tempfile::Builder::new()
            .prefix("deployer-")
            .tempdir()
            .context("creating the working directory")?
            .keep();
        let state = top.join("state");
        let scratch = top.join("scratch");
        let bin = top.join("bin");
        let target = match cfg
            .get("install")
            .and_then(|i| i.get("target"))
            .and_then(|t| t.as_str())
        {
            Some(t) => PathBuf::from(t),
            None => top.join("target"),
        };
        for d in [&state, &scratch, &bin, &target] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        if std::fs::read_dir(&target)?.next().is_some() {
            anyhow::bail!(
                "install.target {} is not empty: curtin installs only into an empty directory",
                target.display()
            );
        }
        let wd = WorkingDir {
            config: state.join("config"),
            fstab: state.join("fstab"),
            network_config: state.join("network_config"),
            network_state: state.join("network_state"),
            interfaces: state.join("interfaces"),
            top,
            state,
            scratch,
            target,
            bin,
        };
        let json = serde_json::to_vec_pretty(&serde_json::to_value(cfg)?)?;
        std::fs::write(&wd.config, json)
            .with_context(|| format!("writing {}", wd.config.display()))?;
        for f in [&wd.fstab, &wd.network_config, &wd.network_state] {
            std::fs::write(f, b"").with_context(|| format!("creating {}", f.display()))?;
        }
        let exe = std::env::current_exe().context("finding this binary for the curtin link")?;
        std::os::unix::fs::symlink(&exe, wd.bin.join("curtin"))
            .with_context(|| format!("linking {}/curtin", wd.bin.display()))?;
        Ok(wd)
    }

    /// The variables every stage command gets (curtin's `WorkingDir.env()`), PATH included.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let p = |p: &Path| p.as_os_str().to_owned();
        let mut path = OsString::from(self.bin.as_os_str());
        if let Some(old) = std::env::var_os("PATH") {
            path.push(":");
            path.push(old);
        }
        vec![
            ("TARGET_MOUNT_POINT", p(&self.target)),
            ("WORKING_DIR", p(&self.scratch)),
            ("OUTPUT_FSTAB", p(&self.fstab)),
            ("OUTPUT_NETWORK_CONFIG", p(&self.network_config)),
            ("OUTPUT_NETWORK_STATE", p(&self.network_state)),
            ("OUTPUT_INTERFACES", p(&self.interfaces)),
            ("CONFIG", p(&self.config)),
            ("PATH", path),
        ]
    }
}
