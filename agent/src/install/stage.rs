//! curtin's `Stage.run`: a stage's `<name>_commands` mapping, run in sorted key order; a list
//! is exec'd, a string goes to `sh -c`, a falsy value is skipped. Output (stdout and stderr
//! merged) goes to the terminal and the install log. Each command is a report event.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde_yaml::Value;

use crate::error::{Kind, KindExt};
use crate::report::{self, Level, Stack};

/// One command of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Exec(Vec<String>),
    Shell(String),
}

impl Cmd {
    /// curtin's description text: `running '<" ".join(cmd)>'`.
    pub fn display(&self) -> String {
        match self {
            Cmd::Exec(v) => v.join(" "),
            Cmd::Shell(s) => s.clone(),
        }
    }
}

/// The commands of a stage in run order; falsy entries dropped.
pub fn commands(cfg: &Value, stage: &str) -> anyhow::Result<Vec<(String, Cmd)>> {
    let key = format!("{stage}_commands");
    let Some(Value::Mapping(m)) = cfg.get(&key) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (k, v) in m {
        let name = match k {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => anyhow::bail!("{key}: unusable command name {other:?}"),
        };
        let cmd = match v {
            Value::Null => continue,
            Value::Bool(false) => continue,
            Value::String(s) if s.is_empty() => continue,
            Value::String(s) => Cmd::Shell(s.clone()),
            Value::Sequence(s) if s.is_empty() => continue,
            Value::Sequence(s) => Cmd::Exec(
                s.iter()
                    .map(|a| match a {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        Value::Bool(b) => Ok(if *b { "True" } else { "False" }.to_string()),
                        other => anyhow::bail!("{key}.{name}: an argument is {other:?}, not a string"),
                    })
                    .collect::<anyhow::Result<_>>()?,
            ),
            other => anyhow::bail!(
                "{key}.{name}: a command is a list (run as is) or a string (run by sh -c), got {other:?}"
            ),
        };
        out.push((name, cmd));
    }
    // Python's sorted(): code-point order.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Where command output goes besides the terminal.
pub type LogSink = Arc<Mutex<Option<std::fs::File>>>;

/// Run every command of a stage under `stack`; the first failure ends the stage.
pub fn run(
    stack: &Stack,
    stage: &str,
    cmds: &[(String, Cmd)],
    env: &[(String, OsString)],
    log: &LogSink,
) -> anyhow::Result<()> {
    for (key, cmd) in cmds {
        let ev = stack.child(key, &format!("running '{}'", cmd.display()), Level::Debug);
        let r = run_one(&ev, stage, key, cmd, env, log);
        ev.finish_result(&r);
        r?;
    }
    Ok(())
}

fn run_one(
    ev: &Stack,
    stage: &str,
    key: &str,
    cmd: &Cmd,
    env: &[(String, OsString)],
    log: &LogSink,
) -> anyhow::Result<()> {
    let mut c = match cmd {
        Cmd::Exec(v) => {
            let mut c = Command::new(&v[0]);
            c.args(&v[1..]);
            c
        }
        Cmd::Shell(s) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(s);
            c
        }
    };
    let (down_key, down) = report::sync_before_child();
    c.envs(env.iter().map(|(k, v)| (k, v)))
        .env(report::REPORTSTACK_ENV, ev.name())
        .env(down_key, down)
        .stdin(Stdio::null());
    // The program is looked up on the env's PATH, where the `curtin` link comes first.
    let (mut reader, writer) = std::io::pipe().context("creating a pipe for command output")?;
    c.stdout(writer.try_clone()?).stderr(writer);
    write_log(
        log,
        format!("Running {stage}_commands {key}: {}\n", cmd.display()).as_bytes(),
    );
    let mut child = c
        .spawn()
        .with_context(|| format!("{stage}_commands {key}: cannot run '{}'", cmd.display()))
        .kind(Kind::Hook)?;
    drop(c); // closes our copies of the pipe's write end
    let mut tail = Tail::default();
    let mut buf = [0u8; 8192];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let _ = std::io::stderr().write_all(&buf[..n]);
        write_log(log, &buf[..n]);
        tail.push(&buf[..n]);
    }
    let status = child.wait().context("waiting for a stage command")?;
    if status.success() {
        return Ok(());
    }
    let how = match status.code() {
        Some(c) => format!("exit code {c}"),
        None => "a signal".to_string(),
    };
    // A deployer/curtin child reports its failure kind through its exit code.
    let kind = match (cmd, status.code()) {
        (Cmd::Exec(v), Some(code)) if is_self(&v[0]) => kind_from_exit(code).unwrap_or(Kind::Hook),
        _ => Kind::Hook,
    };
    let last = tail.last_lines(3);
    let mut msg = format!(
        "{stage}_commands {key} '{}' failed with {how}",
        cmd.display()
    );
    if !last.is_empty() {
        msg.push_str(&format!("; last output: {last}"));
    }
    Err(anyhow::anyhow!(msg)).kind(kind)
}

fn is_self(argv0: &str) -> bool {
    let base = std::path::Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    base == "curtin" || base == "deployer"
}

fn kind_from_exit(code: i32) -> Option<Kind> {
    [
        Kind::Config,
        Kind::Source,
        Kind::Storage,
        Kind::Hook,
        Kind::Image,
    ]
    .into_iter()
    .find(|k| k.exit_code() == code)
}

pub fn write_log(log: &LogSink, bytes: &[u8]) {
    if let Some(f) = log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = f.write_all(bytes);
    }
}

/// The last few KiB of a command's output, for the error message.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
        if self.0.len() > 4096 {
            let cut = self.0.len() - 4096;
            self.0.drain(..cut);
        }
    }

    /// The child's own error line if it printed one (`curtin: error: ...`), else the last
    /// `n` lines; colour escapes removed.
    fn last_lines(&self, n: usize) -> String {
        let s = strip_ansi(&String::from_utf8_lossy(&self.0));
        let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if let Some(e) = lines.iter().rev().find(|l| l.contains(": error: ")) {
            return e.to_string();
        }
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
            it.next();
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_keys_skip_falsy_and_typed() {
        let cfg: Value = serde_yaml::from_str(
            "late_commands: {maas: [wget, x], builtin: [], 99-y: 'echo y', 98-x: null, 10: [a, 1]}",
        )
        .unwrap();
        let c = commands(&cfg, "late").unwrap();
        let names: Vec<&str> = c.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["10", "99-y", "maas"]);
        assert_eq!(c[0].1, Cmd::Exec(vec!["a".into(), "1".into()]));
        assert_eq!(c[1].1, Cmd::Shell("echo y".into()));
        let bad: Value = serde_yaml::from_str("early_commands: {a: {x: 1}}").unwrap();
        assert!(commands(&bad, "early").is_err());
    }
}
