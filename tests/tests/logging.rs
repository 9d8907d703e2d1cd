//! What a person or a console collector sees of deployer's log: timestamped lines, in the
//! `--log-file` (curtin's flag) or on stderr, as JSON when asked, and a progress line during a
//! long write on a terminal (also from a stage command of an install), never in a pipe.

use std::path::Path;
use std::process::{Command, Output};

use testkit::deployer_bin;

/// A 24 MiB tgz of random bytes (no compression gain: the extract takes a moment) and a config
/// that extracts it.
fn tgz_config(dir: &Path) -> String {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut data = vec![0u8; 24 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(src.join("big"), data).unwrap();
    let tgz = dir.join("r.tgz");
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        format!("sources: {{r: 'tgz:file://{}'}}\n", tgz.display()),
    )
    .unwrap();
    cfg.display().to_string()
}

fn deployer(args: &[&str]) -> Output {
    Command::new(deployer_bin())
        .args(args)
        .env_remove("DEPLOYER_LOG_FORMAT")
        .env_remove("DEPLOYER_PROGRESS")
        .env_remove("CURTIN_REPORTSTACK")
        .env_remove("CONFIG")
        .output()
        .unwrap()
}

/// `2026-01-02T03:04:05.123456Z  INFO message`
fn timestamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 28
        && b[4] == b'-'
        && b[10] == b'T'
        && line[..27].ends_with('Z')
        && line[..4].bytes().all(|c| c.is_ascii_digit())
}

#[test]
fn log_file_and_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tgz_config(dir.path());
    let target = dir.path().join("t");
    std::fs::create_dir(&target).unwrap();
    let log = dir.path().join("deployer.log");
    let t = target.to_str().unwrap();
    let o = deployer(&[
        "extract",
        "-c",
        &cfg,
        "-t",
        t,
        "--log-file",
        log.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The log went to the file, as curtin's --log-file: nothing of it on stderr, no progress
    // line (stderr is a pipe).
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO acquiring and extracting image from file://")),
        "{text}"
    );
    assert!(lines.iter().all(|l| timestamped(l)), "{text}");

    // One JSON object a line, on stderr.
    let o = deployer(&["extract", "-c", &cfg, "-t", t, "--log-format", "json"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let mut n = 0;
    for l in err.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{l}");
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
        n += 1;
    }
    assert!(n >= 1, "{err}");
    assert!(std::fs::metadata(target.join("big")).unwrap().len() == 24 << 20);
}

/// Run `cmd` on a pseudo-terminal (util-linux `script`); what the terminal showed.
fn on_a_terminal(dir: &Path, cmd: &str) -> String {
    let ts = dir.join("typescript");
    let o = Command::new("script")
        .args(["-qfec", cmd])
        .arg(&ts)
        .env_remove("DEPLOYER_PROGRESS")
        .env_remove("DEPLOYER_LOG_FORMAT")
        .env_remove("CURTIN_REPORTSTACK")
        .env_remove("CONFIG")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&std::fs::read(ts).unwrap()).into_owned()
}

#[test]
fn a_progress_line_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tgz_config(dir.path());
    let bin = deployer_bin().display().to_string();
    let t = dir.path().join("t");
    std::fs::create_dir(&t).unwrap();
    std::fs::create_dir(dir.path().join("t2")).unwrap();
    let seen = on_a_terminal(
        dir.path(),
        &format!("{bin} extract -c {cfg} -t {}", t.display()),
    );
    assert!(seen.contains("extracting file://"), "{seen}");
    assert!(seen.contains("MiB/"), "{seen}");
    // A stage command of an install: its output goes to the install log, its progress line to
    // the install's terminal.
    let d = dir.path().display();
    let icfg = dir.path().join("i.yaml");
    std::fs::write(
        &icfg,
        format!(
            "stages: [early]\ninstall: {{log_file: {d}/install.log}}\nearly_commands: {{x: [curtin, extract, -c, {cfg}, -t, {d}/t2]}}\n"
        ),
    )
    .unwrap();
    let seen = on_a_terminal(
        dir.path(),
        &format!(
            "DEPLOYER_CMDLINE_FILE=/dev/null {bin} install -c {} file:///nonexistent.tgz",
            icfg.display()
        ),
    );
    assert!(seen.contains("extracting file://"), "{seen}");
    let log = std::fs::read_to_string(dir.path().join("install.log")).unwrap();
    assert!(!log.contains("MiB/"), "no progress line in the log: {log}");
}
