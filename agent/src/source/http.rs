//! An HTTP(S) body reader for images that survives short bodies, resets, stalls, caches that
//! ignore `Range`, objects replaced on the server and dead mirrors.
//!
//! A broken transfer is resumed with a `Range` request and `If-Range` carrying the first
//! response's strong ETag (or its Last-Modified), so that a server whose object changed answers
//! with the whole new object instead of the rest of another one. The range starts [`OVERLAP`]
//! bytes before the next byte needed, and those bytes must equal the last ones received: a
//! body that silently lost bytes in its middle (nginx's slice module does this when its
//! upstream fails inside a slice) is caught there instead of shifting the rest of the image.
//! A 206 is checked: its `Content-Range` must start at the byte asked for, and its total length
//! and validators must be the first response's. Anything else (a 200 to a Range request,
//! another length or ETag, a 416, other overlap bytes) means the bytes already handed on do not
//! belong with what the server sends now: the reader never skips bytes to line up, it hands a
//! fresh stream from byte 0 to [`super::with_restarts`], which runs the whole pass (decode, disk
//! or extraction) again.
//!
//! Retried under [`Policy::download`] (full-jitter backoff, `Retry-After` honoured): connection
//! errors, timeouts (a read with no byte for the stall timeout), short bodies, 408, 429, 5xx.
//! The count restarts whenever a byte arrives, so a flaky but moving transfer keeps going. When
//! a URL fails for good (another 4xx, or the tries are spent) the next mirror is asked at the
//! same byte with the same `If-Range`: a mirror serving the same object (same validators and
//! length) continues where the last one stopped; any other answer starts over from byte 0.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use reqwest::blocking::{Client, Response};
use reqwest::header::{HeaderMap, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use reqwest::StatusCode;

use crate::net::{self, retry, Backoff, Policy};

/// Where a reader leaves the stream of a replaced object for the next pass.
pub type Handover = Arc<Mutex<Option<RangeReader>>>;

/// Bytes a resume asks for again and compares (0.1% of a 64 MiB image a resume): enough that
/// misplaced compressed or random data cannot match by chance.
pub const OVERLAP: usize = 64 * 1024;

/// What a response says about the object it is part of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// A strong ETag (a weak one cannot be used in `If-Range`).
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// The whole object's length (a 206's `Content-Range` total).
    pub len: Option<u64>,
}

impl Validators {
    fn of(resp: &Response) -> Self {
        let h = resp.headers();
        let len = if resp.status() == StatusCode::PARTIAL_CONTENT {
            content_range(h).and_then(|(_, total)| total)
        } else {
            resp.content_length()
        };
        Validators {
            etag: header(h, ETAG).filter(|e| !e.starts_with("W/")),
            last_modified: header(h, LAST_MODIFIED),
            len,
        }
    }

    /// The value for `If-Range`: the ETag, else the date.
    fn if_range(&self) -> Option<&str> {
        self.etag.as_deref().or(self.last_modified.as_deref())
    }

    /// How `other` shows another object, comparing what both name.
    fn differs(&self, other: &Validators) -> Option<String> {
        fn diff<T: PartialEq + std::fmt::Debug>(
            what: &str,
            a: &Option<T>,
            b: &Option<T>,
        ) -> Option<String> {
            match (a, b) {
                (Some(a), Some(b)) if a != b => Some(format!("{what} {a:?} became {b:?}")),
                _ => None,
            }
        }
        diff("the length", &self.len, &other.len)
            .or_else(|| diff("the ETag", &self.etag, &other.etag))
            .or_else(|| diff("Last-Modified", &self.last_modified, &other.last_modified))
    }
}

fn header(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    h.get(name)?.to_str().ok().map(str::to_string)
}

/// `Content-Range: bytes START-END/TOTAL` as (START, TOTAL); TOTAL is None for `*`.
fn content_range(h: &HeaderMap) -> Option<(u64, Option<u64>)> {
    let v = h.get(CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

/// What one request came to.
enum Answer {
    Stream(Response),
    /// The bytes handed on so far are not this object's: start over (with this response when
    /// it is the whole new object).
    Changed(Option<Response>, String),
    Retry(String, Option<std::time::Duration>),
    /// Nothing more to hope from this URL.
    Fatal(String),
}

pub struct RangeReader {
    client: Client,
    /// The URL, then its mirrors, in the order they are tried.
    urls: Vec<String>,
    at: usize,
    resp: Option<Response>,
    pos: u64,
    /// The first response of this pass: the object every later part must belong to.
    object: Validators,
    backoff: Backoff,
    /// Why each URL given up on failed, for the final error.
    failures: Vec<String>,
    handover: Option<Handover>,
    /// Set once this reader handed the stream over: it reads nothing more.
    handed_over: Option<String>,
    /// The last bytes handed on, ending at `pos` (at least the last [`OVERLAP`] when there are
    /// that many; trimmed lazily).
    tail: Vec<u8>,
}

impl RangeReader {
    /// Send the first request (with retries, then mirrors); fails when every URL failed.
    /// `handover` receives the stream of a replaced object; without it a replaced object is an
    /// error.
    pub fn open(
        urls: Vec<String>,
        client: Client,
        policy: Policy,
        handover: Option<Handover>,
    ) -> anyhow::Result<Self> {
        let mut r = RangeReader::at_start(client, urls, 0, policy, handover);
        r.connect()?;
        Ok(r)
    }

    /// A reader of `urls[at]` from byte 0, not connected yet.
    fn at_start(
        client: Client,
        urls: Vec<String>,
        at: usize,
        policy: Policy,
        handover: Option<Handover>,
    ) -> Self {
        RangeReader {
            client,
            urls,
            at,
            resp: None,
            pos: 0,
            object: Validators::default(),
            backoff: Backoff::new(policy),
            failures: Vec::new(),
            handover,
            handed_over: None,
            tail: Vec::new(),
        }
    }

    /// Length of the whole object, when the server said.
    pub fn content_length(&self) -> Option<u64> {
        self.object.len
    }

    fn url(&self) -> &str {
        &self.urls[self.at]
    }

    fn attempt(&mut self) -> Answer {
        let ranged = self.pos > 0;
        let from = self.pos - self.overlap().len() as u64;
        let mut req = self.client.get(self.url());
        if ranged {
            req = req.header(RANGE, format!("bytes={from}-"));
            if let Some(v) = self.object.if_range() {
                req = req.header(IF_RANGE, v);
            }
        }
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => return Answer::Retry(net::error_chain(&e), None),
        };
        let st = resp.status();
        if st == StatusCode::PARTIAL_CONTENT && ranged {
            let start = content_range(resp.headers()).map(|(s, _)| s);
            if start != Some(from) {
                let cr = header(resp.headers(), CONTENT_RANGE);
                return Answer::Fatal(format!(
                    "asked for the range from byte {from} but the server sent {cr:?}"
                ));
            }
            if let Some(why) = self.object.differs(&Validators::of(&resp)) {
                return Answer::Changed(None, format!("the object changed on the server ({why})"));
            }
            return self.check_overlap(resp);
        }
        if st.is_success() && st != StatusCode::PARTIAL_CONTENT {
            if ranged {
                let why = format!(
                    "the server answered the resume at byte {} with the whole object (it changed, or the server ignores Range)",
                    self.pos
                );
                return Answer::Changed(Some(resp), why);
            }
            self.object = Validators::of(&resp);
            return Answer::Stream(resp);
        }
        if st == StatusCode::RANGE_NOT_SATISFIABLE && ranged {
            let why = format!("the server says byte {from} is past the end (the object shrank)");
            return Answer::Changed(None, why);
        }
        if retry::retryable(st) {
            return Answer::Retry(format!("HTTP {st}"), retry::retry_after(resp.headers()));
        }
        Answer::Fatal(format!("HTTP {st}"))
    }

    /// A resume's first bytes are the last ones received: read and compare them.
    fn check_overlap(&mut self, mut resp: Response) -> Answer {
        let mut again = vec![0u8; self.overlap().len()];
        if let Err(e) = resp.read_exact(&mut again) {
            return Answer::Retry(
                format!("reading the overlap: {}", net::error_chain(&e)),
                None,
            );
        }
        if again != self.overlap() {
            let why = format!(
                "the {} bytes before byte {} differ from those received before (a response lost bytes in its middle, or the object changed)",
                again.len(),
                self.pos
            );
            return Answer::Changed(None, why);
        }
        Answer::Stream(resp)
    }

    /// The bytes a resume asks for again.
    fn overlap(&self) -> &[u8] {
        &self.tail[self.tail.len().saturating_sub(OVERLAP)..]
    }

    /// Keep the last [`OVERLAP`] bytes handed on.
    fn remember(&mut self, data: &[u8]) {
        if data.len() >= OVERLAP {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - OVERLAP..]);
            return;
        }
        self.tail.extend_from_slice(data);
        if self.tail.len() > 2 * OVERLAP {
            self.tail.drain(..self.tail.len() - OVERLAP);
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        loop {
            match self.attempt() {
                Answer::Stream(r) => {
                    self.resp = Some(r);
                    return Ok(());
                }
                Answer::Changed(resp, why) => return Err(self.hand_over(resp, why)),
                Answer::Retry(why, after) => self.retry(why, after)?,
                Answer::Fatal(why) => self.next_url(why)?,
            }
        }
    }

    /// Wait before trying the same URL again, or move on when the policy is spent.
    fn retry(&mut self, why: String, after: Option<std::time::Duration>) -> io::Result<()> {
        match self.backoff.failed(after) {
            Some(wait) => {
                tracing::warn!(
                    "fetching {} at byte {}: {why}; retrying in {wait:.1?}",
                    self.url(),
                    self.pos
                );
                std::thread::sleep(wait);
                Ok(())
            }
            None => {
                let tries = self.backoff.tries();
                self.next_url(format!("{why} (gave up after {tries} tries)"))
            }
        }
    }

    /// This URL failed for good: the next mirror, at the same byte when it can be matched to
    /// the object read so far.
    fn next_url(&mut self, why: String) -> io::Result<()> {
        self.failures.push(format!("{}: {why}", self.url()));
        if self.at + 1 >= self.urls.len() {
            let msg = match self.failures.as_slice() {
                [one] => format!("fetching {one}"),
                all => format!("every mirror failed: {}", all.join("; ")),
            };
            return Err(io::Error::other(msg));
        }
        self.at += 1;
        self.backoff.reset();
        self.resp = None;
        tracing::warn!(
            "{}; trying the mirror {} at byte {}",
            self.failures.last().expect("pushed"),
            self.url(),
            self.pos
        );
        if self.pos > 0 && self.object.if_range().is_none() {
            let why = format!(
                "the mirror {} cannot be matched to the object read so far (the first response had no ETag or Last-Modified)",
                self.url()
            );
            return Err(self.hand_over(None, why));
        }
        Ok(())
    }

    /// Leave a reader over the new object (from byte 0, on the same URL) for the next pass and
    /// stop this one.
    fn hand_over(&mut self, resp: Option<Response>, why: String) -> io::Error {
        let msg = format!("{}: {why}", self.url());
        self.resp = None;
        self.handed_over = Some(msg.clone());
        let Some(slot) = &self.handover else {
            return io::Error::other(format!("{msg}; this reader cannot start over"));
        };
        let mut next = RangeReader::at_start(
            self.client.clone(),
            self.urls.clone(),
            self.at,
            self.backoff.policy().clone(),
            Some(slot.clone()),
        );
        next.object = resp.as_ref().map(Validators::of).unwrap_or_default();
        next.resp = resp;
        next.failures = self.failures.clone();
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(next);
        io::Error::other(msg)
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(msg) = &self.handed_over {
            return Err(io::Error::other(msg.clone()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.object.len.is_some_and(|l| self.pos >= l) {
                // All of it is here; whatever the connection does next does not matter.
                self.resp = None;
                return Ok(0);
            }
            if self.resp.is_none() {
                self.connect()?;
            }
            let resp = self.resp.as_mut().expect("connected");
            match resp.read(buf) {
                Ok(0) => {
                    self.resp = None;
                    match self.object.len {
                        Some(l) => {
                            let why = format!("the body ended early ({} of {l} bytes)", self.pos);
                            self.retry(why, None)?
                        }
                        None => return Ok(0),
                    }
                }
                Ok(n) => {
                    self.pos += n as u64;
                    self.remember(&buf[..n]);
                    if let Some(l) = self.object.len.filter(|l| self.pos > *l) {
                        return Err(io::Error::other(format!(
                            "{}: the server sent {} bytes, more than the length {l} it announced",
                            self.url(),
                            self.pos
                        )));
                    }
                    self.backoff.reset();
                    return Ok(n);
                }
                Err(e) => {
                    self.resp = None;
                    self.retry(net::error_chain(&e), None)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn content_range_forms() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_RANGE,
            HeaderValue::from_static("bytes 100-199/1000"),
        );
        assert_eq!(content_range(&h), Some((100, Some(1000))));
        h.insert(CONTENT_RANGE, HeaderValue::from_static("bytes 5-9/*"));
        assert_eq!(content_range(&h), Some((5, None)));
        h.insert(CONTENT_RANGE, HeaderValue::from_static("items 1-2/3"));
        assert_eq!(content_range(&h), None);
    }

    #[test]
    fn validators_compare_what_both_name() {
        let a = Validators {
            etag: Some("\"a\"".into()),
            last_modified: None,
            len: Some(10),
        };
        let mut b = a.clone();
        assert_eq!(a.differs(&b), None);
        b.etag = None;
        b.last_modified = Some("Mon, 01 Jan 2024 00:00:00 GMT".into());
        assert_eq!(a.differs(&b), None);
        b.len = Some(11);
        assert!(a.differs(&b).unwrap().contains("length"));
        b.len = Some(10);
        b.etag = Some("\"b\"".into());
        assert!(a.differs(&b).unwrap().contains("ETag"));
        assert_eq!(a.if_range(), Some("\"a\""));
    }
}
