//! `deployer install` (and `curtin install`): the stages in curtin's order, each reported.
//!
//! 1. config: the `-c` documents (files or URLs) over curtin's builtin, CLI sources added;
//! 2. reporting registered, `cmd-install` started, the install log opened;
//! 3. `--target` attached (a file becomes a loop device) and made the install's disk;
//! 4. the working directory (state files, the `curtin` link) and its environment;
//! 5. every stage of `stages`: `stage-<name>` event, its `<name>_commands` in sorted order;
//! 6. on failure the error tarball; always the log copied into the target, the target
//!    unmounted, the working dir removed, the loop device detached;
//! 7. `cmd-install` finished with `post_files`, events flushed, then the power state.

pub mod config;
pub mod finish;
pub mod lock;
pub mod loopback;
pub mod stage;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use preseed::install::{Install, PowerState};
use preseed::load::Loaded;
use yaml_serde::Value;

use crate::cli::{Global, InstallArgs};
use crate::commands;
use crate::error::{Kind, KindExt};
use crate::report::{self, Level, Stack};
use crate::workdir::WorkingDir;

/// Descriptions of the stage events (curtin's STAGE_DESCRIPTIONS).
pub fn stage_description(name: &str) -> String {
    match name {
        "early" => "preparing for installation".into(),
        "partitioning" => "configuring storage".into(),
        "network" => "configuring network".into(),
        "extract" => "writing install sources to disk".into(),
        "curthooks" => "configuring installed system".into(),
        "hook" => "finalizing installation".into(),
        "late" => "executing late commands".into(),
        other => format!("stage {other}"),
    }
}

/// How long the end of an install waits for the last events (with the logs) to be sent.
fn final_flush() -> Duration {
    std::env::var("DEPLOYER_REPORT_FLUSH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30))
}

pub fn run(g: &Global, a: &InstallArgs) -> anyhow::Result<()> {
    let _lock = lock::acquire()?;
    // With nothing but MAAS's cloud-config-url, MAAS's installer says what to install.
    match crate::maas::start(g, a)? {
        crate::maas::Start::AsAsked => run_with(g, a, None),
        crate::maas::Start::Nothing(msg) => {
            println!("{msg}");
            Ok(())
        }
        crate::maas::Start::Deploy {
            global,
            args,
            power_state,
        } => run_with(&global, &args, power_state.map(|p| *p)),
    }
}

/// The install; `fallback_power`: what to do with the power when the config says nothing
/// (MAAS's preseed's `power_state`, which cloud-init would have applied).
fn run_with(g: &Global, a: &InstallArgs, fallback_power: Option<PowerState>) -> anyhow::Result<()> {
    let loaded = crate::config::load(g)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let mut cfg = match config::effective(loaded.merged, &a.sources) {
        Ok(c) => c,
        Err(e) => {
            // Refused before any stage; the endpoint still hears why (MAAS marks it failed).
            let e = config::tag(Err::<(), _>(e)).unwrap_err();
            report_refusal(&loaded.config, &e);
            return Err(e);
        }
    };
    report::init(&cfg.config)?;

    let install = cfg.config.install.clone();
    let log_file = install.log_file.as_ref().map(PathBuf::from);
    let error_tarfile = install.error_tarfile.as_ref().map(PathBuf::from);
    let post_files: Vec<PathBuf> = install.post_files.iter().map(PathBuf::from).collect();

    let mut top = Stack::root("cmd-install", "curtin command install", Level::Debug);
    top.set_post_files(post_files.clone());
    std::env::set_var(report::REPORTSTACK_ENV, top.name());

    let log = open_log(log_file.as_deref(), install.log_file_append);
    commands::write_log(
        &log,
        format!(
            "curtin: Installation started. (deployer {})\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    eprintln!(
        "curtin: Installation started. (deployer {})",
        env!("CARGO_PKG_VERSION")
    );

    let mut disk = None;
    let mut wd = None;
    let result = (|| -> anyhow::Result<()> {
        if let Some(t) = &a.target {
            let size = match &a.size {
                Some(s) => Some(parse_size(s).kind(Kind::Config)?),
                None => None,
            };
            let d = loopback::TargetDisk::open(t, size).kind(Kind::Storage)?;
            cfg = config::tag(config::set_target_disk(cfg.clone(), &d.device))?;
            disk = Some(d);
        }
        add_save_install_config(&mut cfg);
        let w = wd.insert(make_workdir(&cfg)?);
        run_stages(g, &cfg.config, w, &top, &log)
    })();
    match &result {
        Err(e) => {
            let msg = format!(
                "curtin: Installation failed with exception: {}\n",
                crate::error::render(e)
            );
            commands::write_log(&log, msg.as_bytes());
            eprint!("{msg}");
            if let Some(t) = &error_tarfile {
                let mut logs: Vec<PathBuf> = log_file.iter().cloned().collect();
                logs.extend(post_files.iter().cloned());
                logs.dedup();
                if let Err(te) = finish::error_tarfile(t, &cfg.merged, &logs) {
                    tracing::warn!("writing the error tarfile: {}", crate::error::render(&te));
                }
            }
        }
        Ok(()) => {
            commands::write_log(&log, b"curtin: Installation finished.\n");
            eprintln!("curtin: Installation finished.");
        }
    }
    if let Some(w) = &wd {
        cleanup(&install, w, log_file.as_deref());
    }
    if let Some(d) = &mut disk {
        d.detach();
    }
    // Close the log so that the finish event carries all of it.
    log.lock().unwrap_or_else(|e| e.into_inner()).take();
    top.finish_result(&result);
    if !report::flush(final_flush()) {
        tracing::warn!("some report events could not be delivered in time");
    }
    // Printed above as curtin prints it ("Installation failed with exception"): once.
    result.map_err(crate::error::reported)?;
    let power = cfg.config.power_state.as_ref().or(fallback_power
        .as_ref()
        .filter(|p| crate::maas::power_condition_holds(p)));
    finish::apply_power_state(power).kind(Kind::Config)
}

/// An install refused before it started: `cmd-install` start and FAIL with the reason to the
/// handlers of `cfg`'s `reporting` (when it has any).
pub fn report_refusal(cfg: &preseed::Config, e: &anyhow::Error) {
    // The model always holds curtin's default `logging` handler: only a handler that reaches
    // somewhere else (a webhook, journald, the console) has anyone to tell.
    use preseed::reporting::HandlerType;
    if cfg.reporting.values().all(|h| h.kind == HandlerType::Log) {
        return;
    }
    if let Err(re) = report::init(cfg) {
        tracing::warn!("reporting: {}", crate::error::render(&re));
        return;
    }
    let top = Stack::root("cmd-install", "curtin command install", Level::Debug);
    let r: anyhow::Result<()> = Err(anyhow::anyhow!("{}", crate::error::render(e)));
    top.finish_result(&r);
    if !report::flush(final_flush()) {
        tracing::warn!("the failure event could not be delivered in time");
    }
}

fn run_stages(
    g: &Global,
    cfg: &preseed::Config,
    wd: &WorkingDir,
    top: &Stack,
    log: &commands::LogSink,
) -> anyhow::Result<()> {
    let mut wd = wd.clone();
    wd.verbosity = cfg.verbosity.unwrap_or(0).max(g.verbose);
    // CURTIN_REPORTSTACK is set per command by the stage runner.
    let mut env: Vec<(String, OsString)> = wd
        .env()
        .into_iter()
        .filter(|(k, _)| k != report::REPORTSTACK_ENV)
        .collect();
    if cfg.showtrace.unwrap_or(g.showtrace) {
        env.push(("CURTIN_STACKTRACE".into(), "1".into()));
    }
    // Every stage's commands were checked when the config was typed.
    let timeouts = &cfg.install.command_timeout;
    for name in &cfg.stages {
        crate::signals::check()?;
        let cmds = stage::commands(cfg, name);
        let st = top.child(
            &format!("stage-{name}"),
            &stage_description(name),
            Level::Info,
        );
        eprintln!("curtin: stage {name}: {}", st.description());
        let r = stage::run(&st, name, &cmds, &env, log, timeouts.for_stage(name));
        st.finish_result(&r);
        r.with_context(|| format!("stage {name}"))?;
    }
    Ok(())
}

/// The working dir (state files, `bin/curtin`), its target from `install.target` (which must
/// be empty, as in curtin) or `<top>/target`.
fn make_workdir(cfg: &Loaded) -> anyhow::Result<WorkingDir> {
    let target = cfg.config.install.target.as_ref().map(PathBuf::from);
    if let Some(t) = &target {
        if std::fs::read_dir(t).is_ok_and(|mut d| d.next().is_some()) {
            return Err(anyhow::anyhow!(
                "install.target {} is not empty: curtin installs only into an empty directory",
                t.display()
            ))
            .kind(Kind::Config);
        }
    }
    WorkingDir::create(&std::env::temp_dir(), target.as_deref(), cfg)
}

/// `install.save_install_config` (default /root/curtin-install-cfg.yaml): the merged config
/// written into the target by the extract stage's write_files, mode 0400.
fn add_save_install_config(cfg: &mut Loaded) {
    let Some(path) = cfg.config.install.save_install_config.clone() else {
        return;
    };
    let content = preseed::yaml::to_string(&cfg.merged).unwrap_or_default();
    // The same entry in both: the merged value (state/config, what hooks read) and the model
    // (what extract writes), so the config need not be read again.
    let entry: Value = yaml_serde::to_value(serde_json::json!({
        "path": path, "permissions": "0400", "owner": "root:root", "content": content
    }))
    .expect("yaml value");
    let root = cfg.merged.as_mapping_mut().expect("mapping");
    let wf = root
        .entry("write_files".into())
        .or_insert(Value::Mapping(Default::default()));
    if let Value::Mapping(m) = wf {
        m.insert("curtin_install_cfg".into(), entry);
    }
    cfg.config.write_files.insert(
        "curtin_install_cfg".into(),
        preseed::install::WriteFile {
            path,
            content: content.into_bytes(),
            permissions: 0o400,
            owner: Some("root:root".into()),
            encoding: None,
        },
    );
}

fn open_log(path: Option<&std::path::Path>, append: bool) -> commands::LogSink {
    let Some(p) = path else {
        return Arc::new(Mutex::new(None));
    };
    // curtin: `if not log_file_append: clear the log` (Python truthiness, in the model).
    let r = (|| -> std::io::Result<std::fs::File> {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(p)
    })();
    match r {
        Ok(f) => Arc::new(Mutex::new(Some(f))),
        Err(e) => {
            tracing::warn!(
                "opening the install log {}: {e}; going on without it",
                p.display()
            );
            Arc::new(Mutex::new(None))
        }
    }
}

/// curtin's `finally`: the log into the target, the target unmounted (unless
/// `install.unmount: disabled`), the working directory removed when nothing is mounted in it.
fn cleanup(install: &Install, wd: &WorkingDir, log_file: Option<&std::path::Path>) {
    if let (Some(rel), Some(log)) = (&install.save_install_log, log_file) {
        finish::save_log_in_target(&wd.target, rel, log);
    }
    if !install.unmount_disabled() {
        if let Err(e) = finish::unmount_all(&wd.target) {
            tracing::warn!("{}", crate::error::render(&e));
        }
    }
    if finish::mounts_under(&wd.top).is_empty() {
        let _ = std::fs::remove_dir_all(&wd.top);
    } else {
        tracing::info!(
            "keeping {}: the target is still mounted there",
            wd.top.display()
        );
    }
}

/// `--size`: a size as curtin writes them (`8G`, `4294967296`), above 0.
fn parse_size(s: &str) -> anyhow::Result<u64> {
    match preseed::size::human2bytes(s) {
        Ok(0) => anyhow::bail!("--size {s}: must be above 0"),
        Ok(n) => Ok(n),
        Err(e) => anyhow::bail!("--size {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(
            parse_size("3Q").unwrap_err().to_string(),
            "--size '3Q' is not valid input."
        );
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn save_install_config_entry() {
        let l = |y: &str| preseed::load::from_merged(yaml_serde::from_str(y).unwrap()).unwrap();
        let mut cfg = l("install: {}");
        add_save_install_config(&mut cfg);
        assert_eq!(
            cfg.config.write_files["curtin_install_cfg"].path,
            "/root/curtin-install-cfg.yaml"
        );
        let mut off = l("install: {save_install_config: false}");
        add_save_install_config(&mut off);
        assert!(off.config.write_files.is_empty());
    }
}
