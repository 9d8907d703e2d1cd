//! Unpacking a tar stream into a target directory the way GNU tar `-xpS --numeric-owner
//! --xattrs --xattrs-include='*'` does, without ever writing outside the target.
//!
//! The tar crate parses the stream (GNU long names, PAX records, GNU sparse maps); the file
//! system work is ours because the crate writes device nodes and FIFOs as regular files and
//! sets xattrs before the owner (Linux drops `security.capability` on chown).
//!
//! Safety: an entry path with `..` or a leading `/` is refused; every parent directory is
//! walked component by component and a symlink on the way must resolve inside the target;
//! the last component is created with `O_EXCL|O_NOFOLLOW`/`mknod`/`symlink`, which never
//! follow a link. Checked parents are cached until the archive plants a new symlink.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use tar::EntryType;

use super::acl;

/// What was unpacked, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
}

/// Unpack every entry of the tar stream `reader` into `target` (an existing directory).
pub fn unpack<R: Read>(reader: R, target: &Path) -> Result<Stats> {
    let root = target
        .canonicalize()
        .with_context(|| format!("opening target {}", target.display()))?;
    let mut u = Unpacker {
        root,
        checked: HashSet::new(),
        dirs: Vec::new(),
        buf: vec![0u8; 256 * 1024],
        is_root: unsafe { libc::geteuid() } == 0,
        stats: Stats::default(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().context("reading tar stream")? {
        let mut entry = entry.context("reading tar entry")?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        u.entry(&mut entry)
            .with_context(|| format!("extracting {name:?}"))?;
    }
    u.finish_dirs()?;
    Ok(u.stats)
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    acl_access: Option<Vec<u8>>,
    acl_default: Option<Vec<u8>>,
}

struct Unpacker {
    root: PathBuf,
    /// Relative parent directories already checked to be real directories inside the target.
    checked: HashSet<PathBuf>,
    /// Directories whose mode and mtime are applied at the end, deepest first.
    dirs: Vec<(PathBuf, Meta)>,
    buf: Vec<u8>,
    is_root: bool,
    stats: Stats,
}

/// An archive path made relative and checked: no `..`, not absolute. `None` for `.`.
pub fn sanitize(raw: &[u8]) -> Result<Option<PathBuf>> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => bail!("refusing a path with a '..' component"),
            Component::RootDir | Component::Prefix(_) => bail!("refusing an absolute path"),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).context("path contains a NUL byte")
}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

impl Unpacker {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>) -> Result<()> {
        let kind = e.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
        ) {
            return Ok(());
        }
        let Some(rel) = sanitize(&e.path_bytes())? else {
            // "./": the target root itself; GNU tar applies its metadata too.
            let meta = self.meta(e)?;
            self.dirs.push((self.root.clone(), meta));
            return Ok(());
        };
        self.stats.entries += 1;
        let meta = self.meta(e)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        self.ensure_parent(parent)?;
        let abs = self.root.join(&rel);
        match kind {
            EntryType::Directory => self.dir(&rel, abs, meta),
            EntryType::Symlink => {
                let link = e.link_name_bytes().context("symlink without a target")?;
                self.symlink(&abs, &link, &meta)
            }
            EntryType::Link => {
                let link = e.link_name_bytes().context("hard link without a target")?;
                self.hardlink(&abs, &link)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let major = e.header().device_major()?.unwrap_or(0);
                let minor = e.header().device_minor()?.unwrap_or(0);
                let fmt = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                self.node(&abs, fmt, libc::makedev(major, minor), &meta)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let sparse = kind == EntryType::GNUSparse;
                self.file(e, &abs, &meta, sparse)
            }
            other => bail!("unsupported tar entry type {other:?}"),
        }
    }

    fn meta<R: Read>(&mut self, e: &mut tar::Entry<R>) -> Result<Meta> {
        let h = e.header();
        let mut m = Meta {
            mode: h.mode()? & 0o7777,
            uid: h.uid()? as u32,
            gid: h.gid()? as u32,
            mtime: h.mtime()? as i64,
            xattrs: Vec::new(),
            acl_access: None,
            acl_default: None,
        };
        if let Some(exts) = e.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    m.xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                } else if key == b"SCHILY.acl.access" {
                    m.acl_access = Some(ext.value_bytes().to_vec());
                } else if key == b"SCHILY.acl.default" {
                    m.acl_default = Some(ext.value_bytes().to_vec());
                } else if key == b"uid" {
                    m.uid = ext.value()?.parse().context("PAX uid")?;
                } else if key == b"gid" {
                    m.gid = ext.value()?.parse().context("PAX gid")?;
                } else if key == b"mtime" {
                    let v = ext.value()?;
                    let secs = v.split('.').next().unwrap_or(v);
                    m.mtime = secs.parse().context("PAX mtime")?;
                }
            }
        }
        Ok(m)
    }

    /// Make sure every component of `parent` (relative) is a real directory inside the
    /// target, creating missing ones; a symlink on the way must resolve inside the target.
    fn ensure_parent(&mut self, parent: &Path) -> Result<()> {
        if parent.as_os_str().is_empty() || self.checked.contains(parent) {
            return Ok(());
        }
        let mut prefix = PathBuf::new();
        for c in parent.components() {
            prefix.push(c);
            if self.checked.contains(&prefix) {
                continue;
            }
            let abs = self.root.join(&prefix);
            match std::fs::symlink_metadata(&abs) {
                Ok(md) if md.is_dir() => {}
                Ok(md) if md.file_type().is_symlink() => {
                    let real = abs.canonicalize().map_err(|e| {
                        anyhow::anyhow!(
                            "refusing to follow symlink {}: {e}",
                            prefix.display()
                        )
                    })?;
                    if !real.starts_with(&self.root) {
                        bail!(
                            "refusing to follow symlink {} out of the target (to {})",
                            prefix.display(),
                            real.display()
                        );
                    }
                    if !real.is_dir() {
                        bail!("{} is a symlink to a non-directory", prefix.display());
                    }
                }
                Ok(_) => bail!("{} exists and is not a directory", prefix.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&abs)
                        .with_context(|| format!("creating directory {}", abs.display()))?;
                }
                Err(e) => return Err(e).with_context(|| format!("inspecting {}", abs.display())),
            }
            self.checked.insert(prefix.clone());
        }
        Ok(())
    }

    /// Remove whatever is at `abs` (not following a symlink), for overwrite semantics.
    fn clear(&mut self, abs: &Path) -> Result<()> {
        match std::fs::symlink_metadata(abs) {
            Ok(md) if md.is_dir() => std::fs::remove_dir(abs)
                .with_context(|| format!("replacing directory {}", abs.display()))?,
            Ok(_) => std::fs::remove_file(abs)
                .with_context(|| format!("replacing {}", abs.display()))?,
            Err(_) => {}
        }
        // A directory we had checked may be gone or replaced.
        self.checked.clear();
        Ok(())
    }

    fn dir(&mut self, rel: &Path, abs: PathBuf, meta: Meta) -> Result<()> {
        let c = cstr(&abs)?;
        // Created owner-writable so that the entries below can be written; mode set at the end.
        if unsafe { libc::mkdir(c.as_ptr(), 0o700) } != 0 {
            let err = errno();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).with_context(|| format!("mkdir {}", abs.display()));
            }
            let md = std::fs::symlink_metadata(&abs)?;
            if !md.is_dir() {
                self.clear(&abs)?;
                if unsafe { libc::mkdir(c.as_ptr(), 0o700) } != 0 {
                    return Err(errno()).with_context(|| format!("mkdir {}", abs.display()));
                }
            }
        }
        self.checked.insert(rel.to_path_buf());
        self.owner_path(&c, &meta)?;
        self.xattrs_path(&c, &meta)?;
        self.dirs.push((abs, meta));
        Ok(())
    }

    fn symlink(&mut self, abs: &Path, link: &[u8], meta: &Meta) -> Result<()> {
        let c = cstr(abs)?;
        let l = CString::new(link).context("symlink target contains NUL")?;
        if unsafe { libc::symlink(l.as_ptr(), c.as_ptr()) } != 0 {
            let err = errno();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).with_context(|| format!("symlink {}", abs.display()));
            }
            self.clear(abs)?;
            if unsafe { libc::symlink(l.as_ptr(), c.as_ptr()) } != 0 {
                return Err(errno()).with_context(|| format!("symlink {}", abs.display()));
            }
        }
        // A new symlink can change where any cached parent path leads.
        self.checked.clear();
        self.owner_path(&c, meta)?;
        self.times_path(&c, meta)
    }

    fn hardlink(&mut self, abs: &Path, link: &[u8]) -> Result<()> {
        let src_rel = sanitize(link)
            .context("hard link target")?
            .context("hard link to the target root")?;
        self.ensure_parent(src_rel.parent().unwrap_or(Path::new("")))?;
        let src = self.root.join(&src_rel);
        let (s, d) = (cstr(&src)?, cstr(abs)?);
        // flags 0: never follow a symlink at the source.
        let link = || unsafe { libc::linkat(libc::AT_FDCWD, s.as_ptr(), libc::AT_FDCWD, d.as_ptr(), 0) };
        if link() != 0 {
            let err = errno();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).with_context(|| {
                    format!("hard link {} to {}", abs.display(), src.display())
                });
            }
            self.clear(abs)?;
            if link() != 0 {
                return Err(errno()).with_context(|| {
                    format!("hard link {} to {}", abs.display(), src.display())
                });
            }
        }
        Ok(())
    }

    fn node(&mut self, abs: &Path, fmt: u32, dev: libc::dev_t, meta: &Meta) -> Result<()> {
        let c = cstr(abs)?;
        let mk = || unsafe { libc::mknod(c.as_ptr(), fmt | (meta.mode & 0o777), dev) };
        if mk() != 0 {
            let err = errno();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).with_context(|| format!("mknod {}", abs.display()));
            }
            self.clear(abs)?;
            if mk() != 0 {
                return Err(errno()).with_context(|| format!("mknod {}", abs.display()));
            }
        }
        self.owner_path(&c, meta)?;
        if unsafe { libc::chmod(c.as_ptr(), meta.mode) } != 0 {
            return Err(errno()).with_context(|| format!("chmod {}", abs.display()));
        }
        self.xattrs_path(&c, meta)?;
        self.times_path(&c, meta)
    }

    fn file<R: Read>(
        &mut self,
        e: &mut tar::Entry<R>,
        abs: &Path,
        meta: &Meta,
        sparse: bool,
    ) -> Result<()> {
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .mode(0o600)
                .open(abs)
        };
        let mut f = match open() {
            Ok(f) => f,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(abs)?;
                open().with_context(|| format!("creating {}", abs.display()))?
            }
            Err(err) => return Err(err).with_context(|| format!("creating {}", abs.display())),
        };
        let size = e.header().size()?;
        let written = if sparse {
            copy_sparse(e, &mut f, &mut self.buf, size)?
        } else {
            copy_plain(e, &mut f, &mut self.buf)?
        };
        self.stats.bytes += written;
        let fd = f.as_raw_fd();
        if !(self.is_root && meta.uid == 0 && meta.gid == 0) {
            if unsafe { libc::fchown(fd, meta.uid, meta.gid) } != 0 {
                return Err(errno()).with_context(|| format!("chown {}", abs.display()));
            }
        }
        if unsafe { libc::fchmod(fd, meta.mode) } != 0 {
            return Err(errno()).with_context(|| format!("chmod {}", abs.display()));
        }
        for (k, v) in &meta.xattrs {
            let k = CString::new(k.clone()).context("xattr name contains NUL")?;
            if unsafe { libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) } != 0 {
                return Err(errno())
                    .with_context(|| format!("setting xattr {k:?} on {}", abs.display()));
            }
        }
        if let Some(a) = &meta.acl_access {
            let v = acl::text_to_xattr(a)?;
            let k = c"system.posix_acl_access";
            if unsafe { libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) } != 0 {
                return Err(errno()).with_context(|| format!("setting ACL on {}", abs.display()));
            }
        }
        let ts = [timespec(meta.mtime), timespec(meta.mtime)];
        if unsafe { libc::futimens(fd, ts.as_ptr()) } != 0 {
            return Err(errno()).with_context(|| format!("setting mtime of {}", abs.display()));
        }
        Ok(())
    }

    fn owner_path(&self, c: &CString, meta: &Meta) -> Result<()> {
        if self.is_root && meta.uid == 0 && meta.gid == 0 {
            return Ok(());
        }
        if unsafe { libc::lchown(c.as_ptr(), meta.uid, meta.gid) } != 0 {
            return Err(errno()).with_context(|| format!("chown {c:?}"));
        }
        Ok(())
    }

    fn xattrs_path(&self, c: &CString, meta: &Meta) -> Result<()> {
        for (k, v) in &meta.xattrs {
            let k = CString::new(k.clone()).context("xattr name contains NUL")?;
            if unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) }
                != 0
            {
                return Err(errno()).with_context(|| format!("setting xattr {k:?} on {c:?}"));
            }
        }
        for (name, val) in [
            (c"system.posix_acl_access", &meta.acl_access),
            (c"system.posix_acl_default", &meta.acl_default),
        ] {
            if let Some(a) = val {
                let v = acl::text_to_xattr(a)?;
                if unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0) }
                    != 0
                {
                    return Err(errno()).with_context(|| format!("setting ACL on {c:?}"));
                }
            }
        }
        Ok(())
    }

    fn times_path(&self, c: &CString, meta: &Meta) -> Result<()> {
        let ts = [timespec(meta.mtime), timespec(meta.mtime)];
        if unsafe {
            libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
        } != 0
        {
            return Err(errno()).with_context(|| format!("setting mtime of {c:?}"));
        }
        Ok(())
    }

    /// Directory modes and mtimes last, deepest first, so writing entries below does not
    /// undo them and a read-only directory does not block its own contents.
    fn finish_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.0.cmp(&a.0));
        for (abs, meta) in dirs {
            let c = cstr(&abs)?;
            if abs == self.root {
                self.owner_path(&c, &meta)?;
            }
            if unsafe { libc::chmod(c.as_ptr(), meta.mode) } != 0 {
                return Err(errno()).with_context(|| format!("chmod {}", abs.display()));
            }
            self.times_path(&c, &meta)?;
        }
        Ok(())
    }
}

fn timespec(secs: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    }
}

fn copy_plain<R: Read>(r: &mut R, f: &mut File, buf: &mut [u8]) -> Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading tar data"),
        };
        f.write_all(&buf[..n]).context("writing file")?;
        total += n as u64;
    }
}

/// GNU sparse entries: the tar crate fills the holes with zeros; seek over zero blocks so the
/// holes come back as holes (GNU tar -S), then set the length.
fn copy_sparse<R: Read>(r: &mut R, f: &mut File, buf: &mut [u8], size: u64) -> Result<u64> {
    const BLK: usize = 4096;
    let mut pos = 0u64;
    let mut written = 0u64;
    loop {
        let n = read_full(r, buf)?;
        if n == 0 {
            break;
        }
        for chunk in buf[..n].chunks(BLK) {
            if chunk.iter().all(|&b| b == 0) {
                f.seek(SeekFrom::Current(chunk.len() as i64))?;
            } else {
                f.write_all(chunk).context("writing file")?;
                written += chunk.len() as u64;
            }
            pos += chunk.len() as u64;
        }
    }
    f.set_len(pos.max(size)).context("setting sparse file length")?;
    Ok(written)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading tar data"),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_refuses_parent_and_absolute() {
        assert!(sanitize(b"../etc/passwd").is_err());
        assert!(sanitize(b"a/../../b").is_err());
        assert!(sanitize(b"/etc/passwd").is_err());
        assert_eq!(sanitize(b"./").unwrap(), None);
        assert_eq!(
            sanitize(b"./usr/bin/").unwrap(),
            Some(PathBuf::from("usr/bin"))
        );
    }
}
