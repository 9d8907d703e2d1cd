//! How many VMs run at once. A TCG guest keeps one host core busy, and the deployments spend
//! most of their time in the guest: on the project's 2-core machines two at a time nearly
//! halves the QEMU part of the suite. A lane is an `flock` on one of N files, so the limit holds
//! across test binaries too. `DEPLOYER_QEMU_LANES` sets N (default 2; 1 runs them one by one).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// A held lane; the VM slot is free again when it is dropped (the kernel drops the lock with
/// the file, also when a test panics).
pub struct Lane {
    _file: File,
}

fn lanes() -> usize {
    std::env::var("DEPLOYER_QEMU_LANES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

/// Wait for a free lane.
pub fn acquire() -> Lane {
    let files: Vec<File> = (0..lanes())
        .map(|i| {
            let p = std::env::temp_dir().join(format!("deployer-qemu-lane-{i}.lock"));
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .unwrap_or_else(|e| panic!("opening {}: {e}", p.display()))
        })
        .collect();
    loop {
        for f in &files {
            // SAFETY: flock on a descriptor owned by `files`.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Lane {
                    _file: f.try_clone().expect("duplicating the lane's descriptor"),
                };
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
