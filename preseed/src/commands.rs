//! `<stage>_commands` (early, late, partitioning, ...): a mapping of name -> command, run in
//! sorted key order (code-point order, as Python's `sorted`). A list is exec'd directly, a string
//! runs under `sh -c`, and a falsy value (`null`, `[]`, `""`) disables the entry — that is how a
//! builtin is turned off (`network_commands: {builtin: null}`).

use yaml_serde::Value;

use crate::issue::{show, Issue};
use crate::path::scalar_string;

/// One command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Command {
    /// Run with `/bin/sh -c`.
    Shell(String),
    /// Exec'd directly; the first word is the program.
    Exec(Vec<String>),
}

impl Command {
    /// As curtin shows it in event descriptions (`running '<cmd>'`).
    pub fn display(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Exec(v) => v.join(" "),
        }
    }
}

/// The order curtin runs two commands in: Python's `sorted()` of the keys, as PyYAML typed
/// them (`05:` and `10:` are the numbers 5 and 10, run 5 first; strings by code point). A
/// number and a string cannot be compared: curtin fails there (`TypeError`), so `None`.
pub fn curtin_order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

/// A stage's commands by key, in the order curtin runs them ([`curtin_order`]: `5` before `10`);
/// `None` is a disabled entry.
pub type CommandSet = indexmap::IndexMap<String, Option<Command>>;

/// Read one `*_commands` value.
pub fn from_value(v: &Value) -> Result<CommandSet, Issue> {
    let mut out = CommandSet::new();
    let m = match v {
        Value::Null => return Ok(out),
        Value::Mapping(m) => m,
        other => {
            return Err(Issue::new(
                "",
                format!(
                    "must be a mapping of name -> command (curtin runs them in sorted key order), got {}",
                    show(other)
                ),
            ))
        }
    };
    let is_num = |k: &Value| matches!(k, Value::Number(_) | Value::Bool(_));
    if let (Some(n), Some(s)) = (m.keys().find(|k| is_num(k)), m.keys().find(|k| !is_num(k))) {
        return Err(Issue::new(
            "",
            format!(
                "the keys {} (a number) and {} cannot be sorted together: curtin fails on them \
                 (Python cannot compare a number and a string); quote the number",
                show(n),
                show(s)
            ),
        ));
    }
    let mut keys: Vec<&Value> = m.keys().collect();
    // Comparable: mixed numbers and strings were refused above.
    keys.sort_by(|a, b| curtin_order(a, b).unwrap_or(std::cmp::Ordering::Equal));
    for k in keys {
        let v = &m[k];
        let name = crate::issue::key_string(k);
        let cmd = match v {
            // curtin: `if not cmd: continue`.
            v if crate::truth::falsy(v) => None,
            Value::String(s) => Some(Command::Shell(s.clone())),
            Value::Sequence(items) => {
                let mut words = Vec::with_capacity(items.len());
                for (i, w) in items.iter().enumerate() {
                    // curtin passes Python's str() of each word: True / False.
                    let word = match w {
                        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
                        w => scalar_string(w),
                    };
                    words.push(word.ok_or_else(|| {
                        Issue::new(format!("{name}[{i}]"), "command words must be strings")
                    })?);
                }
                Some(Command::Exec(words))
            }
            other => {
                return Err(Issue::new(
                    name,
                    format!("a command must be a string or a list, got {}", show(other)),
                ))
            }
        };
        out.insert(name, cmd);
    }
    Ok(out)
}
