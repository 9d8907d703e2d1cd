//! SIGTERM and SIGINT (a systemd stop, an operator's Ctrl-C): recorded, never fatal on the
//! spot, so that the command in progress stops and everything is cleaned up as on a failure
//! (the target unmounted, the loop device detached, FAIL events sent, the error tarball
//! written). The running child gets the signal (its process group, see
//! [`crate::commands::run_one`]); long loops call [`check`]. A second signal ends deployer at
//! once. The exit code is 128 + the signal number, as a shell reports a process killed by it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::Kind;

struct Flags {
    /// Set by the first SIGTERM or SIGINT.
    any: Arc<AtomicBool>,
    /// Which one (0: none).
    which: Arc<AtomicUsize>,
}

static FLAGS: OnceLock<Flags> = OnceLock::new();

/// Start recording the signals (once, early in `main`).
pub fn install() {
    FLAGS.get_or_init(|| {
        let f = Flags {
            any: Arc::new(AtomicBool::new(false)),
            which: Arc::new(AtomicUsize::new(0)),
        };
        for sig in [SIGTERM, SIGINT] {
            // Order matters: the default action is taken when the flag is already set.
            let r = signal_hook::flag::register_conditional_default(sig, f.any.clone())
                .and_then(|_| signal_hook::flag::register_usize(sig, f.which.clone(), sig as usize))
                .and_then(|_| signal_hook::flag::register(sig, f.any.clone()));
            if let Err(e) = r {
                tracing::warn!("cannot handle signal {sig}: {e}");
            }
        }
        f
    });
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    let f = FLAGS.get()?;
    f.any
        .load(Ordering::SeqCst)
        .then(|| f.which.load(Ordering::SeqCst) as i32)
        .filter(|s| *s != 0)
}

/// The signal's name, for messages.
pub fn name(sig: i32) -> String {
    match sig {
        SIGTERM => "SIGTERM".into(),
        SIGINT => "SIGINT".into(),
        n => format!("signal {n}"),
    }
}

/// The error of a command stopped by a signal: exit code 128 + the signal.
pub fn interrupted(sig: i32) -> anyhow::Error {
    crate::error::tag(
        anyhow::anyhow!("interrupted by {}", name(sig)),
        Kind::Interrupted(sig),
    )
}

/// `Err` once a signal came: call between steps and in long loops.
pub fn check() -> anyhow::Result<()> {
    match received() {
        Some(sig) => Err(interrupted(sig)),
        None => Ok(()),
    }
}
