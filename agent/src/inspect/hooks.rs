//! The image's `/curtin` hooks as curtin runs them: `curtin-hooks` (replaces the builtin
//! curthooks), `finalize` (the hook stage) and `network-config` (replaces net-meta). Each must
//! be a file curtin can execute directly (mode, `#!` line; the interpreter resolves in the
//! ephemeral OS). For Python, every `curtin` import is checked against deployer's embedded
//! curtin package.
//!
//! Imports are found by a small scanner of Python's import statements rather than by
//! `python3 -c 'import ast'`: it needs no Python on the machine running inspect, works the same
//! offline everywhere, and reads Python 2 hooks (centos6, older Windows ones) that Python 3's
//! parser rejects. It handles what import statements can look like (comments, strings and
//! docstrings, `;`, backslash and parenthesised continuations, `as`, imports inside blocks);
//! dynamic imports (`importlib`, `__import__`) are not seen.

use super::report::{self, Report};
use super::tree::Tree;
use crate::curtin_py;

/// The hooks curtin looks for, and what each replaces.
const HOOKS: &[(&str, &str)] = &[
    ("curtin-hooks", "runs instead of the builtin curthooks"),
    ("finalize", "runs in the hook stage"),
    ("network-config", "runs instead of net-meta"),
];

/// One import of a curtin module or symbol, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyImport {
    pub module: String,
    /// `from MODULE import SYMBOL` (`*` for a star import); None for `import MODULE`.
    pub symbol: Option<String>,
    pub line: usize,
}

impl PyImport {
    /// As a dotted name: `curtin.util.subp`.
    pub fn dotted(&self) -> String {
        match &self.symbol {
            Some(s) if s != "*" => format!("{}.{s}", self.module),
            _ => self.module.clone(),
        }
    }

    /// Is it there, asked the way `provides` answers: a module path `a.b.c` is symbol `c` of
    /// module `a.b`.
    pub fn provided(&self) -> bool {
        match self.symbol.as_deref() {
            Some("*") => curtin_py::provides(&self.module, ""),
            Some(s) => curtin_py::provides(&self.module, s),
            None => match self.module.rsplit_once('.') {
                Some((parent, last)) => curtin_py::provides(parent, last),
                None => curtin_py::provides(&self.module, ""),
            },
        }
    }
}

/// Is `/curtin/curtin-hooks` there (it decides whether the builtin curthooks run)?
pub fn has_curthooks(t: &dyn Tree) -> bool {
    t.file("curtin/curtin-hooks")
        .is_some_and(|f| f.mode.is_some())
}

/// The `hook ...` checks.
pub fn check(r: &mut Report, t: &dyn Tree) {
    for (name, role) in HOOKS {
        let rel = format!("curtin/{name}");
        let Some(f) = t.file(&rel) else {
            if *name == "curtin-hooks" {
                r.ok(
                    "hook curtin-hooks",
                    "none: the builtin curthooks run (cloudconfig, network, fstab, bootloader)",
                );
            }
            continue;
        };
        let check = format!("hook {name}");
        let mut h = report::Hook {
            name: name.to_string(),
            link: f.link.clone(),
            ..Default::default()
        };
        let via = f
            .link
            .as_deref()
            .map(|l| format!(" (a link to {l})"))
            .unwrap_or_default();
        let Some(mode) = f.mode else {
            r.error(
                &check,
                format!("/{rel}{via} points at nothing in the image: curtin fails running it"),
            );
            r.facts.hooks.push(h);
            continue;
        };
        h.executable = mode & 0o111 != 0;
        let Some(text) = f.text else {
            // Not a regular file we could read: a link out of /curtin in a tarball (read in
            // one pass, only /curtin's files are kept), a hard link, a directory.
            r.warn(
                &check,
                format!("/{rel}{via}: its content was not read (not a regular file under /curtin)"),
            );
            r.facts.hooks.push(h);
            continue;
        };
        let (lang, interp) = language(&text);
        h.language = Some(lang.to_string());
        h.interpreter = interp.clone();
        if !h.executable {
            r.error(
                &check,
                format!("/{rel}{via} is not executable (mode {mode:o}): curtin runs it directly, and fails"),
            );
        } else if lang == "none" {
            r.error(
                &check,
                format!("/{rel}{via} has no #! line: curtin executes it directly, which fails (exec format error)"),
            );
        } else if lang == "python" {
            let imports = python_imports(&text);
            python_verdict(
                r,
                &check,
                &format!("/{rel}{via}"),
                role,
                interp.as_deref(),
                &imports,
            );
            h.curtin_imports = imports_facts(&imports);
        } else {
            r.ok(
                &check,
                format!(
                    "/{rel}{via}: {}, executable; {role}",
                    match lang {
                        "binary" => "an executable binary".to_string(),
                        _ => format!("{lang} ({})", interp.as_deref().unwrap_or("?")),
                    }
                ),
            );
        }
        r.facts.hooks.push(h);
    }
    // Python files the hooks hand over to (centos6's python_wrapper runs `<hook>.py`).
    for n in t.list("curtin") {
        if !n.ends_with(".py") || HOOKS.iter().any(|(h, _)| *h == n) {
            continue;
        }
        let rel = format!("curtin/{n}");
        let Some(text) = t.file(&rel).and_then(|f| f.text) else {
            continue;
        };
        let imports = python_imports(&text);
        if imports.is_empty() {
            continue;
        }
        let check = format!("hook {n}");
        python_verdict(
            r,
            &check,
            &format!("/{rel}"),
            "a Python module the hooks run",
            None,
            &imports,
        );
        r.facts.hooks.push(report::Hook {
            name: n.clone(),
            executable: false,
            language: Some("python".into()),
            curtin_imports: imports_facts(&imports),
            ..Default::default()
        });
    }
}

fn imports_facts(imports: &[PyImport]) -> Vec<report::Import> {
    imports
        .iter()
        .map(|i| report::Import {
            module: i.module.clone(),
            symbol: i.symbol.clone(),
            line: i.line,
            provided: i.provided(),
        })
        .collect()
}

fn python_verdict(
    r: &mut Report,
    check: &str,
    what: &str,
    role: &str,
    interp: Option<&str>,
    imports: &[PyImport],
) {
    let missing: Vec<String> = imports
        .iter()
        .filter(|i| !i.provided())
        .map(|i| format!("{} (line {})", i.dotted(), i.line))
        .collect();
    let lang = match interp {
        Some(i) => format!("Python ({i}, from the ephemeral OS)"),
        None => "Python".to_string(),
    };
    if !missing.is_empty() {
        r.error(
            check,
            format!(
                "{what}: {lang} imports {}, which deployer's embedded curtin does not provide",
                missing.join(", ")
            ),
        );
        return;
    }
    let mut names: Vec<String> = imports.iter().map(PyImport::dotted).collect();
    names.dedup();
    let imported = if names.is_empty() {
        "imports nothing from curtin".to_string()
    } else {
        format!("imports {} (all provided)", names.join(", "))
    };
    if matches!(interp, Some("python") | Some("python2")) {
        r.warn(
            check,
            format!("{what}: {lang} {imported}; {role}; the ephemeral OS may have no Python 2"),
        );
    } else {
        r.ok(check, format!("{what}: {lang} {imported}; {role}"));
    }
}

/// The kind of file, from its first bytes: `python`, `shell`, `binary`, another interpreter's
/// name, or `none` (no `#!`); and the interpreter named by `#!` (`env`'s argument for env).
pub fn language(text: &str) -> (&'static str, Option<String>) {
    if text.starts_with("\x7fELF") {
        return ("binary", None);
    }
    let Some(line) = text.lines().next().and_then(|l| l.strip_prefix("#!")) else {
        return ("none", None);
    };
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return ("none", None);
    };
    let mut prog = first.rsplit('/').next().unwrap_or(first).to_string();
    if prog == "env" {
        prog = words
            .find(|w| !w.starts_with('-'))
            .unwrap_or("env")
            .to_string();
    }
    let lang = if prog.starts_with("python") {
        "python"
    } else if matches!(
        prog.as_str(),
        "sh" | "bash" | "dash" | "ksh" | "zsh" | "ash"
    ) {
        "shell"
    } else {
        "other"
    };
    (lang, Some(prog))
}

/// Every import of `curtin` or a `curtin.*` module in Python source.
pub fn python_imports(src: &str) -> Vec<PyImport> {
    let mut out = vec![];
    for (line, stmt) in statements(src) {
        let s = stmt.trim();
        if let Some(rest) = s.strip_prefix("import ") {
            for item in rest.split(',') {
                let name = item.split_whitespace().next().unwrap_or("");
                if is_curtin(name) {
                    out.push(PyImport {
                        module: name.to_string(),
                        symbol: None,
                        line,
                    });
                }
            }
        } else if let Some(rest) = s.strip_prefix("from ") {
            let Some((module, names)) = rest.split_once(" import ") else {
                continue;
            };
            let module = module.trim();
            if !is_curtin(module) {
                continue;
            }
            let names = names.trim().trim_start_matches('(').trim_end_matches(')');
            for item in names.split(',') {
                let name = item.split_whitespace().next().unwrap_or("");
                if !name.is_empty() {
                    out.push(PyImport {
                        module: module.to_string(),
                        symbol: Some(name.to_string()),
                        line,
                    });
                }
            }
        }
    }
    out
}

fn is_curtin(name: &str) -> bool {
    name == "curtin" || name.starts_with("curtin.")
}

/// Python's simple statements with their first line: comments dropped, string literals
/// emptied, continuation lines (backslash, open brackets) joined, `;` splitting, and a
/// compound statement's body on the same line (`try: import x`) split off its header.
fn statements(src: &str) -> Vec<(usize, String)> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut start = 1;
    let mut line = 1;
    let mut depth = 0i32;
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let flush = |cur: &mut String, start: usize, out: &mut Vec<(usize, String)>| {
        for part in cur.split(';') {
            // `if x: import y`, `try: import y`, `else: from a import b`.
            let body = match part.split_once(':') {
                Some((head, body))
                    if head
                        .split_whitespace()
                        .next()
                        .is_some_and(|w| COMPOUND.contains(&w)) =>
                {
                    body
                }
                _ => part,
            };
            if !body.trim().is_empty() {
                out.push((start, body.trim().to_string()));
            }
        }
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '"' | '\'' => {
                let triple = i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c;
                let q = if triple { 3 } else { 1 };
                i += q;
                while i < chars.len() {
                    if chars[i] == '\\' {
                        i += 2;
                        continue;
                    }
                    if chars[i] == '\n' {
                        line += 1;
                        if !triple {
                            break; // an unterminated string ends at the line
                        }
                    }
                    if chars[i] == c
                        && (!triple
                            || (i + 2 < chars.len() && chars[i + 1] == c && chars[i + 2] == c))
                    {
                        i += q;
                        break;
                    }
                    i += 1;
                }
                cur.push_str("\"\"");
                continue;
            }
            '\\' if chars.get(i + 1) == Some(&'\n') => {
                i += 2;
                line += 1;
                cur.push(' ');
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = (depth - 1).max(0),
            '\n' => {
                line += 1;
                if depth == 0 {
                    flush(&mut cur, start, &mut out);
                    start = line;
                } else {
                    cur.push(' ');
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        if cur.trim().is_empty() {
            start = line;
        }
        cur.push(c);
        i += 1;
    }
    flush(&mut cur, start, &mut out);
    out
}

const COMPOUND: &[&str] = &[
    "if", "elif", "else", "try", "except", "finally", "with", "for", "while", "def", "class",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(module: &str, symbol: Option<&str>, line: usize) -> PyImport {
        PyImport {
            module: module.into(),
            symbol: symbol.map(Into::into),
            line,
        }
    }

    #[test]
    fn import_forms() {
        let src = r#"#!/usr/bin/env python3
"""Docstring: import curtin.fake would not count.
from curtin import nothing
"""
import os, curtin.util as u  # import curtin.comment
from curtin.commands.curthooks import (
    builtin_curthooks,
    handle_cloudconfig as hc,
)
from curtin import \
    config
x = "from curtin import string"; from curtin.log import LOG
try:
    from curtin.distro import get_distroinfo
except ImportError: import curtin
from curtin.util import *
from curtinx import nope
def f():
    if True: from curtin.paths import target_path
"#;
        assert_eq!(
            python_imports(src),
            vec![
                imp("curtin.util", None, 5),
                imp("curtin.commands.curthooks", Some("builtin_curthooks"), 6),
                imp("curtin.commands.curthooks", Some("handle_cloudconfig"), 6),
                imp("curtin", Some("config"), 10),
                imp("curtin.log", Some("LOG"), 12),
                imp("curtin.distro", Some("get_distroinfo"), 14),
                imp("curtin", None, 15),
                imp("curtin.util", Some("*"), 16),
                imp("curtin.paths", Some("target_path"), 19),
            ]
        );
    }

    #[test]
    fn provided_and_not() {
        assert!(imp("curtin.util", None, 1).provided());
        assert!(imp("curtin", None, 1).provided());
        assert!(imp("curtin.util", Some("load_command_environment"), 1).provided());
        assert!(imp("curtin.util", Some("*"), 1).provided());
        assert!(!imp("curtin.util", Some("frobnicate_disks"), 1).provided());
        assert!(!imp("curtin.nosuch", None, 1).provided());
    }

    #[test]
    fn languages() {
        assert_eq!(language("#!/usr/bin/env python3\n").0, "python");
        assert_eq!(
            language("#!/usr/bin/env -S python3 -u\n"),
            ("python", Some("python3".into()))
        );
        assert_eq!(language("#!/bin/bash -e\n"), ("shell", Some("bash".into())));
        assert_eq!(language("echo hi\n").0, "none");
        assert_eq!(language("\x7fELF\x02").0, "binary");
    }
}
