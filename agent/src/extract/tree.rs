//! Making the entries of an archive in the target tree, through [`TargetRoot`] in its strict
//! [`Scope::Beneath`](crate::target::Scope) form: the parent of each entry is resolved from the
//! target root's fd, and a symlink on the way that would lead out of the tree (absolute, or `..`
//! past the top) refuses the archive, as GNU tar's deferred links do; the entry itself is made
//! with an `*at` call on its name in that directory fd (`O_EXCL|O_NOFOLLOW`, `mkdirat`,
//! `symlinkat`, `mknodat`, `linkat` without follow), which never follows a link.
//!
//! Directory modes and mtimes are set last (deepest first). The directory is then opened again
//! without following a link and must be the one made (device and inode, as GNU tar checks): a
//! later entry that replaced it by a symlink cannot redirect the chmod to what it points to.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::fcntl::{AtFlags, OFlag};

use super::acl;
use crate::error::{Kind, KindExt};
use crate::target::{Dir, TargetRoot};

/// What the archive says about an entry's metadata.
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub acl_access: Option<Vec<u8>>,
    pub acl_default: Option<Vec<u8>>,
}

/// A directory made (or found) by the archive, finished at the end.
struct Made {
    rel: PathBuf,
    dev: u64,
    ino: u64,
    meta: Meta,
}

/// The target tree being filled.
pub struct Tree {
    root: TargetRoot,
    /// The last parent directory resolved (archives list a directory's entries together),
    /// and whether it may be reused: its fd stays open while an entry uses it.
    parent: Option<(PathBuf, Dir)>,
    parent_valid: bool,
    dirs: Vec<Made>,
    is_root: bool,
}

/// A refusal of the archive itself (it tries to leave the target): the source's fault.
fn hostile<T>(msg: String) -> Result<T> {
    Err(anyhow!(msg)).kind(Kind::Source)
}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn cname(name: &OsStr) -> Result<CString> {
    CString::new(name.as_bytes()).context("path contains a NUL byte")
}

impl Tree {
    pub fn open(target: &Path) -> Result<Tree> {
        Ok(Tree {
            root: TargetRoot::open(target)?.beneath(),
            parent: None,
            parent_valid: false,
            dirs: Vec::new(),
            is_root: nix::unistd::geteuid().is_root(),
        })
    }

    /// The directory `parent` (relative) as an fd, made if missing (0755, as GNU tar with the
    /// usual umask); a link on the way must stay inside the tree.
    pub fn parent_dir(&mut self, parent: &Path) -> Result<RawFd> {
        if let (Some((p, d)), true) = (&self.parent, self.parent_valid) {
            if p == parent {
                return Ok(d.fd());
            }
        }
        let dir = match self.root.dir(parent) {
            Ok(d) => d,
            Err(e) if raw_errno(&e) == Some(libc::ENOENT) => {
                self.root
                    .create_dir_all(parent, 0o755)
                    .map_err(|e| self.explain(parent, e))?;
                self.root.dir(parent).map_err(|e| self.explain(parent, e))?
            }
            Err(e) => return Err(self.explain(parent, e)),
        };
        let fd = dir.fd();
        self.parent = Some((parent.to_path_buf(), dir));
        self.parent_valid = true;
        Ok(fd)
    }

    /// Say which component of `parent` is in the way.
    fn explain(&self, parent: &Path, e: anyhow::Error) -> anyhow::Error {
        let mut prefix = PathBuf::new();
        for c in parent.iter() {
            prefix.push(c);
            let Ok(md) = self.root.symlink_metadata(&prefix) else {
                break;
            };
            if md.file_type().is_symlink() {
                let to = self.root.read_link(&prefix).unwrap_or_default();
                return match raw_errno(&e) {
                    Some(libc::EXDEV) => crate::error::tag(
                        anyhow!(
                            "refusing to follow symlink {} out of the target (to {})",
                            prefix.display(),
                            to.display()
                        ),
                        Kind::Source,
                    ),
                    Some(libc::ENOTDIR) => {
                        anyhow!("{} is a symlink to a non-directory", prefix.display())
                    }
                    _ => e,
                };
            }
            if !md.is_dir() {
                return anyhow!("{} exists and is not a directory", prefix.display());
            }
        }
        if raw_errno(&e) == Some(libc::EXDEV) {
            return crate::error::tag(e, Kind::Source);
        }
        e
    }

    /// Remove whatever is at `name` in `dir` (a link itself, not what it points to), for
    /// GNU tar's overwrite semantics.
    fn clear(&mut self, dir: RawFd, name: &OsStr, rel: &Path) -> Result<()> {
        let flag = match nix::sys::stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                nix::unistd::UnlinkatFlags::RemoveDir
            }
            Ok(_) => nix::unistd::UnlinkatFlags::NoRemoveDir,
            Err(_) => return Ok(()),
        };
        nix::unistd::unlinkat(Some(dir), name, flag)
            .map_err(io::Error::from)
            .with_context(|| format!("replacing {}", rel.display()))?;
        // The cached parent's path may have been below what was removed.
        self.parent_valid = false;
        Ok(())
    }

    /// Run `make` (an `*at` call creating `name`); if the name exists, clear it and retry.
    fn make(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        rel: &Path,
        what: &str,
        make: impl Fn() -> libc::c_int,
    ) -> Result<()> {
        if make() == 0 {
            return Ok(());
        }
        let err = errno();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(err).with_context(|| format!("{what} {}", rel.display()));
        }
        self.clear(dir, name, rel)?;
        if make() != 0 {
            return Err(errno()).with_context(|| format!("{what} {}", rel.display()));
        }
        Ok(())
    }

    /// The archive's `./`: the target root's own metadata, applied at the end.
    pub fn root_meta(&mut self, meta: Meta) -> Result<()> {
        let st = nix::sys::stat::fstat(self.root.dir("")?.fd()).map_err(io::Error::from)?;
        self.dirs.push(Made {
            rel: PathBuf::new(),
            dev: st.st_dev,
            ino: st.st_ino,
            meta,
        });
        Ok(())
    }

    pub fn dir(&mut self, dir: RawFd, name: &OsStr, rel: &Path, meta: Meta) -> Result<()> {
        let c = cname(name)?;
        // Created owner-writable so that the entries below can be written; mode set at the end.
        if unsafe { libc::mkdirat(dir, c.as_ptr(), 0o700) } != 0 {
            let err = errno();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).with_context(|| format!("mkdir {}", rel.display()));
            }
            if !self.is_dir_at(dir, name) {
                self.make(dir, name, rel, "mkdir", || unsafe {
                    libc::mkdirat(dir, c.as_ptr(), 0o700)
                })?;
            }
        }
        let st = nix::sys::stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(io::Error::from)
            .with_context(|| format!("inspecting {}", rel.display()))?;
        self.owner_at(dir, name, &meta)?;
        self.xattrs_at(dir, name, &meta)?;
        self.dirs.push(Made {
            rel: rel.to_path_buf(),
            dev: st.st_dev,
            ino: st.st_ino,
            meta,
        });
        Ok(())
    }

    fn is_dir_at(&self, dir: RawFd, name: &OsStr) -> bool {
        nix::sys::stat::fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    }

    pub fn symlink(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        rel: &Path,
        link: &[u8],
        meta: &Meta,
    ) -> Result<()> {
        let c = cname(name)?;
        let l = CString::new(link).context("symlink target contains NUL")?;
        self.make(dir, name, rel, "symlink", || unsafe {
            libc::symlinkat(l.as_ptr(), dir, c.as_ptr())
        })?;
        // A new link may sit where a cached parent's path went.
        self.parent_valid = false;
        self.owner_at(dir, name, meta)?;
        self.times_at(dir, name, meta)
    }

    /// A hard link to `src` (an entry of the archive, relative to the target; the link at
    /// `src` is not followed).
    pub fn hardlink(&mut self, dir: RawFd, name: &OsStr, rel: &Path, src: &Path) -> Result<()> {
        let (sdir, sname) = self.root.parent(src).map_err(|e| {
            let parent = src.parent().unwrap_or(Path::new(""));
            self.explain(parent, e)
        })?;
        let (s, d) = (cname(&sname)?, cname(name)?);
        let what = format!("hard link to {} as", src.display());
        self.make(dir, name, rel, &what, || unsafe {
            libc::linkat(sdir.fd(), s.as_ptr(), dir, d.as_ptr(), 0)
        })
    }

    pub fn node(
        &mut self,
        dir: RawFd,
        name: &OsStr,
        rel: &Path,
        fmt: u32,
        dev: libc::dev_t,
        meta: &Meta,
    ) -> Result<()> {
        let c = cname(name)?;
        self.make(dir, name, rel, "mknod", || unsafe {
            libc::mknodat(dir, c.as_ptr(), fmt | (meta.mode & 0o777), dev)
        })?;
        self.owner_at(dir, name, meta)?;
        // The node just made at this name (not a link): chmod by name sets its set-id bits.
        if unsafe { libc::fchmodat(dir, c.as_ptr(), meta.mode, 0) } != 0 {
            return Err(errno()).with_context(|| format!("chmod {}", rel.display()));
        }
        self.xattrs_at(dir, name, meta)?;
        self.times_at(dir, name, meta)
    }

    /// A new regular file for the entry's data (mode from the archive; umask is 0).
    pub fn file(&mut self, dir: RawFd, name: &OsStr, rel: &Path, mode: u32) -> Result<File> {
        let c = cname(name)?;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let open = || unsafe { libc::openat(dir, c.as_ptr(), flags, mode & 0o777) };
        let mut fd = open();
        if fd < 0 {
            let err = errno();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(err).with_context(|| format!("creating {}", rel.display()));
            }
            self.clear(dir, name, rel)?;
            fd = open();
            if fd < 0 {
                return Err(errno()).with_context(|| format!("creating {}", rel.display()));
            }
        }
        // SAFETY: a fresh fd that nothing else owns.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Owner, mode, xattrs, ACL and mtime of a file written through its fd.
    pub fn finish_file(&self, f: &File, rel: &Path, meta: &Meta) -> Result<()> {
        let fd = f.as_raw_fd();
        let need_chown = !(self.is_root && meta.uid == 0 && meta.gid == 0);
        if need_chown && unsafe { libc::fchown(fd, meta.uid, meta.gid) } != 0 {
            return Err(errno()).with_context(|| format!("chown {}", rel.display()));
        }
        // The umask is 0 while unpacking, so open() gave the permission bits already; chown
        // drops setuid/setgid, so those (and any mode after a chown) are set now.
        if (need_chown || meta.mode & 0o7000 != 0) && unsafe { libc::fchmod(fd, meta.mode) } != 0 {
            return Err(errno()).with_context(|| format!("chmod {}", rel.display()));
        }
        for (k, v) in &meta.xattrs {
            let k = CString::new(k.clone()).context("xattr name contains NUL")?;
            if unsafe { libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) } != 0 {
                return Err(errno())
                    .with_context(|| format!("setting xattr {k:?} on {}", rel.display()));
            }
        }
        if let Some(a) = &meta.acl_access {
            let v = acl::text_to_xattr(a)?;
            let k = c"system.posix_acl_access";
            if unsafe { libc::fsetxattr(fd, k.as_ptr(), v.as_ptr().cast(), v.len(), 0) } != 0 {
                return Err(errno()).with_context(|| format!("setting ACL on {}", rel.display()));
            }
        }
        let ts = [timespec(meta.mtime), timespec(meta.mtime)];
        if unsafe { libc::futimens(fd, ts.as_ptr()) } != 0 {
            return Err(errno()).with_context(|| format!("setting mtime of {}", rel.display()));
        }
        Ok(())
    }

    fn owner_at(&self, dir: RawFd, name: &OsStr, meta: &Meta) -> Result<()> {
        if self.is_root && meta.uid == 0 && meta.gid == 0 {
            return Ok(());
        }
        let c = cname(name)?;
        if unsafe {
            libc::fchownat(
                dir,
                c.as_ptr(),
                meta.uid,
                meta.gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } != 0
        {
            return Err(errno()).with_context(|| format!("chown {name:?}"));
        }
        Ok(())
    }

    /// xattrs have no `*at` form: the name under the directory's /proc magic link, with
    /// `lsetxattr` (the name itself is not followed).
    fn xattrs_at(&self, dir: RawFd, name: &OsStr, meta: &Meta) -> Result<()> {
        if meta.xattrs.is_empty() && meta.acl_access.is_none() && meta.acl_default.is_none() {
            return Ok(());
        }
        let p = format!("/proc/self/fd/{dir}/");
        let mut bytes = p.into_bytes();
        bytes.extend_from_slice(name.as_bytes());
        let c = CString::new(bytes).context("path contains a NUL byte")?;
        for (k, v) in &meta.xattrs {
            let k = CString::new(k.clone()).context("xattr name contains NUL")?;
            if unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) }
                != 0
            {
                return Err(errno()).with_context(|| format!("setting xattr {k:?} on {name:?}"));
            }
        }
        for (key, val) in [
            (c"system.posix_acl_access", &meta.acl_access),
            (c"system.posix_acl_default", &meta.acl_default),
        ] {
            if let Some(a) = val {
                let v = acl::text_to_xattr(a)?;
                if unsafe {
                    libc::lsetxattr(c.as_ptr(), key.as_ptr(), v.as_ptr().cast(), v.len(), 0)
                } != 0
                {
                    return Err(errno()).with_context(|| format!("setting ACL on {name:?}"));
                }
            }
        }
        Ok(())
    }

    fn times_at(&self, dir: RawFd, name: &OsStr, meta: &Meta) -> Result<()> {
        let c = cname(name)?;
        let ts = [timespec(meta.mtime), timespec(meta.mtime)];
        if unsafe { libc::utimensat(dir, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } != 0
        {
            return Err(errno()).with_context(|| format!("setting mtime of {name:?}"));
        }
        Ok(())
    }

    /// Directory modes and mtimes last, deepest first, so writing entries below does not
    /// undo them and a read-only directory does not block its own contents. Each directory
    /// is opened again without following a link and must still be the one made.
    pub fn finish(&mut self) -> Result<()> {
        self.parent = None;
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by(|a, b| b.rel.cmp(&a.rel));
        for d in dirs {
            let shown = if d.rel.as_os_str().is_empty() {
                "./".to_string()
            } else {
                d.rel.display().to_string()
            };
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let same = self.root.open_raw(&d.rel, flags, 0).ok().and_then(|fd| {
                let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok()?;
                (st.st_dev == d.dev && st.st_ino == d.ino).then(|| File::from(fd))
            });
            let Some(f) = same else {
                return hostile(format!(
                    "extracting {shown:?}: the directory was replaced by a later entry before \
                     its mode could be set (GNU tar: \"Directory renamed before its status \
                     could be extracted\")"
                ));
            };
            let fd = f.as_raw_fd();
            let need_chown = !(self.is_root && d.meta.uid == 0 && d.meta.gid == 0);
            if d.rel.as_os_str().is_empty()
                && need_chown
                && unsafe { libc::fchown(fd, d.meta.uid, d.meta.gid) } != 0
            {
                return Err(errno()).with_context(|| format!("chown {shown}"));
            }
            if unsafe { libc::fchmod(fd, d.meta.mode) } != 0 {
                return Err(errno()).with_context(|| format!("chmod {shown}"));
            }
            let ts = [timespec(d.meta.mtime), timespec(d.meta.mtime)];
            if unsafe { libc::futimens(fd, ts.as_ptr()) } != 0 {
                return Err(errno()).with_context(|| format!("setting mtime of {shown}"));
            }
        }
        Ok(())
    }
}

/// The errno under an error's context layers.
fn raw_errno(e: &anyhow::Error) -> Option<i32> {
    e.chain()
        .find_map(|c| c.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error)
}

fn timespec((secs, nsec): (i64, i64)) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: nsec as _,
    }
}
