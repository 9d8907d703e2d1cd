//! The custom-image checks MAAS makes (its late commands `98-validate-custom-image-has-cloud-init`
//! and `99-...-netplan`), done natively and early: on a mounted target, or on the list of paths
//! in a root tarball before anything is written to the disk.
//!
//! A tool counts as present when its executable is where distros install it, or when the
//! package database says its package is installed. The failure message is MAAS's own.

use std::path::Path;

use anyhow::{anyhow, Result};

use crate::error::{Kind, KindExt};
use crate::target;

/// What must be in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirements {
    pub cloud_init: bool,
    pub netplan: bool,
}

impl Requirements {
    /// MAAS's DEPS_PER_OS: cloud-init always; netplan for Ubuntu bases.
    pub fn for_os(os_id: Option<&str>) -> Requirements {
        Requirements {
            cloud_init: true,
            netplan: os_id == Some("ubuntu"),
        }
    }
}

/// A tool the check looks for.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    /// Where its executable may be (relative to the root).
    pub paths: &'static [&'static str],
    /// Its package names (dpkg and rpm).
    pub packages: &'static [&'static str],
}

pub const CLOUD_INIT: Tool = Tool {
    name: "cloud-init",
    paths: &[
        "usr/bin/cloud-init",
        "usr/local/bin/cloud-init",
        "bin/cloud-init",
        "usr/sbin/cloud-init",
        "sbin/cloud-init",
    ],
    packages: &["cloud-init"],
};

pub const NETPLAN: Tool = Tool {
    name: "netplan",
    paths: &[
        "usr/sbin/netplan",
        "sbin/netplan",
        "usr/bin/netplan",
        "usr/local/sbin/netplan",
        "usr/local/bin/netplan",
    ],
    packages: &["netplan.io", "netplan"],
};

/// MAAS's message for a missing tool.
pub fn missing_message(tool: &str) -> String {
    format!("{tool} not detected, MAAS will not be able to configure this machine properly")
}

/// The view of a root the check needs: does a path exist (as an executable), and what does
/// a small file say. Implemented for a mounted root and for a tarball's index.
pub trait RootView {
    fn is_executable(&self, rel: &str) -> bool;
    /// A file's content, if the view has it.
    fn read(&self, rel: &str) -> Option<String>;
    /// Does the path exist at all.
    fn exists(&self, rel: &str) -> bool;
}

/// A mounted (or extracted) root.
pub struct MountedRoot<'a>(pub &'a Path);

impl RootView for MountedRoot<'_> {
    fn is_executable(&self, rel: &str) -> bool {
        target::is_executable_in(self.0, rel)
    }
    fn read(&self, rel: &str) -> Option<String> {
        target::TargetRoot::open(self.0)
            .ok()?
            .read_to_string_opt(rel)
    }
    fn exists(&self, rel: &str) -> bool {
        target::TargetRoot::open(self.0).is_ok_and(|r| r.exists(rel))
    }
}

/// The paths of a root tarball (as listed by its entries: `./usr/bin/x`, `usr/bin/x`...),
/// with the symlinks among them and the contents of the few small files the check reads.
#[derive(Debug, Default, Clone)]
pub struct TarIndex {
    paths: std::collections::BTreeSet<String>,
    files: std::collections::BTreeMap<String, String>,
}

impl TarIndex {
    /// Normalise an entry path: no leading `./` or `/`, no trailing `/`.
    pub fn normalize(p: &str) -> String {
        let p = p
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/');
        p.to_string()
    }

    /// Record an entry (`executable`: a regular file with an x bit, or a symlink — a
    /// tarball's link target cannot be checked without the rest of the tree).
    pub fn add(&mut self, path: &str, executable: bool) {
        let p = Self::normalize(path);
        if executable {
            self.paths.insert(format!("x:{p}"));
        }
        self.paths.insert(p);
    }

    /// Record a small file's content (os-release, dpkg status).
    pub fn add_content(&mut self, path: &str, content: String) {
        self.files.insert(Self::normalize(path), content);
    }

    /// Record one entry of a root tarball as it streams past (the extract stage can build the
    /// index while reading the archive, or from a first pass before partitioning). Reads the
    /// entry's data only for the few small files the check wants.
    pub fn add_entry<R: std::io::Read>(&mut self, e: &mut tar::Entry<R>) -> std::io::Result<()> {
        let path = e.path()?.to_string_lossy().into_owned();
        let ty = e.header().entry_type();
        let mode = e.header().mode().unwrap_or(0);
        let exec = (ty.is_file() && mode & 0o111 != 0) || ty.is_symlink() || ty.is_hard_link();
        self.add(&path, exec);
        if ty.is_file() && Self::wants_content(&path) && e.size() <= 16 << 20 {
            let mut text = String::new();
            std::io::Read::read_to_string(e, &mut text)?;
            self.add_content(&path, text);
        }
        Ok(())
    }

    /// The names directly inside `dir` (normalised, `""` for the top).
    pub fn children(&self, dir: &str) -> Vec<String> {
        let dir = Self::normalize(dir);
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: Vec<String> = self
            .paths
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .filter_map(|p| {
                let rest = &p[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect();
        out.dedup();
        out
    }

    /// Paths whose content the check wants, for a reader of the archive to keep.
    pub fn wants_content(path: &str) -> bool {
        matches!(
            Self::normalize(path).as_str(),
            "etc/os-release" | "usr/lib/os-release" | "var/lib/dpkg/status"
        )
    }
}

impl RootView for TarIndex {
    fn is_executable(&self, rel: &str) -> bool {
        // usrmerge images list bin/ as a link to usr/bin: try both spellings.
        let alt = merged_alias(rel);
        self.paths.contains(&format!("x:{rel}"))
            || alt.is_some_and(|a| self.paths.contains(&format!("x:{a}")))
    }
    fn read(&self, rel: &str) -> Option<String> {
        self.files.get(rel).cloned()
    }
    fn exists(&self, rel: &str) -> bool {
        self.paths.contains(rel) || merged_alias(rel).is_some_and(|a| self.paths.contains(&a))
    }
}

fn merged_alias(rel: &str) -> Option<String> {
    for (a, b) in [("bin/", "usr/bin/"), ("sbin/", "usr/sbin/")] {
        if let Some(rest) = rel.strip_prefix(a) {
            return Some(format!("{b}{rest}"));
        }
        if let Some(rest) = rel.strip_prefix(b) {
            return Some(format!("{a}{rest}"));
        }
    }
    None
}

/// The root's os-release `ID`.
pub fn os_id(root: &dyn RootView) -> Option<String> {
    let text = root
        .read("etc/os-release")
        .or_else(|| root.read("usr/lib/os-release"))?;
    os_release_field(&text, "ID")
}

/// A field of an os-release file, unquoted.
pub fn os_release_field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
    })
}

/// Is the tool there: an executable in a usual place, or its package installed.
pub fn has_tool(root: &dyn RootView, tool: &Tool) -> bool {
    if tool.paths.iter().any(|p| root.is_executable(p)) {
        return true;
    }
    // rpm's database needs rpm (or sqlite) to read: RPM-based roots are judged by their
    // executables alone.
    tool.packages.iter().any(|pkg| dpkg_installed(root, pkg))
}

/// dpkg: `var/lib/dpkg/status` has the package with `Status: install ok installed`.
fn dpkg_installed(root: &dyn RootView, pkg: &str) -> bool {
    dpkg_paragraph(root, pkg).is_some_and(|p| field(&p, "Status") == Some("install ok installed"))
}

/// The version of a dpkg package (`Version:` of its status paragraph), unless the paragraph
/// says it is not installed (removed packages keep theirs).
pub fn dpkg_version(root: &dyn RootView, pkg: &str) -> Option<String> {
    let para = dpkg_paragraph(root, pkg)?;
    if field(&para, "Status").is_some_and(|s| s != "install ok installed") {
        return None;
    }
    field(&para, "Version").map(str::to_string)
}

fn dpkg_paragraph(root: &dyn RootView, pkg: &str) -> Option<String> {
    let status = root.read("var/lib/dpkg/status")?;
    status
        .split("\n\n")
        .find(|para| field(para, "Package") == Some(pkg))
        .map(str::to_string)
}

fn field<'a>(para: &'a str, key: &str) -> Option<&'a str> {
    para.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// `(major, minor)` of a version string: `24.4.1-1ubuntu1` -> (24, 4), `1:0.7` -> (0, 7).
pub fn major_minor(v: &str) -> Option<(u32, u32)> {
    let v = v.split_once(':').map(|x| x.1).unwrap_or(v);
    let mut it = v.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Check a root; the error is MAAS's message for the first missing tool, Kind::Image.
pub fn check(root: &dyn RootView, req: Requirements) -> Result<()> {
    let mut wanted = vec![];
    if req.cloud_init {
        wanted.push(&CLOUD_INIT);
    }
    if req.netplan {
        wanted.push(&NETPLAN);
    }
    for tool in wanted {
        if !has_tool(root, tool) {
            return Err(anyhow!(missing_message(tool.name))).kind(Kind::Image);
        }
    }
    Ok(())
}

/// Check a mounted target with the requirements of its OS (netplan for Ubuntu), or with
/// `netplan` forced on when a netplan config must be applied.
///
/// A root without os-release (Windows, ESXi, other non-Linux dd images: MAAS does not check
/// those) is not checked.
pub fn check_target(root: &Path, need_netplan: bool) -> Result<()> {
    let view = MountedRoot(root);
    let Some(id) = os_id(&view) else {
        tracing::info!(
            "{}: no os-release, not a Linux root: no cloud-init check",
            root.display()
        );
        return Ok(());
    };
    let mut req = Requirements::for_os(Some(&id));
    req.netplan |= need_netplan;
    check(&view, req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn mounted_root_executables_and_dpkg() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/os-release"), "NAME=\"Ubuntu\"\nID=ubuntu\n").unwrap();
        let e = check_target(r, false).unwrap_err();
        assert_eq!(crate::error::render(&e), missing_message("cloud-init"));
        assert_eq!(crate::error::kind_of(&e), Some(Kind::Image));
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::write(r.join("usr/bin/cloud-init"), "#!/bin/sh\n").unwrap();
        // Not executable: does not count.
        assert!(check_target(r, false).is_err());
        fs::set_permissions(
            r.join("usr/bin/cloud-init"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let e = check_target(r, false).unwrap_err();
        assert_eq!(crate::error::render(&e), missing_message("netplan"));
        fs::create_dir_all(r.join("var/lib/dpkg")).unwrap();
        fs::write(
            r.join("var/lib/dpkg/status"),
            "Package: netplan.io\nStatus: install ok installed\nVersion: 1\n\nPackage: x\n",
        )
        .unwrap();
        check_target(r, false).unwrap();
        // Debian does not need netplan unless asked.
        fs::write(r.join("etc/os-release"), "ID=debian\n").unwrap();
        fs::remove_file(r.join("var/lib/dpkg/status")).unwrap();
        check_target(r, false).unwrap();
        assert!(check_target(r, true).is_err());
        // Not a Linux root (a Windows or ESXi dd image): not checked.
        let other = tempfile::tempdir().unwrap();
        fs::create_dir_all(other.path().join("curtin")).unwrap();
        check_target(other.path(), false).unwrap();
    }

    #[test]
    fn tar_index() {
        let mut idx = TarIndex::default();
        idx.add("./usr/", false);
        idx.add("./usr/sbin/netplan", true);
        idx.add_content("./etc/os-release", "ID=ubuntu\n".into());
        let req = Requirements::for_os(os_id(&idx).as_deref());
        assert!(req.netplan);
        let e = check(&idx, req).unwrap_err();
        assert!(crate::error::render(&e).starts_with("cloud-init not detected"));
        idx.add("bin/cloud-init", true);
        check(&idx, req).unwrap();
        assert!(TarIndex::wants_content("./var/lib/dpkg/status"));
    }

    #[test]
    fn tar_index_from_a_real_archive() {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, mode: u32, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, data).unwrap();
        };
        add("./etc/os-release", 0o644, b"ID=ubuntu\n");
        add("./usr/bin/cloud-init", 0o755, b"#!/usr/bin/python3\n");
        add(
            "./var/lib/dpkg/status",
            0o644,
            b"Package: netplan.io\nStatus: install ok installed\n",
        );
        let data = b.into_inner().unwrap();
        let mut idx = TarIndex::default();
        let mut ar = tar::Archive::new(&data[..]);
        for e in ar.entries().unwrap() {
            idx.add_entry(&mut e.unwrap()).unwrap();
        }
        let req = Requirements::for_os(os_id(&idx).as_deref());
        assert_eq!(
            req,
            Requirements {
                cloud_init: true,
                netplan: true
            }
        );
        check(&idx, req).unwrap();
    }
}
