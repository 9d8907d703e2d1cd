//! The typed top-level config, built from the merged YAML value, and its warnings for keys
//! deployer does not know (kept, never fatal: curtin ignores them).

use std::collections::BTreeMap;
use yaml_serde::Value;

use crate::commands::CommandSet;
use crate::install::{Curthooks, Install, PowerState, Proxy, WriteFile};
pub use crate::issue::{key_string, show, typed, Issue};
use crate::network::Network;
pub use crate::path::{parse_path, path_string, scalar_string, Seg};
use crate::reporting::Handler;
use crate::settings::{section, BlockMeta, Boot, Deployer, Image, Kernel, Swap};
use crate::sources::Source;
use crate::storage::Storage;
pub use crate::truth::falsy;

/// The merged deployment config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// By name; iterate for curtin's sorted order (see [`Config::sources_sorted`]).
    pub sources: BTreeMap<String, Source>,
    pub storage: Option<Storage>,
    pub network: Option<Network>,
    /// The handlers in effect (curtin's default `logging` included unless disabled).
    pub reporting: BTreeMap<String, Handler>,
    /// `<stage>_commands` by stage name (`early`, `late`, `partitioning`, ...).
    pub commands: BTreeMap<String, CommandSet>,
    /// Stage names in run order (curtin's default: early, partitioning, network, extract,
    /// curthooks, hook, late).
    pub stages: Vec<String>,
    pub write_files: BTreeMap<String, WriteFile>,
    pub install: Install,
    pub proxy: Proxy,
    pub power_state: Option<PowerState>,
    pub curthooks: Curthooks,
    /// Written to `etc/cloud/cloud.cfg.d/95-cloudconfig-<name>.cfg` in the target.
    pub cloudconfig: BTreeMap<String, WriteFile>,
    /// `boot:` or its older name `grub:` (not both).
    pub boot: Option<Boot>,
    pub block_meta: BlockMeta,
    pub deployer: Deployer,
    pub image: Option<Image>,
    pub kernel: Option<Kernel>,
    pub swap: Option<Swap>,
    pub verbosity: Option<u8>,
    pub showtrace: Option<bool>,
    /// Every other top-level key, as given: curtin keys deployer carries (`apt`,
    /// `debconf_selections`, `kexec`, ...) and unknown keys (which also get a warning).
    pub extra: BTreeMap<String, Value>,
}

/// curtin's default stage order.
pub const DEFAULT_STAGES: [&str; 7] = [
    "early",
    "partitioning",
    "network",
    "extract",
    "curthooks",
    "hook",
    "late",
];

/// curtin keys deployer keeps as data without a model (no warning for these).
pub const CARRIED_KEYS: &[&str] = &[
    "apt",
    "apt_proxy",
    "apt_mirrors",
    "debconf_selections",
    "kexec",
    "multipath",
    "system_upgrade",
    "pollinate",
    "kernel-crash-dumps",
    "disable_overlayroot",
    "restore_dist_interfaces",
    "reporter",
    "http_proxy",
    "snap",
    "zfs",
    "updates",
    "bootloader",
    "resize_rootfs",
    "package_update",
];

impl Config {
    /// Sources in the order curtin extracts them (sorted by name).
    pub fn sources_sorted(&self) -> impl Iterator<Item = &Source> {
        self.sources.values()
    }

    /// The one dd source, if any. More than one is an error at load time.
    pub fn dd_source(&self) -> Option<&Source> {
        self.sources.values().find(|s| s.kind.is_dd())
    }

    /// A stage's commands, empty when none are configured.
    pub fn stage_commands(&self, stage: &str) -> CommandSet {
        self.commands.get(stage).cloned().unwrap_or_default()
    }

    /// Build from a merged config value. Returns the config and warnings; an error carries the
    /// key path (`storage.config[3].size`).
    pub fn from_value(v: &Value) -> Result<(Config, Vec<Issue>), Issue> {
        let mut warnings = Vec::new();
        let m = match v {
            Value::Null => return Ok((Config::with_defaults(), warnings)),
            Value::Mapping(m) => m,
            other => {
                return Err(Issue::new(
                    "",
                    format!("a config must be a mapping of keys, got {}", show(other)),
                ))
            }
        };
        let mut c = Config::with_defaults();
        let mut storage = None;
        for (k, v) in m {
            let key = key_string(k);
            let at = |e: Issue| e.under(&key);
            match key.as_str() {
                "sources" => {
                    let mut w = Vec::new();
                    c.sources = crate::sources::from_value(v, &mut w).map_err(at)?;
                    warnings.extend(w.into_iter().map(at));
                }
                "storage" if v.is_null() => {}
                // Read after the sources: a dd source decides how much of it is typed.
                "storage" => storage = Some(v),
                "network" if v.is_null() => {}
                "network" => {
                    c.network = Some(Network::from_value(v).map_err(network_issue)?);
                }
                "reporting" => c.reporting = crate::reporting::from_value(v).map_err(at)?,
                "stages" => c.stages = typed(v).map_err(at)?,
                "write_files" => {
                    let mut w = Vec::new();
                    c.write_files =
                        crate::install::write_files_from_value(v, true, &mut w).map_err(at)?;
                    warnings.extend(w.into_iter().map(at));
                }
                "cloudconfig" => {
                    let mut w = Vec::new();
                    c.cloudconfig =
                        crate::install::write_files_from_value(v, false, &mut w).map_err(at)?;
                    for (name, f) in &c.cloudconfig {
                        if !f.path.is_empty() {
                            warnings.push(Issue::new(
                                format!("cloudconfig.{name}.path"),
                                format!(
                                    "ignored, as curtin ignores it: the file is \
                                     etc/cloud/cloud.cfg.d/95-cloudconfig-{name}.cfg"
                                ),
                            ));
                        }
                    }
                }
                "install" => c.install = crate::install::install_from_value(v).map_err(at)?,
                "proxy" => {} // with the legacy top-level key, below
                "power_state" if v.is_null() => {}
                "power_state" => c.power_state = Some(typed(v).map_err(at)?),
                "curthooks" if v.is_null() => {}
                "curthooks" => c.curthooks = typed(v).map_err(at)?,
                "grub" | "boot" => {
                    if c.boot.is_some() {
                        return Err(Issue::new(
                            key.clone(),
                            "the config has both `grub` and `boot`: `grub` is the older name of `boot`, give one",
                        ));
                    }
                    let mut w = Vec::new();
                    c.boot = Some(Boot::from_value(v, &mut w).map_err(at)?);
                    warnings.extend(w.into_iter().map(at));
                }
                "block-meta" if v.is_null() => {}
                "block-meta" => c.block_meta = typed(v).map_err(at)?,
                "deployer" => {
                    let mut w = Vec::new();
                    c.deployer = section(v, &mut w).map_err(at)?;
                    warnings.extend(w.into_iter().map(at));
                }
                // curtin: `'swap' in cfg and not cfg.get('swap')` turns the swap file off.
                "swap" if crate::truth::falsy(v) => c.swap = Some(Swap::off()),
                "image" | "kernel" if v.is_null() => {}
                "image" | "kernel" | "swap" => {
                    let mut w = Vec::new();
                    match key.as_str() {
                        "image" => c.image = Some(section(v, &mut w).map_err(at)?),
                        "kernel" => c.kernel = Some(section(v, &mut w).map_err(at)?),
                        _ => c.swap = Some(section(v, &mut w).map_err(at)?),
                    }
                    warnings.extend(w.into_iter().map(at));
                }
                "verbosity" => c.verbosity = typed(v).map_err(at)?,
                "showtrace" => c.showtrace = Some(crate::truth::showtrace(v)),
                k if k.ends_with("_commands") && k.len() > "_commands".len() => {
                    let stage = k.trim_end_matches("_commands").to_string();
                    c.commands
                        .insert(stage, crate::commands::from_value(v).map_err(at)?);
                }
                k => {
                    if !CARRIED_KEYS.contains(&k) {
                        warnings.push(Issue::new(
                            key.clone(),
                            "unknown key, ignored (curtin ignores it too)",
                        ));
                    }
                    c.extra.insert(key.clone(), v.clone());
                }
            }
        }
        c.proxy = Proxy::from_config(v)?;
        let dd: Vec<&Source> = c.sources.values().filter(|s| s.kind.is_dd()).collect();
        if dd.len() > 1 {
            return Err(Issue::new(
                "sources",
                format!(
                    "more than one disk image ({}): a deployment writes one dd image",
                    dd.iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if let Some(v) = storage {
            let at = |e: Issue| e.under("storage");
            let mut w = Vec::new();
            let disks_only = !dd.is_empty();
            c.storage = Some(crate::storage::from_value(v, disks_only, &mut w).map_err(at)?);
            warnings.extend(w.into_iter().map(at));
        }
        for s in &c.stages {
            if !DEFAULT_STAGES.contains(&s.as_str()) && !c.commands.contains_key(s) {
                warnings.push(Issue::new(
                    "stages",
                    format!("stage '{s}' has no {s}_commands: it will do nothing"),
                ));
            }
        }
        Ok((c, warnings))
    }

    fn with_defaults() -> Config {
        Config {
            stages: DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
            reporting: crate::reporting::defaults(),
            ..Config::default()
        }
    }
}

/// The network model's messages start with the key path they are about
/// (`network.config[2] (type vlan): ...`, `network.version: ...`): make it the issue's path,
/// so that the message names the key once and points at its line.
fn network_issue(m: String) -> Issue {
    let end = m.find([' ', ':']).unwrap_or(m.len());
    let (path, rest) = m.split_at(end);
    if !path.starts_with("network") {
        return Issue::new("network", m);
    }
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
    Issue::new(path, rest)
}
