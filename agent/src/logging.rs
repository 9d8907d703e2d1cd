//! Log setup: timestamped lines on stderr (or in `--log-file`, as curtin's `--log-file` takes
//! the place of stderr), as text or as one JSON object a line, more with each `-v` (or
//! $CURTIN_VERBOSITY).

use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::cli::{Global, LogFormat};

/// Carries `--log-format` to the stage commands an install runs (they are new processes).
pub const FORMAT_ENV: &str = "DEPLOYER_LOG_FORMAT";

/// The format asked for: the flag, else the environment, else text.
pub fn format(global: &Global) -> LogFormat {
    global
        .log_format
        .unwrap_or_else(|| match std::env::var(FORMAT_ENV).as_deref() {
            Ok("json") => LogFormat::Json,
            _ => LogFormat::Text,
        })
}

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
    let fmt = format(global);
    // Set before any thread starts; stage commands inherit them.
    if fmt == LogFormat::Json {
        std::env::set_var(FORMAT_ENV, "json");
    }
    crate::report::line::export_tty();
    let file = global
        .log_file
        .as_ref()
        .and_then(|p| match std::fs::File::create(p) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!(
                    "deployer: --log-file {}: {e}; logging to stderr",
                    p.display()
                );
                None
            }
        });
    let ansi = file.is_none() && fmt == LogFormat::Text && std::io::stderr().is_terminal();
    match file {
        Some(f) => install(filter, fmt, ansi, Mutex::new(f)),
        None => install(filter, fmt, ansi, std::io::stderr),
    }
}

fn install<W>(filter: EnvFilter, fmt: LogFormat, ansi: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match fmt {
        LogFormat::Json => b.json().flatten_event(true).try_init(),
        LogFormat::Text => b.with_ansi(ansi).try_init(),
    };
}
