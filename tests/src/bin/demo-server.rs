//! The demo's server: a real HTTP server on 127.0.0.1 that serves every file of a directory
//! (`/NAME`, files added later included) and records every POSTed webhook event as one JSON
//! line in a file.
//!
//! - `demo-server serve DIR EVENTS_FILE PORT_FILE`: bind a free loopback port, write it to
//!   PORT_FILE, run until killed.
//! - `demo-server show EVENTS_FILE [FROM_LINE]`: print recorded events, one a line.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use testkit::Server;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["serve", dir, events, port_file] => serve(dir, events, port_file),
        ["show", events] => show(events, 0),
        ["show", events, from] => show(events, from.parse().unwrap_or(0)),
        _ => {
            eprintln!(
                "usage: demo-server serve DIR EVENTS_FILE PORT_FILE | show EVENTS_FILE [FROM_LINE]"
            );
            std::process::exit(2);
        }
    }
}

fn serve(dir: &str, events: &str, port_file: &str) {
    let srv = Server::start();
    std::fs::write(port_file, srv.addr().port().to_string()).expect("write port file");
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(events)
        .expect("open events file");
    let mut served = HashSet::new();
    let mut seen = 0;
    loop {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = format!("/{}", e.file_name().to_string_lossy());
                if e.path().is_file() && served.insert(name.clone()) {
                    srv.serve_file(&name, e.path());
                }
            }
        }
        let reqs = srv.requests();
        for r in &reqs[seen.min(reqs.len())..] {
            if r.method == "POST" {
                let _ = out.write_all(&r.body);
                let _ = out.write_all(b"\n");
            }
        }
        let _ = out.flush();
        seen = reqs.len();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn show(events: &str, from: usize) {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    for line in text.lines().skip(from) {
        let Ok(e) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
        let mut l = format!(
            "{:<8} {:<62} {}",
            s("event_type"),
            s("name"),
            s("description")
        );
        if let Some(r) = e["result"].as_str() {
            l.push_str(&format!("  [{r}]"));
        }
        if let Some(files) = e["files"].as_array() {
            let f: Vec<String> = files
                .iter()
                .map(|f| {
                    let n = f["content"].as_str().map(|c| c.len() * 3 / 4).unwrap_or(0);
                    format!("{} ({} bytes)", f["path"].as_str().unwrap_or("?"), n)
                })
                .collect();
            l.push_str(&format!("\n         files: {}", f.join(", ")));
        }
        println!("{l}");
    }
}
