//! Unpacking a tar stream into a target directory the way GNU tar `-xpS --numeric-owner
//! --xattrs --xattrs-include='*'` does, without ever writing outside the target.
//!
//! The tar crate splits the stream into raw members; the rest is ours: PAX records (the crate's
//! parser splits values on newlines, which breaks binary xattrs and multi-line ACL text), GNU
//! long names, GNU and PAX sparse maps, and all the file system work (the crate writes device
//! nodes and FIFOs as regular files and sets xattrs before the owner, and Linux drops
//! `security.capability` on chown).
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
    // Modes come from the archive, not the umask (restored when done).
    let _umask = UmaskGuard(unsafe { libc::umask(0) });
    let mut archive = tar::Archive::new(reader);
    let mut pending = Pending::default();
    for entry in archive.entries().context("reading tar stream")?.raw(true) {
        let mut entry = entry.context("reading tar entry")?;
        match entry.header().entry_type() {
            EntryType::XHeader => {
                pending.pax = parse_pax(&read_member(&mut entry)?)?;
                continue;
            }
            EntryType::XGlobalHeader => {
                read_member(&mut entry)?;
                continue;
            }
            EntryType::GNULongName => {
                pending.long_name = Some(trim_nul(read_member(&mut entry)?));
                continue;
            }
            EntryType::GNULongLink => {
                pending.long_link = Some(trim_nul(read_member(&mut entry)?));
                continue;
            }
            _ => {}
        }
        let p = std::mem::take(&mut pending);
        let name = p.path(&entry);
        u.entry(&mut entry, p)
            .with_context(|| format!("extracting {:?}", String::from_utf8_lossy(&name)))?;
    }
    u.finish_dirs()?;
    Ok(u.stats)
}

struct UmaskGuard(libc::mode_t);

impl Drop for UmaskGuard {
    fn drop(&mut self) {
        unsafe { libc::umask(self.0) };
    }
}

/// What the members before an entry said about it.
#[derive(Default)]
struct Pending {
    pax: Vec<(Vec<u8>, Vec<u8>)>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
}

impl Pending {
    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    fn num(&self, key: &[u8]) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                let v = std::str::from_utf8(v)?;
                let v = v.split('.').next().unwrap_or(v);
                v.parse::<u64>()
                    .with_context(|| format!("PAX {} = {v:?}", String::from_utf8_lossy(key)))
            })
            .transpose()
    }

    fn path<R: Read>(&self, e: &tar::Entry<R>) -> Vec<u8> {
        if let Some(n) = self.get(b"GNU.sparse.name") {
            return n.to_vec();
        }
        if let Some(p) = self.get(b"path") {
            return p.to_vec();
        }
        if let Some(n) = &self.long_name {
            return n.clone();
        }
        e.header().path_bytes().into_owned()
    }

    fn link<R: Read>(&self, e: &tar::Entry<R>) -> Option<Vec<u8>> {
        if let Some(p) = self.get(b"linkpath") {
            return Some(p.to_vec());
        }
        if let Some(n) = &self.long_link {
            return Some(n.clone());
        }
        e.header().link_name_bytes().map(|c| c.into_owned())
    }
}

fn read_member<R: Read>(e: &mut tar::Entry<R>) -> Result<Vec<u8>> {
    if e.header().entry_size()? > 16 << 20 {
        bail!("a tar metadata member larger than 16 MiB");
    }
    let mut v = Vec::new();
    e.read_to_end(&mut v)
        .context("reading tar metadata member")?;
    Ok(v)
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// PAX records: `LEN key=value\n`, LEN counting the whole record; values may hold any byte.
pub fn parse_pax(mut data: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .context("malformed PAX record")?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .context("malformed PAX record length")?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            bail!("malformed PAX record");
        }
        let kv = &data[sp + 1..len - 1];
        let eq = kv
            .iter()
            .position(|&b| b == b'=')
            .context("PAX record without '='")?;
        out.push((kv[..eq].to_vec(), kv[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// Where the data of a regular file goes: all of it in order, or segments of a sparse file.
enum Layout {
    Plain,
    /// PAX sparse 1.0: the map is at the start of the data.
    PaxMapInData {
        real_size: u64,
    },
    Segments {
        map: Vec<(u64, u64)>,
        real_size: u64,
    },
}

struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
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
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>, p: Pending) -> Result<()> {
        let kind = e.header().entry_type();
        if let Some(size) = p.num(b"size")? {
            if size != e.header().entry_size()? {
                bail!("PAX size records (members over 8 GiB) are not supported");
            }
        }
        let Some(rel) = sanitize(&p.path(e))? else {
            // "./": the target root itself; GNU tar applies its metadata too.
            let meta = self.meta(e, &p)?;
            self.dirs.push((self.root.clone(), meta));
            return Ok(());
        };
        self.stats.entries += 1;
        let meta = self.meta(e, &p)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        self.ensure_parent(parent)?;
        let abs = self.root.join(&rel);
        match kind {
            EntryType::Directory => self.dir(&rel, abs, meta),
            EntryType::Symlink => {
                let link = p.link(e).context("symlink without a target")?;
                self.symlink(&abs, &link, &meta)
            }
            EntryType::Link => {
                let link = p.link(e).context("hard link without a target")?;
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
                let layout = layout(e, &p)?;
                self.file(e, &abs, &meta, layout)
            }
            other => bail!("unsupported tar entry type {other:?}"),
        }
    }

    fn meta<R: Read>(&mut self, e: &tar::Entry<R>, p: &Pending) -> Result<Meta> {
        let h = e.header();
        let mut m = Meta {
            mode: h.mode()? & 0o7777,
            uid: p.num(b"uid")?.unwrap_or(h.uid()?) as u32,
            gid: p.num(b"gid")?.unwrap_or(h.gid()?) as u32,
            mtime: match p.get(b"mtime") {
                Some(v) => parse_time(v)?,
                None => (h.mtime()? as i64, 0),
            },
            xattrs: Vec::new(),
            acl_access: None,
            acl_default: None,
        };
        let has_acl_text = p.get(b"SCHILY.acl.access").is_some();
        for (key, value) in &p.pax {
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                // The ACL xattrs and their text form say the same thing: the binary wins.
                m.xattrs.push((name.to_vec(), value.clone()));
            } else if key == b"SCHILY.acl.access" {
                m.acl_access = Some(value.clone());
            } else if key == b"SCHILY.acl.default" {
                m.acl_default = Some(value.clone());
            }
        }
        let has = |n: &[u8]| m.xattrs.iter().any(|(k, _)| k == n);
        if has(b"system.posix_acl_access") || !has_acl_text {
            m.acl_access = None;
        }
        if has(b"system.posix_acl_default") {
            m.acl_default = None;
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
                        anyhow::anyhow!("refusing to follow symlink {}: {e}", prefix.display())
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
            Ok(_) => {
                std::fs::remove_file(abs).with_context(|| format!("replacing {}", abs.display()))?
            }
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
        // A symlink made at a new path cannot be a cached parent (those are real directories);
        // replacing an existing entry went through `clear`, which empties the cache.
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
        let link =
            || unsafe { libc::linkat(libc::AT_FDCWD, s.as_ptr(), libc::AT_FDCWD, d.as_ptr(), 0) };
        if link() != 0 {
            let err = errno();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err)
                    .with_context(|| format!("hard link {} to {}", abs.display(), src.display()));
            }
            self.clear(abs)?;
            if link() != 0 {
                return Err(errno())
                    .with_context(|| format!("hard link {} to {}", abs.display(), src.display()));
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
        layout: Layout,
    ) -> Result<()> {
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .mode(meta.mode & 0o777)
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
        let written = match layout {
            Layout::Plain => copy_plain(e, &mut f, &mut self.buf)?,
            Layout::PaxMapInData { real_size } => {
                let map = read_data_map(e)?;
                copy_segments(e, &mut f, &mut self.buf, &map, real_size)?
            }
            Layout::Segments { map, real_size } => {
                copy_segments(e, &mut f, &mut self.buf, &map, real_size)?
            }
        };
        self.stats.bytes += written;
        let fd = f.as_raw_fd();
        let need_chown = !(self.is_root && meta.uid == 0 && meta.gid == 0);
        if need_chown && unsafe { libc::fchown(fd, meta.uid, meta.gid) } != 0 {
            return Err(errno()).with_context(|| format!("chown {}", abs.display()));
        }
        // The umask is 0 while unpacking, so open() gave the permission bits already; chown
        // drops setuid/setgid, so those (and any mode after a chown) are set now.
        if (need_chown || meta.mode & 0o7000 != 0) && unsafe { libc::fchmod(fd, meta.mode) } != 0 {
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
                if unsafe {
                    libc::lsetxattr(c.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0)
                } != 0
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
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
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

fn timespec((secs, nsec): (i64, i64)) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nsec as _,
    }
}

/// A PAX time `SECS[.FRACTION]` as seconds and nanoseconds.
fn parse_time(v: &[u8]) -> Result<(i64, i64)> {
    let v = std::str::from_utf8(v)?;
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().with_context(|| format!("PAX mtime {v:?}"))?;
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: i64 = digits.parse().with_context(|| format!("PAX mtime {v:?}"))?;
    Ok((secs, if secs < 0 && nsec > 0 { -nsec } else { nsec }))
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

/// The sparse layout of a regular member, from its GNU header or its PAX records.
fn layout<R: Read>(e: &tar::Entry<R>, p: &Pending) -> Result<Layout> {
    if e.header().entry_type() == EntryType::GNUSparse {
        let gnu = e
            .header()
            .as_gnu()
            .context("sparse member without a GNU header")?;
        if gnu.is_extended() {
            bail!("GNU old-format sparse files with more than 4 segments are not supported");
        }
        let mut map = Vec::new();
        for s in gnu.sparse.iter() {
            if s.is_empty() {
                break;
            }
            map.push((s.offset()?, s.length()?));
        }
        return Ok(Layout::Segments {
            map,
            real_size: gnu.real_size()?,
        });
    }
    let real_size = p
        .num(b"GNU.sparse.realsize")?
        .or(p.num(b"GNU.sparse.size")?);
    match (
        p.get(b"GNU.sparse.major"),
        p.get(b"GNU.sparse.map"),
        real_size,
    ) {
        (Some(b"1"), _, Some(real_size)) => Ok(Layout::PaxMapInData { real_size }),
        (None, Some(m), Some(real_size)) => {
            let nums = std::str::from_utf8(m)?
                .split(',')
                .map(|n| n.parse::<u64>().context("GNU.sparse.map"))
                .collect::<Result<Vec<_>>>()?;
            let map = nums
                .chunks(2)
                .filter(|c| c.len() == 2)
                .map(|c| (c[0], c[1]))
                .collect();
            Ok(Layout::Segments { map, real_size })
        }
        (None, None, None) => Ok(Layout::Plain),
        _ => bail!("unsupported PAX sparse format (use GNU tar's default 1.0 format)"),
    }
}

/// PAX sparse 1.0: decimal lines (count, then offset and size pairs) padded to a block.
fn read_data_map<R: Read>(r: &mut R) -> Result<Vec<(u64, u64)>> {
    let mut consumed = 0usize;
    let mut line = Vec::new();
    let mut next = |consumed: &mut usize| -> Result<u64> {
        line.clear();
        let mut b = [0u8; 1];
        loop {
            r.read_exact(&mut b).context("reading the sparse map")?;
            *consumed += 1;
            if b[0] == b'\n' {
                break;
            }
            line.push(b[0]);
            if line.len() > 24 {
                bail!("malformed sparse map");
            }
        }
        std::str::from_utf8(&line)?
            .parse()
            .context("malformed sparse map")
    };
    let count = next(&mut consumed)?;
    if count > 1 << 20 {
        bail!("sparse map with {count} segments");
    }
    let mut map = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let off = next(&mut consumed)?;
        let len = next(&mut consumed)?;
        map.push((off, len));
    }
    let pad = (512 - consumed % 512) % 512;
    io::copy(&mut r.take(pad as u64), &mut io::sink())?;
    Ok(map)
}

/// Write each data segment at its offset, leaving holes between, then set the real size.
fn copy_segments<R: Read>(
    r: &mut R,
    f: &mut File,
    buf: &mut [u8],
    map: &[(u64, u64)],
    real_size: u64,
) -> Result<u64> {
    let mut written = 0;
    for &(off, len) in map {
        f.seek(SeekFrom::Start(off))?;
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = r.read(&mut buf[..want]).context("reading tar data")?;
            if n == 0 {
                bail!("tar stream ended inside a sparse file");
            }
            f.write_all(&buf[..n]).context("writing file")?;
            left -= n as u64;
        }
        written += len;
    }
    f.set_len(real_size).context("setting sparse file length")?;
    Ok(written)
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

    #[test]
    fn pax_values_may_hold_newlines_and_binary() {
        let v = b"11 a=x\ny\nz\n8 b=\n\x00\n\n";
        let r = parse_pax(v).unwrap();
        assert_eq!(r[0], (b"a".to_vec(), b"x\ny\nz".to_vec()));
        assert_eq!(r[1], (b"b".to_vec(), b"\n\x00\n".to_vec()));
        assert!(parse_pax(b"99 a=b\n").is_err());
    }
}
