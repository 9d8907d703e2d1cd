//! The mounted target: running commands chrooted in it (curtin's `ChrootableTarget` and
//! `curtin in-target`), and every file access inside it ([`TargetRoot`], in `root`: paths
//! resolved inside the target, never following a link out of it).
//!
//! Entering binds `/dev`, `/proc`, `/sys`, `/run` (and efivars where the host has them) into
//! the target, puts the host's `resolv.conf` in (keeping the target's aside), installs a
//! `policy-rc.d` that stops services from starting and binds `true` over `ischroot`. Leaving
//! undoes all of it in reverse order; it also runs when a step or the command fails (Drop).

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use anyhow::{anyhow, bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Kind, KindExt};

pub mod root;

pub use root::{Dir, MountPoint, Scope, TargetRoot};

/// Host dirs bound into the target, in mount order.
const BINDS: &[&str] = &["dev", "proc", "sys", "run"];
const EFIVARS: &str = "sys/firmware/efi/efivars";
const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
const RESOLV: &str = "etc/resolv.conf";
const RESOLV_SAVED: &str = "etc/.deployer-resolv.conf.target";
const POLICY_SAVED: &str = "usr/sbin/.deployer-policy-rc.d.target";

/// A target prepared for chrooted commands; dropping it tears everything down.
pub struct Chroot {
    root: PathBuf,
    files: TargetRoot,
    mounts: Vec<PathBuf>,
    resolv: Aside,
    policy: Aside,
}

/// What was done to a target file deployer puts its own in place of.
#[derive(Clone, Copy)]
enum Aside {
    Untouched,
    /// Ours put in; the target had none.
    Added,
    /// Ours put in; the target's kept under another name.
    Replaced,
}

impl Chroot {
    /// Prepare `root` for chrooted commands.
    pub fn enter(root: &Path) -> Result<Chroot> {
        let root = fs::canonicalize(root)
            .with_context(|| format!("target {} does not exist", root.display()))
            .kind(Kind::Storage)?;
        if root == Path::new("/") {
            bail!("refusing to use / as the target");
        }
        if !root.is_dir() {
            bail!("target {} is not a directory", root.display());
        }
        let files = TargetRoot::open(&root).kind(Kind::Storage)?;
        let mut c = Chroot {
            root,
            files,
            mounts: vec![],
            resolv: Aside::Untouched,
            policy: Aside::Untouched,
        };
        // On error, `c` is dropped and undoes what was done so far.
        c.bind_all()?;
        c.install_resolv()?;
        c.install_policy()?;
        c.bind_ischroot();
        Ok(c)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The target's files, resolved inside it.
    pub fn files(&self) -> &TargetRoot {
        &self.files
    }

    /// Bind `src` (a host directory) on `rel`, resolved inside the target (an image's `run`
    /// linked to a host directory gets the mount inside the target, where the link leads there).
    fn bind(&mut self, src: &Path, rel: &str) -> Result<()> {
        let mp = self.files.mount_point(rel).kind(Kind::Storage)?;
        let dst = mp.path().to_path_buf();
        mount(
            Some(src),
            &mp.proc_path(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} on {}", src.display(), dst.display()))
        .kind(Kind::Storage)?;
        self.mounts.push(dst.clone());
        // Private, so that nothing mounted or unmounted here reaches the host.
        let _ = mount(
            None::<&str>,
            &dst,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        );
        Ok(())
    }

    fn bind_all(&mut self) -> Result<()> {
        for d in BINDS {
            let src = Path::new("/").join(d);
            if src.is_dir() {
                self.bind(&src, d)?;
            }
        }
        let efivars = Path::new("/").join(EFIVARS);
        if efivars.is_dir() && is_mountpoint(&efivars) {
            self.bind(&efivars, EFIVARS)?;
        }
        Ok(())
    }

    /// The host's resolv.conf in place of the target's.
    fn install_resolv(&mut self) -> Result<()> {
        let host = fs::read("/etc/resolv.conf").ok();
        let (Some(host), true) = (host, self.files.is_dir("etc")) else {
            return Ok(());
        };
        // Set before the write, so that teardown undoes a half-done step too.
        self.resolv = self.move_aside(RESOLV, RESOLV_SAVED)?;
        self.files.write_file(RESOLV, &host, 0o644, None)
    }

    fn install_policy(&mut self) -> Result<()> {
        if !self.files.is_dir("usr/sbin") {
            return Ok(());
        }
        self.policy = self.move_aside(POLICY_RC_D, POLICY_SAVED)?;
        // Exit 101: "action forbidden by policy" (invoke-rc.d's interface).
        self.files.write_file(
            POLICY_RC_D,
            b"#!/bin/sh\n# written by deployer: no daemons during install\nexit 101\n",
            0o755,
            None,
        )
    }

    /// Move the target's `rel` (a link itself, not followed) to `saved`, if it has one.
    fn move_aside(&self, rel: &str, saved: &str) -> Result<Aside> {
        if self.files.symlink_metadata(rel).is_err() {
            return Ok(Aside::Added);
        }
        self.files.rename(rel, saved)?;
        Ok(Aside::Replaced)
    }

    /// Debian's `ischroot` answers "not a chroot" so maintainer scripts behave as on a host.
    fn bind_ischroot(&mut self) {
        let (Ok(t), Ok(i)) = (
            self.files.mount_point_file("usr/bin/true"),
            self.files.mount_point_file("usr/bin/ischroot"),
        ) else {
            return;
        };
        let flags = MsFlags::MS_BIND;
        if mount(
            Some(&t.proc_path()),
            &i.proc_path(),
            None::<&str>,
            flags,
            None::<&str>,
        )
        .is_ok()
        {
            self.mounts.push(i.path().to_path_buf());
        }
    }

    /// A command to run inside the target: chroot + chdir / in the child, SYSTEMD_OFFLINE=1.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, argv: &[S]) -> Result<Command> {
        let Some((prog, args)) = argv.split_first() else {
            bail!("no command given")
        };
        let mut c = Command::new(prog);
        c.args(args).env("SYSTEMD_OFFLINE", "1");
        // Paths as C strings before the fork: nothing in the child allocates.
        let root = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes())
            .context("target path has a NUL byte")?;
        // The target's /proc as resolved inside it (where the bind went), never a host path:
        // without one, no /proc of its own.
        let proc_dir = match self.files.real_path("proc") {
            Ok(p) => Some(
                std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
                    .context("target path has a NUL byte")?,
            ),
            Err(_) => None,
        };
        // SAFETY: the closure runs in the forked child before exec and only makes raw syscalls
        // (unshare, mount, fork, waitpid, close, chroot, chdir, _exit) on data prepared above.
        unsafe {
            c.pre_exec(move || {
                enter_namespaces(proc_dir.as_deref());
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(c)
    }

    /// Run a command in the target with inherited stdio; its exit status is returned as is.
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, argv: &[S]) -> Result<ExitStatus> {
        let mut c = self.command(argv)?;
        let prog = argv[0].as_ref().to_string_lossy().into_owned();
        c.status()
            .with_context(|| format!("running {prog} in {}", self.root.display()))
            .kind(Kind::Hook)
    }

    /// Run a command in the target and capture its merged output; non-zero is an error with
    /// the output in it.
    pub fn output<S: AsRef<std::ffi::OsStr>>(&self, argv: &[S]) -> Result<String> {
        let mut c = self.command(argv)?;
        let shown: Vec<String> = argv
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let out = c
            .output()
            .with_context(|| format!("running {} in {}", shown.join(" "), self.root.display()))
            .kind(Kind::Hook)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(anyhow!(
                "`{}` in the target failed ({}): {}",
                shown.join(" "),
                out.status,
                text.trim_end()
            ))
            .kind(Kind::Hook);
        }
        Ok(text)
    }

    /// Undo everything; errors are collected (every step is still attempted).
    pub fn leave(mut self) -> Result<()> {
        let errs = self.teardown();
        std::mem::forget(self);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("leaving the target: {}", errs.join("; "))).kind(Kind::Storage)
        }
    }

    fn teardown(&mut self) -> Vec<String> {
        let mut errs = vec![];
        while let Some(m) = self.mounts.pop() {
            if let Err(e) = umount2(&m, MntFlags::empty()) {
                // Something still holds it (a daemon a hook started): detach it lazily so
                // that it is gone from the namespace, and say so.
                if umount2(&m, MntFlags::MNT_DETACH).is_err() {
                    errs.push(format!("unmounting {}: {e}", m.display()));
                } else {
                    tracing::warn!("{} was busy ({e}); detached it lazily", m.display());
                }
            }
        }
        let resolv = std::mem::replace(&mut self.resolv, Aside::Untouched);
        let policy = std::mem::replace(&mut self.policy, Aside::Untouched);
        for (state, rel, saved) in [
            (resolv, RESOLV, RESOLV_SAVED),
            (policy, POLICY_RC_D, POLICY_SAVED),
        ] {
            if matches!(state, Aside::Untouched) {
                continue;
            }
            let _ = self.files.remove_file(rel);
            if matches!(state, Aside::Replaced) {
                if let Err(e) = self.files.rename(saved, rel) {
                    errs.push(format!("restoring /{rel}: {e:#}"));
                }
            }
        }
        errs
    }
}

/// In the forked child, before chroot: new PID and mount namespaces (as curtin's
/// `unshare --fork --pid --mount-proc`), so that daemons a command leaves behind die with it and
/// nothing it mounts reaches the host. The process forks once more: the grandchild (PID 1 of the
/// new namespace, with its own /proc) goes on to exec the command; this process waits for it and
/// exits with its status. Where namespaces are not allowed, the command runs without them.
///
/// # Safety
/// Only between fork and exec (async-signal-safe calls only).
unsafe fn enter_namespaces(proc_dir: Option<&std::ffi::CStr>) {
    if libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) != 0 {
        return;
    }
    // Our mounts stay ours.
    libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    );
    let pid = libc::fork();
    if pid < 0 {
        return; // runs without the PID namespace
    }
    if pid == 0 {
        if let Some(dir) = proc_dir {
            libc::mount(
                c"proc".as_ptr(),
                dir.as_ptr(),
                c"proc".as_ptr(),
                0,
                std::ptr::null(),
            );
        }
        return;
    }
    // The intermediate: drop every descriptor but stdio (among them the pipe through which the
    // parent learns that exec happened, which must close when the grandchild execs), then wait.
    for fd in 3..1024 {
        libc::close(fd);
    }
    let mut status = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid {
            break;
        }
        if r < 0 && *libc::__errno_location() != libc::EINTR {
            libc::_exit(127);
        }
    }
    if libc::WIFEXITED(status) {
        libc::_exit(libc::WEXITSTATUS(status));
    }
    // Killed by a signal: die the same way so the parent sees it.
    let sig = libc::WTERMSIG(status);
    libc::signal(sig, libc::SIG_DFL);
    libc::kill(libc::getpid(), sig);
    libc::_exit(128 + sig);
}

impl Drop for Chroot {
    fn drop(&mut self) {
        for e in self.teardown() {
            tracing::error!("{e}");
        }
    }
}

/// Is `p` a mount point?
pub fn is_mountpoint(p: &Path) -> bool {
    crate::mounts::is_mountpoint(p)
}

/// Resolve `rel` inside `root` the way the target would see it ([`TargetRoot`]): the host
/// path of the file, if it exists.
pub fn resolve_in(root: &Path, rel: &str) -> Option<PathBuf> {
    TargetRoot::open(root).ok()?.real_path(rel).ok()
}

/// Is `rel` an executable regular file in the target (links resolved inside it)?
pub fn is_executable_in(root: &Path, rel: &str) -> bool {
    TargetRoot::open(root).is_ok_and(|r| r.is_executable(rel))
}

/// `deployer in-target` / `curtin in-target`: run the command chrooted in the target and exit
/// with its exit code (128+signal when killed), after tearing everything down.
pub fn in_target(_g: &crate::cli::Global, a: &crate::cli::InTargetArgs) -> Result<()> {
    let target = a
        .target
        .clone()
        .ok_or_else(|| anyhow!("no target: pass -t TARGET or set $TARGET_MOUNT_POINT"))
        .kind(Kind::Config)?;
    let chroot = Chroot::enter(&target)?;
    let status = chroot.run(&a.command);
    chroot.leave()?;
    let status = status?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if code != 0 {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn resolve_stays_inside_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("usr/bin")).unwrap();
        fs::write(r.join("usr/bin/cloud-init"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            r.join("usr/bin/cloud-init"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        // usrmerge-style absolute link: must resolve inside the root, not on the host.
        std::os::unix::fs::symlink("/usr/bin", r.join("bin")).unwrap();
        std::os::unix::fs::symlink("../../../../../etc", r.join("usr/bin/up")).unwrap();
        assert!(is_executable_in(r, "bin/cloud-init"));
        assert_eq!(
            resolve_in(r, "bin/cloud-init").unwrap(),
            r.join("usr/bin/cloud-init")
        );
        assert!(!is_executable_in(r, "bin/nothere"));
        // `..` past the root stays at the root: usr/bin/up -> /etc of the target (missing).
        assert!(resolve_in(r, "usr/bin/up").is_none());
    }
}
