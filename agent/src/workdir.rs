//! curtin's working directory: the state files stages share, and the environment every stage
//! command and hook gets (curtin's `WorkingDir` and `load_command_environment`).
//!
//! Layout under `top`: `state/{config,fstab,network_config,network_state}` (created empty;
//! `state/interfaces` is only a path), `scratch/`, `target/` (unless the target is elsewhere)
//! and `bin/curtin`, a link to the running executable so that hooks and late commands that call
//! `curtin ...` reach deployer.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use preseed::load::Loaded;

/// The environment variable names, as curtin spells them.
pub mod var {
    pub const TARGET: &str = "TARGET_MOUNT_POINT";
    pub const CONFIG: &str = "CONFIG";
    pub const SCRATCH: &str = "WORKING_DIR";
    pub const FSTAB: &str = "OUTPUT_FSTAB";
    pub const NETWORK_CONFIG: &str = "OUTPUT_NETWORK_CONFIG";
    pub const NETWORK_STATE: &str = "OUTPUT_NETWORK_STATE";
    pub const INTERFACES: &str = "OUTPUT_INTERFACES";
    pub const REPORTSTACK: &str = "CURTIN_REPORTSTACK";
    pub const VERBOSITY: &str = "CURTIN_VERBOSITY";
}

/// Proxy settings exported to every command (config `proxy:`).
pub use preseed::install::Proxy;

/// The working directory of one install (or of one stage run alone).
#[derive(Debug, Clone)]
pub struct WorkingDir {
    pub top: PathBuf,
    pub target: PathBuf,
    pub scratch: PathBuf,
    pub config: PathBuf,
    pub fstab: PathBuf,
    pub network_config: PathBuf,
    pub network_state: PathBuf,
    pub interfaces: PathBuf,
    /// The event-name prefix for commands run from here.
    pub report_stack: String,
    pub verbosity: u8,
    pub proxy: Proxy,
    /// A Python `curtin` package dir's parent, put on PYTHONPATH for packer-maas hooks.
    pub python_curtin: Option<PathBuf>,
    /// The dir holding a `curtin` entry point, put first on PATH.
    pub bin: PathBuf,
    /// Made for one stage command run alone (removed by [`WorkingDir::finish`]).
    pub ephemeral: bool,
}

impl WorkingDir {
    /// Create a fresh working dir under `parent` (a new temp dir in it). `target`: the target
    /// mount point, or None for `<top>/target` (which is created). `config` is the merged
    /// config, written to `state/config` as JSON.
    pub fn create(parent: &Path, target: Option<&Path>, config: &Loaded) -> Result<WorkingDir> {
        let top = tempfile::Builder::new()
            .prefix("deployer-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a working dir in {}", parent.display()))?
            .keep();
        Self::create_at(&top, target, config)
    }

    /// Like [`WorkingDir::create`] in an existing (empty or new) dir.
    pub fn create_at(top: &Path, target: Option<&Path>, config: &Loaded) -> Result<WorkingDir> {
        let state = top.join("state");
        let scratch = top.join("scratch");
        for d in [&state, &scratch] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let target = match target {
            Some(t) => t.to_path_buf(),
            None => top.join("target"),
        };
        if !target.exists() {
            fs::create_dir_all(&target)
                .with_context(|| format!("creating target dir {}", target.display()))?;
        }
        let wd = WorkingDir {
            top: top.to_path_buf(),
            target,
            scratch,
            config: state.join("config"),
            fstab: state.join("fstab"),
            network_config: state.join("network_config"),
            network_state: state.join("network_state"),
            interfaces: state.join("interfaces"),
            report_stack: String::new(),
            verbosity: 0,
            proxy: config.config.proxy.clone(),
            python_curtin: Some(python_curtin_for_hooks(&config.config, top)?),
            bin: top.join("bin"),
            ephemeral: false,
        };
        // curtin touches these so that hooks can open them; `interfaces` is not created.
        for f in [&wd.fstab, &wd.network_config, &wd.network_state] {
            if !f.exists() {
                fs::write(f, b"").with_context(|| format!("creating {}", f.display()))?;
            }
        }
        wd.write_config(&config.merged)?;
        wd.ensure_curtin_entry()?;
        Ok(wd)
    }

    /// Rebuild from the environment a stage command was started with (curtin's
    /// `load_command_environment`). Missing variables are an error naming them.
    pub fn from_env() -> Result<WorkingDir> {
        let get = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let need = |k: &str| {
            get(k).with_context(|| {
                format!("${k} is not set: run this as a stage of an install, or pass the paths")
            })
        };
        let fstab = need(var::FSTAB)?;
        let state = fstab.parent().map(Path::to_path_buf).unwrap_or_default();
        let top = state.parent().map(Path::to_path_buf).unwrap_or_default();
        let path_first = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).next())
            .unwrap_or_default();
        let pythonpath =
            std::env::var_os("PYTHONPATH").and_then(|p| std::env::split_paths(&p).next());
        let proxy = Proxy {
            http_proxy: std::env::var("http_proxy").ok(),
            https_proxy: std::env::var("https_proxy").ok(),
            no_proxy: std::env::var("no_proxy").ok(),
        };
        Ok(WorkingDir {
            target: need(var::TARGET)?,
            scratch: get(var::SCRATCH).unwrap_or_else(|| top.join("scratch")),
            config: need(var::CONFIG)?,
            network_config: get(var::NETWORK_CONFIG)
                .unwrap_or_else(|| state.join("network_config")),
            network_state: get(var::NETWORK_STATE).unwrap_or_else(|| state.join("network_state")),
            interfaces: get(var::INTERFACES).unwrap_or_else(|| state.join("interfaces")),
            report_stack: std::env::var(var::REPORTSTACK).unwrap_or_default(),
            verbosity: std::env::var(var::VERBOSITY)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            proxy,
            python_curtin: pythonpath,
            bin: path_first,
            ephemeral: false,
            fstab,
            top,
        })
    }

    /// The state dir (where block-meta leaves crypttab, mdadm.conf ... next to fstab).
    pub fn state_dir(&self) -> PathBuf {
        self.fstab
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    /// Write the merged config as JSON to `state/config`.
    pub fn write_config(&self, config: &yaml_serde::Value) -> Result<()> {
        let json = serde_json::to_vec_pretty(config).context("converting the config to JSON")?;
        fs::write(&self.config, json).with_context(|| format!("writing {}", self.config.display()))
    }

    /// Read back `state/config` (JSON is YAML).
    pub fn read_config(&self) -> Result<yaml_serde::Value> {
        let text = fs::read_to_string(&self.config)
            .with_context(|| format!("reading {}", self.config.display()))?;
        if text.trim().is_empty() {
            return Ok(yaml_serde::Value::Mapping(Default::default()));
        }
        preseed::yaml::from_str(&text).with_context(|| format!("parsing {}", self.config.display()))
    }

    /// The same working dir with another event-name prefix (`cmd-install/stage-<name>`).
    pub fn with_report_stack(&self, stack: impl Into<String>) -> WorkingDir {
        WorkingDir {
            report_stack: stack.into(),
            ..self.clone()
        }
    }

    /// The event prefix inside a curtin subcommand: `<parent>/cmd-<name>` (curtin's main
    /// appends the subcommand to the stack it inherits).
    pub fn for_subcommand(&self, name: &str) -> WorkingDir {
        let stack = if self.report_stack.is_empty() {
            format!("cmd-{name}")
        } else {
            format!("{}/cmd-{name}", self.report_stack)
        };
        self.with_report_stack(stack)
    }

    /// Remove the dir if it was made for this one stage command (never the target).
    pub fn finish(&self) {
        if self.ephemeral && !self.target.starts_with(&self.top) {
            let _ = fs::remove_dir_all(&self.top);
        }
    }

    /// Make `bin/curtin` a link to the running executable (unless one is there already).
    pub fn ensure_curtin_entry(&self) -> Result<()> {
        let link = self.bin.join("curtin");
        if fs::symlink_metadata(&link).is_ok() {
            return Ok(());
        }
        fs::create_dir_all(&self.bin)
            .with_context(|| format!("creating {}", self.bin.display()))?;
        let exe = std::env::current_exe().context("finding the running executable")?;
        std::os::unix::fs::symlink(&exe, &link)
            .with_context(|| format!("linking {} to {}", link.display(), exe.display()))
    }

    /// Exactly curtin's variables, plus PATH and PYTHONPATH (the process's own environment is
    /// inherited on top of these by [`WorkingDir::apply`]).
    pub fn env(&self) -> Vec<(String, OsString)> {
        let p = |p: &Path| p.as_os_str().to_os_string();
        let mut env = vec![
            (var::TARGET.into(), p(&self.target)),
            (var::CONFIG.into(), p(&self.config)),
            (var::SCRATCH.into(), p(&self.scratch)),
            (var::FSTAB.into(), p(&self.fstab)),
            (var::NETWORK_CONFIG.into(), p(&self.network_config)),
            (var::NETWORK_STATE.into(), p(&self.network_state)),
            (var::INTERFACES.into(), p(&self.interfaces)),
            (var::REPORTSTACK.into(), self.report_stack.clone().into()),
            (var::VERBOSITY.into(), self.verbosity.to_string().into()),
        ];
        for (k, v) in [
            ("http_proxy", &self.proxy.http_proxy),
            ("https_proxy", &self.proxy.https_proxy),
            ("no_proxy", &self.proxy.no_proxy),
        ] {
            if let Some(v) = v {
                env.push((k.into(), v.into()));
            }
        }
        env.push(("PATH".into(), prepend_path("PATH", &self.bin)));
        if let Some(py) = &self.python_curtin {
            env.push(("PYTHONPATH".into(), prepend_path("PYTHONPATH", py)));
        }
        env
    }

    /// Set [`WorkingDir::env`] on a command.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
    }
}

/// `dir` first, then the current value of `var` without duplicates of `dir`.
fn prepend_path(var: &str, dir: &Path) -> OsString {
    let mut dirs = vec![dir.to_path_buf()];
    if let Some(cur) = std::env::var_os(var) {
        dirs.extend(std::env::split_paths(&cur).filter(|d| d != dir && !d.as_os_str().is_empty()));
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| dir.as_os_str().to_os_string())
}

/// The dir holding a Python `curtin` package (`DIR/curtin/__init__.py`), if `c` names one (or
/// names the package dir itself).
fn curtin_package_at(c: &Path) -> Option<PathBuf> {
    if c.join("curtin").join("__init__.py").is_file() {
        return Some(c.to_path_buf());
    }
    if c.join("__init__.py").is_file() && c.file_name().is_some_and(|n| n == "curtin") {
        return c.parent().map(Path::to_path_buf);
    }
    None
}

/// The Python `curtin` package the hooks get on PYTHONPATH, in this order (the choice is
/// logged): the one in MAAS's installer archive, `deployer: {python_curtin: DIR}`, `/curtin`
/// in the ephemeral root (where curtin's archive extracts itself), else deployer's own
/// ([`crate::curtin_py`]), unpacked into `<top>/python`.
pub fn python_curtin_for_hooks(config: &preseed::Config, top: &Path) -> Result<PathBuf> {
    let installer = std::env::var_os(crate::maas::INSTALLER_PYTHONPATH_ENV).map(PathBuf::from);
    let configured = config.deployer.python_curtin.as_ref().map(PathBuf::from);
    let candidates = [
        (installer, "the MAAS installer's"),
        (configured, "deployer.python_curtin"),
        (
            Some(crate::maas::extract_dir()),
            "the ephemeral OS's /curtin",
        ),
    ];
    for (dir, what) in candidates {
        if let Some(found) = dir.as_deref().and_then(curtin_package_at) {
            // deployer's own, unpacked at /curtin for an installer that had none.
            let what = if crate::curtin_py::is_ours(&found) {
                "deployer's own"
            } else {
                what
            };
            tracing::info!("hooks' Python curtin package: {} ({what})", found.display());
            return Ok(found);
        }
    }
    let dir = crate::curtin_py::unpack(&top.join("python"))?;
    tracing::info!(
        "hooks' Python curtin package: {} (deployer's own)",
        dir.display()
    );
    Ok(dir)
}

/// The working dir for a stage command: from the environment when run as a child of an
/// install, otherwise a fresh one for this run (with `target` and the merged config).
pub fn for_stage(target: Option<&Path>, config: &Loaded) -> Result<WorkingDir> {
    if std::env::var_os(var::FSTAB).is_some() && std::env::var_os(var::CONFIG).is_some() {
        let mut wd = WorkingDir::from_env()?;
        if let Some(t) = target {
            wd.target = t.to_path_buf();
        }
        return Ok(wd);
    }
    let Some(target) = target else {
        bail!("no target: pass --target-mount DIR or set ${}", var::TARGET)
    };
    let parent = std::env::temp_dir();
    let mut wd = WorkingDir::create(&parent, Some(target), config)?;
    wd.ephemeral = true;
    Ok(wd)
}

/// The config for a stage command: `-c`/`--set` or $CONFIG through
/// [`crate::config::load`]; an empty one when there is neither (a stage run alone on a
/// target, with everything from its flags).
pub fn stage_config(global: &crate::cli::Global) -> Result<Loaded> {
    let no_env = std::env::var_os(var::CONFIG).is_none_or(|c| c.is_empty());
    if global.config.is_empty() && global.set.is_empty() && no_env {
        return Ok(preseed::load::empty());
    }
    crate::config::load(global)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = preseed::load::from_merged(
            yaml_serde::from_str("{proxy: {http_proxy: 'http://p:3128'}, a: [1]}").unwrap(),
        )
        .unwrap();
        let wd = WorkingDir::create_at(dir.path(), None, &cfg).unwrap();
        for f in [
            "state/config",
            "state/fstab",
            "state/network_config",
            "state/network_state",
        ] {
            assert!(dir.path().join(f).is_file(), "{f}");
        }
        assert!(!dir.path().join("state/interfaces").exists());
        assert!(dir.path().join("scratch").is_dir() && dir.path().join("target").is_dir());
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("state/config")).unwrap()).unwrap();
        assert_eq!(json["a"][0], 1);
        let env: std::collections::BTreeMap<_, _> = wd.env().into_iter().collect();
        assert_eq!(
            env["OUTPUT_FSTAB"],
            dir.path().join("state/fstab").into_os_string()
        );
        assert_eq!(env["http_proxy"], "http://p:3128");
        let path = env["PATH"].to_string_lossy().into_owned();
        assert!(
            path.starts_with(&dir.path().join("bin").display().to_string()),
            "{path}"
        );
        assert!(fs::symlink_metadata(dir.path().join("bin/curtin"))
            .unwrap()
            .is_symlink());
    }
}
