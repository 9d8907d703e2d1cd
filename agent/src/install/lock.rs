//! One install at a time on a machine: an exclusive `flock` on `/run/deployer-install.lock`
//! (`$DEPLOYER_LOCK_FILE` elsewhere) holding the first install's PID, kept until the process
//! exits. A second install fails at once naming that PID.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};

fn path() -> PathBuf {
    std::env::var_os("DEPLOYER_LOCK_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/deployer-install.lock"))
}

/// Held for the whole install; the lock goes with the file when it is dropped or the process
/// ends (the kernel releases a flock with its last descriptor).
#[derive(Debug)]
pub struct InstallLock {
    _file: File,
}

pub fn acquire() -> Result<InstallLock> {
    let p = path();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .with_context(|| format!("opening the install lock {}", p.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err).with_context(|| format!("locking {}", p.display()));
        }
        let mut pid = String::new();
        let _ = f.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(anyhow!(
            "another install is running on this machine (PID {}, lock {}): one install at a time",
            if pid.is_empty() { "unknown" } else { pid },
            p.display()
        ));
    }
    f.set_len(0)?;
    f.rewind()?;
    writeln!(f, "{}", std::process::id())?;
    f.flush()?;
    Ok(InstallLock { _file: f })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_is_refused_with_the_first_pid() {
        let d = tempfile::tempdir().unwrap();
        std::env::set_var("DEPLOYER_LOCK_FILE", d.path().join("lock"));
        let first = acquire().unwrap();
        let e = acquire().unwrap_err().to_string();
        assert!(e.contains(&format!("PID {}", std::process::id())), "{e}");
        drop(first);
        acquire().unwrap();
        std::env::remove_var("DEPLOYER_LOCK_FILE");
    }
}
