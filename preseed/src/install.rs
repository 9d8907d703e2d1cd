//! `install`, `proxy`, `power_state`, `curthooks`, `write_files`: how the install itself behaves.

use serde::Deserialize;
use yaml_serde::Value;

use crate::issue::Issue;

/// `install:`. Paths curtin defaults are filled in; `None` means disabled (a falsy value).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Install {
    pub log_file: Option<String>,
    pub log_file_append: bool,
    pub error_tarfile: Option<String>,
    /// Files posted with the final `cmd-install` event; curtin's default is `[log_file]`.
    pub post_files: Vec<String>,
    pub save_install_config: Option<String>,
    pub save_install_log: Option<String>,
    /// `disabled` keeps the target mounted at the end.
    pub unmount: Option<String>,
    /// Mount point of the target instead of a temporary directory.
    pub target: Option<String>,
    pub resume_data: Option<String>,
    /// `command_timeout` (deployer extension): seconds a stage command may run before it is
    /// stopped; none by default, as in curtin.
    pub command_timeout: CommandTimeout,
}

/// `install.command_timeout`: seconds for every stage command, or `{STAGE: seconds}`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct CommandTimeout {
    pub all: Option<f64>,
    pub stages: std::collections::BTreeMap<String, f64>,
}

impl CommandTimeout {
    /// The limit for one stage's commands, if any.
    pub fn for_stage(&self, stage: &str) -> Option<std::time::Duration> {
        self.stages
            .get(stage)
            .copied()
            .or(self.all)
            .map(std::time::Duration::from_secs_f64)
    }

    fn from_value(v: Option<&Value>) -> Result<CommandTimeout, Issue> {
        let secs = |v: &Value, at: &str| match v.as_f64() {
            Some(s) if s > 0.0 && s.is_finite() => Ok(s),
            _ => Err(Issue::new(
                at,
                format!(
                    "must be a number of seconds above 0, got {}",
                    crate::issue::show(v)
                ),
            )),
        };
        let key = "command_timeout";
        match v {
            None | Some(Value::Null) => Ok(CommandTimeout::default()),
            Some(Value::Mapping(m)) => {
                let mut stages = std::collections::BTreeMap::new();
                for (k, v) in m {
                    let stage = crate::issue::key_string(k);
                    let s = secs(v, &format!("{key}.{stage}"))?;
                    stages.insert(stage, s);
                }
                Ok(CommandTimeout { all: None, stages })
            }
            Some(v) => Ok(CommandTimeout {
                all: Some(secs(v, key)?),
                stages: Default::default(),
            }),
        }
    }
}

impl Default for Install {
    fn default() -> Self {
        Install {
            log_file: Some("/var/log/curtin/install.log".into()),
            log_file_append: false,
            error_tarfile: Some("/var/log/curtin/curtin-error-logs.tar".into()),
            post_files: vec!["/var/log/curtin/install.log".into()],
            save_install_config: Some("/root/curtin-install-cfg.yaml".into()),
            save_install_log: Some("/root/curtin-install.log".into()),
            unmount: None,
            target: None,
            resume_data: None,
            command_timeout: CommandTimeout::default(),
        }
    }
}

impl Install {
    pub fn unmount_disabled(&self) -> bool {
        self.unmount.as_deref() == Some("disabled")
    }
}

/// A path-like key: absent -> the default, falsy -> disabled (`None`), a string -> itself.
fn path_key(
    m: &yaml_serde::Mapping,
    key: &str,
    default: Option<String>,
) -> Result<Option<String>, Issue> {
    match m.get(key) {
        None => Ok(default),
        Some(v) if crate::truth::falsy(v) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(Issue::new(
            key,
            format!("must be a path, got {}", crate::issue::show(v)),
        )),
    }
}

pub fn install_from_value(v: &Value) -> Result<Install, Issue> {
    let d = Install::default();
    let m = match v {
        Value::Null => return Ok(d),
        Value::Mapping(m) => m,
        _ => return Err(Issue::new("", "must be a mapping")),
    };
    let log_file = path_key(m, "log_file", d.log_file)?;
    let post_files = match m.get("post_files") {
        // curtin: `instcfg.get('post_files', [logfile])`.
        None => log_file.iter().cloned().collect(),
        Some(Value::Null) => vec![],
        Some(v) => crate::issue::typed::<Vec<String>>(v).map_err(|e| e.under("post_files"))?,
    };
    let log_file_append = match m.get("log_file_append") {
        None => false,
        Some(v) => !crate::truth::falsy(v),
    };
    Ok(Install {
        log_file,
        log_file_append,
        error_tarfile: path_key(m, "error_tarfile", d.error_tarfile)?,
        post_files,
        save_install_config: path_key(m, "save_install_config", d.save_install_config)?,
        save_install_log: path_key(m, "save_install_log", d.save_install_log)?,
        unmount: path_key(m, "unmount", None)?,
        target: path_key(m, "target", None)?,
        resume_data: path_key(m, "resume_data", None)?,
        command_timeout: CommandTimeout::from_value(m.get("command_timeout"))?,
    })
}

/// `proxy:` (after moving a legacy top-level `http_proxy` into it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl Proxy {
    /// The `proxy:` of a merged config, with curtin's legacy top-level `http_proxy` moved into
    /// it when `proxy` has none (`migrate_proxy_settings`). The one reading of these keys: the
    /// typed config, the HTTP client and the stage commands' environment all take it from here.
    pub fn from_config(cfg: &Value) -> Result<Proxy, Issue> {
        let mut p: Proxy = match cfg.get("proxy") {
            None | Some(Value::Null) => Proxy::default(),
            Some(v) => crate::issue::typed(v).map_err(|e| e.under("proxy"))?,
        };
        if p.http_proxy.is_none() {
            if let Some(Value::String(legacy)) = cfg.get("http_proxy") {
                p.http_proxy = Some(legacy.clone());
            }
        }
        Ok(p)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerMode {
    Halt,
    Poweroff,
    Reboot,
}

/// `power_state: {mode, delay, message}`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct PowerState {
    pub mode: PowerMode,
    /// `now`, `+N` minutes, or seconds; curtin's default is "5".
    #[serde(default, deserialize_with = "delay")]
    pub delay: Option<String>,
    pub message: Option<String>,
    pub condition: Option<Value>,
}

fn delay<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(crate::path::scalar_string(&v))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CurthooksMode {
    /// The image's `/curtin/curtin-hooks` if it has one, else builtin hooks.
    #[default]
    Auto,
    Builtin,
    Target,
}

/// `curthooks: {mode}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Curthooks {
    #[serde(default)]
    pub mode: CurthooksMode,
}

/// A `write_files` (or `cloudconfig`) entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WriteFile {
    /// Path in the target (ignored for `cloudconfig`, which names its own file).
    pub path: String,
    /// The bytes to write (`!!binary` decoded).
    pub content: Vec<u8>,
    /// File mode; curtin's default is 0644.
    pub permissions: u32,
    /// `user:group`.
    pub owner: Option<String>,
    /// `b64`, `gzip`, `gz+b64` (cloud-init's), applied when the file is written.
    pub encoding: Option<String>,
}

impl Default for WriteFile {
    fn default() -> Self {
        WriteFile {
            path: String::new(),
            content: vec![],
            permissions: 0o644,
            owner: None,
            encoding: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWriteFile {
    path: Option<String>,
    #[serde(default)]
    content: Value,
    permissions: Option<Value>,
    perms: Option<Value>,
    owner: Option<String>,
    encoding: Option<String>,
}

/// Read a `write_files`-format mapping. Entries without `path` are skipped with a warning
/// unless `path_needed` is false (`cloudconfig`).
pub fn write_files_from_value(
    v: &Value,
    path_needed: bool,
    warnings: &mut Vec<Issue>,
) -> Result<std::collections::BTreeMap<String, WriteFile>, Issue> {
    let mut out = std::collections::BTreeMap::new();
    let m = match v {
        Value::Null => return Ok(out),
        Value::Mapping(m) => m,
        _ => {
            return Err(Issue::new(
                "",
                "must be a mapping of name -> {path, content, permissions, owner}",
            ))
        }
    };
    for (k, v) in m {
        let name = crate::issue::key_string(k);
        let raw: RawWriteFile = crate::issue::typed(v).map_err(|e| e.under(&name))?;
        let content = match &raw.content {
            Value::Null => vec![],
            Value::String(s) => s.clone().into_bytes(),
            Value::Tagged(t) if t.tag == "!binary" || t.tag == "tag:yaml.org,2002:binary" => {
                let text = t.value.as_str().unwrap_or_default();
                let clean: String = text.split_whitespace().collect();
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .map_err(|e| {
                        Issue::new(format!("{name}.content"), format!("bad !!binary: {e}"))
                    })?
            }
            other => match crate::path::scalar_string(other) {
                Some(s) => s.into_bytes(),
                None => return Err(Issue::new(format!("{name}.content"), "must be a string")),
            },
        };
        let permissions = match raw.permissions.as_ref().or(raw.perms.as_ref()) {
            None | Some(Value::Null) => 0o644,
            Some(p) => mode(p).ok_or_else(|| {
                Issue::new(
                    format!("{name}.permissions"),
                    format!("not a file mode: {}", crate::issue::show(p)),
                )
            })?,
        };
        let path = match raw.path {
            Some(p) if !p.is_empty() => p,
            _ if path_needed => {
                warnings.push(Issue::new(name, "has no `path`: skipped, as curtin does"));
                continue;
            }
            _ => String::new(),
        };
        out.insert(
            name,
            WriteFile {
                path,
                content,
                permissions,
                owner: raw.owner,
                encoding: raw.encoding,
            },
        );
    }
    Ok(out)
}

/// A mode: an octal string (`"0644"`, `"0o644"`), or an integer taken as is (curtin's
/// `decode_perms`). A bare `0644` is octal to PyYAML (YAML 1.1); yaml_serde reads it as the
/// string "0644", which lands on the same mode.
fn mode(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|m| *m <= 0o7777),
        Value::String(s) => {
            let s = s.trim();
            let s = s.strip_prefix("0o").unwrap_or(s);
            u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn install(y: &str) -> Result<Install, Issue> {
        install_from_value(&yaml_serde::from_str(y).unwrap())
    }

    #[test]
    fn command_timeout_for_every_stage_or_per_stage() {
        let i = install("{}").unwrap();
        assert_eq!(i.command_timeout.for_stage("late"), None);
        let i = install("{command_timeout: 90}").unwrap();
        assert_eq!(
            i.command_timeout.for_stage("early"),
            Some(Duration::from_secs(90))
        );
        let i = install("{command_timeout: {late: 1.5}}").unwrap();
        assert_eq!(
            i.command_timeout.for_stage("late"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(i.command_timeout.for_stage("early"), None);
        let e = install("{command_timeout: {late: soon}}").unwrap_err();
        assert_eq!(e.path_string(), "command_timeout.late");
        assert!(
            e.message.contains("number of seconds above 0, got"),
            "{e:?}"
        );
        assert!(install("{command_timeout: -1}").is_err());
    }
}
