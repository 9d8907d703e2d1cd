//! The non-network handlers: `log` (our log), `print` (stdout), `journald` (native socket).

use std::os::unix::net::UnixDatagram;

use super::event::{Event, Level};

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// curtin's LogHandler logs at DEBUG: events show with `-v`, failures are reported by
/// whoever handles the error.
pub fn log(ev: &Event) {
    tracing::debug!("{}", ev.line());
}

pub fn print(ev: &Event) {
    println!("{}", ev.line());
}

/// journald's native protocol: one datagram of `KEY=value` lines. Fields as curtin's
/// JournaldHandler sends them (identifier `curtin_event` unless configured).
pub struct Journald {
    sock: UnixDatagram,
    identifier: String,
}

impl Journald {
    /// None when there is no journal on this system (containers, minimal ephemeral OSes).
    pub fn open(identifier: Option<String>) -> Option<Self> {
        if !std::path::Path::new(JOURNAL_SOCKET).exists() {
            return None;
        }
        let sock = UnixDatagram::unbound().ok()?;
        Some(Journald {
            sock,
            identifier: identifier.unwrap_or_else(|| "curtin_event".into()),
        })
    }

    pub fn publish(&self, ev: &Event) {
        let prio = match ev.level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        };
        let one_line = |s: &str| s.replace('\n', " ");
        let mut msg = format!(
            "MESSAGE={}\nPRIORITY={prio}\nSYSLOG_IDENTIFIER={}\nCURTIN_EVENT_TYPE={}\nCURTIN_NAME={}\nCURTIN_MESSAGE={}\n",
            one_line(&ev.line()),
            self.identifier,
            serde_json::to_value(ev.event_type)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            one_line(&ev.name),
            one_line(&ev.description),
        );
        if let Some(r) = ev.result {
            msg.push_str(&format!("CURTIN_RESULT={}\n", super::event::outcome_str(r)));
        }
        let _ = self.sock.send_to(msg.as_bytes(), JOURNAL_SOCKET);
    }
}
