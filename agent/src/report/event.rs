//! One reporting event, shaped exactly as curtin's `events.py` sends it.

use serde::Serialize;
use serde_json::{Map, Value};

/// `start`/`finish` as in curtin; `progress` is ours (byte counts during long writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Start,
    Finish,
    Progress,
}

/// The result of a finished stack. Ordered so that the worst wins (`max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Success,
    Warn,
    Fail,
}

/// Log levels as curtin names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// A file posted with the final `cmd-install` finish (curtin's `post_files`).
#[derive(Debug, Clone, Serialize)]
pub struct PostedFile {
    pub path: String,
    /// base64, or null when the file is missing (MAAS skips those, LP:1772118).
    pub content: Option<String>,
    pub encoding: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub name: String,
    pub description: String,
    pub event_type: EventType,
    pub origin: &'static str,
    pub timestamp: f64,
    pub level: Level,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<PostedFile>>,
    /// Our additions (image identity, progress counters): extra keys a server may ignore.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    pub fn new(name: &str, description: &str, event_type: EventType, level: Level) -> Self {
        Event {
            name: name.to_string(),
            description: description.to_string(),
            event_type,
            origin: "curtin",
            timestamp: now(),
            level,
            result: None,
            files: None,
            extra: Map::new(),
        }
    }

    /// A finish event; WARN and FAIL force the level as curtin does.
    pub fn finish(name: &str, description: &str, level: Level, result: Outcome) -> Self {
        let level = match result {
            Outcome::Success => level,
            Outcome::Warn => Level::Warn,
            Outcome::Fail => Level::Error,
        };
        let mut e = Event::new(name, description, EventType::Finish, level);
        e.result = Some(result);
        e
    }

    /// The JSON body, ASCII only (MAAS answers 400 to anything else; Python's json.dumps
    /// escapes the same way).
    pub fn to_json(&self) -> String {
        let s = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        ascii_escape(&s)
    }

    /// One line for humans (the `print` and `log` handlers).
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}: {} {}",
            self.event_type_str(),
            self.name,
            self.description
        );
        if let Some(r) = self.result {
            s = format!("{s} [{}]", outcome_str(r));
        }
        s
    }

    fn event_type_str(&self) -> &'static str {
        match self.event_type {
            EventType::Start => "start",
            EventType::Finish => "finish",
            EventType::Progress => "progress",
        }
    }
}

pub fn outcome_str(r: Outcome) -> &'static str {
    match r {
        Outcome::Success => "SUCCESS",
        Outcome::Warn => "WARN",
        Outcome::Fail => "FAIL",
    }
}

/// Seconds since the epoch as a float, like Python's `time.time()`.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Escape every non-ASCII character of a JSON text as `\uXXXX` (surrogate pairs above U+FFFF).
/// Non-ASCII can only occur inside strings, where these escapes mean the same characters.
fn ascii_escape(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{:04x}", u));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_curtins_keys_and_is_ascii() {
        let mut e = Event::finish("cmd-install", "café 🚀", Level::Debug, Outcome::Fail);
        e.timestamp = 1.5;
        let j = e.to_json();
        assert!(j.is_ascii(), "{j}");
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["name"], "cmd-install");
        assert_eq!(v["description"], "café 🚀");
        assert_eq!(v["event_type"], "finish");
        assert_eq!(v["origin"], "curtin");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["result"], "FAIL");
        assert_eq!(v["timestamp"], 1.5);
        assert!(v.get("files").is_none());
        let s = Event::new("a", "b", EventType::Start, Level::Info);
        let v: Value = serde_json::from_str(&s.to_json()).unwrap();
        assert!(v.get("result").is_none());
        assert_eq!(v["level"], "INFO");
    }
}
