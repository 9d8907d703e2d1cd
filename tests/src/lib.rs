//! The kit the integration tests, the QEMU tests and the demo share: real loop devices that
//! clean up after themselves, a real HTTP server on 127.0.0.1 that can misbehave on purpose and
//! records what it is sent, and the path of the built `deployer` binary.

pub mod fixtures;
pub mod http;
pub mod inspect;
pub mod loopdev;
pub mod yaml11;

pub use http::{Fault, Request, Server};
pub use loopdev::{LoopDisk, MountGuard};

use std::path::PathBuf;

/// The workspace's `target/<profile>` directory, found from the running test binary
/// (`target/<profile>/deps/<test>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// A command running the built `deployer`, with an install lock of its own
/// (`$DEPLOYER_LOCK_FILE`): tests run side by side, and each install would otherwise refuse to
/// start while another test's holds the machine's one lock.
pub fn deployer() -> std::process::Command {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let lock = std::env::temp_dir().join(format!(
        "deployer-test-{}-{}.lock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut c = std::process::Command::new(deployer_bin());
    c.env("DEPLOYER_LOCK_FILE", lock);
    c
}

/// The built `deployer` binary. The README's test command builds it before the tests run
/// (`cargo build --workspace --bins`), because a test of another package cannot ask cargo for it.
pub fn deployer_bin() -> PathBuf {
    let p = target_dir().join("deployer");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p deployer` before the tests (scripts/test does)",
        p.display()
    );
    p
}

/// A directory holding a `curtin` link to the deployer binary, for PATH.
pub fn curtin_dir() -> PathBuf {
    let dir = target_dir().join("curtin-bin");
    std::fs::create_dir_all(&dir).expect("create curtin-bin");
    let link = dir.join("curtin");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(deployer_bin(), &link).expect("link curtin");
    dir
}

/// Tests here need root (loop devices, mounts). Fail loudly rather than skip silently.
pub fn require_root() {
    assert!(
        nix_is_root(),
        "this test needs root: it makes loop devices and mounts filesystems"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run a command, panic with its output when it fails; returns stdout.
pub fn sh(cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "command failed ({}): {cmd}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
