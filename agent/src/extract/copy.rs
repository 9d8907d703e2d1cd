//! Copying a mounted root into the target, as curtin's `rsync -aXHAS --one-file-system SRC/ .`
//! leaves it: every file type (directories, files, symlinks, device nodes, fifos, sockets),
//! owners (numeric), modes (set-id bits too), xattrs (security capabilities, SELinux labels),
//! POSIX ACLs (their `system.posix_acl_*` xattrs), hard links, sparse files, mtimes; one file
//! system (a mount point inside the source is created empty, not descended into).
//!
//! Everything is created relative to a directory descriptor this copy opened itself
//! (`*at` calls, `O_NOFOLLOW`), so a symlink already in the target is never followed out of
//! it. Memory stays bounded: one 1 MiB buffer.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const BUF: usize = 1 << 20;
const BLOCK: usize = 4096;

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub bytes: u64,
}

struct Ctx {
    root_dev: u64,
    root_fd: OwnedFd,
    /// (dev, ino) of multiply-linked sources -> their first path in the target.
    links: HashMap<(u64, u64), PathBuf>,
    buf: Vec<u8>,
    stats: Stats,
}

fn cstr(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).context("a file name with a NUL byte")
}

fn check(r: libc::c_int, what: impl FnOnce() -> String) -> Result<libc::c_int> {
    if r < 0 {
        return Err(std::io::Error::last_os_error()).with_context(what);
    }
    Ok(r)
}

fn open_dir_at(dfd: RawFd, name: &CString) -> Result<OwnedFd> {
    // SAFETY: a valid dirfd and NUL-terminated name; the returned fd is owned below.
    let fd = unsafe {
        libc::openat(
            dfd,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    check(fd, || format!("opening directory {name:?} in the target"))?;
    // SAFETY: fd was just returned by openat and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copy the tree at `src` into `target` (an existing directory, normally the mounted target
/// root). `src`'s own owner, mode, xattrs and mtime are given to `target`, as rsync does
/// with `SRC/ .`.
pub fn copy_tree(src: &Path, target: &Path) -> Result<Stats> {
    let md = fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
    if !md.is_dir() {
        bail!("{} is not a directory", src.display());
    }
    let root = cstr(target.as_os_str())?;
    // SAFETY: a NUL-terminated path; the fd is owned below.
    let fd = unsafe {
        libc::open(
            root.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    check(fd, || format!("opening the target {}", target.display()))?;
    // SAFETY: as above.
    let root_fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let dup = root_fd.try_clone()?;
    let mut ctx = Ctx {
        root_dev: md.dev(),
        root_fd,
        links: HashMap::new(),
        buf: vec![0; BUF],
        stats: Stats::default(),
    };
    copy_dir(&mut ctx, src, &dup, Path::new(""))?;
    set_meta_fd(&dup, src, &md)?;
    Ok(ctx.stats)
}

fn copy_dir(ctx: &mut Ctx, src_dir: &Path, dfd: &OwnedFd, rel: &Path) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src_dir)
        .with_context(|| format!("reading {}", src_dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", src_dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name_os = e.file_name();
        let path = e.path();
        let md =
            fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let name = cstr(&name_os)?;
        let rel_path = rel.join(&name_os);
        copy_entry(ctx, &path, &md, dfd, &name, &rel_path)
            .with_context(|| format!("copying {}", path.display()))?;
        ctx.stats.entries += 1;
    }
    Ok(())
}

/// Remove what is at `name` unless it is a directory we can descend into.
fn clear_at(dfd: RawFd, name: &CString, keep_dir: bool) -> Result<()> {
    // SAFETY: zeroed stat is valid; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dirfd, name and stat buffer.
    let r = unsafe { libc::fstatat(dfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r != 0 {
        return Ok(());
    }
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir && keep_dir {
        return Ok(());
    }
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid dirfd and name.
    let r = unsafe { libc::unlinkat(dfd, name.as_ptr(), flags) };
    check(r, || {
        format!("replacing {name:?} in the target (a non-empty directory is in the way?)")
    })?;
    Ok(())
}

fn copy_entry(
    ctx: &mut Ctx,
    path: &Path,
    md: &fs::Metadata,
    dfd: &OwnedFd,
    name: &CString,
    rel: &Path,
) -> Result<()> {
    let d = dfd.as_raw_fd();
    let ft = md.file_type();
    if ft.is_dir() {
        clear_at(d, name, true)?;
        // SAFETY: valid dirfd and name.
        let r = unsafe { libc::mkdirat(d, name.as_ptr(), 0o700) };
        if r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            check(r, || format!("creating directory {}", rel.display()))?;
        }
        let sub = open_dir_at(d, name)?;
        // One file system: a mount point is created, its contents are another's.
        if md.dev() == ctx.root_dev {
            copy_dir(ctx, path, &sub, rel)?;
        }
        return set_meta_fd(&sub, path, md);
    }
    clear_at(d, name, false)?;
    if md.nlink() > 1 && !ft.is_dir() {
        if let Some(first) = ctx.links.get(&(md.dev(), md.ino())) {
            let old = cstr(first.as_os_str())?;
            // SAFETY: valid dirfds and names.
            let r =
                unsafe { libc::linkat(ctx.root_fd.as_raw_fd(), old.as_ptr(), d, name.as_ptr(), 0) };
            check(r, || {
                format!("hard-linking {} to {}", rel.display(), first.display())
            })?;
            return Ok(());
        }
        ctx.links.insert((md.dev(), md.ino()), rel.to_path_buf());
    }
    if ft.is_file() {
        // SAFETY: valid dirfd and name; the fd is owned below.
        let fd = unsafe {
            libc::openat(
                d,
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600,
            )
        };
        check(fd, || format!("creating {}", rel.display()))?;
        // SAFETY: a fresh fd from openat.
        let mut out = unsafe { File::from_raw_fd(fd) };
        let mut input = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        ctx.stats.bytes += copy_sparse(&mut input, &mut out, md.len(), &mut ctx.buf)
            .with_context(|| format!("writing {}", rel.display()))?;
        let owned: OwnedFd = out.into();
        return set_meta_fd(&owned, path, md);
    }
    if ft.is_symlink() {
        let to = cstr(fs::read_link(path)?.as_os_str())?;
        // SAFETY: valid strings and dirfd.
        let r = unsafe { libc::symlinkat(to.as_ptr(), d, name.as_ptr()) };
        check(r, || format!("creating symlink {}", rel.display()))?;
    } else {
        let kind = if ft.is_block_device() {
            libc::S_IFBLK
        } else if ft.is_char_device() {
            libc::S_IFCHR
        } else if ft.is_fifo() {
            libc::S_IFIFO
        } else if ft.is_socket() {
            libc::S_IFSOCK
        } else {
            bail!("unknown file type");
        };
        // SAFETY: valid dirfd and name.
        let r = unsafe { libc::mknodat(d, name.as_ptr(), kind | 0o600, md.rdev() as libc::dev_t) };
        check(r, || format!("creating node {}", rel.display()))?;
    }
    set_meta_at(d, name, path, md, ft.is_symlink())
}

/// Copy `len` bytes, leaving holes where whole 4 KiB blocks are zero (rsync -S).
fn copy_sparse(input: &mut File, out: &mut File, len: u64, buf: &mut [u8]) -> Result<u64> {
    let mut done = 0u64;
    let mut hole = false;
    loop {
        let n = input.read(buf)?;
        if n == 0 {
            break;
        }
        for chunk in buf[..n].chunks(BLOCK) {
            if chunk.iter().all(|b| *b == 0) {
                out.seek(SeekFrom::Current(chunk.len() as i64))?;
                hole = true;
            } else {
                out.write_all(chunk)?;
                hole = false;
            }
        }
        done += n as u64;
    }
    if hole || done != len {
        out.set_len(done)?;
    }
    Ok(done)
}

fn xattrs(path: &Path) -> Result<Vec<(std::ffi::OsString, Vec<u8>)>> {
    let mut out = vec![];
    let names = match xattr::list(path) {
        Ok(n) => n,
        // A file system without xattrs has none to copy.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("listing xattrs of {}", path.display())),
    };
    for n in names {
        if let Some(v) = xattr::get(path, &n)
            .with_context(|| format!("reading xattr {n:?} of {}", path.display()))?
        {
            out.push((n, v));
        }
    }
    Ok(out)
}

/// Owner, mode, xattrs and times on an open file or directory (chown first: it clears set-id
/// bits and capabilities; times last).
fn set_meta_fd(fd: &OwnedFd, src: &Path, md: &fs::Metadata) -> Result<()> {
    let f = fd.as_raw_fd();
    // SAFETY: valid fd.
    check(unsafe { libc::fchown(f, md.uid(), md.gid()) }, || {
        format!("chown {}", src.display())
    })?;
    // SAFETY: valid fd.
    check(
        unsafe { libc::fchmod(f, md.mode() as libc::mode_t & 0o7777) },
        || format!("chmod {}", src.display()),
    )?;
    let file = std::mem::ManuallyDrop::new(
        // SAFETY: borrowed for the calls below, never closed here (ManuallyDrop).
        unsafe { File::from_raw_fd(f) },
    );
    for (n, v) in xattrs(src)? {
        use xattr::FileExt;
        file.set_xattr(&n, &v)
            .with_context(|| format!("setting xattr {n:?} from {}", src.display()))?;
    }
    let ts = times(md);
    // SAFETY: valid fd and a two-element timespec array.
    check(unsafe { libc::futimens(f, ts.as_ptr()) }, || {
        format!("setting times from {}", src.display())
    })?;
    Ok(())
}

/// The same for a symlink or a node, by name in its directory (never following it).
fn set_meta_at(d: RawFd, name: &CString, src: &Path, md: &fs::Metadata, link: bool) -> Result<()> {
    // SAFETY: valid dirfd and name.
    let r = unsafe {
        libc::fchownat(
            d,
            name.as_ptr(),
            md.uid(),
            md.gid(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(r, || format!("chown {}", src.display()))?;
    if !link {
        // SAFETY: valid dirfd and name; a node just created here, not a symlink.
        let r = unsafe { libc::fchmodat(d, name.as_ptr(), md.mode() as libc::mode_t & 0o7777, 0) };
        check(r, || format!("chmod {}", src.display()))?;
    }
    // /proc/self/fd/<dir>/<name>: the l* xattr calls do not follow the last component.
    let proc_path =
        PathBuf::from(format!("/proc/self/fd/{d}")).join(OsStr::from_bytes(name.as_bytes()));
    for (n, v) in xattrs(src)? {
        xattr::set(&proc_path, &n, &v)
            .with_context(|| format!("setting xattr {n:?} from {}", src.display()))?;
    }
    let ts = times(md);
    // SAFETY: valid dirfd, name and timespec array.
    let r = unsafe { libc::utimensat(d, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    check(r, || format!("setting times from {}", src.display()))?;
    Ok(())
}

fn times(md: &fs::Metadata) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: md.atime() as libc::time_t,
            tv_nsec: md.atime_nsec() as _,
        },
        libc::timespec {
            tv_sec: md.mtime() as libc::time_t,
            tv_nsec: md.mtime_nsec() as _,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_links_modes_and_holes() {
        let d = tempfile::tempdir().unwrap();
        let (src, dst) = (d.path().join("src"), d.path().join("dst"));
        fs::create_dir_all(src.join("a/b")).unwrap();
        fs::create_dir(&dst).unwrap();
        fs::write(src.join("a/f"), b"hello").unwrap();
        fs::hard_link(src.join("a/f"), src.join("a/b/g")).unwrap();
        std::os::unix::fs::symlink("../f", src.join("a/b/l")).unwrap();
        fs::set_permissions(src.join("a/f"), fs::Permissions::from_mode(0o4751)).unwrap();
        let mut sparse = File::create(src.join("sparse")).unwrap();
        sparse.seek(SeekFrom::Start(1 << 20)).unwrap();
        sparse.write_all(b"end").unwrap();
        drop(sparse);
        // A symlink already in the target is replaced, never followed.
        std::os::unix::fs::symlink("/etc", dst.join("a")).unwrap();
        let st = copy_tree(&src, &dst).unwrap();
        assert_eq!(st.entries, 6);
        assert!(fs::symlink_metadata(dst.join("a")).unwrap().is_dir());
        assert_eq!(fs::read(dst.join("a/b/g")).unwrap(), b"hello");
        let (f, g) = (
            fs::metadata(dst.join("a/f")).unwrap(),
            fs::metadata(dst.join("a/b/g")).unwrap(),
        );
        assert_eq!(f.ino(), g.ino());
        assert_eq!(f.mode() & 0o7777, 0o4751);
        assert_eq!(fs::read_link(dst.join("a/b/l")).unwrap(), Path::new("../f"));
        let s = fs::metadata(dst.join("sparse")).unwrap();
        assert_eq!(s.len(), (1 << 20) + 3);
        assert!(
            s.blocks() * 512 < 1 << 20,
            "not sparse: {} blocks",
            s.blocks()
        );
        assert_eq!(
            fs::metadata(src.join("a")).unwrap().mtime(),
            fs::metadata(dst.join("a")).unwrap().mtime()
        );
    }
}
