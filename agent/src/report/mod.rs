//! Reporting, as curtin does it: hierarchical events (`cmd-install`,
//! `cmd-install/stage-partitioning`, ...) sent to the `reporting` config's handlers (`webhook`
//! with MAAS's OAuth through [`crate::net`], `log`, `print`, `journald`), a child's FAIL
//! bubbling up to its parent, and byte-level progress during long writes.
//!
//! Each process registers its own handlers from the config (children read `$CONFIG`), and
//! names its events under `$CURTIN_REPORTSTACK`, so that a `curtin block-meta` child of an
//! install posts `cmd-install/stage-partitioning/builtin/cmd-block-meta` directly.

pub mod cap;
pub mod event;
mod handlers;
pub mod line;
mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use serde_json::{Map, Value as Json};

pub use crate::net::OauthCreds;
pub use event::{Event, EventType, Level, Outcome, PostedFile};
pub use webhook::WebhookConfig;

use crate::error::{Kind, KindExt};

/// The env var that carries the event-name prefix to child processes (curtin's name).
pub const REPORTSTACK_ENV: &str = "CURTIN_REPORTSTACK";

enum Handler {
    Log,
    Print,
    Journald(handlers::Journald),
    Webhook(webhook::Webhook),
}

#[derive(Default)]
struct Reporter {
    handlers: Vec<Handler>,
    /// `image: {name, base_image, type}` added to every event when the config says.
    image: Option<Json>,
}

static REPORTER: RwLock<Option<Arc<Reporter>>> = RwLock::new(None);
/// Names of the open stacks of this process, innermost last (for [`current_name`]).
static OPEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn reporter() -> Arc<Reporter> {
    let g = REPORTER.read().unwrap_or_else(|e| e.into_inner());
    g.clone().unwrap_or_else(|| {
        Arc::new(Reporter {
            handlers: vec![Handler::Log],
            image: None,
        })
    })
}

/// Register the handlers of a config (its `reporting`, and `image`/`sources` for the image
/// identity). Replaces any earlier registration of this process.
pub fn init(cfg: &preseed::Config) -> anyhow::Result<()> {
    let handlers = start_handlers(&cfg.reporting, &cfg.proxy).kind(Kind::Config)?;
    let image = image_identity(cfg);
    *REPORTER.write().unwrap_or_else(|e| e.into_inner()) =
        Some(Arc::new(Reporter { handlers, image }));
    Ok(())
}

fn start_handlers(
    reporting: &BTreeMap<String, preseed::reporting::Handler>,
    proxy: &preseed::install::Proxy,
) -> anyhow::Result<Vec<Handler>> {
    use preseed::reporting::HandlerType;
    let mut out = Vec::new();
    for (name, h) in reporting {
        out.push(match h.kind {
            HandlerType::Log => Handler::Log,
            HandlerType::Print => Handler::Print,
            HandlerType::Journald => match handlers::Journald::open(h.identifier.clone()) {
                Some(j) => Handler::Journald(j),
                None => {
                    tracing::debug!(
                        "reporting.{name}: no journald on this system; handler skipped"
                    );
                    continue;
                }
            },
            HandlerType::Webhook => Handler::Webhook(webhook::Webhook::start(WebhookConfig {
                proxy: proxy.clone(),
                ..webhook_config(name, h)?
            })?),
        });
    }
    Ok(out)
}

fn webhook_config(name: &str, h: &preseed::reporting::Handler) -> anyhow::Result<WebhookConfig> {
    let endpoint = h.endpoint.as_deref().unwrap_or_default();
    url::Url::parse(endpoint)
        .with_context(|| format!("reporting.{name}: endpoint '{endpoint}' is not a URL"))?;
    let oauth = h.oauth().map(|(ck, cs, tk, ts)| OauthCreds {
        consumer_key: ck.into(),
        consumer_secret: cs.into(),
        token_key: tk.into(),
        token_secret: ts.into(),
    });
    let secs = |s: f64, what: &str| {
        anyhow::ensure!(
            s >= 0.0 && s.is_finite(),
            "reporting.{name}.{what}: {s} is not a number of seconds"
        );
        Ok(Duration::from_secs_f64(s))
    };
    let timeout = secs(h.timeout.unwrap_or(10.0), "timeout")?;
    let retries = match &h.retries {
        None => vec![Duration::from_secs(1)],
        Some(r) => r
            .iter()
            .map(|s| secs(*s, "retries"))
            .collect::<anyhow::Result<_>>()?,
    };
    Ok(WebhookConfig {
        endpoint: endpoint.to_string(),
        oauth,
        timeout,
        retries,
        proxy: Default::default(),
    })
}

/// The image a deployment installs, for servers that count static-image deployments:
/// `image: {name, base_image, type}` from the config, `type` defaulting to the first source's.
fn image_identity(cfg: &preseed::Config) -> Option<Json> {
    let mut m = Map::new();
    if let Some(img) = &cfg.image {
        for (key, v) in [
            ("name", &img.name),
            ("base_image", &img.base_image),
            ("type", &img.kind),
        ] {
            if let Some(s) = v {
                m.insert(key.into(), s.as_str().into());
            }
        }
    }
    if !m.contains_key("type") {
        if let Some(s) = cfg.sources_sorted().next() {
            m.insert("type".into(), s.kind.prefix().into());
        }
    }
    (!m.is_empty()).then_some(Json::Object(m))
}

/// Send one event to every handler (the webhook queues it).
pub fn publish(mut ev: Event) {
    let r = reporter();
    if let Some(img) = &r.image {
        ev.extra.entry("image").or_insert_with(|| img.clone());
    }
    for h in &r.handlers {
        match h {
            Handler::Log => handlers::log(&ev),
            Handler::Print => handlers::print(&ev),
            Handler::Journald(j) => j.publish(&ev),
            Handler::Webhook(w) => w.publish(&ev),
        }
    }
}

/// Wait (at most `timeout`) until queued events were sent. Returns false when time ran out.
pub fn flush(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let r = reporter();
    r.handlers.iter().all(|h| match h {
        Handler::Webhook(w) => w.flush(deadline),
        _ => true,
    })
}

/// Before starting a child process that reports too: let queued events go out first (so the
/// server sees them in order), but never wait on an endpoint that is down. Returns the env
/// pair that tells the child which endpoints are down.
pub fn sync_before_child() -> (&'static str, String) {
    let r = reporter();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut down = Vec::new();
    for h in &r.handlers {
        if let Handler::Webhook(w) = h {
            if !w.is_down() {
                w.flush(deadline);
            }
            if w.is_down() {
                down.push(w.endpoint().to_string());
            }
        }
    }
    (webhook::DOWN_ENV, down.join(" "))
}

/// The innermost open event name of this process, or `$CURTIN_REPORTSTACK`: where progress
/// and sub-events of the running stage belong.
pub fn current_name() -> String {
    let open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    open.last()
        .cloned()
        .unwrap_or_else(|| std::env::var(REPORTSTACK_ENV).unwrap_or_default())
}

/// An INFO event inside the running stage, as curtin's `ReportEventStack(name=
/// report_stack_prefix + ...)`: named `<current>/<name>`, or the stage's own name when `name`
/// is empty (curtin names its per-item and per-source events so).
pub fn nested(name: &str, description: &str) -> Stack {
    let current = current_name();
    let full = match (current.is_empty(), name.is_empty()) {
        (_, true) => current,
        (true, false) => name.to_string(),
        (false, false) => format!("{current}/{name}"),
    };
    Stack::open(full, description, Level::Info, None)
}

/// Run `f` inside a [`nested`] event; the event finishes with its result.
pub fn within<T>(
    name: &str,
    description: &str,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let stack = nested(name, description);
    let r = f();
    stack.finish_result(&r);
    r
}

/// An open event: `start` sent on creation, `finish` on [`Stack::finish`] (or FAIL on drop).
pub struct Stack {
    name: String,
    description: String,
    level: Level,
    /// The worst result a child reported.
    worst: Arc<Mutex<Outcome>>,
    parent_worst: Option<Arc<Mutex<Outcome>>>,
    post_files: Vec<PathBuf>,
    done: bool,
}

impl Stack {
    /// A top-level stack of this process, named under `$CURTIN_REPORTSTACK` if set.
    pub fn root(name: &str, description: &str, level: Level) -> Stack {
        let prefix = std::env::var(REPORTSTACK_ENV).unwrap_or_default();
        let full = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        Stack::open(full, description, level, None)
    }

    /// A child stack: `<self>/<name>`; its WARN/FAIL bubbles up to this one.
    pub fn child(&self, name: &str, description: &str, level: Level) -> Stack {
        Stack::open(
            format!("{}/{name}", self.name),
            description,
            level,
            Some(self.worst.clone()),
        )
    }

    fn open(
        name: String,
        description: &str,
        level: Level,
        parent: Option<Arc<Mutex<Outcome>>>,
    ) -> Stack {
        publish(Event::new(&name, description, EventType::Start, level));
        OPEN.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        Stack {
            name,
            description: description.to_string(),
            level,
            worst: Arc::new(Mutex::new(Outcome::Success)),
            parent_worst: parent,
            post_files: Vec::new(),
            done: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Files whose content (base64) the finish event carries (curtin's `post_files`).
    pub fn set_post_files(&mut self, files: Vec<PathBuf>) {
        self.post_files = files;
    }

    /// Send the finish event. The result is the worse of `own` and the children's; a
    /// `message` replaces the description (say what failed and what to do).
    pub fn finish(mut self, own: Outcome, message: Option<&str>) -> Outcome {
        self.finish_inner(own, message)
    }

    /// Finish from a result: SUCCESS, or FAIL with the error as the description.
    pub fn finish_result<T>(self, r: &anyhow::Result<T>) -> Outcome {
        match r {
            Ok(_) => self.finish(Outcome::Success, None),
            Err(e) => {
                let msg = format!("{} failed: {}", self.description, crate::error::render(e));
                self.finish(Outcome::Fail, Some(&msg))
            }
        }
    }

    fn finish_inner(&mut self, own: Outcome, message: Option<&str>) -> Outcome {
        self.done = true;
        let worst = *self.worst.lock().unwrap_or_else(|e| e.into_inner());
        let result = own.max(worst);
        let mut ev = Event::finish(
            &self.name,
            message.unwrap_or(&self.description),
            self.level,
            result,
        );
        if !self.post_files.is_empty() {
            ev.files = Some(self.post_files.iter().map(|p| post_file(p)).collect());
        }
        publish(ev);
        if let Some(p) = &self.parent_worst {
            let mut w = p.lock().unwrap_or_else(|e| e.into_inner());
            *w = (*w).max(result);
        }
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = open.iter().rposition(|n| *n == self.name) {
            open.remove(i);
        }
        result
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !self.done {
            let msg = format!("{} was interrupted", self.description);
            self.finish_inner(Outcome::Fail, Some(&msg));
        }
    }
}

fn post_file(p: &std::path::Path) -> PostedFile {
    PostedFile {
        path: p.display().to_string(),
        content: cap::read_capped(p)
            .ok()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
        encoding: "base64",
    }
}

/// Wrap one subcommand run as `cmd-<sub>` ("curtin command <sub>"), as curtin's main does for
/// every command. Reporting handlers come from `$CONFIG` when this process is a stage command
/// of an install (`$CURTIN_REPORTSTACK` set); the prefix is exported for grandchildren.
pub fn command_scope<T>(sub: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let child = std::env::var_os(REPORTSTACK_ENV).is_some();
    if child {
        if let Some(cfg) = std::env::var_os("CONFIG")
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| preseed::yaml::from_str(&String::from_utf8_lossy(&b)).ok())
            .and_then(|v| preseed::load::from_merged(v).ok())
        {
            if let Err(e) = init(&cfg.config) {
                tracing::warn!("reporting disabled: {}", crate::error::render(&e));
            }
        }
    }
    let stack = Stack::root(
        &format!("cmd-{sub}"),
        &format!("curtin command {sub}"),
        Level::Debug,
    );
    std::env::set_var(REPORTSTACK_ENV, stack.name());
    let r = f();
    stack.finish_result(&r);
    if child {
        flush(Duration::from_secs(10));
    }
    r
}

/// Byte progress of a long write, sent as `progress` events under the running stage's name,
/// at most one every few seconds, and shown on a terminal as a line ([`line`]). Feed it from a
/// writer's progress callback, or read through [`Progress::reader`].
pub struct Progress {
    name: String,
    what: String,
    total: Option<u64>,
    started: Instant,
    last: Option<Instant>,
    interval: Duration,
    sent: u32,
    line: Option<indicatif::ProgressBar>,
}

/// A reader that counts what passes through it into a [`Progress`].
pub struct ProgressReader<R> {
    inner: R,
    progress: Progress,
    done: u64,
}

impl<R: std::io::Read> std::io::Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if n == 0 {
            self.progress.done(self.done);
        } else {
            self.progress.update(self.done);
        }
        Ok(n)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(l) = self.line.take() {
            l.finish_and_clear();
        }
    }
}

impl Progress {
    /// `what`: e.g. "writing image to /dev/sda". `total`: bytes expected, if known.
    pub fn new(what: &str, total: Option<u64>) -> Self {
        let interval = std::env::var("DEPLOYER_PROGRESS_INTERVAL")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(5));
        Self::with_interval(what, total, interval)
    }

    /// Like [`Progress::new`] with another minimum time between events.
    pub fn with_interval(what: &str, total: Option<u64>, interval: Duration) -> Self {
        Progress {
            name: current_name(),
            what: what.to_string(),
            total,
            started: Instant::now(),
            last: None,
            interval,
            sent: 0,
            line: line::new(what, total),
        }
    }

    /// Count the bytes read through `inner`; the last event is sent at its end.
    pub fn reader<R: std::io::Read>(self, inner: R) -> ProgressReader<R> {
        ProgressReader {
            inner,
            progress: self,
            done: 0,
        }
    }

    /// How many events were sent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// Bytes done so far; sends an event when the interval has passed since the last one.
    pub fn update(&mut self, done: u64) {
        if let Some(l) = &self.line {
            l.set_position(done);
        }
        let now = Instant::now();
        let due = match self.last {
            None => now.duration_since(self.started) >= self.interval,
            Some(l) => now.duration_since(l) >= self.interval,
        };
        if due {
            self.last = Some(now);
            self.send(done);
        }
    }

    /// The final count, always sent.
    pub fn done(&mut self, done: u64) {
        if let Some(l) = self.line.take() {
            l.finish_and_clear();
        }
        self.send(done);
    }

    fn send(&mut self, done: u64) {
        self.sent += 1;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = (done as f64 / secs) as u64;
        let mut desc = format!("{}: {}", self.what, human(done));
        if let Some(t) = self.total {
            desc.push_str(&format!(" of {}", human(t)));
            if let Some(pct) = done.saturating_mul(100).checked_div(t) {
                desc.push_str(&format!(" ({pct}%)"));
            }
        }
        desc.push_str(&format!(", {}/s", human(rate)));
        let mut ev = Event::new(&self.name, &desc, EventType::Progress, Level::Debug);
        let mut p = Map::new();
        p.insert("bytes".into(), done.into());
        p.insert(
            "total".into(),
            self.total.map(Json::from).unwrap_or(Json::Null),
        );
        p.insert("rate".into(), rate.into());
        ev.extra.insert("progress".into(), Json::Object(p));
        publish(ev);
    }
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(y: &str) -> Result<preseed::Config, String> {
        preseed::load::from_merged(yaml_serde::from_str(y).unwrap())
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn handler_config_errors_name_the_key() {
        let e = load("reporting: {maas: {type: webhook}}").unwrap_err();
        assert!(e.contains("reporting.maas.endpoint"), "{e}");
        let e = load("reporting: {x: {type: carrier-pigeon}}").unwrap_err();
        assert!(e.contains("carrier-pigeon"), "{e}");
        let c = load("reporting: {logging: null, p: {type: print}}").unwrap();
        assert_eq!(start_handlers(&c.reporting, &c.proxy).unwrap().len(), 1);
        // curtin's default `logging` handler when the config names none.
        let c = load("{}").unwrap();
        assert_eq!(start_handlers(&c.reporting, &c.proxy).unwrap().len(), 1);
        let c = load("reporting: {m: {type: webhook, endpoint: 'not a url'}}").unwrap();
        let e = start_handlers(&c.reporting, &c.proxy).err().unwrap();
        assert!(format!("{e:#}").contains("reporting.m: endpoint 'not a url' is not a URL"));
    }

    #[test]
    fn image_identity_from_config_and_sources() {
        let cfg = load(
            "image: {name: custom/x, base_image: ubuntu/jammy}\nsources: {00_cmdline: 'dd-gz:http://h/i'}",
        )
        .unwrap();
        let img = image_identity(&cfg).unwrap();
        assert_eq!(img["name"], "custom/x");
        assert_eq!(img["base_image"], "ubuntu/jammy");
        assert_eq!(img["type"], "dd-gz");
        let cfg = load("sources: {a: 'http://h/r.tgz'}").unwrap();
        assert_eq!(image_identity(&cfg).unwrap()["type"], "tgz");
    }

    #[test]
    fn progress_is_throttled() {
        let mut p = Progress::with_interval("writing", Some(1 << 30), Duration::from_millis(100));
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_millis(350) {
            n += 4096;
            p.update(n);
        }
        assert!((2..=4).contains(&p.sent()), "sent {}", p.sent());
        p.done(n);
        assert!(p.sent() >= 3);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(10), "10 B");
        assert_eq!(human(3 * 1024 * 1024), "3.0 MiB");
    }
}
