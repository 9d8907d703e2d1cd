//! The cache of built artefacts, outside the checkout: `/var/cache/deployer-qemu/<name>-<hash>/`,
//! the hash taken over the artefact's recipe (every input that changes its bytes), so a changed
//! recipe builds a new entry and an unchanged one is reused between runs. `DEPLOYER_QEMU_CACHE`
//! moves it. Builds go to a temporary sibling directory renamed into place when complete, under an
//! flock, so a crashed build never leaves a half entry and parallel tests build once.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    std::env::var_os("DEPLOYER_QEMU_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/deployer-qemu"))
}

/// The first 16 hex digits of sha256 over the recipe text.
pub fn key(recipe: &str) -> String {
    hex::encode(Sha256::digest(recipe.as_bytes()))[..16].to_string()
}

/// Whether the entry was found or built by this call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Built,
}

/// The directory of entry `name` for `recipe`; runs `build(tmpdir)` to make it when missing.
/// The recipe is stored as `recipe.txt` in the entry, for whoever wonders what it holds.
pub fn entry(
    name: &str,
    recipe: &str,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<(PathBuf, Outcome)> {
    entry_in(&root(), name, recipe, build)
}

fn entry_in(
    base: &Path,
    name: &str,
    recipe: &str,
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<(PathBuf, Outcome)> {
    let base = base.to_path_buf();
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let dir = base.join(format!("{name}-{}", key(recipe)));
    let lock_path = base.join(format!(".{name}-{}.lock", key(recipe)));
    let lock =
        File::create(&lock_path).with_context(|| format!("creating {}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("locking {}", lock_path.display()));
    }
    if dir.join("recipe.txt").exists() {
        return Ok((dir, Outcome::Hit));
    }
    let tmp = base.join(format!(".{name}-{}.partial", key(recipe)));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(e) = build(&tmp) {
        // A failed build leaves nothing behind (its files can be hundreds of MiB).
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("building cache entry {name} in {}", tmp.display())));
    }
    std::fs::write(tmp.join("recipe.txt"), recipe)?;
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    drop(lock);
    Ok((dir, Outcome::Built))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_once_per_recipe_and_leaves_nothing_on_failure() {
        let base = tempfile::tempdir().unwrap();
        let b = base.path();
        let (dir, o) = entry_in(b, "x", "r1", |t| Ok(std::fs::write(t.join("f"), "1")?)).unwrap();
        assert_eq!(o, Outcome::Built);
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "1");
        let (again, o) = entry_in(b, "x", "r1", |_| panic!("rebuilt")).unwrap();
        assert_eq!((again, o), (dir.clone(), Outcome::Hit));
        let (other, o) = entry_in(b, "x", "r2", |_| Ok(())).unwrap();
        assert_ne!(other, dir, "a changed recipe is a new entry");
        assert_eq!(o, Outcome::Built);
        let err = entry_in(b, "y", "r", |t| {
            std::fs::write(t.join("half"), "x")?;
            anyhow::bail!("boom")
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("building cache entry y"),
            "{err:#}"
        );
        let left: Vec<_> = std::fs::read_dir(b)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(left.is_empty(), "a failed build left {left:?}");
    }
}
