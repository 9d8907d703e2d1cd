//! A tar archive read once, as it streams, never extracted: either a disk image inside a tar
//! (its first entry is one file that starts with a partition table), or a root tarball, whose
//! entries are indexed (paths and modes: the image check's [`TarIndex`]) and whose few small
//! files the checks read (os-release, dpkg status, cloud-init's configs and version, the
//! `/curtin` hooks) are kept. Memory: the path index plus those files, each capped.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context, Result};

use super::format::has_partition_table;
use super::tree::{FileInfo, Tree, MAX_TEXT};
use crate::image_check::{RootView, TarIndex};

/// What the archive turned out to be.
pub enum Scan {
    /// Its first file (named) starts with a partition table.
    DiskInTar(String),
    Root(TarRoot),
}

/// A root tarball's index and kept files.
#[derive(Debug, Default)]
pub struct TarRoot {
    index: TarIndex,
    /// Symlinks and modes of the entries under `curtin/` (hooks may be links: centos6).
    links: BTreeMap<String, String>,
    modes: BTreeMap<String, u32>,
    pub entries: u64,
}

/// Does inspect keep this file's text (beyond what the image check keeps)?
fn wanted(p: &str) -> bool {
    if let Some(rest) = p.strip_prefix("curtin/") {
        return !rest.contains('/');
    }
    if p == "etc/cloud/cloud.cfg"
        || p.strip_prefix("etc/cloud/cloud.cfg.d/")
            .is_some_and(|n| n.ends_with(".cfg") && !n.contains('/'))
    {
        return true;
    }
    // cloud-init's version module, wherever the distro's python keeps it.
    p.starts_with("usr/lib/python") && p.ends_with("/cloudinit/version.py")
}

/// Read the archive's entries. `input` is the decompressed stream.
pub fn scan<R: Read>(input: R) -> Result<Scan> {
    let mut archive = tar::Archive::new(input);
    let mut root = TarRoot::default();
    for e in archive.entries().context("reading the tar archive")? {
        let mut e = e.context("reading the tar archive")?;
        let ty = e.header().entry_type();
        let path = e.path()?.to_string_lossy().into_owned();
        let rel = TarIndex::normalize(&path);
        root.entries += 1;
        if root.entries == 1 && ty.is_file() {
            // The first entry is a file: a disk image in a tar (MAAS's ddtgz) looks like this.
            let mut head = Vec::with_capacity(4608);
            (&mut e).take(4608).read_to_end(&mut head)?;
            if has_partition_table(&head) {
                return Ok(Scan::DiskInTar(path));
            }
            root.index
                .add(&path, e.header().mode().unwrap_or(0) & 0o111 != 0);
            continue;
        }
        if rel.starts_with("curtin/") {
            if let Ok(Some(l)) = e.link_name() {
                if ty.is_symlink() {
                    root.links
                        .insert(rel.clone(), l.to_string_lossy().into_owned());
                }
            }
            root.modes
                .insert(rel.clone(), e.header().mode().unwrap_or(0) & 0o7777);
        }
        let keep = ty.is_file() && wanted(&rel) && e.size() <= MAX_TEXT;
        if keep {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes)?;
            root.index
                .add(&path, e.header().mode().unwrap_or(0) & 0o111 != 0);
            root.index
                .add_content(&path, String::from_utf8_lossy(&bytes).into_owned());
        } else {
            root.index.add_entry(&mut e)?;
        }
    }
    Ok(Scan::Root(root))
}

impl TarRoot {
    /// `rel` with a link in `curtin/` followed (relative to its directory, or from the root).
    fn follow(&self, rel: &str) -> String {
        let mut cur = rel.to_string();
        for _ in 0..8 {
            let Some(t) = self.links.get(&cur) else {
                break;
            };
            cur = if let Some(abs) = t.strip_prefix('/') {
                abs.to_string()
            } else {
                let dir = cur.rsplit_once('/').map(|x| x.0).unwrap_or("");
                TarIndex::normalize(&format!("{dir}/{t}"))
            };
        }
        cur
    }
}

impl RootView for TarRoot {
    fn is_executable(&self, rel: &str) -> bool {
        self.index.is_executable(rel)
    }
    fn read(&self, rel: &str) -> Option<String> {
        self.index.read(&self.follow(rel))
    }
    fn exists(&self, rel: &str) -> bool {
        self.index.exists(rel)
    }
}

impl Tree for TarRoot {
    fn list(&self, dir: &str) -> Vec<String> {
        self.index.children(dir)
    }

    fn file(&self, rel: &str) -> Option<FileInfo> {
        if !self.index.exists(rel) {
            return None;
        }
        let target = self.follow(rel);
        // A link out of /curtin: its target's mode was not kept (only its x bits are known).
        let mode = self.modes.get(&target).copied().or_else(|| {
            self.index.exists(&target).then(|| {
                if self.index.is_executable(&target) {
                    0o755
                } else {
                    0o644
                }
            })
        });
        Some(FileInfo {
            link: self.links.get(rel).cloned(),
            mode: mode.filter(|_| self.index.exists(&target)),
            text: self.index.read(&target),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, u32, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "./", &[][..]).unwrap();
        for (p, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(*mode);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, p, *data).unwrap();
        }
        for (p, t) in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, p, t).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn root_tarball_keeps_hooks_and_configs() {
        let data = archive(
            &[
                ("./etc/os-release", 0o644, b"ID=debian\n"),
                (
                    "./curtin/python_wrapper",
                    0o755,
                    b"#!/bin/bash\nexec python \"$0.py\"\n",
                ),
                (
                    "./etc/cloud/cloud.cfg.d/90_dpkg.cfg",
                    0o644,
                    b"datasource_list: [ MAAS ]\n",
                ),
                ("./usr/bin/big", 0o755, &[0u8; 10]),
            ],
            &[
                ("./curtin/curtin-hooks", "python_wrapper"),
                ("./curtin/finalize", "/usr/bin/big"),
            ],
        );
        let Scan::Root(r) = scan(&data[..]).unwrap() else {
            panic!("not a root")
        };
        assert_eq!(r.read("etc/os-release").unwrap(), "ID=debian\n");
        assert!(r.read("etc/cloud/cloud.cfg.d/90_dpkg.cfg").is_some());
        assert!(r.read("usr/bin/big").is_none());
        let f = r.file("curtin/curtin-hooks").unwrap();
        assert_eq!(f.link.as_deref(), Some("python_wrapper"));
        assert_eq!(f.mode, Some(0o755));
        assert!(f.text.unwrap().starts_with("#!/bin/bash"));
        // A link out of /curtin: known to exist and be executable, its text not kept.
        let f = r.file("curtin/finalize").unwrap();
        assert_eq!((f.mode, f.text), (Some(0o755), None));
        assert_eq!(
            r.list("curtin"),
            vec!["curtin-hooks", "finalize", "python_wrapper"]
        );
        assert!(r.file("curtin/network-config").is_none());
    }

    #[test]
    fn disk_in_tar() {
        let mut img = vec![0u8; 8192];
        img[510] = 0x55;
        img[511] = 0xaa;
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(img.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, "disk.img", &img[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(matches!(scan(&data[..]).unwrap(), Scan::DiskInTar(n) if n == "disk.img"));
    }
}
