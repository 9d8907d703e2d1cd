//! `*_commands` as curtin's `Stage.run` executes them, and `write_files` into a target.
//!
//! Commands: keys in sorted (code-point) order; a list is exec'd, a string goes through
//! `sh -c`, null or empty skips the entry; stdout and stderr are merged, copied to our stdout
//! and appended to the install log; a non-zero exit stops the stage with the command's output
//! in the error.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use yaml_serde::Value;

use crate::error::{Kind, KindExt};

/// One command of a `*_commands` mapping (the config model's type): a string runs with
/// `sh -c`, a list is exec'd.
pub use preseed::commands::Command as Cmd;

/// The event description curtin uses: `running '<argv joined by spaces>'`.
pub fn description(cmd: &Cmd) -> String {
    format!("running '{}'", cmd.display())
}

fn argv(cmd: &Cmd) -> Vec<String> {
    match cmd {
        Cmd::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        Cmd::Exec(v) => v.clone(),
    }
}

/// The config model's `CommandSet` (already in sorted key order) as a run list.
pub fn from_set(set: &preseed::commands::CommandSet) -> CommandList {
    set.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A stage's commands in run order (sorted keys; `None` = skipped entry).
pub type CommandList = Vec<(String, Option<Cmd>)>;

/// Read a `<stage>_commands` value with the config model's reader (a mapping of key ->
/// string | list | null), as a run list.
pub fn commands_from_value(stage: &str, v: &Value) -> Result<CommandList> {
    let set = preseed::commands::from_value(v)
        .map_err(|i| {
            let at = i.path_string();
            let sep = if at.is_empty() { "" } else { "." };
            anyhow!("{stage}_commands{sep}{at}: {}", i.message)
        })
        .kind(Kind::Config)?;
    Ok(from_set(&set))
}

/// What a command run reports (the install helper turns these into events).
#[derive(Debug, Clone)]
pub enum CommandEvent<'a> {
    Start {
        stage: &'a str,
        key: &'a str,
        description: String,
    },
    Finish {
        stage: &'a str,
        key: &'a str,
        ok: bool,
        description: String,
    },
}

/// Where command output goes besides the terminal: the install log, shared by the stage
/// runner and the install's own lines (None: no log).
pub type LogSink = Arc<Mutex<Option<fs::File>>>;

/// A log sink appending to `path`.
pub fn log_to(path: &Path) -> Result<LogSink> {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening install log {}", path.display()))?;
    Ok(Arc::new(Mutex::new(Some(f))))
}

/// Append bytes to the log, if there is one. Logging never fails a command.
pub fn write_log(log: &LogSink, bytes: &[u8]) {
    if let Some(f) = log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = f.write_all(bytes);
    }
}

/// How to run a stage's commands.
pub struct RunOpts<'a> {
    /// Extra environment (e.g. `WorkingDir::env()`), on top of the inherited one.
    pub env: Vec<(String, OsString)>,
    /// The install log, appended to.
    pub log: LogSink,
    /// Also copy the output to our stderr (curtin copies it to the terminal; stdout stays
    /// free for results such as `--json`).
    pub echo: bool,
    /// Stop the command (SIGTERM to its process group, SIGKILL after [`GRACE`]) when it runs
    /// longer (`install.command_timeout`); `None`: wait as long as it takes, as curtin does.
    pub timeout: Option<Duration>,
    pub on_event: Option<&'a mut dyn FnMut(CommandEvent<'_>)>,
}

impl Default for RunOpts<'_> {
    fn default() -> Self {
        RunOpts {
            env: vec![],
            log: LogSink::default(),
            echo: true,
            timeout: None,
            on_event: None,
        }
    }
}

/// How much of a failing command's output goes into the error message: its last lines (the
/// whole output is in the install log).
const ERROR_TAIL_LINES: usize = 20;

/// How long a command told to stop (a signal forwarded, a timeout) gets before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

/// How often the log says that a command is still running.
fn notice_interval() -> Duration {
    std::env::var("DEPLOYER_WAIT_NOTICE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(60))
}

/// Run a stage's commands in order; the first failure stops the stage.
pub fn run_stage(
    stage: &str,
    commands: &[(String, Option<Cmd>)],
    opts: &mut RunOpts,
) -> Result<()> {
    for (key, cmd) in commands {
        let Some(cmd) = cmd else { continue };
        let description = description(cmd);
        if let Some(f) = opts.on_event.as_mut() {
            f(CommandEvent::Start {
                stage,
                key,
                description: description.clone(),
            });
        }
        let r = run_one(cmd, opts).with_context(|| format!("{stage}_commands {key}"));
        if let Some(f) = opts.on_event.as_mut() {
            f(CommandEvent::Finish {
                stage,
                key,
                ok: r.is_ok(),
                description: description.clone(),
            });
        }
        r?;
    }
    Ok(())
}

/// Why a running command was told to stop.
#[derive(Clone, Copy)]
enum Stop {
    Signal(i32),
    Timeout(Duration),
}

/// Run one command with stdout and stderr merged into the log (and stderr when echoing).
///
/// The command runs in a process group of its own: a SIGTERM or SIGINT that deployer gets is
/// forwarded to the whole group, and a timeout stops the whole group. Output is read until
/// the command exits, then what is already in the pipe; a background job it left running
/// (holding the pipe open) is not waited for. Memory stays bounded whatever the output: it is
/// streamed, and only the last few KiB are kept for the error message.
///
/// A failure carries the exit status and the output's last lines; its kind is the child's
/// when the child is deployer itself (a `curtin ...` stage command), else [`Kind::Hook`].
pub fn run_one(cmd: &Cmd, opts: &RunOpts) -> Result<()> {
    crate::signals::check()?;
    let argv = argv(cmd);
    let (reader, writer) = std::io::pipe().context("creating a pipe for command output")?;
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(writer.try_clone().context("duplicating a pipe")?)
        .stderr(writer)
        .process_group(0);
    // The program is looked up on the env's PATH, where a `curtin` link may come first.
    c.envs(opts.env.iter().map(|(k, v)| (k, v)));
    let mut child = c
        .spawn()
        .with_context(|| format!("cannot run '{}'", cmd.display()))
        .kind(Kind::Hook)?;
    drop(c); // closes our copies of the write end, so EOF comes when the child exits
    let pgid = Pid::from_raw(child.id() as i32);
    let mut out = Output::new(reader, &opts.log, opts.echo)?;
    let started = Instant::now();
    let every = notice_interval();
    let mut next_notice = started + every;
    let mut stop: Option<(Stop, Instant, bool)> = None;
    let status = loop {
        out.pump(Duration::from_millis(100))?;
        if let Some(st) = child.try_wait().context("waiting for the command")? {
            out.drain()?;
            break st;
        }
        match &mut stop {
            None => {
                let why = match (crate::signals::received(), opts.timeout) {
                    (Some(sig), _) => Some(Stop::Signal(sig)),
                    (None, Some(t)) if started.elapsed() >= t => Some(Stop::Timeout(t)),
                    _ => None,
                };
                if let Some(why) = why {
                    let sig = match why {
                        Stop::Signal(s) => Signal::try_from(s).unwrap_or(Signal::SIGTERM),
                        Stop::Timeout(_) => Signal::SIGTERM,
                    };
                    let _ = killpg(pgid, sig);
                    stop = Some((why, Instant::now(), false));
                }
            }
            Some((_, sent, killed)) if !*killed && sent.elapsed() >= GRACE => {
                out.note(&format!(
                    "'{}' is still running {}s after it was told to stop: sending SIGKILL\n",
                    cmd.display(),
                    GRACE.as_secs()
                ));
                let _ = killpg(pgid, Signal::SIGKILL);
                *killed = true;
            }
            Some(_) => {}
        }
        if Instant::now() >= next_notice {
            out.note(&format!(
                "deployer: still waiting for '{}' (pid {}, running for {})\n",
                cmd.display(),
                child.id(),
                minutes(started.elapsed())
            ));
            next_notice += every;
        }
    };
    let tail = out.tail.last_lines(ERROR_TAIL_LINES);
    let out = if is_deployer(&argv[0]) && !status.success() {
        // deployer's own stages print their error (and send their FAIL event) themselves:
        // repeating their output here would show every error twice.
        String::new()
    } else if tail.is_empty() {
        ", no output".to_string()
    } else {
        format!("; output:\n{tail}")
    };
    match stop {
        Some((Stop::Signal(sig), _, _)) => {
            return Err(crate::signals::interrupted(sig)
                .context(format!("'{}' was stopped{out}", cmd.display())))
        }
        Some((Stop::Timeout(t), _, _)) => {
            return Err(anyhow!(
                "'{}' did not finish within {}s (install.command_timeout) and was stopped{out}",
                cmd.display(),
                t.as_secs_f64()
            ))
            .kind(Kind::Hook)
        }
        None => {}
    }
    if status.success() {
        return Ok(());
    }
    let how = match status.code() {
        Some(c) => format!("exit code {c}"),
        None => format!("{status}"),
    };
    let kind = match (&argv[0], status.code()) {
        (a0, Some(code)) if is_deployer(a0) => Kind::from_exit_code(code).unwrap_or(Kind::Hook),
        _ => Kind::Hook,
    };
    Err(anyhow!("'{}' failed with {how}{out}", cmd.display())).kind(kind)
}

/// `3m0s`, `45s`.
fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A command's merged output: read without blocking, copied to the log (and stderr), its
/// tail kept.
struct Output<'a> {
    reader: std::io::PipeReader,
    log: &'a LogSink,
    echo: bool,
    tail: Tail,
    eof: bool,
    buf: Vec<u8>,
}

impl<'a> Output<'a> {
    fn new(reader: std::io::PipeReader, log: &'a LogSink, echo: bool) -> Result<Self> {
        use std::os::fd::AsRawFd;
        let fd = reader.as_raw_fd();
        let fl = fcntl(fd, FcntlArg::F_GETFL).context("reading the pipe's flags")?;
        fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        )
        .context("making the pipe non-blocking")?;
        Ok(Output {
            reader,
            log,
            echo,
            tail: Tail::default(),
            eof: false,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Wait up to `max` for output, then copy what is there.
    fn pump(&mut self, max: Duration) -> Result<()> {
        if self.eof {
            std::thread::sleep(max);
            return Ok(());
        }
        use std::os::fd::AsFd;
        let mut fds = [PollFd::new(self.reader.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(max.as_millis() as i32).unwrap_or(PollTimeout::NONE);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("waiting for command output"),
        }
        self.drain()
    }

    /// Copy everything the pipe holds now, without waiting for more.
    fn drain(&mut self) -> Result<()> {
        while !self.eof {
            match self.reader.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    let chunk = &self.buf[..n];
                    if self.echo {
                        let _ = std::io::stderr().write_all(chunk);
                    }
                    write_log(self.log, chunk);
                    self.tail.push(chunk);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e).context("reading command output"),
            }
        }
        Ok(())
    }

    /// A line of our own, in the log and on stderr.
    fn note(&self, line: &str) {
        tracing::info!("{}", line.trim_end());
        write_log(self.log, line.as_bytes());
    }
}

/// Whether argv[0] is deployer itself (run as `curtin` or `deployer`).
fn is_deployer(argv0: &str) -> bool {
    let base = Path::new(argv0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    base == "curtin" || base == "deployer"
}

/// The last few KiB of a command's output, kept for the error message.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    const KEEP: usize = 16 * 1024;

    fn push(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
        if self.0.len() > 2 * Self::KEEP {
            self.0.drain(..self.0.len() - Self::KEEP);
        }
    }

    fn last_lines(&self, n: usize) -> String {
        let text = String::from_utf8_lossy(&self.0);
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// One `write_files` entry: the config model's.
pub use preseed::install::WriteFile;

/// Write the config model's `write_files` (sorted by name) into `target`.
pub fn write_files(
    target: &Path,
    files: &std::collections::BTreeMap<String, WriteFile>,
) -> Result<()> {
    for (name, f) in files {
        write_file(target, f).with_context(|| format!("write_files.{name} ({})", f.path))?;
    }
    Ok(())
}

/// Write one entry into `target`, its `encoding` applied.
pub fn write_file(target: &Path, f: &WriteFile) -> Result<()> {
    let bytes = decode(&f.content, f.encoding.as_deref())?;
    write_bytes(target, &f.path, &bytes, f.permissions, f.owner.as_deref())
}

/// Write `bytes` at `path` inside `target` with a mode and `user:group` owner. The path is
/// resolved inside the target ([`crate::target::TargetRoot`]): a symlink in the image (`/etc/localtime`, a
/// linked parent directory) is followed as the installed system would, never to the host.
pub fn write_bytes(
    target: &Path,
    path: &str,
    bytes: &[u8],
    mode: u32,
    owner: Option<&str>,
) -> Result<()> {
    let rel = safe_relative(path)?;
    let root = crate::target::TargetRoot::open(target).kind(Kind::Storage)?;
    let ids = owner_ids(&root, owner.unwrap_or("root:root"))?;
    root.write_file(&rel, bytes, mode, Some(ids))
}

/// A path inside the target: leading `/` dropped, `..` refused.
fn safe_relative(path: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("path {path:?} leaves the target")
            }
        }
    }
    if out.as_os_str().is_empty() {
        bail!("path {path:?} names no file");
    }
    Ok(out)
}

fn decode(content: &[u8], encoding: Option<&str>) -> Result<Vec<u8>> {
    use base64::Engine;
    let b64 = |s: &[u8]| {
        let clean: Vec<u8> = s
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean)
            .context("content is not valid base64")
    };
    let gunzip = |b: Vec<u8>| -> Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&b[..])
            .read_to_end(&mut out)
            .context("content is not valid gzip")?;
        Ok(out)
    };
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("text/plain") => Ok(content.to_vec()),
        Some("b64") | Some("base64") => b64(content),
        Some("gz") | Some("gzip") => gunzip(content.to_vec()),
        Some("gz+b64") | Some("gzip+base64") | Some("gz+base64") | Some("gzip+b64") => {
            gunzip(b64(content)?)
        }
        Some(other) => bail!("unknown encoding {other:?} (b64, gzip, gz+b64 or none)"),
    }
}

/// `user:group` to ids, names looked up in the target's passwd and group files.
fn owner_ids(root: &crate::target::TargetRoot, owner: &str) -> Result<(u32, u32)> {
    let (user, group) = owner.split_once(':').unwrap_or((owner, ""));
    let uid = lookup(root, "etc/passwd", user)?;
    let gid = if group.is_empty() {
        // The user's primary group.
        primary_gid(root, user).unwrap_or(uid)
    } else {
        lookup(root, "etc/group", group)?
    };
    Ok((uid, gid))
}

fn lookup(root: &crate::target::TargetRoot, db: &str, name: &str) -> Result<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    if name == "root" {
        return Ok(0);
    }
    let text = root.read_to_string_opt(db).unwrap_or_default();
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| anyhow!("owner {name:?} is not in the target's /{db}"))
}

fn primary_gid(root: &crate::target::TargetRoot, user: &str) -> Option<u32> {
    let text = root.read_to_string_opt("etc/passwd")?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && (f[0] == user || f[2] == user))
        .and_then(|f| f[3].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn v(y: &str) -> Value {
        yaml_serde::from_str(y).unwrap()
    }

    #[test]
    fn sorted_skips_and_kinds() {
        let c = commands_from_value(
            "late",
            &v("{maas: [wget, x], 99-b: 'echo b', 98-a: null, '10': [], builtin: ''}"),
        )
        .unwrap();
        let keys: Vec<_> = c.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["10", "98-a", "99-b", "builtin", "maas"]);
        assert_eq!(c[2].1, Some(Cmd::Shell("echo b".into())));
        assert_eq!(c[4].1, Some(Cmd::Exec(vec!["wget".into(), "x".into()])));
        assert!(c[0].1.is_none() && c[1].1.is_none() && c[3].1.is_none());
        assert!(commands_from_value("late", &v("[a, b]")).is_err());
        // Numbers sort as numbers (Python's sorted()); beside a string they cannot be sorted.
        let c = commands_from_value("x", &preseed::yaml::from_str("{10: a, 05: b}").unwrap());
        let keys: Vec<_> = c.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["5", "10"]);
        let e = commands_from_value("x", &preseed::yaml::from_str("{10: a, b: c}").unwrap());
        assert!(format!("{:#}", e.unwrap_err()).contains("cannot be sorted together"));
    }

    #[test]
    fn failure_carries_output_and_stops_stage() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("install.log");
        let marker = dir.path().join("ran");
        let cmds = commands_from_value(
            "late",
            &v(&format!(
                "{{a: 'echo to-out; echo to-err >&2; exit 3', b: [touch, {}]}}",
                marker.display()
            )),
        )
        .unwrap();
        let mut opts = RunOpts {
            log: log_to(&log).unwrap(),
            echo: false,
            ..Default::default()
        };
        let err = run_stage("late", &cmds, &mut opts).unwrap_err();
        let msg = crate::error::render(&err);
        assert!(
            msg.contains("late_commands a") && msg.contains("exit code 3"),
            "{msg}"
        );
        assert!(msg.contains("to-out") && msg.contains("to-err"), "{msg}");
        assert_eq!(crate::error::kind_of(&err), Some(Kind::Hook));
        assert!(!marker.exists(), "later commands must not run");
        let logged = fs::read_to_string(&log).unwrap();
        assert!(logged.contains("to-out") && logged.contains("to-err"));
    }

    #[test]
    fn env_is_passed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o");
        let cmds = vec![(
            "x".to_string(),
            Some(Cmd::Shell(format!(
                "printf %s \"$FOO\" > {}",
                out.display()
            ))),
        )];
        let mut opts = RunOpts {
            env: vec![("FOO".into(), "bar".into())],
            echo: false,
            ..Default::default()
        };
        run_stage("late", &cmds, &mut opts).unwrap();
        assert_eq!(fs::read_to_string(out).unwrap(), "bar");
    }

    #[test]
    fn write_files_decodes_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        fs::create_dir_all(t.join("etc")).unwrap();
        fs::write(
            t.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nubuntu:x:1000:1000::/h:/bin/sh\n",
        )
        .unwrap();
        fs::write(t.join("etc/group"), "root:x:0:\nadm:x:4:\n").unwrap();
        let files = preseed::install::write_files_from_value(
            &v("{a: {path: /etc/x/a.cfg, content: 'hi\n', permissions: '0600', owner: 'ubuntu:adm'},
              b: {path: b.bin, content: aGVsbG8=, encoding: b64}}"),
            true,
            &mut vec![],
        )
        .unwrap();
        write_files(t, &files).unwrap();
        let md = fs::metadata(t.join("etc/x/a.cfg")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o600);
        assert_eq!((md.uid(), md.gid()), (1000, 4));
        assert_eq!(fs::read(t.join("b.bin")).unwrap(), b"hello");
        let bad = WriteFile {
            path: "../escape".into(),
            ..Default::default()
        };
        assert!(write_file(t, &bad).is_err());
        let bad = WriteFile {
            path: "x".into(),
            owner: Some("nobody9".into()),
            ..Default::default()
        };
        let e = format!("{:#}", write_file(t, &bad).unwrap_err());
        assert!(e.contains("nobody9"), "{e}");
    }
}
