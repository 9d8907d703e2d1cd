//! A small, real HTTP/1.1 server on 127.0.0.1 for tests and the demo.
//!
//! It serves byte buffers or files as an origin server does: `Content-Length`, `Range`
//! (`bytes=A-` and `bytes=A-B`), a strong `ETag` derived from the content (so that two servers
//! with the same bytes agree, like mirrors) and a `Last-Modified`, and the conditionals a cache
//! sends (`If-Range`, `If-None-Match`, `If-Modified-Since`). It misbehaves on request ([`Fault`]:
//! a short body, a reset, a stall, 5xx with or without `Retry-After`, a 200 that ignores
//! `Range`, the object replaced mid-download), can require an `Authorization` header, and
//! records every request (method, path, headers, body, then the status and body bytes it got)
//! so that tests can assert what a run asked for and what it cost.

use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One misbehaviour, used for the next request to its path (queued faults are used in order).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Serve this request normally (to place a later fault at the n-th request).
    Pass,
    /// A short body: send headers with the full length, then this many body bytes, then close.
    CutAfter(u64),
    /// Reset the connection (TCP RST) instead of answering.
    Reset,
    /// Send this many body bytes, then reset the connection.
    ResetAfter(u64),
    /// Send this many body bytes, then go silent for the duration (holding the connection).
    StallAfter(u64, Duration),
    /// Answer with this status and a short body.
    Status(u16),
    /// 503 with `Retry-After: <seconds>`.
    Unavailable(u64),
    /// Answer a `Range` request with the whole object and a 200 (a proxy that ignores Range).
    IgnoreRange,
    /// Leave out `.1` body bytes after the first `.0`, send the rest, then close: a body with a
    /// hole in it and a short total, as nginx's slice module sends when its upstream fails
    /// inside a slice.
    Hole(u64, u64),
    /// Send this many body bytes of the current object, then replace the object with these
    /// bytes (new ETag and Last-Modified) and close: the file changed under a download.
    ReplaceAfter(u64, Arc<Vec<u8>>),
    /// Accept the request and never answer within the duration.
    Hang(Duration),
}
/// A recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// The status answered (0 while the answer is being sent, or when none was).
    pub status: u16,
    /// Body bytes sent in the answer.
    pub sent: u64,
    /// When its head was read.
    pub at: std::time::Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(|s| s.as_str())
    }

    /// The body parsed as JSON (webhook events).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Clone)]
enum Content {
    Bytes(Arc<Vec<u8>>),
    File(PathBuf),
}

/// An object and its validators.
#[derive(Clone)]
struct Body {
    content: Content,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Body {
    /// Validators derived from the bytes: servers holding the same bytes agree on them.
    fn new(content: Content) -> Body {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let len = match &content {
            Content::Bytes(b) => {
                h.write(b);
                b.len() as u64
            }
            Content::File(p) => {
                let mut f = std::fs::File::open(p).expect("open served file");
                let mut buf = vec![0u8; 1 << 20];
                let mut len = 0;
                loop {
                    let n = f.read(&mut buf).expect("read served file");
                    if n == 0 {
                        break;
                    }
                    h.write(&buf[..n]);
                    len += n as u64;
                }
                len
            }
        };
        let hash = h.finish();
        // A date in 2024, different for different bytes.
        let lm = std::time::UNIX_EPOCH + Duration::from_secs(1_704_067_200 + hash % 10_000_000);
        Body {
            content,
            etag: Some(format!("\"{hash:016x}-{len:x}\"")),
            last_modified: Some(httpdate::fmt_http_date(lm)),
        }
    }

    fn len(&self) -> std::io::Result<u64> {
        Ok(match &self.content {
            Content::Bytes(b) => b.len() as u64,
            Content::File(p) => std::fs::metadata(p)?.len(),
        })
    }

    fn reader(&self) -> std::io::Result<Box<dyn Read>> {
        Ok(match &self.content {
            Content::Bytes(b) => Box::new(SharedBytes {
                data: b.clone(),
                pos: 0,
            }),
            Content::File(p) => Box::new(std::fs::File::open(p)?),
        })
    }

    /// Does an `If-Range` / `If-None-Match` / `If-Modified-Since` value name this object?
    fn is(&self, validator: &str) -> bool {
        let v = validator.trim();
        if v.starts_with('"') || v.starts_with("W/") {
            self.etag.as_deref() == Some(v)
        } else {
            self.last_modified.as_deref() == Some(v)
        }
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Body>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Paths that need an `Authorization` header containing this text; 401 otherwise.
    auth: HashMap<String, String>,
    requests: Vec<Request>,
    /// Seconds added to the `Date` header (a server whose clock is off, for OAuth skew).
    date_offset: i64,
    /// Body bytes sent for every served object (what the origin's egress costs).
    body_bytes: u64,
}

/// The server; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Bind 127.0.0.1 on a free port and start serving.
    pub fn start() -> Self {
        Self::bind("127.0.0.1:0")
    }

    /// Bind a given address (the demo uses a fixed loopback port). Loopback only.
    pub fn bind(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).expect("bind test HTTP server");
        let addr = listener.local_addr().expect("local addr");
        assert!(addr.ip().is_loopback(), "test servers bind loopback only");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let st = st.clone();
                    thread::spawn(move || {
                        let _ = handle(conn, st);
                    });
                }
            }
        });
        Server { addr, state, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn serve_bytes(&self, path: &str, bytes: Vec<u8>) {
        let body = Body::new(Content::Bytes(Arc::new(bytes)));
        self.lock().routes.insert(path.to_string(), body);
    }

    pub fn serve_file(&self, path: &str, file: impl Into<PathBuf>) {
        let body = Body::new(Content::File(file.into()));
        self.lock().routes.insert(path.to_string(), body);
    }

    /// Replace (or drop, with None) the `ETag` and `Last-Modified` that `path` is served with.
    pub fn set_validators(&self, path: &str, etag: Option<&str>, last_modified: Option<&str>) {
        let mut st = self.lock();
        let b = st.routes.get_mut(path).expect("a served path");
        b.etag = etag.map(str::to_string);
        b.last_modified = last_modified.map(str::to_string);
    }

    /// The `ETag` that `path` is served with now.
    pub fn etag(&self, path: &str) -> Option<String> {
        self.lock().routes.get(path).and_then(|b| b.etag.clone())
    }

    /// Body bytes sent for served objects so far (not counting error pages).
    pub fn body_bytes_sent(&self) -> u64 {
        self.lock().body_bytes
    }

    /// Queue a fault for the next request to `path` (several queue up in order).
    pub fn fault(&self, path: &str, fault: Fault) {
        self.lock()
            .faults
            .entry(path.to_string())
            .or_default()
            .push_back(fault);
    }

    /// Require an `Authorization` header containing `needle` on `path`.
    pub fn require_auth(&self, path: &str, needle: &str) {
        self.lock()
            .auth
            .insert(path.to_string(), needle.to_string());
    }

    /// Pretend the server's clock is `secs` ahead (negative: behind) in its `Date` headers.
    pub fn set_date_offset(&self, secs: i64) {
        self.lock().date_offset = secs;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The JSON bodies of POSTs to `path` (webhook events), in arrival order.
    pub fn posted_json(&self, path: &str) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == path)
            .map(|r| r.json())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn handle(conn: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let path = target.split('?').next().unwrap_or("/").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let close = headers
            .get("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let req = Request {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
            status: 0,
            sent: 0,
            at: std::time::Instant::now(),
        };
        let (idx, route, fault, auth, offset) = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.requests.push(req.clone());
            let fault = st.faults.get_mut(&path).and_then(|q| q.pop_front());
            (
                st.requests.len() - 1,
                st.routes.get(&path).cloned(),
                fault,
                st.auth.get(&path).cloned(),
                st.date_offset,
            )
        };
        let answered = |status: u16, sent: u64| {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.requests[idx].status = status;
            st.requests[idx].sent = sent;
        };
        let simple = |conn: &mut TcpStream, code: u16, extra: &str, body: &str| {
            answered(code, 0);
            simple(conn, code, extra, body, offset)
        };
        if let Some(needle) = auth {
            let ok = req
                .header("authorization")
                .is_some_and(|a| a.contains(&needle));
            if !ok {
                simple(&mut conn, 401, "", "unauthorized")?;
                if close {
                    return Ok(());
                }
                continue;
            }
        }
        match fault {
            Some(Fault::Status(code)) => {
                simple(&mut conn, code, "", "injected failure")?;
                if close {
                    return Ok(());
                }
                continue;
            }
            Some(Fault::Unavailable(secs)) => {
                let extra = format!("Retry-After: {secs}\r\n");
                simple(&mut conn, 503, &extra, "try later")?;
                if close {
                    return Ok(());
                }
                continue;
            }
            Some(Fault::Hang(d)) => {
                thread::sleep(d);
                return Ok(());
            }
            Some(Fault::Reset) => {
                answered(0, 0);
                reset_on_close(&conn);
                return Ok(());
            }
            _ => {}
        }
        if method == "POST" || method == "PUT" {
            simple(&mut conn, 200, "", "")?;
            if close {
                return Ok(());
            }
            continue;
        }
        let Some(route) = route else {
            simple(&mut conn, 404, "", "not found")?;
            if close {
                return Ok(());
            }
            continue;
        };
        serve(
            &mut conn, &req, route, fault, &state, &path, offset, &answered,
        )?;
        if close {
            return Ok(());
        }
    }
}

fn simple(
    conn: &mut TcpStream,
    code: u16,
    extra: &str,
    body: &str,
    date_offset: i64,
) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nDate: {}\r\nContent-Type: text/plain\r\n{extra}\r\n{body}",
        reason(code),
        body.len(),
        http_date(date_offset)
    )?;
    conn.flush()
}

/// The first byte and the end (exclusive) a `Range: bytes=A-[B]` asks for, or None.
fn parse_range(v: &str, total: u64) -> Option<(u64, u64)> {
    let (a, b) = v.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start = a.trim().parse::<u64>().ok()?;
    let end = match b.trim() {
        "" => total,
        b => b.parse::<u64>().ok()?.saturating_add(1).min(total),
    };
    Some((start, end))
}

/// Answer a GET/HEAD of a served object; `answered(status, body bytes)` records it before the
/// connection ends, so that a client that saw the end also sees the record.
#[allow(clippy::too_many_arguments)]
fn serve(
    conn: &mut TcpStream,
    req: &Request,
    body: Body,
    fault: Option<Fault>,
    state: &Mutex<State>,
    path: &str,
    date_offset: i64,
    answered: &dyn Fn(u16, u64),
) -> std::io::Result<()> {
    let (status, sent, res) = send_object(conn, req, body, &fault, state, date_offset);
    answered(status, sent);
    res?;
    match fault {
        Some(Fault::CutAfter(_)) | Some(Fault::Hole(..)) => {
            let _ = conn.shutdown(std::net::Shutdown::Both);
            Err(std::io::Error::other("cut"))
        }
        Some(Fault::ResetAfter(_)) => {
            reset_on_close(conn);
            Err(std::io::Error::other("reset"))
        }
        Some(Fault::StallAfter(_, d)) => {
            thread::sleep(d);
            Err(std::io::Error::other("stalled"))
        }
        Some(Fault::ReplaceAfter(_, bytes)) => {
            let new = Body::new(Content::Bytes(bytes));
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.routes.insert(path.to_string(), new);
            drop(st);
            let _ = conn.shutdown(std::net::Shutdown::Both);
            Err(std::io::Error::other("replaced"))
        }
        _ => Ok(()),
    }
}

/// The head and the (possibly cut) body: the status, the body bytes sent, how writing fared.
fn send_object(
    conn: &mut TcpStream,
    req: &Request,
    body: Body,
    fault: &Option<Fault>,
    state: &Mutex<State>,
    date_offset: i64,
) -> (u16, u64, std::io::Result<()>) {
    let total = match body.len() {
        Ok(t) => t,
        Err(e) => return (0, 0, Err(e)),
    };
    let mut validators = String::new();
    if let Some(e) = &body.etag {
        validators.push_str(&format!("ETag: {e}\r\n"));
    }
    if let Some(lm) = &body.last_modified {
        validators.push_str(&format!("Last-Modified: {lm}\r\n"));
    }
    // A cache revalidating what it holds.
    let not_modified = match (req.header("if-none-match"), req.header("if-modified-since")) {
        (Some(v), _) => v.split(',').any(|e| body.is(e)),
        (None, Some(v)) => body.is(v),
        _ => false,
    };
    if not_modified {
        let head = format!(
            "HTTP/1.1 304 Not Modified\r\n{validators}Date: {}\r\n\r\n",
            http_date(date_offset)
        );
        return (
            304,
            0,
            conn.write_all(head.as_bytes()).and_then(|_| conn.flush()),
        );
    }
    let if_range_ok = match req.header("if-range") {
        Some(v) => body.is(v),
        None => true,
    };
    let range = req
        .header("range")
        .filter(|_| if_range_ok && !matches!(fault, Some(Fault::IgnoreRange)))
        .and_then(|r| parse_range(r, total));
    let (status, from, to) = match range {
        Some((s, _)) if s >= total => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n{validators}\r\n"
            );
            return (
                416,
                0,
                conn.write_all(head.as_bytes()).and_then(|_| conn.flush()),
            );
        }
        Some((s, e)) => (206, s, e),
        None => (200, 0, total),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\nDate: {}\r\n{validators}",
        reason(status),
        to - from,
        http_date(date_offset)
    );
    if status == 206 {
        head.push_str(&format!(
            "Content-Range: bytes {from}-{}/{total}\r\n",
            to - 1
        ));
    }
    head.push_str("\r\n");
    if let Err(e) = conn.write_all(head.as_bytes()) {
        return (status, 0, Err(e));
    }
    if req.method == "HEAD" {
        return (status, 0, conn.flush());
    }
    let limit = match fault {
        Some(Fault::CutAfter(n))
        | Some(Fault::ResetAfter(n))
        | Some(Fault::StallAfter(n, _))
        | Some(Fault::ReplaceAfter(n, _)) => *n,
        _ => u64::MAX,
    };
    let hole = match fault {
        Some(Fault::Hole(at, len)) => Some((*at, *len)),
        _ => None,
    };
    let mut sent = 0u64;
    let res = (|| -> std::io::Result<()> {
        let mut reader = body.reader()?;
        std::io::copy(&mut (&mut reader).take(from), &mut std::io::sink())?;
        let mut remaining = (to - from).min(limit);
        let mut buf = vec![0u8; 256 * 1024];
        let mut at = 0u64;
        while remaining > 0 {
            if let Some((h, len)) = hole.filter(|(h, _)| *h == at) {
                let skipped = std::io::copy(&mut (&mut reader).take(len), &mut std::io::sink())?;
                remaining = remaining.saturating_sub(skipped);
                at = h + skipped;
                continue;
            }
            let mut want = buf.len().min(remaining.min(usize::MAX as u64) as usize);
            if let Some((h, _)) = hole.filter(|(h, _)| *h > at) {
                want = want.min((h - at) as usize);
            }
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            conn.write_all(&buf[..n])?;
            sent += n as u64;
            at += n as u64;
            remaining -= n as u64;
            state.lock().unwrap_or_else(|e| e.into_inner()).body_bytes += n as u64;
        }
        conn.flush()
    })();
    (status, sent, res)
}

/// Make the socket's close send a RST instead of a FIN (SO_LINGER with a zero timeout).
fn reset_on_close(conn: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the size given.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Reads a shared buffer without copying it per request.
struct SharedBytes {
    data: Arc<Vec<u8>>,
    pos: usize,
}

impl Read for SharedBytes {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// An RFC 7231 date, `offset` seconds from now (a server whose clock is off).
fn http_date(offset: i64) -> String {
    let now = std::time::SystemTime::now();
    let d = std::time::Duration::from_secs(offset.unsigned_abs());
    let t = if offset < 0 {
        now.checked_sub(d).unwrap_or(std::time::UNIX_EPOCH)
    } else {
        now + d
    };
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str, range: Option<u64>) -> (String, Vec<u8>) {
        let r = range
            .map(|r| format!("Range: bytes={r}-\r\n"))
            .unwrap_or_default();
        get_with(url, &r)
    }

    fn get_with(url: &str, headers: &str) -> (String, Vec<u8>) {
        let addr = url.trim_start_matches("http://");
        let (host, path) = addr.split_once('/').unwrap();
        let mut s = TcpStream::connect(host).unwrap();
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&out[..split]).into_owned(),
            out[split + 4..].to_vec(),
        )
    }

    #[test]
    fn serves_ranges_faults_and_records() {
        let srv = Server::start();
        srv.serve_bytes("/a", (0..=255u8).cycle().take(10_000).collect());
        let (h, b) = get(&srv.url("/a"), None);
        assert!(h.starts_with("HTTP/1.1 200"));
        assert_eq!(b.len(), 10_000);
        let (h, b) = get(&srv.url("/a"), Some(9_000));
        assert!(h.contains("206") && h.contains("Content-Range: bytes 9000-9999/10000"));
        assert_eq!(b.len(), 1_000);
        assert_eq!(b[0], (9_000 % 256) as u8);
        srv.fault("/a", Fault::CutAfter(100));
        let (_, b) = get(&srv.url("/a"), None);
        assert_eq!(b.len(), 100);
        srv.fault("/a", Fault::Status(500));
        assert!(get(&srv.url("/a"), None).0.contains("500"));
        assert!(get(&srv.url("/missing"), None).0.contains("404"));
        assert_eq!(srv.requests().len(), 5);
        let st: Vec<_> = srv.requests().iter().map(|r| (r.status, r.sent)).collect();
        assert_eq!(
            st,
            [(200, 10_000), (206, 1_000), (200, 100), (500, 0), (404, 0)]
        );
        assert_eq!(srv.body_bytes_sent(), 11_100);
    }

    #[test]
    fn validators_and_conditionals() {
        let srv = Server::start();
        let bytes: Vec<u8> = (0..=255u8).cycle().take(5_000).collect();
        srv.serve_bytes("/a", bytes.clone());
        let other = Server::start();
        other.serve_bytes("/a", bytes.clone());
        let etag = srv.etag("/a").unwrap();
        assert_eq!(other.etag("/a").unwrap(), etag, "same bytes, same ETag");
        // A closed range, as a slicing cache asks.
        let (h, b) = get_with(&srv.url("/a"), "Range: bytes=1000-1999\r\n");
        assert!(h.contains("Content-Range: bytes 1000-1999/5000"), "{h}");
        assert_eq!(b, bytes[1000..2000]);
        // If-Range that matches: the part; that does not: the whole object.
        let (h, _) = get_with(
            &srv.url("/a"),
            &format!("Range: bytes=10-\r\nIf-Range: {etag}\r\n"),
        );
        assert!(h.starts_with("HTTP/1.1 206"), "{h}");
        let (h, b) = get_with(&srv.url("/a"), "Range: bytes=10-\r\nIf-Range: \"old\"\r\n");
        assert!(h.starts_with("HTTP/1.1 200") && b.len() == 5_000, "{h}");
        let (h, _) = get_with(&srv.url("/a"), &format!("If-None-Match: {etag}\r\n"));
        assert!(h.starts_with("HTTP/1.1 304"), "{h}");
        let (h, _) = get(&srv.url("/a"), Some(5_000));
        assert!(
            h.starts_with("HTTP/1.1 416") && h.contains("bytes */5000"),
            "{h}"
        );
        // Faults: 503 with Retry-After, Range ignored, the object replaced mid-body.
        srv.fault("/a", Fault::Unavailable(3));
        let (h, _) = get(&srv.url("/a"), None);
        assert!(
            h.starts_with("HTTP/1.1 503") && h.contains("Retry-After: 3"),
            "{h}"
        );
        srv.fault("/a", Fault::IgnoreRange);
        let (h, b) = get(&srv.url("/a"), Some(100));
        assert!(h.starts_with("HTTP/1.1 200") && b.len() == 5_000, "{h}");
        srv.fault("/a", Fault::Pass);
        srv.fault("/a", Fault::ReplaceAfter(700, Arc::new(vec![7u8; 5_000])));
        assert_eq!(get(&srv.url("/a"), None).1.len(), 5_000);
        let (h, b) = get(&srv.url("/a"), None);
        assert_eq!(b.len(), 700);
        assert!(h.contains(&etag));
        let new = srv.etag("/a").unwrap();
        assert_ne!(new, etag);
        let (h, b) = get(&srv.url("/a"), None);
        assert!(h.contains(&new) && b == vec![7u8; 5_000]);
        srv.set_validators("/a", None, None);
        let (h, _) = get(&srv.url("/a"), None);
        assert!(!h.contains("ETag") && !h.contains("Last-Modified"), "{h}");
        // A reset is not a clean end: the reader sees an error or a short body.
        srv.fault("/a", Fault::ResetAfter(100));
        let (_, b) = get(&srv.url("/a"), None);
        assert!(b.len() <= 100);
        srv.serve_bytes("/h", bytes.clone());
        srv.fault("/h", Fault::Hole(1000, 500));
        let (_, b) = get(&srv.url("/h"), None);
        assert_eq!(b.len(), 4_500);
        assert!(b[..1000] == bytes[..1000] && b[1000..] == bytes[1500..]);
        srv.fault("/a", Fault::Reset);
        let mut s = TcpStream::connect(srv.addr()).unwrap();
        write!(s, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = Vec::new();
        assert!(s.read_to_end(&mut out).is_err() || out.is_empty());
    }
}
