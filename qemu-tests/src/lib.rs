//! Whole deployments in QEMU: test images built with mmdebstrap from the machine's apt sources and
//! cached outside the checkout ([`image`], [`cache`]), an ephemeral OS (Debian kernel + busybox
//! initramfs + the deployer binary, [`ephemeral`]), a NoCloud seed for the deployed OS's first
//! boot ([`seed`]), and QEMU runs with a captured console and a results channel ([`vm`]).
//! The server the guests talk to is `testkit::Server` on 127.0.0.1, which the guest reaches as
//! 10.0.2.2 through QEMU's user networking ([`guest_url`]).

pub mod cache;
pub mod ephemeral;
pub mod image;
pub mod lane;
pub mod phase;
pub mod scenario;
pub mod seed;
pub mod vm;

use anyhow::{bail, Context, Result};
use std::process::Command;

pub use phase::Phases;

/// The address of the host's 127.0.0.1 as the guest sees it through QEMU user networking.
pub const HOST_FROM_GUEST: &str = "10.0.2.2";

/// `http://10.0.2.2:PORT/path` for a testkit server on the host's loopback.
pub fn guest_url(server: &testkit::Server, path: &str) -> String {
    format!("http://{HOST_FROM_GUEST}:{}{path}", server.addr().port())
}

/// Why the QEMU harness tests cannot run here, or `None` when they can. They need root (loop
/// devices, mounts, mmdebstrap), the tools `scripts/setup` installs, and are switched off with
/// `DEPLOYER_QEMU=0`.
pub fn harness_unavailable() -> Option<String> {
    if std::env::var("DEPLOYER_QEMU").is_ok_and(|v| v == "0") {
        return Some("DEPLOYER_QEMU=0".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (loop devices, mounts and mmdebstrap need root)".into());
    }
    for tool in [
        "qemu-system-x86_64",
        "mmdebstrap",
        "cpio",
        "sgdisk",
        "grub-install",
        "mcopy",
    ] {
        if which(tool).is_none() {
            return Some(format!("{tool} is missing: run scripts/setup"));
        }
    }
    None
}

/// Print a skip notice the way cargo shows it (stderr is shown with --nocapture or on failure;
/// stdout of a passing test is hidden, so both are used).
pub fn skip(test: &str, why: &str) {
    println!("SKIPPED {test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Run a program with arguments; error with its output when it fails. Returns stdout.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .with_context(|| format!("running {prog}"))?;
    if !out.status.success() {
        bail!(
            "{prog} {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run a shell snippet (pipelines: tar | gzip), with pipefail; error with its output.
pub fn shell(script: &str) -> Result<String> {
    run("bash", &["-c", &format!("set -euo pipefail; {script}")])
}
