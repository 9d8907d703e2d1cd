//! The `deployer` binary. Multi-call: invoked as `curtin` (a link to this binary), it answers
//! curtin's command line, so that configs and hooks that call `curtin ...` run deployer.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use deployer::cli::{Cli, Command, CurtinCli, Global};
use deployer::error;

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (global, command) = if name == "curtin" {
        let cli = CurtinCli::parse();
        (cli.global, cli.command)
    } else {
        let cli = Cli::parse();
        (cli.global, cli.command)
    };
    deployer::logging::init(&global);
    deployer::signals::install();
    match run(&global, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !error::is_reported(&err) {
                eprintln!("{name}: error: {}", error::render(&err));
            }
            if global.showtrace {
                eprintln!("{err:?}");
            }
            // A failure after SIGTERM/SIGINT says so, whatever broke first (128 + signal).
            let code = match deployer::signals::received() {
                Some(sig) => error::Kind::Interrupted(sig).exit_code(),
                None => error::exit_code(&err),
            };
            ExitCode::from(code as u8)
        }
    }
}

fn run(global: &Global, command: Command) -> anyhow::Result<()> {
    use deployer::*;
    // install opens its own `cmd-install`; every other command is reported as
    // `<$CURTIN_REPORTSTACK>/cmd-<name>`, as curtin's main does.
    let name = match &command {
        Command::Install(_) | Command::Inspect(_) => None,
        Command::Validate(_) => Some("validate"),
        Command::Plan(_) => Some("plan"),
        Command::WriteImage(_) => Some("write-image"),
        Command::BlockMeta(_) => Some("block-meta"),
        Command::Extract(_) => Some("extract"),
        Command::NetMeta(_) => Some("net-meta"),
        Command::Curthooks(_) => Some("curthooks"),
        Command::Hook(_) => Some("hook"),
        Command::InTarget(_) => Some("in-target"),
        Command::RenderNetwork(_) => Some("render-network"),
    };
    match name {
        Some(n) => report::command_scope(n, || dispatch(global, command)),
        None => dispatch(global, command),
    }
}

fn dispatch(global: &Global, command: Command) -> anyhow::Result<()> {
    use deployer::*;
    match command {
        Command::Validate(a) => plan::validate(global, &a),
        Command::Plan(a) => plan::run(global, &a),
        Command::Install(a) => install::run(global, &a),
        Command::WriteImage(a) => write_image::run(global, &a),
        Command::BlockMeta(a) => block_meta::run(global, &a),
        Command::Extract(a) => extract::run(global, &a),
        Command::NetMeta(a) => network::net_meta(global, &a),
        Command::Curthooks(a) => curthooks::run(global, &a),
        Command::Hook(a) => hook::run(global, &a),
        Command::InTarget(a) => target::in_target(global, &a),
        Command::RenderNetwork(a) => network::render_cmd(global, &a),
        Command::Inspect(a) => inspect::run(global, &a),
    }
}
