//! Reading config documents (YAML or JSON, `#cloud-config` headers, `#curtin-config-archive`
//! archives) and merging them the way curtin does: mappings merge key by key, recursively;
//! anything else — lists included — is replaced by the later document. The result is merged
//! over curtin's builtin config (stages, builtin stage commands, install defaults), as
//! `curtin install` does, then typed.

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::Value;
use std::path::PathBuf;

use crate::config::{key_string, Config, Issue, Seg};
use crate::error::{ConfigError, Result};

/// The merged config, its typed form and the warnings to show.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The merged value (builtins included), as curtin writes it to `state/config`.
    pub merged: serde_yaml::Value,
    /// `origin:line:col: key.path: message` lines; never fatal.
    pub warnings: Vec<String>,
}

/// One parsed document and the text it came from (for line and column in errors).
#[derive(Debug, Clone)]
struct Doc {
    origin: String,
    text: String,
    value: Value,
}

/// curtin's `CONFIG_BUILTIN` (install.py), the base every config merges over.
pub fn builtin() -> Value {
    serde_yaml::from_str(
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
    for (origin, text) in docs {
        parse_document(&origin, &text, &mut parsed)?;
    }
    let mut merged = builtin();
    for d in &parsed {
        merge(&mut merged, d.value.clone());
    }
    let (config, issues) = Config::from_value(&merged).map_err(|i| place(&parsed, i))?;
    let warnings = issues
        .into_iter()
        .map(|i| place(&parsed, i).to_string())
        .collect();
    Ok(Loaded {
        config,
        merged,
        warnings,
    })
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

fn parse_document(origin: &str, text: &str, out: &mut Vec<Doc>) -> Result<()> {
    if text.starts_with("#curtin-config-archive") {
        return parse_archive(origin, text, out);
    }
    let value = parse_text(origin, text)?;
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
        text: text.to_string(),
        value,
    });
    Ok(())
}

fn parse_text(origin: &str, text: &str) -> Result<Value> {
    if let Some(((line, column), depth)) = crate::nesting::too_deep(text, crate::nesting::MAX_DEPTH)
    {
        let mut e = ConfigError::in_doc(
            origin,
            format!(
                "nested {depth} levels deep here, more than {} allowed: refused before parsing \
                 (no config nests like this; the YAML parser would spend minutes on it)",
                crate::nesting::MAX_DEPTH
            ),
        );
        (e.line, e.column) = (Some(line), Some(column));
        return Err(e);
    }
    // JSON is YAML, except where JSON allows tabs for indentation: try JSON first for `{`.
    if text.trim_start().starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return Ok(v);
        }
    }
    // libyaml resolves `!!binary` to a core tag that serde_yaml then drops: keep it visible as
    // a local tag (same length, so line and column stay right) for write_files content.
    let text = &text
        .replace(": !!binary", ": !binary ")
        .replace("- !!binary", "- !binary ");
    let mut docs = serde_yaml::Deserializer::from_str(text);
    let first = match docs.next() {
        Some(d) => d,
        None => return Ok(Value::Null),
    };
    let v = Value::deserialize_from(first).map_err(|e| yaml_error(origin, &e))?;
    if docs.next().is_some() {
        return Err(ConfigError::in_doc(
            origin,
            "holds several YAML documents (`---`); pass each as its own -c file",
        ));
    }
    // YAML merge keys (`<<: *anchor`) as PyYAML applies them.
    let mut v = v;
    v.apply_merge().map_err(|e| yaml_error(origin, &e))?;
    Ok(v)
}

trait DeserializeFrom {
    fn deserialize_from(
        d: serde_yaml::Deserializer<'_>,
    ) -> std::result::Result<Value, serde_yaml::Error>;
}

impl DeserializeFrom for Value {
    fn deserialize_from(
        d: serde_yaml::Deserializer<'_>,
    ) -> std::result::Result<Value, serde_yaml::Error> {
        serde::Deserialize::deserialize(d)
    }
}

fn yaml_error(origin: &str, e: &serde_yaml::Error) -> ConfigError {
    let mut msg = strip_location(&e.to_string());
    if msg == "recursion limit exceeded" {
        msg = "nested more than 128 levels deep (the YAML parser's limit)".into();
    }
    let mut err = ConfigError::in_doc(origin, msg);
    if let Some(l) = e.location() {
        err.line = Some(l.line());
        err.column = Some(l.column());
    }
    err
}

/// serde_yaml appends " at line L column C"; we print the location up front instead.
fn strip_location(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// `#curtin-config-archive`: a YAML list of `#curtin-config...` strings or
/// `{type: text/curtin-config[-archive], content}` items, merged in order.
fn parse_archive(origin: &str, text: &str, out: &mut Vec<Doc>) -> Result<()> {
    let items = match parse_text(origin, text)? {
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
        parse_document(&part, &content, out)?;
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
            if let Some((l, c)) = locate(&doc.text, prefix) {
                err.line = Some(l);
                err.column = Some(c);
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

/// The line and column of the value at `path` in a YAML text. serde_yaml reports the position
/// of the node an error is raised on, so walk to that node and raise one there.
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    const HERE: &str = "\u{0}here";
    let de = serde_yaml::Deserializer::from_str(text);
    match (Seek { path }).deserialize(de) {
        Err(e) if e.to_string().contains(HERE) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

struct Seek<'a> {
    path: &'a [Seg],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("anything")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(A::Error::custom("\u{0}here"));
        };
        while let Some(k) = map.next_key::<Value>()? {
            if matches!(first, Seg::Key(want) if key_string(&k) == *want) {
                return map.next_value_seed(Seek { path: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(A::Error::custom("\u{0}here"));
        };
        let mut i = 0;
        loop {
            if matches!(first, Seg::Index(want) if *want == i) {
                return seq.next_element_seed(Seek { path: rest }).map(|_| ());
            }
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        self.leaf()
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(self, _: A) -> std::result::Result<(), A::Error> {
        // A tagged value (`!!binary ...`): point at it.
        Err(A::Error::custom("\u{0}here"))
    }
}

impl Seek<'_> {
    fn leaf<E: serde::de::Error>(self) -> std::result::Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom("\u{0}here"))
        } else {
            Ok(())
        }
    }
}
