//! deployer's `curtin` compat Python package (source tree `agent/python/curtin/`), carried in the
//! binary: packer-maas hooks `import curtin`, and where no curtin package comes with the
//! deployment this one is unpacked into the working directory and put on their PYTHONPATH.
//! Its heavy functions call back into this binary (`curtin curthooks --step ...`,
//! `curtin in-target`), so each step has one implementation.
//!
//! [`provides`] answers "would `from curtin.x import y` work" from the embedded `.py` files
//! themselves (module-level `def`/`class`/assignments/imports and submodules), so the answer
//! cannot drift from the package.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/python_files.rs"));
}

/// Every embedded file: (path relative to the PYTHONPATH dir, e.g. `curtin/util.py`, bytes).
pub fn files() -> &'static [(&'static str, &'static [u8])] {
    embedded::FILES
}

/// Write the package into `dir` (as `dir/curtin/...`, files 0644, dirs 0755) and return the
/// directory to put on PYTHONPATH (`dir` itself). Files already there are overwritten.
pub fn unpack(dir: &Path) -> Result<PathBuf> {
    for (rel, bytes) in files() {
        let path = dir.join(rel);
        let parent = path.parent().expect("a file under a package dir");
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        fs::set_permissions(parent, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", parent.display()))?;
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .with_context(|| format!("chmod {}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// Whether the package on the PYTHONPATH dir `dir` is this one (its `__init__.py` is ours).
pub fn is_ours(dir: &Path) -> bool {
    let ours = source("curtin/__init__.py").unwrap_or_default();
    fs::read_to_string(dir.join("curtin/__init__.py")).is_ok_and(|t| t == ours)
}

fn source(rel: &str) -> Option<&'static str> {
    files()
        .iter()
        .find(|(p, _)| *p == rel)
        .and_then(|(_, b)| std::str::from_utf8(b).ok())
}

/// The source of a dotted module (`curtin.commands.curthooks`): its `.py` or its package's
/// `__init__.py`.
fn module_source(module: &str) -> Option<&'static str> {
    let base = module.replace('.', "/");
    source(&format!("{base}.py")).or_else(|| source(&format!("{base}/__init__.py")))
}

/// Whether `from <module> import <symbol>` works with the embedded package: `symbol` is a
/// module-level name of `module` (def, class, assignment, import) or one of its submodules.
/// `symbol` empty asks whether `import <module>` works.
pub fn provides(module: &str, symbol: &str) -> bool {
    let Some(src) = module_source(module) else {
        return false;
    };
    if symbol.is_empty() {
        return true;
    }
    if module_source(&format!("{module}.{symbol}")).is_some() {
        return true;
    }
    module_names(src).iter().any(|n| n == symbol)
}

/// Every dotted module name the package has (`curtin`, `curtin.util`, ...), sorted.
pub fn modules() -> Vec<String> {
    let mut m: Vec<String> = files()
        .iter()
        .map(|(p, _)| {
            let p = p.trim_end_matches(".py");
            let p = p.strip_suffix("/__init__").unwrap_or(p);
            p.replace('/', ".")
        })
        .collect();
    m.sort();
    m
}

/// The names a module binds at its top level (and in top-level `try`/`if` blocks, where
/// optional imports live). Text inside triple-quoted strings is skipped.
pub fn module_names(src: &str) -> Vec<String> {
    let mut names = vec![];
    let mut in_string: Option<&str> = None;
    let mut in_block = false; // inside a top-level try/except/if/else
    let mut lines = src.lines().peekable();
    while let Some(raw) = lines.next() {
        if let Some(q) = in_string {
            if raw.matches(q).count() % 2 == 1 {
                in_string = None;
            }
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim();
        for q in ["\"\"\"", "'''"] {
            if line.matches(q).count() % 2 == 1 {
                in_string = Some(q);
            }
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if indent == 0 {
            let word = line.split([' ', ':', '(']).next().unwrap_or("");
            in_block = matches!(word, "try" | "except" | "else" | "elif" | "if" | "finally");
        } else if !in_block {
            continue;
        }
        let mut stmt = line.to_string();
        if stmt.starts_with("from ") && stmt.contains('(') && !stmt.contains(')') {
            for more in lines.by_ref() {
                stmt = format!("{stmt} {}", more.trim());
                if more.contains(')') {
                    break;
                }
            }
        }
        while stmt.ends_with('\\') {
            let Some(more) = lines.next() else { break };
            stmt = format!("{} {}", stmt.trim_end_matches('\\'), more.trim());
        }
        names.extend(statement_names(&stmt));
    }
    names
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f == '_' || f.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

/// The names one top-level statement binds.
fn statement_names(stmt: &str) -> Vec<String> {
    let ident = |s: &str| -> Option<String> {
        let s = s.trim();
        is_ident(s).then(|| s.to_string())
    };
    let s = stmt.trim();
    for kw in ["def ", "async def ", "class "] {
        if let Some(rest) = s.strip_prefix(kw) {
            let name = rest.split(['(', ':', ' ']).next().unwrap_or("");
            return ident(name).into_iter().collect();
        }
    }
    if let Some(rest) = s.strip_prefix("from ") {
        let Some((_, imported)) = rest.split_once(" import ") else {
            return vec![];
        };
        let imported = imported
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')');
        return imported
            .split(',')
            .filter_map(|part| {
                let part = part.split('#').next().unwrap_or("").trim();
                let name = part.rsplit(" as ").next().unwrap_or(part);
                ident(name)
            })
            .collect();
    }
    if let Some(rest) = s.strip_prefix("import ") {
        return rest
            .split(',')
            .filter_map(|part| {
                let part = part.trim();
                match part.split_once(" as ") {
                    Some((_, alias)) => ident(alias),
                    None => ident(part.split('.').next().unwrap_or("")),
                }
            })
            .collect();
    }
    // `NAME = ...`, `NAME: T = ...`, `A, B = ...` (not `==`, not keyword arguments).
    let Some(eq) = s.find('=') else {
        return vec![];
    };
    if s[eq..].starts_with("==") || s[..eq].contains(['(', '[', '{', '"', '\'']) {
        return vec![];
    }
    let lhs = s[..eq].trim_end_matches(['+', '-', '*', '/', '|', '&', ':']);
    let lhs = lhs.split(':').next().unwrap_or(lhs);
    lhs.split(',').filter_map(ident).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_and_their_names() {
        let src = r#"
"""Doc with a line
NOT_A_NAME = 1
"""
import os, json as _json
import xml.dom
from .util import (
    a,
    b as c,
)
from .x import d  # comment
E = 1
F: int = 2
G, H = 1, 2
TEMPLATE = """
do_symlinks = yes
"""
def f(x=1):
    inner = 3
class K(object):
    attr = 1
try:
    from .y import optional
except ImportError:
    optional = None
if x == 1:
    pass
"#;
        let names = module_names(src);
        for n in [
            "os", "_json", "xml", "a", "c", "d", "E", "F", "G", "H", "TEMPLATE", "f", "K",
            "optional",
        ] {
            assert!(names.contains(&n.to_string()), "{n} missing: {names:?}");
        }
        for n in [
            "NOT_A_NAME",
            "do_symlinks",
            "inner",
            "attr",
            "b",
            "json",
            "x",
        ] {
            assert!(!names.contains(&n.to_string()), "{n} found: {names:?}");
        }
    }

    /// Every name of packer-maas.md §6 (the API packer-maas hooks use).
    #[test]
    fn provides_what_packer_maas_hooks_import() {
        let wanted: &[(&str, &[&str])] = &[
            (
                "curtin",
                &["FEATURES", "__version__", "util", "config", "block"],
            ),
            (
                "curtin.util",
                &[
                    "load_command_environment",
                    "ChrootableTarget",
                    "RunInChroot",
                    "get_dd_images",
                    "subp",
                    "ProcessExecutionError",
                ],
            ),
            ("curtin.config", &["load_command_config", "load_config"]),
            ("curtin.paths", &["target_path"]),
            ("curtin.distro", &["get_distroinfo", "DISTRO_NAMES"]),
            ("curtin.log", &["LOG", "DEBUG", "basicConfig"]),
            ("curtin.futil", &["write_files"]),
            (
                "curtin.block",
                &[
                    "get_devices_for_mp",
                    "get_blockdev_for_partition",
                    "_lsblock",
                ],
            ),
            ("curtin.commands", &["curthooks", "apt_config"]),
            (
                "curtin.commands.curthooks",
                &[
                    "builtin_curthooks",
                    "disable_overlayroot",
                    "disable_update_initramfs",
                    "enable_update_initramfs",
                    "update_initramfs",
                    "install_missing_packages",
                    "configure_iscsi",
                    "configure_mdadm",
                    "copy_fstab",
                    "add_swap",
                    "setup_kernel_img_conf",
                    "copy_crypttab",
                    "copy_dname_rules",
                    "apply_networking",
                    "handle_pollinate_user_agent",
                    "handle_cloudconfig",
                    "centos_apply_network_config",
                ],
            ),
            ("curtin.commands.apt_config", &["apply_debconf_selections"]),
        ];
        for (m, syms) in wanted {
            assert!(provides(m, ""), "module {m}");
            for s in *syms {
                assert!(provides(m, s), "{m}.{s}");
            }
        }
        assert!(!provides("curtin.util", "no_such_function"));
        assert!(!provides("curtin.nope", "x"));
        assert!(!provides("curtin.commands.curthooks", "KERNEL_IMG"));
        assert!(!provides("curtin.commands.curthooks", "do_symlinks"));
        assert!(modules().contains(&"curtin.commands.curthooks".to_string()));
    }

    #[test]
    fn unpacks_a_package_python_imports() {
        let d = tempfile::tempdir().unwrap();
        let py = unpack(d.path()).unwrap();
        assert_eq!(py, d.path());
        assert!(d.path().join("curtin/__init__.py").is_file());
        assert!(d.path().join("curtin/commands/curthooks.py").is_file());
        let mode = fs::metadata(d.path().join("curtin/util.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert!(is_ours(&py));
        // Every module imports under python3 (the host has it: scripts/setup).
        let imports: Vec<String> = modules().iter().map(|m| format!("import {m}")).collect();
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(imports.join("; "))
            .env("PYTHONPATH", &py)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
