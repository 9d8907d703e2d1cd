//! The sources that are copied from a mounted root rather than unpacked, as curtin's extract
//! handles them:
//! - `cp://DIR` (any type; MAAS sends `cp:///media/root-ro`, the ephemeral OS's own root):
//!   DIR copied;
//! - `fsimage:` / `squashfs://` / `*.squashfs`: the image loop-mounted read-only, copied;
//! - `fsimage-layered:DIR/a.b.c.ext`: `a.ext`, `a.b.ext`, `a.b.c.ext` loop-mounted read-only
//!   and stacked with overlayfs (`a.b.c` on top), the merged tree copied.
//!
//! An image on HTTP is downloaded into the target's own file system (a hidden dir at its
//! root, removed afterwards), never into RAM: the ephemeral OS runs from memory.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::copy::{self, Stats};
use crate::block_meta::mount::Mounts;
use crate::error::{Kind, KindExt};
use crate::install::loopback::TargetDisk;
use crate::source::FetchOptions;
use preseed::sources::{Source, SourceType};

/// Whether `extract` copies this source from a mounted tree (rather than unpacking a tarball).
pub fn is_copied(src: &Source) -> bool {
    src.uri.starts_with("cp://")
        || matches!(src.kind, SourceType::Fsimage | SourceType::FsimageLayered)
}

/// What `plan` says the extract stage does with such a source.
pub fn describe(src: &Source) -> String {
    let remote = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    if let Some(dir) = src.uri.strip_prefix("cp://") {
        return format!(
            "{dir} copied into the target root (owners, modes, xattrs, ACLs, hard links, devices; one file system)"
        );
    }
    let stack = image_stack(src);
    let fetched = if stack.iter().any(|u| remote(u)) {
        "downloaded into the target's file system, "
    } else {
        ""
    };
    match stack.as_slice() {
        [one] => format!(
            "{one}: {fetched}loop-mounted read-only and copied into the target root (owners, modes, xattrs, ACLs, hard links, devices)"
        ),
        layers => format!(
            "layers {} (lowest first): {fetched}loop-mounted read-only, stacked with overlayfs, the merged tree copied into the target root",
            layers.join(", ")
        ),
    }
}

/// curtin's `_get_image_stack`: `d/a.b.c.ext` -> `d/a.ext`, `d/a.b.ext`, `d/a.b.c.ext`.
pub fn layers(uri: &str) -> Vec<String> {
    let (dir, name) = match uri.rfind('/') {
        Some(i) => (&uri[..=i], &uri[i + 1..]),
        None => ("", uri),
    };
    let (base, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    if base.is_empty() {
        return vec![];
    }
    let parts: Vec<&str> = base.split('.').collect();
    (1..=parts.len())
        .map(|n| format!("{dir}{}{ext}", parts[..n].join(".")))
        .collect()
}

fn image_stack(src: &Source) -> Vec<String> {
    match src.kind {
        SourceType::FsimageLayered => layers(&src.uri),
        _ => vec![src.uri.clone()],
    }
}

/// Copy one such source into `target`.
pub fn extract(src: &Source, fetch: &FetchOptions, target: &Path) -> Result<Stats> {
    if let Some(dir) = src.uri.strip_prefix("cp://") {
        let dir = Path::new(dir);
        if !dir.is_dir() {
            return Err(anyhow!(
                "source {}: cp://{} is not a directory on this system",
                src.name,
                dir.display()
            ))
            .kind(Kind::Source);
        }
        return copy::copy_tree(dir, target).kind(Kind::Storage);
    }
    let stack = image_stack(src);
    if stack.is_empty() {
        return Err(anyhow!("source {}: no image in {:?}", src.name, src.uri)).kind(Kind::Config);
    }
    let work = tempfile::Builder::new()
        .prefix(".deployer-fsimage-")
        .tempdir_in(target)
        .with_context(|| format!("creating a work dir in {}", target.display()))
        .kind(Kind::Storage)?;
    let mut images = vec![];
    for uri in &stack {
        images.push(local_image(uri, fetch, work.path())?);
    }
    let mut mounts = Mounts::default();
    let mut loops = vec![];
    let mut dirs = vec![];
    for img in &images {
        let dev = TargetDisk::attach_read_only(img)
            .with_context(|| format!("attaching {}", img.display()))
            .kind(Kind::Storage)?;
        let name = img
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let mut mp = name;
        mp.push(".dir");
        let mp = work.path().join(mp);
        mounts
            .mount(&dev.device, &mp, None, "ro")
            .with_context(|| format!("mounting {}", img.display()))
            .kind(Kind::Storage)?;
        loops.push(dev);
        dirs.push(mp);
    }
    let root = if dirs.len() == 1 {
        dirs[0].clone()
    } else {
        let merged = work.path().join("root.dir");
        let lower: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
        mounts
            .mount(
                Path::new("overlay"),
                &merged,
                Some("overlay"),
                &format!("ro,lowerdir={}", lower.join(":")),
            )
            .context("stacking the layers with overlayfs")
            .kind(Kind::Storage)?;
        merged
    };
    let r = copy::copy_tree(&root, target).kind(Kind::Storage);
    let u = mounts.unmount_all();
    drop(loops);
    r.and_then(|st| u.map(|_| st).kind(Kind::Storage))
}

/// A local path for an image: `file://` stripped, or downloaded into `work` (on the target's
/// disk). Each must be a non-empty regular file, as curtin checks.
fn local_image(uri: &str, fetch: &FetchOptions, work: &Path) -> Result<PathBuf> {
    let path = if uri.starts_with("http://") || uri.starts_with("https://") {
        let name = uri
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("image");
        let dest = work.join(name);
        let mut opened = crate::source::open(uri, fetch)
            .with_context(|| format!("fetching {uri}"))
            .kind(Kind::Source)?;
        let mut f = std::fs::File::create(&dest)
            .with_context(|| format!("creating {}", dest.display()))
            .kind(Kind::Storage)?;
        std::io::copy(&mut opened.reader, &mut f)
            .with_context(|| format!("downloading {uri}"))
            .kind(Kind::Source)?;
        dest
    } else {
        PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
    };
    let ok = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() > 0);
    if !ok {
        bail!("Failed to use fsimage: '{uri}' doesn't exist or is invalid");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_stacks_as_curtin() {
        assert_eq!(
            layers("http://h/d/minimal.standard.live.squashfs"),
            [
                "http://h/d/minimal.squashfs",
                "http://h/d/minimal.standard.squashfs",
                "http://h/d/minimal.standard.live.squashfs"
            ]
        );
        assert_eq!(layers("/x/a.img"), ["/x/a.img"]);
    }

    #[test]
    fn plans_say_what_happens() {
        let s = preseed::sources::parse("cp:///media/root-ro");
        assert!(is_copied(&s));
        assert!(describe(&s).starts_with("/media/root-ro copied"));
        let s = preseed::sources::parse("squashfs://http://h/r.squashfs");
        assert!(describe(&s).contains("downloaded into the target's file system"));
        let s = preseed::sources::parse("fsimage-layered:/i/a.b.squashfs");
        assert!(describe(&s).contains("layers /i/a.squashfs, /i/a.b.squashfs"));
        assert!(!is_copied(&preseed::sources::parse("http://h/r.tgz")));
    }
}
