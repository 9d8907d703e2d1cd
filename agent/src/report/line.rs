//! The progress line a person at a terminal sees during a long write: on stderr when it is a
//! terminal; for a stage command of an install (whose stderr goes to the install log), on the
//! terminal the install runs on ([`TTY_ENV`], set by the top process). None with JSON logs.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set (to `tty`) for child processes when the top process has a terminal on stderr.
pub const TTY_ENV: &str = "DEPLOYER_PROGRESS";

/// Called once at start-up, before any thread: children draw on the terminal this process has.
pub fn export_tty() {
    if std::io::stderr().is_terminal() && std::env::var_os(TTY_ENV).is_none() {
        std::env::set_var(TTY_ENV, "tty");
    }
}

/// A line for `what` (bytes, of `total` when known), or none when nobody can see one.
pub fn new(what: &str, total: Option<u64>) -> Option<ProgressBar> {
    if std::env::var(crate::logging::FORMAT_ENV).as_deref() == Ok("json") {
        return None;
    }
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else if std::env::var(TTY_ENV).as_deref() == Ok("tty") {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let term = console::Term::read_write_pair(tty.try_clone().ok()?, tty);
        ProgressDrawTarget::term(term, 4)
    } else {
        return None;
    };
    let template = match total {
        Some(_) => "{msg}: {bytes}/{total_bytes} [{binary_bytes_per_sec}, ETA {eta}]",
        None => "{spinner} {msg}: {bytes} [{binary_bytes_per_sec}]",
    };
    let bar = ProgressBar::with_draw_target(total, target);
    bar.set_style(ProgressStyle::with_template(template).expect("template"));
    bar.set_message(what.to_string());
    Some(bar)
}
