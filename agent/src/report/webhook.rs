//! The `webhook` handler: events POSTed as JSON from a background thread, so that a dead or
//! slow endpoint never stalls the install. Bounded queue, bounded per-request timeouts, few
//! retries (through the shared client and its policy, [`crate::net`]), and a flush with a
//! deadline at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};

use preseed::install::Proxy;
use reqwest::header::CONTENT_TYPE;

use super::event::Event;
use crate::net::{self, OauthCreds, Policy};

/// Queue length: an install sends tens of events; a full queue drops progress events first.
const QUEUE: usize = 256;

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub endpoint: String,
    pub oauth: Option<OauthCreds>,
    /// Per-request timeout (config `timeout`, which curtin stores but never uses).
    pub timeout: Duration,
    /// Sleeps between attempts (config `retries`, as curtin); default one retry after 1 s.
    pub retries: Vec<Duration>,
    /// The config's `proxy:` (curtin exports it before it reports).
    pub proxy: Proxy,
}

enum Msg {
    Event(Box<Event>),
    Flush(Sender<()>),
}

pub struct Webhook {
    tx: Sender<Msg>,
    endpoint: String,
    timeout: Duration,
    /// Set while the endpoint fails every attempt; shared with children through
    /// `$DEPLOYER_REPORT_DOWN` so that they do not wait on it either.
    down: Arc<AtomicBool>,
}

/// Endpoints a parent process found down (space-separated), inherited by children.
pub const DOWN_ENV: &str = "DEPLOYER_REPORT_DOWN";

impl Webhook {
    pub fn start(cfg: WebhookConfig) -> anyhow::Result<Self> {
        let client = net::client(&cfg.proxy)?;
        let (tx, rx) = bounded(QUEUE);
        let endpoint = cfg.endpoint.clone();
        let timeout = cfg.timeout;
        let inherited = std::env::var(DOWN_ENV)
            .map(|v| v.split_whitespace().any(|e| e == endpoint))
            .unwrap_or(false);
        let down = Arc::new(AtomicBool::new(inherited));
        let d = down.clone();
        std::thread::Builder::new()
            .name("report-webhook".into())
            .spawn(move || worker(client, cfg, rx, d))?;
        Ok(Webhook {
            tx,
            endpoint,
            timeout,
            down,
        })
    }

    pub fn publish(&self, ev: &Event) {
        let msg = Msg::Event(Box::new(ev.clone()));
        let sent = match ev.event_type {
            // Progress is droppable; start/finish wait a little for room.
            super::event::EventType::Progress => self.tx.try_send(msg).is_ok(),
            _ => self.tx.send_timeout(msg, Duration::from_secs(2)).is_ok(),
        };
        if !sent {
            tracing::warn!(
                "reporting queue to {} is full: dropped event {}",
                self.endpoint,
                ev.name
            );
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Wait until every queued event was sent (or given up on), at most until `deadline`;
    /// while the endpoint is down, at most one request timeout more.
    pub fn flush(&self, deadline: Instant) -> bool {
        let start = Instant::now();
        let (done_tx, done_rx) = bounded(1);
        let left = deadline.saturating_duration_since(start);
        if self.tx.send_timeout(Msg::Flush(done_tx), left).is_err() {
            return false;
        }
        loop {
            let now = Instant::now();
            let mut until = deadline;
            if self.is_down() {
                until = until.min(start + self.timeout + Duration::from_secs(1));
            }
            if now >= until {
                return false;
            }
            let step = (until - now).min(Duration::from_millis(50));
            match done_rx.recv_timeout(step) {
                Ok(()) => return true,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn worker(
    client: reqwest::blocking::Client,
    cfg: WebhookConfig,
    rx: Receiver<Msg>,
    down: Arc<AtomicBool>,
) {
    // After an event failed every attempt, the endpoint is presumed down: later events get a
    // single attempt until one succeeds, so the queue drains in bounded time.
    for msg in rx {
        match msg {
            Msg::Flush(done) => {
                let _ = done.send(());
            }
            Msg::Event(ev) => {
                let retries = if down.load(Ordering::SeqCst) {
                    0
                } else {
                    cfg.retries.len()
                };
                let ok = post(&client, &cfg, &ev, retries);
                down.store(!ok, Ordering::SeqCst);
            }
        }
    }
}

/// POST one event, with `retries` of the config's retries. Failures are logged, never raised.
fn post(
    client: &reqwest::blocking::Client,
    cfg: &WebhookConfig,
    ev: &Event,
    retries: usize,
) -> bool {
    let body = ev.to_json();
    let policy = Policy::fixed(cfg.retries[..retries.min(cfg.retries.len())].to_vec());
    let what = format!("posting event {} to", ev.name);
    let sent = net::send(&what, &cfg.endpoint, cfg.oauth.as_ref(), policy, &|| {
        client
            .post(&cfg.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .timeout(cfg.timeout)
            .body(body.clone())
    });
    match sent {
        Ok(_) => true,
        Err(f) => {
            tracing::warn!(
                "failed posting event {} to {} ({}): {}",
                ev.name,
                cfg.endpoint,
                f.attempts(),
                f.error
            );
            false
        }
    }
}
