//! A small, real HTTP/1.1 server on 127.0.0.1 for tests and the demo.
//!
//! It serves byte buffers or files with `Content-Length` and `Range` support, misbehaves on
//! request ([`Fault`]: cut the connection halfway, stall, answer 5xx for a while, hang), can
//! require an `Authorization` header, and records every request (method, path, headers, body)
//! so that tests can assert the webhook events a run sent.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One misbehaviour, used for the next request to its path.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Send headers with the full length, then this many body bytes, then close.
    CutAfter(u64),
    /// Send this many body bytes, then go silent for the duration (holding the connection).
    StallAfter(u64, Duration),
    /// Answer with this status and a short body.
    Status(u16),
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
enum Body {
    Bytes(Arc<Vec<u8>>),
    File(PathBuf),
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
        self.lock()
            .routes
            .insert(path.to_string(), Body::Bytes(Arc::new(bytes)));
    }

    pub fn serve_file(&self, path: &str, file: impl Into<PathBuf>) {
        self.lock()
            .routes
            .insert(path.to_string(), Body::File(file.into()));
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
        };
        let (route, fault, auth, offset) = {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.requests.push(req.clone());
            let fault = st.faults.get_mut(&path).and_then(|q| q.pop_front());
            (
                st.routes.get(&path).cloned(),
                fault,
                st.auth.get(&path).cloned(),
                st.date_offset,
            )
        };
        let simple = |conn: &mut TcpStream, code: u16, body: &str| simple(conn, code, body, offset);
        if let Some(needle) = auth {
            let ok = req
                .header("authorization")
                .is_some_and(|a| a.contains(&needle));
            if !ok {
                simple(&mut conn, 401, "unauthorized")?;
                if close {
                    return Ok(());
                }
                continue;
            }
        }
        match fault {
            Some(Fault::Status(code)) => {
                simple(&mut conn, code, "injected failure")?;
                if close {
                    return Ok(());
                }
                continue;
            }
            Some(Fault::Hang(d)) => {
                thread::sleep(d);
                return Ok(());
            }
            _ => {}
        }
        if method == "POST" || method == "PUT" {
            simple(&mut conn, 200, "")?;
            if close {
                return Ok(());
            }
            continue;
        }
        let Some(route) = route else {
            simple(&mut conn, 404, "not found")?;
            if close {
                return Ok(());
            }
            continue;
        };
        serve(&mut conn, &req, route, fault)?;
        if close {
            return Ok(());
        }
    }
}

fn simple(conn: &mut TcpStream, code: u16, body: &str, date_offset: i64) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {code} {}\r\nContent-Length: {}\r\nDate: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        reason(code),
        body.len(),
        http_date(date_offset)
    )?;
    conn.flush()
}

fn serve(
    conn: &mut TcpStream,
    req: &Request,
    body: Body,
    fault: Option<Fault>,
) -> std::io::Result<()> {
    let total = match &body {
        Body::Bytes(b) => b.len() as u64,
        Body::File(p) => std::fs::metadata(p)?.len(),
    };
    let start = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s <= total);
    let (status, from) = match start {
        Some(s) => (206, s),
        None => (200, 0),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nContent-Type: application/octet-stream\r\n",
        reason(status),
        total - from
    );
    if status == 206 {
        head.push_str(&format!(
            "Content-Range: bytes {from}-{}/{total}\r\n",
            total.saturating_sub(1)
        ));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if req.method == "HEAD" {
        return conn.flush();
    }
    let limit = match &fault {
        Some(Fault::CutAfter(n)) | Some(Fault::StallAfter(n, _)) => Some(*n),
        _ => None,
    };
    let mut reader: Box<dyn Read> = match body {
        Body::Bytes(b) => Box::new(SharedBytes { data: b, pos: 0 }),
        Body::File(p) => Box::new(std::fs::File::open(p)?),
    };
    std::io::copy(&mut (&mut reader).take(from), &mut std::io::sink())?;
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let want = buf.len().min(remaining.min(usize::MAX as u64) as usize);
        if want == 0 {
            break;
        }
        let n = reader.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        conn.write_all(&buf[..n])?;
        remaining -= n as u64;
    }
    conn.flush()?;
    match fault {
        Some(Fault::CutAfter(_)) => {
            let _ = conn.shutdown(std::net::Shutdown::Both);
            Err(std::io::Error::other("cut"))
        }
        Some(Fault::StallAfter(_, d)) => {
            thread::sleep(d);
            Err(std::io::Error::other("stalled"))
        }
        _ => Ok(()),
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
        401 => "Unauthorized",
        404 => "Not Found",
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
        let addr = url.trim_start_matches("http://");
        let (host, path) = addr.split_once('/').unwrap();
        let mut s = TcpStream::connect(host).unwrap();
        let r = range
            .map(|r| format!("Range: bytes={r}-\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: x\r\n{r}Connection: close\r\n\r\n"
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
    }
}
