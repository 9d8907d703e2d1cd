//! Reading config documents (YAML or JSON, `#cloud-config` headers, `#curtin-config-archive`
//! archives) and merging them the way curtin does: mappings merge key by key, recursively;
//! anything else — lists included — is replaced by the later document. The result is merged
//! over curtin's builtin config (stages, builtin stage commands, install defaults), as
//! `curtin install` does, then typed.

use std::path::PathBuf;
use yaml_serde::Value;

use crate::config::{key_string, Config, Issue, Seg};
use crate::error::{ConfigError, Result};

/// The merged config, its typed form and the warnings to show.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The merged value (builtins included), as curtin writes it to `state/config`.
    pub merged: yaml_serde::Value,
    /// `origin:line:col: key.path: message` lines; never fatal.
    pub warnings: Vec<String>,
}

/// One parsed document and the text it came from (for line and column in errors).
#[derive(Debug, Clone)]
struct Doc {
    origin: String,
    value: Value,
    /// Where each node is; none for a JSON document read with tabs (see [`parse_text`]).
    marks: Option<crate::yaml::Marks>,
}

/// curtin's `CONFIG_BUILTIN` (install.py), the base every config merges over.
pub fn builtin() -> Value {
    crate::yaml::from_str(
        r#"
sources: {}
stages: [early, partitioning, network, extract, curthooks, hook, late]
extract_commands: {builtin: [curtin, extract]}
hook_commands: {builtin: [curtin, hook]}
partitioning_commands: {builtin: [curtin, block-meta, simple]}
curthooks_commands: {builtin: [curtin, curthooks]}
late_commands: {builtin: []}
network_commands: {builtin: [curtin, net-meta, auto]}
apply_net_commands: {builtin: []}
install:
  log_file: /var/log/curtin/install.log
  log_file_append: false
  error_tarfile: /var/log/curtin/curtin-error-logs.tar
"#,
    )
    .expect("builtin config parses")
}

/// Read and merge files in order (later ones win).
pub fn load_files(paths: &[PathBuf]) -> Result<Loaded> {
    let mut docs = Vec::with_capacity(paths.len());
    for p in paths {
        let origin = p.display().to_string();
        let text = std::fs::read_to_string(p)
            .map_err(|e| ConfigError::in_doc(&origin, format!("cannot read: {e}")))?;
        docs.push((origin, text));
    }
    load_documents(docs)
}

/// Merge documents given as `(origin, text)` in order (later ones win). `origin` names the
/// document in messages (a path, a URL, `--set`).
pub fn load_documents(docs: Vec<(String, String)>) -> Result<Loaded> {
    let mut parsed = Vec::new();
    let mut warnings = Vec::new();
    for (origin, text) in docs {
        parse_document(&origin, &text, &mut parsed, &mut warnings)?;
    }
    let mut merged = builtin();
    for d in &parsed {
        merge(&mut merged, d.value.clone());
    }
    let (config, issues) = Config::from_value(&merged).map_err(|i| place(&parsed, i))?;
    warnings.extend(issues.into_iter().map(|i| place(&parsed, i).to_string()));
    Ok(Loaded {
        config,
        merged,
        warnings,
    })
}

/// Type a config that is already merged (the install's, once it has added the command-line
/// sources and the target disk): errors and warnings name the key path, without a line.
pub fn from_merged(merged: Value) -> Result<Loaded> {
    let (config, issues) = Config::from_value(&merged).map_err(|i| place(&[], i))?;
    Ok(Loaded {
        config,
        merged,
        warnings: issues
            .into_iter()
            .map(|i| place(&[], i).to_string())
            .collect(),
    })
}

/// An empty config (a stage run alone, everything from its flags): curtin's defaults.
pub fn empty() -> Loaded {
    from_merged(Value::Mapping(Default::default())).expect("an empty config is valid")
}

/// curtin's `merge_config`: `over` wins; mappings merge recursively, all else is replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

fn parse_document(
    origin: &str,
    text: &str,
    out: &mut Vec<Doc>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    if text.starts_with("#curtin-config-archive") {
        return parse_archive(origin, text, out, warnings);
    }
    let (value, marks) = parse_text(origin, text, warnings)?;
    let value = match value {
        // An empty document (or only comments) adds nothing.
        Value::Null => Value::Mapping(Default::default()),
        v @ Value::Mapping(_) => v,
        other => {
            return Err(ConfigError::in_doc(
                origin,
                format!(
                    "a config document must be a mapping of keys, got {}",
                    crate::config::show(&other)
                ),
            ))
        }
    };
    out.push(Doc {
        origin: origin.to_string(),
        value,
        marks,
    });
    Ok(())
}

/// Read one document as curtin does (PyYAML); a key given twice is a warning naming both lines.
fn parse_text(
    origin: &str,
    text: &str,
    warnings: &mut Vec<String>,
) -> Result<(Value, Option<crate::yaml::Marks>)> {
    if let Some(((line, column), depth)) = crate::nesting::too_deep(text, crate::nesting::MAX_DEPTH)
    {
        let mut e = ConfigError::in_doc(
            origin,
            format!(
                "nested {depth} levels deep here, more than {} allowed: refused before parsing \
                 (no config nests like this)",
                crate::nesting::MAX_DEPTH
            ),
        );
        (e.line, e.column) = (Some(line), Some(column));
        return Err(e);
    }
    let read = match crate::yaml::read(text) {
        Ok(r) => r,
        // JSON allows tabs where YAML does not: a JSON document that YAML refuses for them.
        Err(e) if text.trim_start().starts_with('{') => match serde_json::from_str(text) {
            Ok(v) => return Ok((v, None)),
            Err(_) => return Err(yaml_error(origin, e)),
        },
        Err(e) => return Err(yaml_error(origin, e)),
    };
    for d in &read.duplicates {
        let key = crate::path::path_string(&d.path);
        let e = ConfigError {
            origin: Some(origin.to_string()),
            line: Some(d.line),
            column: Some(d.column),
            path: key,
            message: format!(
                "key given twice (first on line {}): the value on line {} is used, as curtin \
                 does",
                d.first_line, d.line
            ),
        };
        warnings.push(e.to_string());
    }
    Ok((read.value, Some(read.marks)))
}

fn yaml_error(origin: &str, e: crate::yaml::ReadError) -> ConfigError {
    let mut err = ConfigError::in_doc(origin, e.message);
    (err.line, err.column) = (Some(e.line), Some(e.column));
    err
}

/// `#curtin-config-archive`: a YAML list of `#curtin-config...` strings or
/// `{type: text/curtin-config[-archive], content}` items, merged in order.
fn parse_archive(
    origin: &str,
    text: &str,
    out: &mut Vec<Doc>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let items = match parse_text(origin, text, warnings)?.0 {
        Value::Sequence(items) => items,
        Value::Null => vec![],
        _ => {
            return Err(ConfigError::in_doc(
                origin,
                "a #curtin-config-archive must be a YAML list of parts",
            ))
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let part = format!("{origin}#part{i}");
        let content = match &item {
            Value::String(s) if s.starts_with("#curtin-config") => s.clone(),
            Value::Mapping(m) => {
                let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
                if ty != "text/curtin-config" && ty != "text/curtin-config-archive" {
                    return Err(ConfigError::in_doc(
                        &part,
                        format!("unknown archive part type '{ty}' (text/curtin-config or text/curtin-config-archive)"),
                    ));
                }
                m.get("content")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ConfigError::in_doc(&part, "archive part has no `content` string")
                    })?
                    .to_string()
            }
            _ => {
                return Err(ConfigError::in_doc(
                    &part,
                    "an archive part must be a `#curtin-config` string or {type, content}",
                ))
            }
        };
        parse_document(&part, &content, out, warnings)?;
    }
    Ok(())
}

/// Put an issue in the document that set the value at its path (the last one that has it).
fn place(docs: &[Doc], issue: Issue) -> ConfigError {
    let mut err = ConfigError::at(issue.path_string(), issue.message.clone());
    // The deepest prefix of the path that some document sets, from the last document back.
    for len in (1..=issue.path.len()).rev() {
        let prefix = &issue.path[..len];
        if let Some(doc) = docs
            .iter()
            .rev()
            .find(|d| lookup(&d.value, prefix).is_some())
        {
            err.origin = Some(doc.origin.clone());
            // A `--set` document is generated from the command line: no lines to point at.
            if doc.origin.starts_with("--set") {
                return err;
            }
            if let Some(m) = doc.marks.as_ref().and_then(|m| m.at(prefix)) {
                err.line = Some(m.line);
                err.column = Some(m.column);
            }
            return err;
        }
    }
    if docs.len() == 1 {
        err.origin = Some(docs[0].origin.clone());
    }
    err
}

fn lookup<'a>(v: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = match (seg, cur) {
            (Seg::Key(k), Value::Mapping(m)) => m.iter().find(|(mk, _)| key_string(mk) == *k)?.1,
            (Seg::Index(i), Value::Sequence(s)) => s.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}
