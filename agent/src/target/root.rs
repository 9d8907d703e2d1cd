//! [`TargetRoot`]: the one way deployer touches a file inside the target.
//!
//! deployer runs as root on the host; the target is a directory tree that an image filled, and
//! an image may hold symlinks anywhere (real ones have `/etc/localtime` absolute, `/bin` ->
//! `usr/bin`; hostile ones `etc/fstab` -> `/etc/shadow`, `etc/cloud` -> `../../..`). Joining a
//! path onto the target and handing the string to the kernel follows those links on the
//! *host*. Every create, write, read, chmod, chown, mkdir, symlink, mknod, rename and mount
//! inside the target goes through this module instead:
//!
//! - a path is resolved from an fd of the target root with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)`: a symlink is followed as the installed system would follow it (`/`
//!   is the target root, `..` stops there), so it can never lead out of the target. Where the
//!   kernel has no `openat2` (before 5.6: ENOSYS), the same resolution is done one component at
//!   a time with `O_PATH | O_NOFOLLOW` from directory fds, reading each link with `readlinkat`;
//! - the work is then done on the resolved fd (`fchmod`, `fchown`, `fstat`, `write`) or with an
//!   `*at` call on one name in a resolved parent directory fd, never on a host path string;
//! - [`Scope::Beneath`] (see [`TargetRoot::beneath`]) is stricter, for untrusted archives: a
//!   link that would leave the tree (absolute, or `..` past the top) is an error (EXDEV) rather
//!   than being re-rooted. The extract stage uses it, as GNU tar refuses to extract through
//!   such links.
//!
//! Paths given to the methods are relative to the target (a leading `/` is allowed and means
//! the target root); a `..` component is refused (links may hold `..`: those are resolved inside
//! the root). A leaf that is a symlink is *followed* inside the root for reads and writes
//! ([`TargetRoot::write_file`] on `etc/localtime` -> `/usr/share/zoneinfo/UTC` writes the
//! target's zoneinfo file, as the target's own `cp` would; a dangling link makes its target,
//! inside the root), and *not* followed by [`TargetRoot::remove_file`], [`TargetRoot::rename`],
//! [`TargetRoot::symlink_metadata`] (which act on the link itself).
//!
//! ```no_run
//! # fn f() -> anyhow::Result<()> {
//! use deployer::target::TargetRoot;
//! let root = TargetRoot::open("/tmp/target".as_ref())?;
//! root.write_file("etc/mdadm/mdadm.conf", b"ARRAY ...\n", 0o644, None)?;
//! let passwd = root.read_to_string("/etc/passwd")?;
//! let mp = root.mount_point("boot/efi")?; // created if missing, resolved inside the root
//! // mount(2) onto mp.proc_path() (the resolved directory), unmount mp.path() later.
//! # Ok(()) }
//! ```
//!
//! Open a `TargetRoot` *after* mounting the target's root file system on the directory: the fd
//! refers to whatever was there at `open` time.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Uid};

/// How links met while resolving a path are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// As the target sees them: `/` is the target root and `..` stops at it.
    InRoot,
    /// A link or `..` that would leave the tree is an error (EXDEV); absolute links too.
    Beneath,
}

/// The target's root directory, held open; every path is resolved inside it.
#[derive(Debug)]
pub struct TargetRoot {
    fd: OwnedFd,
    path: PathBuf,
    scope: Scope,
    /// Resolve component by component instead of with openat2 (no openat2, or a test).
    walk: bool,
}

/// A directory inside the target, resolved: `*at` calls on a single name below it act inside
/// the target (use `AT_SYMLINK_NOFOLLOW`/`O_NOFOLLOW` so that the name itself is not followed).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A resolved mount point inside the target: mount onto [`MountPoint::proc_path`] while this
/// is alive; [`MountPoint::path`] is where the mount then shows in the mount table.
#[derive(Debug)]
pub struct MountPoint {
    fd: OwnedFd,
    path: PathBuf,
}

impl MountPoint {
    /// `/proc/self/fd/N`: the resolved directory (or file) itself, for mount(2)'s target.
    pub fn proc_path(&self) -> PathBuf {
        proc_fd_path(self.fd.as_raw_fd())
    }

    /// The resolved host path (no symlink in it), for the mount table and unmounting.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether the kernel has openat2: 0 unknown, 1 yes, 2 no.
static OPENAT2: AtomicU8 = AtomicU8::new(0);

const MAX_HOPS: u32 = 40;

impl TargetRoot {
    /// Open the target directory `path` (symlinks in `path` itself are the host's, resolved
    /// here once). Resolution is [`Scope::InRoot`].
    pub fn open(path: &Path) -> Result<TargetRoot> {
        let path = std::fs::canonicalize(path)
            .with_context(|| format!("opening the target {}", path.display()))?;
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .with_context(|| format!("opening the target {}", path.display()))?;
        Ok(TargetRoot {
            // SAFETY: a fresh fd that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path,
            scope: Scope::InRoot,
            walk: false,
        })
    }

    /// The same root with [`Scope::Beneath`]: links leaving the tree are errors.
    pub fn beneath(mut self) -> TargetRoot {
        self.scope = Scope::Beneath;
        self
    }

    /// Resolve without openat2, as on kernels before 5.6 (tests of the fallback).
    #[doc(hidden)]
    pub fn walking(mut self) -> TargetRoot {
        self.walk = true;
        self
    }

    /// The target's host path (canonical): for messages and for chroot, not for file access.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How `rel` reads in a message: its host path under the target.
    pub fn display(&self, rel: impl AsRef<Path>) -> String {
        match clean(rel.as_ref()) {
            Ok(r) => self.path.join(r).display().to_string(),
            Err(_) => format!("{}/{}", self.path.display(), rel.as_ref().display()),
        }
    }

    fn ctx(&self, what: &str, rel: &Path) -> String {
        format!("{what} {}", self.display(rel))
    }

    // ----- resolution ---------------------------------------------------------------------

    /// Resolve `rel` and open it with `flags` (`O_NOFOLLOW` in `flags`: the leaf is not
    /// followed; `O_CREAT`: `mode` for a new file). The io error is kept for callers that
    /// tell NotFound and EXDEV apart.
    pub fn open_raw(&self, rel: &Path, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
        let rel = clean(rel).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let follow = !flags.contains(OFlag::O_NOFOLLOW);
        let flags = (flags - OFlag::O_NOFOLLOW) | OFlag::O_CLOEXEC;
        if !self.walk && OPENAT2.load(Ordering::Relaxed) != 2 {
            match self.openat2(&rel, flags, mode, follow) {
                Err(Errno::ENOSYS) | Err(Errno::EPERM) if OPENAT2.load(Ordering::Relaxed) == 0 => {
                    // No openat2 (old kernel, or a seccomp filter that does not know it).
                    OPENAT2.store(2, Ordering::Relaxed);
                }
                r => {
                    OPENAT2.store(1, Ordering::Relaxed);
                    return r.map_err(io::Error::from);
                }
            }
        }
        self.walk_open(&rel, flags, mode, follow)
            .map_err(io::Error::from)
    }

    fn openat2(&self, rel: &Path, flags: OFlag, mode: u32, follow: bool) -> nix::Result<OwnedFd> {
        let mut resolve = ResolveFlag::RESOLVE_NO_MAGICLINKS;
        resolve |= match self.scope {
            Scope::InRoot => ResolveFlag::RESOLVE_IN_ROOT,
            Scope::Beneath => ResolveFlag::RESOLVE_BENEATH,
        };
        let flags = if follow {
            flags
        } else {
            flags | OFlag::O_NOFOLLOW
        };
        // openat2 refuses a mode without O_CREAT.
        let mode = if flags.contains(OFlag::O_CREAT) {
            mode
        } else {
            0
        };
        let how = OpenHow::new()
            .flags(flags)
            .mode(Mode::from_bits_truncate(mode))
            .resolve(resolve);
        let p = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let mut tries = 0;
        loop {
            match nix::fcntl::openat2(self.fd.as_raw_fd(), p, how) {
                // A rename elsewhere raced the lookup: the kernel asks to retry.
                Err(Errno::EAGAIN) if tries < 16 => tries += 1,
                // SAFETY: a fresh fd that nothing else owns.
                r => return r.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            }
        }
    }

    /// The fallback: one component at a time from the root fd, never following a link by
    /// the kernel; a link's text is read and resolved here under the same rules.
    fn walk_open(&self, rel: &Path, flags: OFlag, mode: u32, follow: bool) -> nix::Result<OwnedFd> {
        let mut todo: Vec<OsString> = vec![];
        push_components(&mut todo, rel);
        // Directories entered below the root; empty = at the root.
        let mut stack: Vec<OwnedFd> = vec![];
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                if stack.pop().is_none() && self.scope == Scope::Beneath {
                    return Err(Errno::EXDEV);
                }
                continue;
            }
            let cur = stack.last().unwrap_or(&self.fd).as_raw_fd();
            let last = todo.is_empty();
            let fd = if last {
                match nix::fcntl::openat(
                    Some(cur),
                    c.as_os_str(),
                    flags | OFlag::O_NOFOLLOW,
                    Mode::from_bits_truncate(mode),
                ) {
                    Ok(fd) => owned(fd),
                    Err(e @ (Errno::ELOOP | Errno::ENOTDIR | Errno::EEXIST)) => {
                        // A symlink at the leaf (O_NOFOLLOW refuses it): follow it unless
                        // asked not to (O_EXCL never follows one).
                        let excl = flags.contains(OFlag::O_CREAT | OFlag::O_EXCL);
                        if !follow || excl || !is_symlink_at(cur, &c) {
                            return Err(e);
                        }
                        self.follow(cur, &c, &mut todo, &mut stack, &mut hops)?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                owned(nix::fcntl::openat(
                    Some(cur),
                    c.as_os_str(),
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?)
            };
            let st = nix::sys::stat::fstat(fd.as_raw_fd())?;
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFLNK && (!last || follow) {
                // Only O_PATH|O_NOFOLLOW opens a link itself.
                self.follow(cur, &c, &mut todo, &mut stack, &mut hops)?;
                continue;
            }
            if last {
                return Ok(fd);
            }
            if kind != SFlag::S_IFDIR {
                return Err(Errno::ENOTDIR);
            }
            stack.push(fd);
        }
        // The path ended at a directory (the root, or after `..`): open it with the flags.
        let cur = stack.last().unwrap_or(&self.fd).as_raw_fd();
        nix::fcntl::openat(Some(cur), ".", flags, Mode::empty()).map(owned)
    }

    /// Queue the components of the link `name` in `dir`; an absolute one restarts at the root.
    fn follow(
        &self,
        dir: RawFd,
        name: &OsStr,
        todo: &mut Vec<OsString>,
        stack: &mut Vec<OwnedFd>,
        hops: &mut u32,
    ) -> nix::Result<()> {
        *hops += 1;
        if *hops > MAX_HOPS {
            return Err(Errno::ELOOP);
        }
        let link = nix::fcntl::readlinkat(Some(dir), name)?;
        let link = Path::new(&link);
        if link.is_absolute() {
            if self.scope == Scope::Beneath {
                return Err(Errno::EXDEV);
            }
            stack.clear();
        }
        push_components(todo, link);
        Ok(())
    }

    /// Resolve an existing directory.
    pub fn dir(&self, rel: impl AsRef<Path>) -> Result<Dir> {
        let rel = rel.as_ref();
        let fd = self
            .open_raw(rel, OFlag::O_PATH | OFlag::O_DIRECTORY, 0)
            .with_context(|| self.ctx("opening the directory", rel))?;
        Ok(Dir { fd })
    }

    /// The parent directory of `rel` (resolved) and the last name, for `*at` calls.
    pub fn parent(&self, rel: impl AsRef<Path>) -> Result<(Dir, OsString)> {
        let rel = rel.as_ref();
        let c = clean(rel)?;
        let name = c
            .file_name()
            .ok_or_else(|| anyhow!("{} names the target root itself", rel.display()))?
            .to_os_string();
        let dir = self.dir(c.parent().unwrap_or(Path::new("")))?;
        Ok((dir, name))
    }

    /// The host path `rel` resolves to now (no symlink in it), for a tool that takes a path.
    /// Reading through it is safe only while nothing else changes the tree.
    pub fn real_path(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = rel.as_ref();
        let fd = self
            .open_raw(rel, OFlag::O_PATH, 0)
            .with_context(|| self.ctx("resolving", rel))?;
        fd_path(&fd).with_context(|| self.ctx("resolving", rel))
    }

    /// The host path to execute `rel` by. Its own name inside the target when the kernel,
    /// following a linked leaf from there, reaches the same file as [`Self::real_path`]
    /// (centos6's `curtin-hooks -> python_wrapper` runs `"$0.py"`, so the name must stay);
    /// else the resolved path, so that a link can never make us run a host file.
    pub fn exec_path(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = rel.as_ref();
        let real = self.real_path(rel)?;
        let (Some(parent), Some(leaf)) = (rel.parent(), rel.file_name()) else {
            return Ok(real);
        };
        let named = self.real_path(parent)?.join(leaf);
        Ok(match std::fs::canonicalize(&named) {
            Ok(c) if c == real => named,
            _ => real,
        })
    }

    // ----- reading ------------------------------------------------------------------------

    /// Open an existing regular file for reading (leaf links followed inside the root).
    pub fn open_read(&self, rel: impl AsRef<Path>) -> Result<File> {
        let f = self.regular(rel.as_ref(), OFlag::O_RDONLY)?;
        set_blocking(&f);
        Ok(f)
    }

    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Vec<u8>> {
        let rel = rel.as_ref();
        let mut v = vec![];
        self.open_read(rel)?
            .read_to_end(&mut v)
            .with_context(|| self.ctx("reading", rel))?;
        Ok(v)
    }

    pub fn read_to_string(&self, rel: impl AsRef<Path>) -> Result<String> {
        let rel = rel.as_ref();
        String::from_utf8(self.read(rel)?).with_context(|| self.ctx("reading", rel))
    }

    /// The file's text, or `None` when it does not exist (or is not readable text).
    pub fn read_to_string_opt(&self, rel: impl AsRef<Path>) -> Option<String> {
        self.read_to_string(rel).ok()
    }

    /// Metadata, leaf links followed inside the root.
    pub fn metadata(&self, rel: impl AsRef<Path>) -> Result<Metadata> {
        self.stat(rel.as_ref(), OFlag::O_PATH)
    }

    /// Metadata of the leaf itself (a link is not followed).
    pub fn symlink_metadata(&self, rel: impl AsRef<Path>) -> Result<Metadata> {
        self.stat(rel.as_ref(), OFlag::O_PATH | OFlag::O_NOFOLLOW)
    }

    fn stat(&self, rel: &Path, flags: OFlag) -> Result<Metadata> {
        let fd = self
            .open_raw(rel, flags, 0)
            .with_context(|| self.ctx("inspecting", rel))?;
        File::from(fd)
            .metadata()
            .with_context(|| self.ctx("inspecting", rel))
    }

    /// The text of the symlink `rel` (the leaf is not followed).
    pub fn read_link(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent(rel)?;
        nix::fcntl::readlinkat(Some(dir.fd()), name.as_os_str())
            .map(PathBuf::from)
            .map_err(io::Error::from)
            .with_context(|| self.ctx("reading the link", rel))
    }

    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.open_raw(rel.as_ref(), OFlag::O_PATH, 0).is_ok()
    }

    pub fn is_dir(&self, rel: impl AsRef<Path>) -> bool {
        self.metadata(rel).is_ok_and(|m| m.is_dir())
    }

    pub fn is_file(&self, rel: impl AsRef<Path>) -> bool {
        self.metadata(rel).is_ok_and(|m| m.is_file())
    }

    /// A regular file with an execute bit (how a shell in the target would find a tool).
    pub fn is_executable(&self, rel: impl AsRef<Path>) -> bool {
        self.metadata(rel)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }

    // ----- writing ------------------------------------------------------------------------

    /// `mkdir -p` inside the target; directories made get `mode` (less the umask). Links on
    /// the way are followed inside the root; a dangling link in the way is an error.
    pub fn create_dir_all(&self, rel: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = rel.as_ref();
        self.mkdirs(rel, mode)
            .with_context(|| self.ctx("creating the directory", rel))?;
        Ok(())
    }

    fn mkdirs(&self, rel: &Path, mode: u32) -> Result<OwnedFd> {
        let dir = OFlag::O_PATH | OFlag::O_DIRECTORY;
        match self.open_raw(rel, dir, 0) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            Err(_) => {}
        }
        let c = clean(rel)?;
        let mut at = self.open_raw(Path::new(""), dir, 0)?;
        let mut prefix = PathBuf::new();
        for name in c.iter() {
            prefix.push(name);
            let fd = match self.open_raw(&prefix, dir, 0) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match nix::sys::stat::mkdirat(
                        Some(at.as_raw_fd()),
                        name,
                        Mode::from_bits_truncate(mode),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io::Error::from(e).into()),
                    }
                    self.open_raw(&prefix, dir, 0).map_err(|e| {
                        if e.kind() == io::ErrorKind::NotFound {
                            anyhow!("/{} is a dangling symlink", prefix.display())
                        } else {
                            e.into()
                        }
                    })?
                }
                Err(e) => return Err(e.into()),
            };
            at = fd;
        }
        Ok(at)
    }

    /// Open a regular file (an existing non-regular file is refused before it is opened, so
    /// that a FIFO or device planted by the image is never opened).
    fn regular(&self, rel: &Path, flags: OFlag) -> Result<File> {
        let check = |f: &File| -> Result<()> {
            let md = f.metadata().with_context(|| self.ctx("inspecting", rel))?;
            if !md.is_file() {
                return Err(anyhow!(
                    "{} is not a regular file in the target",
                    self.display(rel)
                ));
            }
            Ok(())
        };
        match self.open_raw(rel, OFlag::O_PATH, 0) {
            Ok(fd) => check(&File::from(fd))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && flags.contains(OFlag::O_CREAT) => {}
            Err(e) => return Err(e).with_context(|| self.ctx("opening", rel)),
        }
        let fd = self
            .open_raw(rel, flags | OFlag::O_NONBLOCK, 0o600)
            .with_context(|| self.ctx("opening", rel))?;
        let f = File::from(fd);
        check(&f)?;
        Ok(f)
    }

    /// Create or truncate a regular file for writing, parents made (0755), mode set to `mode`.
    /// A leaf symlink is followed inside the root (as the target's own tools would).
    pub fn create(&self, rel: impl AsRef<Path>, mode: u32) -> Result<File> {
        let rel = rel.as_ref();
        let c = clean(rel)?;
        if let Some(p) = c.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.create_dir_all(p, 0o755)?;
        }
        let f = self.regular(rel, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC)?;
        set_blocking(&f);
        fchmod(&f, mode).with_context(|| self.ctx("chmod", rel))?;
        Ok(f)
    }

    /// Write a whole file: parents made (0755), content replaced, then the owner (`None`: left
    /// as is, root for a new file), then the mode (after the chown, which clears set-id bits).
    pub fn write_file(
        &self,
        rel: impl AsRef<Path>,
        bytes: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> Result<()> {
        let rel = rel.as_ref();
        let mut f = self.create(rel, mode & 0o777)?;
        f.write_all(bytes)
            .with_context(|| self.ctx("writing", rel))?;
        if let Some((uid, gid)) = owner {
            fchown(&f, uid, gid).with_context(|| self.ctx("chown", rel))?;
        }
        fchmod(&f, mode).with_context(|| self.ctx("chmod", rel))?;
        Ok(())
    }

    /// Stream a host file into the target (see [`TargetRoot::create`]).
    pub fn copy_from_host(&self, src: &Path, rel: impl AsRef<Path>, mode: u32) -> Result<u64> {
        let rel = rel.as_ref();
        let mut from = File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let mut to = self.create(rel, mode)?;
        io::copy(&mut from, &mut to)
            .with_context(|| format!("copying {} to {}", src.display(), self.display(rel)))
    }

    /// chmod what `rel` resolves to (leaf links followed inside the root).
    pub fn chmod(&self, rel: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = rel.as_ref();
        let fd = self
            .open_raw(rel, OFlag::O_PATH, 0)
            .with_context(|| self.ctx("chmod", rel))?;
        // An O_PATH fd has no fchmod: its magic link names the inode itself.
        nix::sys::stat::fchmodat(
            None,
            &proc_fd_path(fd.as_raw_fd()),
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(io::Error::from)
        .with_context(|| self.ctx("chmod", rel))
    }

    /// chown what `rel` resolves to (leaf links followed inside the root).
    pub fn chown(&self, rel: impl AsRef<Path>, uid: u32, gid: u32) -> Result<()> {
        let rel = rel.as_ref();
        let fd = self
            .open_raw(rel, OFlag::O_PATH, 0)
            .with_context(|| self.ctx("chown", rel))?;
        fchown_fd(fd.as_raw_fd(), uid, gid).with_context(|| self.ctx("chown", rel))
    }

    /// Make the symlink `rel` -> `link` (the text is stored as given; the parent must exist).
    pub fn symlink(&self, link: impl AsRef<Path>, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent(rel)?;
        nix::unistd::symlinkat(link.as_ref(), Some(dir.fd()), name.as_os_str())
            .map_err(io::Error::from)
            .with_context(|| self.ctx("creating the symlink", rel))
    }

    /// mknod `rel` (`kind`: S_IFIFO, S_IFCHR, S_IFBLK; the parent must exist).
    pub fn mknod(&self, rel: impl AsRef<Path>, kind: SFlag, mode: u32, dev: u64) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent(rel)?;
        nix::sys::stat::mknodat(
            Some(dir.fd()),
            name.as_os_str(),
            kind,
            Mode::from_bits_truncate(mode),
            dev,
        )
        .map_err(io::Error::from)
        .with_context(|| self.ctx("mknod", rel))
    }

    /// Remove a file or link (a link itself, not what it points to).
    pub fn remove_file(&self, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent(rel)?;
        nix::unistd::unlinkat(
            Some(dir.fd()),
            name.as_os_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .map_err(io::Error::from)
        .with_context(|| self.ctx("removing", rel))
    }

    /// Rename inside the target (the leaves themselves, links not followed).
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        let (fd, fname) = self.parent(from)?;
        let (td, tname) = self.parent(to)?;
        nix::fcntl::renameat(
            Some(fd.fd()),
            fname.as_os_str(),
            Some(td.fd()),
            tname.as_os_str(),
        )
        .map_err(io::Error::from)
        .with_context(|| format!("renaming {} to {}", self.display(from), self.display(to)))
    }

    // ----- mounting -----------------------------------------------------------------------

    /// A directory to mount on, made (0755) if missing, resolved inside the root.
    pub fn mount_point(&self, rel: impl AsRef<Path>) -> Result<MountPoint> {
        let rel = rel.as_ref();
        let fd = self
            .mkdirs(rel, 0o755)
            .with_context(|| self.ctx("creating the mount point", rel))?;
        self.mount_point_of(rel, fd)
    }

    /// An existing file to bind-mount over (`usr/bin/ischroot`), resolved inside the root.
    pub fn mount_point_file(&self, rel: impl AsRef<Path>) -> Result<MountPoint> {
        let rel = rel.as_ref();
        let fd = self
            .open_raw(rel, OFlag::O_PATH, 0)
            .with_context(|| self.ctx("resolving the mount point", rel))?;
        if !File::from(fd.try_clone()?).metadata()?.is_file() {
            return Err(anyhow!("{} is not a regular file", self.display(rel)));
        }
        self.mount_point_of(rel, fd)
    }

    fn mount_point_of(&self, rel: &Path, fd: OwnedFd) -> Result<MountPoint> {
        let path = fd_path(&fd).with_context(|| self.ctx("resolving the mount point", rel))?;
        // Defence in depth: what the fd names must be under the root's path.
        if !path.starts_with(&self.path) {
            return Err(anyhow!(
                "mount point {} resolves to {}, outside the target",
                self.display(rel),
                path.display()
            ));
        }
        Ok(MountPoint { fd, path })
    }
}

/// A caller's path made relative: `/` and `.` dropped, `..` refused.
fn clean(rel: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(anyhow!(
                    "path {} has a '..' component: paths in the target must not",
                    rel.display()
                ))
            }
        }
    }
    Ok(out)
}

/// Push `p`'s components (`..` kept) so that popping yields them in order.
fn push_components(todo: &mut Vec<OsString>, p: &Path) {
    let parts: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: called only on fresh fds from open calls.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn is_symlink_at(dir: RawFd, name: &OsStr) -> bool {
    nix::sys::stat::fstatat(Some(dir), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK)
}

fn proc_fd_path(fd: RawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{fd}"))
}

/// The host path an fd names (its /proc magic link).
fn fd_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    let p = std::fs::read_link(proc_fd_path(fd.as_raw_fd()))?;
    if p.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(io::Error::new(io::ErrorKind::NotFound, "deleted"));
    }
    Ok(p)
}

fn fchmod(f: &File, mode: u32) -> io::Result<()> {
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

fn fchown(f: &File, uid: u32, gid: u32) -> io::Result<()> {
    fchown_fd(f.as_raw_fd(), uid, gid)
}

fn fchown_fd(fd: RawFd, uid: u32, gid: u32) -> io::Result<()> {
    nix::unistd::fchownat(
        Some(fd),
        "",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .map_err(io::Error::from)
}

/// Files are opened O_NONBLOCK (a FIFO would block an open); writes want blocking.
fn set_blocking(f: &File) {
    let fd = f.as_raw_fd();
    if let Ok(fl) = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL) {
        let fl = OFlag::from_bits_truncate(fl) - OFlag::O_NONBLOCK;
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(fl));
    }
}

#[cfg(test)]
mod tests;
