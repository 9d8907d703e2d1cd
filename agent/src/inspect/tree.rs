//! The image's root as the checks read it: a read-only mounted root of a dd image, or the index
//! of a root tarball. It extends the image check's [`RootView`] with what inspect needs more
//! (directory listings, the image's hooks).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::image_check::{MountedRoot, RootView};
use crate::target;

/// One of the image's `/curtin/*` files.
#[derive(Debug, Clone, Default)]
pub struct FileInfo {
    /// The link's target, when the path is a symlink.
    pub link: Option<String>,
    /// The mode of the file (the link's target when a link), when it resolves.
    pub mode: Option<u32>,
    /// Its text (the first MiB), when it resolves to a regular file.
    pub text: Option<String>,
}

/// Largest file the checks read (hooks, cloud-init configs).
pub const MAX_TEXT: u64 = 1 << 20;

pub trait Tree: RootView {
    /// Names directly inside `dir` (symlinks resolved inside the root).
    fn list(&self, dir: &str) -> Vec<String>;
    /// `rel` as the hooks stage sees it; None when it does not exist at all.
    fn file(&self, rel: &str) -> Option<FileInfo>;
}

/// A mounted root (read-only).
pub struct Mounted(pub PathBuf);

impl RootView for Mounted {
    fn is_executable(&self, rel: &str) -> bool {
        MountedRoot(&self.0).is_executable(rel)
    }
    fn read(&self, rel: &str) -> Option<String> {
        MountedRoot(&self.0).read(rel)
    }
    fn exists(&self, rel: &str) -> bool {
        MountedRoot(&self.0).exists(rel)
    }
}

impl Tree for Mounted {
    fn list(&self, dir: &str) -> Vec<String> {
        let Some(p) = target::resolve_in(&self.0, dir) else {
            return vec![];
        };
        let mut names: Vec<String> = fs::read_dir(p)
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn file(&self, rel: &str) -> Option<FileInfo> {
        // The directory is resolved inside the root (it may itself be a link in the image);
        // only the last component is looked at as it is.
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let host = target::resolve_in(&self.0, dir)?.join(name);
        let lmd = fs::symlink_metadata(&host).ok()?;
        let link = lmd
            .file_type()
            .is_symlink()
            .then(|| fs::read_link(&host).ok())
            .flatten()
            .map(|l| l.display().to_string());
        let resolved = target::resolve_in(&self.0, rel);
        let md = resolved.as_deref().and_then(|p| fs::metadata(p).ok());
        let text = match (&resolved, &md) {
            (Some(p), Some(m)) if m.is_file() => read_head(p),
            _ => None,
        };
        Some(FileInfo {
            link,
            mode: md.map(|m| m.permissions().mode() & 0o7777),
            text,
        })
    }
}

fn read_head(p: &Path) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    fs::File::open(p)
        .ok()?
        .take(MAX_TEXT)
        .read_to_end(&mut buf)
        .ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}
