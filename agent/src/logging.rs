//! Log setup: human-readable lines on stderr, more with each `-v` (or $CURTIN_VERBOSITY).

use crate::cli::Global;
use tracing_subscriber::EnvFilter;

pub fn init(global: &Global) {
    let env_verbosity = std::env::var("CURTIN_VERBOSITY")
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
        .unwrap_or(0);
    let level = match global.verbose.max(env_verbosity) {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("DEPLOYER_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}
