//! curtin's `Stage.run` under the install's report stack: each command of a stage is a child
//! event, and runs with `CURTIN_REPORTSTACK` naming that event so that a `curtin ...` child
//! nests its own events below it. Parsing and running the commands is [`crate::commands`].

use std::ffi::OsString;

use crate::commands::{self, Cmd, LogSink, RunOpts};
use crate::report::{self, Level, Stack};

/// The commands of a stage in run order (curtin's sorted keys); falsy entries dropped.
pub fn commands(cfg: &preseed::Config, stage: &str) -> Vec<(String, Cmd)> {
    commands::from_set(&cfg.stage_commands(stage))
        .into_iter()
        .filter_map(|(k, c)| c.map(|c| (k, c)))
        .collect()
}

/// Run every command of a stage under `stack`; the first failure ends the stage.
pub fn run(
    stack: &Stack,
    stage: &str,
    cmds: &[(String, Cmd)],
    env: &[(String, OsString)],
    log: &LogSink,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    for (key, cmd) in cmds {
        crate::signals::check()?;
        let ev = stack.child(key, &commands::description(cmd), Level::Debug);
        let (down_key, down) = report::sync_before_child();
        let mut env = env.to_vec();
        env.push((report::REPORTSTACK_ENV.into(), ev.name().into()));
        env.push((down_key.into(), down.into()));
        commands::write_log(
            log,
            format!("Running {stage}_commands {key}: {}\n", cmd.display()).as_bytes(),
        );
        let opts = RunOpts {
            env,
            log: log.clone(),
            timeout,
            ..Default::default()
        };
        let r =
            commands::run_one(cmd, &opts).map_err(|e| e.context(format!("{stage}_commands {key}")));
        ev.finish_result(&r);
        r?;
    }
    Ok(())
}
