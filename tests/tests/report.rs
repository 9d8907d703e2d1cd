//! Reporting end to end: `deployer install` runs stage commands and posts curtin's events to a
//! real HTTP server on 127.0.0.1, which records them; config served by the same server (once
//! behind OAuth, found through the kernel command line); clock skew learnt from a 401; an
//! endpoint that hangs or is dead never stalls the install.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use testkit::{Fault, Server};

const STATUS: &str = "/MAAS/metadata/status/node1";

/// Every builtin disabled: the stages run only what a test gives them.
const NO_BUILTINS: &str = "
partitioning_commands: {builtin: null}
network_commands: {builtin: null}
extract_commands: {builtin: null}
curthooks_commands: {builtin: null}
hook_commands: {builtin: null}
";

struct Run {
    out: Output,
    elapsed: Duration,
}

impl Run {
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
}

/// `deployer install ARGS` isolated from the host: no $CONFIG, an empty kernel command line
/// unless given, the OAuth skew file in `dir`.
fn install(dir: &Path, args: &[&str], cmdline: &str) -> Run {
    let cmdline_file = dir.join("cmdline");
    std::fs::write(&cmdline_file, cmdline).unwrap();
    let t = Instant::now();
    let out = testkit::deployer()
        .arg("install")
        .args(args)
        .env_remove("CONFIG")
        .env_remove("CURTIN_REPORTSTACK")
        .env_remove("DEPLOYER_REPORT_DOWN")
        .env("DEPLOYER_CMDLINE_FILE", &cmdline_file)
        .env("DEPLOYER_OAUTH_SKEW_FILE", dir.join("oauth_skew.json"))
        // Tests run installs side by side: each its own lock (one install at a time).
        .env("DEPLOYER_LOCK_FILE", dir.join("install.lock"))
        .env("DEPLOYER_FETCH_BACKOFF_MS", "20")
        .output()
        .expect("run deployer");
    Run {
        out,
        elapsed: t.elapsed(),
    }
}

fn webhook(srv: &Server, extra: &str) -> String {
    format!(
        "reporting:\n  maas:\n    type: webhook\n    endpoint: {}\n    consumer_key: ck1\n    token_key: tk1\n    token_secret: tsecret1\n{extra}",
        srv.url(STATUS)
    )
}

fn install_section(dir: &Path) -> (String, PathBuf) {
    let log = dir.join("install.log");
    (
        format!(
            "install:\n  log_file: {}\n  error_tarfile: {}\n  post_files: [{}, {}]\n",
            log.display(),
            dir.join("err.tar").display(),
            log.display(),
            dir.join("err.tar").display()
        ),
        log,
    )
}

/// (name, event_type, result) of each event.
fn triples(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("").to_string(),
                e["event_type"].as_str().unwrap_or("").to_string(),
                e["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn t(name: &str, ty: &str, res: &str) -> (String, String, String) {
    (name.into(), ty.into(), res.into())
}

fn oauth_fields(h: &str) -> std::collections::HashMap<String, String> {
    h.trim_start_matches("OAuth ")
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn events_names_order_results_oauth_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let (inst, log) = install_section(dir.path());
    let cfg = format!(
        "{}{inst}{NO_BUILTINS}early_commands: {{10: 'echo early-output'}}\nlate_commands: {{'20': [echo, late-output]}}\nimage: {{name: custom/demo, base_image: ubuntu/jammy}}\n",
        webhook(&srv, "")
    );
    srv.serve_bytes("/config.yaml", cfg.into_bytes());
    let r = install(dir.path(), &["-c", &srv.url("/config.yaml")], "");
    assert_eq!(r.code(), 0, "{}", r.stderr());

    let events = srv.posted_json(STATUS);
    let mut want = vec![
        t("cmd-install", "start", ""),
        t("cmd-install/stage-early", "start", ""),
        t("cmd-install/stage-early/10", "start", ""),
        t("cmd-install/stage-early/10", "finish", "SUCCESS"),
        t("cmd-install/stage-early", "finish", "SUCCESS"),
    ];
    for s in ["partitioning", "network", "extract", "curthooks", "hook"] {
        want.push(t(&format!("cmd-install/stage-{s}"), "start", ""));
        want.push(t(&format!("cmd-install/stage-{s}"), "finish", "SUCCESS"));
    }
    want.extend([
        t("cmd-install/stage-late", "start", ""),
        t("cmd-install/stage-late/20", "start", ""),
        t("cmd-install/stage-late/20", "finish", "SUCCESS"),
        t("cmd-install/stage-late", "finish", "SUCCESS"),
        t("cmd-install", "finish", "SUCCESS"),
    ]);
    assert_eq!(triples(&events), want);

    // Descriptions and levels as curtin's.
    let desc = |name: &str| {
        events
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["description"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(desc("cmd-install"), "curtin command install");
    assert_eq!(
        desc("cmd-install/stage-partitioning"),
        "configuring storage"
    );
    assert_eq!(
        desc("cmd-install/stage-extract"),
        "writing install sources to disk"
    );
    assert_eq!(
        desc("cmd-install/stage-curthooks"),
        "configuring installed system"
    );
    assert_eq!(
        desc("cmd-install/stage-late/20"),
        "running 'echo late-output'"
    );
    for e in &events {
        assert_eq!(e["origin"], "curtin");
        assert!(e["timestamp"].as_f64().unwrap() > 1e9);
        let lvl = if e["name"].as_str().unwrap().matches('/').count() == 1 {
            "INFO"
        } else {
            "DEBUG"
        };
        assert_eq!(e["level"], lvl, "{e}");
        assert_eq!(e["image"]["name"], "custom/demo");
        assert_eq!(e["image"]["base_image"], "ubuntu/jammy");
    }

    // The final finish carries the install log, and null for the absent error tarball.
    let last = events.last().unwrap();
    let files = last["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["path"], log.display().to_string());
    assert_eq!(files[0]["encoding"], "base64");
    let text = base64::engine::general_purpose::STANDARD
        .decode(files[0]["content"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("early-output") && text.contains("late-output"),
        "{text}"
    );
    assert!(text.contains("curtin: Installation finished."), "{text}");
    assert_eq!(files[1]["content"], Value::Null);
    assert!(events[..events.len() - 1]
        .iter()
        .all(|e| e.get("files").is_none()));

    // Every POST: JSON, OAuth PLAINTEXT with the node's credentials.
    let posts: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), events.len());
    let mut nonces = std::collections::HashSet::new();
    for p in &posts {
        assert_eq!(p.header("content-type"), Some("application/json"));
        let h = p.header("authorization").expect("Authorization header");
        assert!(h.starts_with("OAuth "), "{h}");
        let f = oauth_fields(h);
        assert_eq!(f["oauth_version"], "1.0");
        assert_eq!(f["oauth_signature_method"], "PLAINTEXT");
        assert_eq!(f["oauth_consumer_key"], "ck1");
        assert_eq!(f["oauth_token"], "tk1");
        assert_eq!(f["oauth_signature"], "%26tsecret1");
        let ts: i64 = f["oauth_timestamp"].parse().unwrap();
        assert!((ts - now()).abs() < 120, "timestamp {ts}");
        assert!(nonces.insert(f["oauth_nonce"].clone()), "nonce reused");
    }
}

#[test]
fn failing_command_fails_its_stage_and_the_install() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let (inst, _log) = install_section(dir.path());
    let marker = dir.path().join("late-ran");
    let cfg = format!(
        "{}{inst}{NO_BUILTINS}late_commands: {{'10': [touch, {}]}}\n",
        webhook(&srv, ""),
        marker.display()
    );
    let cfgfile = dir.path().join("c.yaml");
    std::fs::write(&cfgfile, cfg).unwrap();
    // A second document merges into the first (mappings merge key by key).
    let over = dir.path().join("over.yaml");
    std::fs::write(
        &over,
        // Quoted: numbers beside the `builtin` key would make curtin's sorted() fail.
        "curthooks_commands: {'05': 'echo fine', '10': 'echo about to fail; echo disk on fire >&2; exit 3', '20': 'echo never'}\n",
    )
    .unwrap();
    let r = install(
        dir.path(),
        &[
            "-c",
            cfgfile.to_str().unwrap(),
            "-c",
            over.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(
        r.code(),
        6,
        "a failing command is a hook failure: {}",
        r.stderr()
    );
    assert!(
        r.stderr().contains("curthooks_commands 10"),
        "{}",
        r.stderr()
    );
    assert!(r.stderr().contains("exit code 3"), "{}", r.stderr());
    assert!(r.stderr().contains("disk on fire"), "{}", r.stderr());
    assert!(!marker.exists(), "a stage after the failure ran");

    let events = srv.posted_json(STATUS);
    let tr = triples(&events);
    assert!(tr.contains(&t("cmd-install/stage-curthooks/05", "finish", "SUCCESS")));
    assert!(tr.contains(&t("cmd-install/stage-curthooks/10", "finish", "FAIL")));
    assert!(tr.contains(&t("cmd-install/stage-curthooks", "finish", "FAIL")));
    assert!(!tr.iter().any(|e| e.0.contains("curthooks/20")
        || e.0.contains("stage-hook")
        || e.0.contains("stage-late")));
    let last = events.last().unwrap();
    assert_eq!(
        t("cmd-install", "finish", "FAIL"),
        tr.last().unwrap().clone()
    );
    assert_eq!(last["level"], "ERROR");
    let d = last["description"].as_str().unwrap();
    assert!(
        d.contains("curthooks_commands 10") && d.contains("disk on fire"),
        "{d}"
    );

    // The log and the error tarball both go out with the final event.
    let files = last["files"].as_array().unwrap();
    let dec = |i: usize| {
        base64::engine::general_purpose::STANDARD
            .decode(files[i]["content"].as_str().expect("file content"))
            .unwrap()
    };
    let logtext = String::from_utf8(dec(0)).unwrap();
    assert!(
        logtext.contains("about to fail") && logtext.contains("disk on fire"),
        "{logtext}"
    );
    assert!(logtext.contains("Installation failed"), "{logtext}");
    let tarball = dec(1);
    let mut ar = tar::Archive::new(&tarball[..]);
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        if p.ends_with("/curtin-config") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert!(
                !s.contains("tsecret1"),
                "the token secret leaked into the tarball"
            );
            assert!(s.contains("REDACTED"));
        }
        names.push(p);
    }
    assert!(
        names.iter().all(|n| n.starts_with("curtin-logs-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("/install.log")),
        "{names:?}"
    );
}

#[test]
fn child_commands_report_under_the_stage() {
    // A `curtin` child posts its own events, named under CURTIN_REPORTSTACK.
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let (inst, _) = install_section(dir.path());
    let cfg = format!(
        "{}{inst}{NO_BUILTINS}stages: [early]\nearly_commands: {{10: [curtin, hook]}}\n",
        webhook(&srv, "")
    );
    let cfgfile = dir.path().join("c.yaml");
    std::fs::write(&cfgfile, cfg).unwrap();
    let r = install(dir.path(), &["-c", cfgfile.to_str().unwrap()], "");
    let events = srv.posted_json(STATUS);
    let tr = triples(&events);
    let child = "cmd-install/stage-early/10/cmd-hook";
    let i_parent = tr
        .iter()
        .position(|e| *e == t("cmd-install/stage-early/10", "start", ""))
        .unwrap();
    let i_child = tr
        .iter()
        .position(|e| e.0 == child && e.1 == "start")
        .expect("child start");
    assert!(i_parent < i_child, "{tr:?}");
    let ev = &events[i_child];
    assert_eq!(ev["description"], "curtin command hook");
    let fin = tr
        .iter()
        .find(|e| e.0 == child && e.1 == "finish")
        .expect("child finish");
    // Whatever the child's result, it bubbles up through the command to cmd-install.
    let res = fin.2.clone();
    assert!(
        tr.contains(&t("cmd-install/stage-early/10", "finish", &res)),
        "{tr:?}"
    );
    assert!(tr.contains(&t("cmd-install", "finish", &res)), "{tr:?}");
    assert_eq!(r.code() == 0, res == "SUCCESS", "{}", r.stderr());
}

#[test]
fn clock_skew_is_learnt_from_a_401() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    srv.set_date_offset(7200);
    srv.fault(STATUS, Fault::Status(401));
    let cfg = format!("{}stages: [early]\n", webhook(&srv, "    retries: []\n"));
    let cfgfile = dir.path().join("c.yaml");
    std::fs::write(&cfgfile, cfg).unwrap();
    let r = install(
        dir.path(),
        &[
            "-c",
            cfgfile.to_str().unwrap(),
            "--set",
            "install/log_file=",
        ],
        "",
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let posts: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let ts = |i: usize| -> i64 {
        oauth_fields(posts[i].header("authorization").unwrap())["oauth_timestamp"]
            .parse()
            .unwrap()
    };
    assert!(
        (ts(0) - now()).abs() < 60,
        "first request uses the local clock"
    );
    // The rejected event is sent again at once, with the server's time.
    assert!(
        (ts(1) - (now() + 7200)).abs() < 60,
        "retry timestamp {}",
        ts(1)
    );
    assert_eq!(posts[0].json()["name"], posts[1].json()["name"]);
    assert_eq!(
        srv.posted_json(STATUS).len(),
        4 + 1,
        "every event delivered"
    );
    let skew: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("oauth_skew.json")).unwrap())
            .unwrap();
    let s = skew["127.0.0.1"].as_i64().unwrap();
    assert!((s - 7200).abs() < 60, "{skew}");
}

#[test]
fn a_hanging_endpoint_does_not_stall_the_install() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    for _ in 0..100 {
        srv.fault(STATUS, Fault::Hang(Duration::from_secs(120)));
    }
    let (inst, _) = install_section(dir.path());
    let marker = dir.path().join("late-ran");
    let cfg = format!(
        "{}{inst}{NO_BUILTINS}early_commands: {{a: 'true', b: 'true', c: 'true'}}\nlate_commands: {{a: [touch, {}]}}\n",
        webhook(&srv, "    timeout: 1\n"),
        marker.display()
    );
    let cfgfile = dir.path().join("c.yaml");
    std::fs::write(&cfgfile, cfg).unwrap();
    let r = install(dir.path(), &["-c", cfgfile.to_str().unwrap()], "");
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(marker.exists());
    assert!(
        r.elapsed < Duration::from_secs(15),
        "install took {:?} with a hanging endpoint",
        r.elapsed
    );
    assert!(!srv.requests().is_empty(), "the endpoint was tried");
}

#[test]
fn a_dead_endpoint_does_not_fail_the_install() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "reporting: {{maas: {{type: webhook, endpoint: 'http://127.0.0.1:{port}/status'}}}}\n{NO_BUILTINS}install: {{log_file: ''}}\n"
    );
    let cfgfile = dir.path().join("c.yaml");
    std::fs::write(&cfgfile, cfg).unwrap();
    let r = install(dir.path(), &["-c", cfgfile.to_str().unwrap()], "");
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.elapsed < Duration::from_secs(15), "{:?}", r.elapsed);
}

#[test]
fn config_found_on_the_kernel_command_line_with_maas_oauth() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    // MAAS's anonymous preseed carries the node's credentials and the reporting config.
    let preseed = format!(
        "#cloud-config\ndatasource:\n  MAAS: {{metadata_url: '{}', consumer_key: ck1, token_key: tk1, token_secret: tsecret1}}\n{}",
        srv.url("/MAAS/metadata/curtin"),
        webhook(&srv, "")
    );
    srv.serve_bytes("/MAAS/metadata/latest/by-id/node1/", preseed.into_bytes());
    let (inst, _) = install_section(dir.path());
    srv.serve_bytes(
        "/MAAS/metadata/curtin/deployer.yaml",
        format!("{inst}{NO_BUILTINS}late_commands: {{'10': 'echo from-metadata'}}\n").into_bytes(),
    );
    srv.require_auth("/MAAS/metadata/curtin/deployer.yaml", "oauth_token=\"tk1\"");
    let cmdline = format!(
        "ro cloud-config-url={}?op=get_preseed deployer.config={} ---",
        srv.url("/MAAS/metadata/latest/by-id/node1/"),
        srv.url("/MAAS/metadata/curtin/deployer.yaml")
    );
    let r = install(dir.path(), &[], &cmdline);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let tr = triples(&srv.posted_json(STATUS));
    assert!(
        tr.contains(&t("cmd-install/stage-late/10", "finish", "SUCCESS")),
        "{tr:?}"
    );
    let get = srv
        .requests()
        .into_iter()
        .find(|r| r.method == "GET" && r.path == "/MAAS/metadata/curtin/deployer.yaml")
        .unwrap();
    let f = oauth_fields(get.header("authorization").unwrap());
    assert_eq!(f["oauth_signature"], "%26tsecret1");
}

#[test]
fn config_url_needing_oauth_fails_clearly_as_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    srv.serve_bytes("/c.yaml", b"stages: []\n".to_vec());
    srv.require_auth("/c.yaml", "oauth_token=");
    let r = install(dir.path(), &["-c", &srv.url("/c.yaml")], "");
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("401") && r.stderr().contains("OAuth"),
        "{}",
        r.stderr()
    );
    // 5xx is retried; a config that comes back after two failures is used.
    srv.serve_bytes("/c2.yaml", b"stages: []\n".to_vec());
    srv.fault("/c2.yaml", Fault::Status(503));
    srv.fault("/c2.yaml", Fault::Status(503));
    let r = install(
        dir.path(),
        &["-c", &srv.url("/c2.yaml"), "--set", "install/log_file="],
        "",
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    // Nothing anywhere: say where a config can come from.
    let r = install(dir.path(), &[], "quiet");
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("deployer.config=URL"), "{}", r.stderr());
}

#[test]
fn retry_after_is_honoured_by_config_fetch_and_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start();
    let cfg = format!("stages: []\n{}", webhook(&srv, "    retries: [0.1]\n"));
    srv.serve_bytes("/c.yaml", cfg.into_bytes());
    srv.fault("/c.yaml", Fault::Unavailable(1));
    srv.fault(STATUS, Fault::Unavailable(1));
    let r = install(
        dir.path(),
        &["-c", &srv.url("/c.yaml"), "--set", "install/log_file="],
        "",
    );
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let reqs = srv.requests();
    let gap = |path: &str| {
        let at: Vec<_> = reqs.iter().filter(|q| q.path == path).collect();
        assert_eq!((at[0].status, at[1].status), (503, 200), "{path}");
        at[1].at - at[0].at
    };
    // The config's 503 said one second; so did the webhook's, before its 0.1 s retry.
    assert!(gap("/c.yaml") >= Duration::from_secs(1));
    assert!(gap(STATUS) >= Duration::from_millis(1100));
    // The event that met the 503 arrived after all, and every event has the one User-Agent.
    let tr = triples(&srv.posted_json(STATUS));
    assert!(tr.contains(&t("cmd-install", "start", "")), "{tr:?}");
    assert!(reqs.iter().all(|q| q
        .header("user-agent")
        .is_some_and(|u| u.starts_with("deployer/"))));
}
