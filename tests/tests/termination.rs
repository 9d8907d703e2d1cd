//! Termination, hangs and memory (issue 16, items 9-11): SIGTERM during a real install is
//! forwarded to the running hook and cleaned up as a failure; a command that leaves a
//! background job does not hold the install; a stage command's timeout; the still-waiting
//! line; the posted log and the error tarball capped whatever a hook prints.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use testkit::{require_root, sh, Server};

fn webhook_cfg(srv: &Server) -> String {
    format!(
        "reporting: {{maas: {{type: webhook, endpoint: '{}', consumer_key: ck, token_key: tk, token_secret: ts}}}}\n",
        srv.url("/status")
    )
}

fn install_cmd(dir: &Path, args: &[&str]) -> Command {
    let cmdline = dir.join("cmdline");
    std::fs::write(&cmdline, "").unwrap();
    let mut c = testkit::deployer();
    c.arg("install")
        .args(args)
        .env_remove("CONFIG")
        .env_remove("CURTIN_REPORTSTACK")
        .env("DEPLOYER_CMDLINE_FILE", &cmdline)
        .env("DEPLOYER_OAUTH_SKEW_FILE", dir.join("oauth_skew.json"))
        .env("DEPLOYER_REPORT_FLUSH_SECS", "10");
    c
}

/// Wait for a child, killing it (and failing) after `max`.
fn wait_or_kill(child: &mut Child, max: Duration, what: &str) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > max {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {max:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM to a child we started (by its pid), then its exit status and stderr.
fn terminate(child: &mut Child, max: Duration) -> (std::process::ExitStatus, String) {
    // SAFETY: a signal to our own child process, by its pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = wait_or_kill(child, max, "after SIGTERM");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

fn wait_for_file(p: &Path, max: Duration) -> String {
    let t = Instant::now();
    while t.elapsed() < max {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.ends_with('\n') {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not appear within {max:?}", p.display());
}

/// Running (a zombie waiting for its reaper does not count).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last ')'.
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    !state.starts_with('Z') && !state.starts_with('X')
}

/// Wait a little for a process that was just killed to be gone.
fn gone_soon(pid: i32) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A raw GPT disk image whose ext4 root carries `/curtin/finalize` (the hook stage runs it).
fn image_with_finalize(dir: &Path, finalize: &str) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("curtin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/os-release"), "ID=demo\n").unwrap();
    let f = root.join("curtin/finalize");
    std::fs::write(&f, finalize).unwrap();
    sh(&format!("chmod 755 {}", f.display()));
    let img = dir.join("img.raw");
    let part = dir.join("part.ext4");
    sh(&format!(
        "truncate -s 64M {i} && sgdisk -o -n1:2048:0 -t1:8300 {i} >/dev/null && truncate -s 62M {p} \
         && mkfs.ext4 -q -d {r} {p} && dd if={p} of={i} bs=1M seek=1 conv=notrunc status=none",
        i = img.display(),
        p = part.display(),
        r = root.display()
    ));
    img
}

#[test]
fn sigterm_during_a_hook_is_forwarded_and_cleaned_up_like_a_failure() {
    require_root();
    let dir = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    let d = dir.path().display().to_string();
    let img = image_with_finalize(
        dir.path(),
        &format!("#!/bin/sh\necho $$ > {d}/hook.pid\nexec sleep 600\n"),
    );
    let srv = Server::start();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let cfg = dir.path().join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "{}install: {{log_file: {d}/install.log, error_tarfile: {d}/error.tar, target: {}}}\n\
             network_commands: {{builtin: null}}\nextract_commands: {{builtin: null}}\n\
             curthooks_commands: {{builtin: null}}\n",
            webhook_cfg(&srv),
            target.display()
        ),
    )
    .unwrap();
    let disk = dir.path().join("disk.img");
    let mut child = install_cmd(
        dir.path(),
        &[
            "-c",
            cfg.to_str().unwrap(),
            "--target",
            disk.to_str().unwrap(),
            "--size",
            "256M",
            &format!("dd-raw:{}", img.display()),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let hook: i32 = wait_for_file(&dir.path().join("hook.pid"), Duration::from_secs(180))
        .trim()
        .parse()
        .unwrap();
    assert!(alive(hook));
    // The target is mounted now, from a loop device over the file.
    assert_eq!(
        sh(&format!("losetup -j {}", disk.display()))
            .lines()
            .count(),
        1
    );
    let (status, err) = terminate(&mut child, Duration::from_secs(90));
    assert_eq!(
        status.code(),
        Some(143),
        "exit code 128+SIGTERM; stderr:\n{err}"
    );
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    // The hook got the signal; nothing is left mounted or attached.
    assert!(gone_soon(hook), "the hook (pid {hook}) is still running");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&target.display().to_string()),
        "left mounted:\n{mounts}"
    );
    assert_eq!(
        sh(&format!("losetup -j {}", disk.display())),
        "",
        "loop left"
    );
    // FAIL events, sent before the exit, and the error tarball.
    let events = srv.posted_json("/status");
    let fails: Vec<&str> = events
        .iter()
        .filter(|e| e["event_type"] == "finish" && e["result"] == "FAIL")
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(fails.contains(&"cmd-install/stage-hook"), "{fails:?}");
    let last = events.last().unwrap();
    assert_eq!(last["name"], "cmd-install", "{last}");
    assert_eq!(last["result"], "FAIL");
    assert!(
        last["description"].as_str().unwrap().contains("SIGTERM"),
        "{last}"
    );
    assert!(dir.path().join("error.tar").exists(), "no error tarball");
    let log = std::fs::read_to_string(dir.path().join("install.log")).unwrap();
    assert!(log.contains("interrupted by SIGTERM"), "{log}");
}

fn run(dir: &Path, cfg: &str, env: &[(&str, &str)], max: Duration) -> (Output, String) {
    let p = dir.join("c.yaml");
    std::fs::write(&p, cfg).unwrap();
    let mut c = install_cmd(
        dir,
        &["-c", p.to_str().unwrap(), "http://127.0.0.1:9/x.tgz"],
    );
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr on a thread: a chatty command must not block on a full pipe.
    let mut e = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        e.read_to_end(&mut s).unwrap();
        s
    });
    let status = wait_or_kill(&mut child, max, "the install");
    let stderr = reader.join().unwrap();
    let log = std::fs::read_to_string(dir.join("install.log")).unwrap_or_default();
    (
        Output {
            status,
            stdout: vec![],
            stderr,
        },
        log,
    )
}

const QUIET: &str = "partitioning_commands: {builtin: null}\nnetwork_commands: {builtin: null}\n\
                     extract_commands: {builtin: null}\ncurthooks_commands: {builtin: null}\n\
                     hook_commands: {builtin: null}\n";

#[test]
fn a_background_job_does_not_hold_the_install_and_timeouts_stop_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    // The early command leaves `sleep 300` running with the output pipe open.
    let cfg = format!(
        "{QUIET}install: {{log_file: {d}/install.log, error_tarfile: ''}}\n\
         early_commands: {{a: 'sleep 300 & echo $! > {d}/bg.pid; echo early done'}}\n\
         late_commands: {{b: 'echo late ran > {d}/late'}}\n"
    );
    let (o, log) = run(dir.path(), &cfg, &[], Duration::from_secs(60));
    let bg: i32 = std::fs::read_to_string(dir.path().join("bg.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: the background job our test's command started, by its pid.
    unsafe { libc::kill(bg, libc::SIGKILL) };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(log.contains("early done"), "{log}");
    assert!(
        dir.path().join("late").exists(),
        "the late stage did not run"
    );

    // A stage with a timeout stops its command (and its children); the log says it waited.
    let cfg = format!(
        "{QUIET}install: {{log_file: {d}/install.log, error_tarfile: '', command_timeout: {{late: 3}}}}\n\
         early_commands: {{a: 'sleep 1.6'}}\n\
         late_commands: {{b: 'sleep 300 & echo $! > {d}/slow.pid; wait'}}\n"
    );
    let (o, log) = run(
        dir.path(),
        &cfg,
        &[("DEPLOYER_WAIT_NOTICE_SECS", "0.5")],
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(
        err.contains("did not finish within 3s (install.command_timeout) and was stopped"),
        "{err}"
    );
    assert!(
        log.contains("deployer: still waiting for 'sleep 1.6' (pid "),
        "{log}"
    );
    let slow: i32 = std::fs::read_to_string(dir.path().join("slow.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stopped = gone_soon(slow);
    if !stopped {
        // SAFETY: the job our test's command started, by its pid.
        unsafe { libc::kill(slow, libc::SIGKILL) };
    }
    assert!(stopped, "the timed-out command's child still runs");
}

#[test]
fn a_chatty_hook_cannot_make_the_final_event_or_the_tarball_huge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let srv = Server::start();
    // 12 MiB of output, then a failure (so that the error tarball is written too).
    let cfg = format!(
        "{QUIET}{}install: {{log_file: {d}/install.log, error_tarfile: {d}/error.tar, post_files: [{d}/install.log, {d}/error.tar]}}\n\
         late_commands: {{a: 'head -c 12582912 /dev/zero | tr \"\\0\" x | fold -w 99; echo LAST-LINE; exit 1'}}\n",
        webhook_cfg(&srv)
    );
    let (o, log) = run(dir.path(), &cfg, &[], Duration::from_secs(120));
    assert_eq!(o.status.code(), Some(6));
    assert!(log.len() > 12 << 20, "the log on the machine stays whole");
    let events = srv.posted_json("/status");
    let last = events.last().unwrap();
    assert_eq!(last["name"], "cmd-install");
    assert_eq!(last["result"], "FAIL");
    let files = last["files"].as_array().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let posted = |name: &str| -> Vec<u8> {
        let f = files
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not posted: {files:?}"));
        b64.decode(f["content"].as_str().unwrap()).unwrap()
    };
    let posted_log = String::from_utf8(posted("install.log")).unwrap();
    assert!(posted_log.len() < (4 << 20) + 1024, "{}", posted_log.len());
    assert!(posted_log.starts_with("curtin: Installation started."));
    assert!(
        posted_log.contains("bytes of this log were cut here"),
        "no marker"
    );
    assert!(posted_log.contains("LAST-LINE"));
    assert!(
        posted_log.contains("curtin: Installation failed with exception"),
        "the end of the log is kept"
    );
    // The tarball, posted whole, holds a capped log.
    let tar_bytes = posted("error.tar");
    assert!(tar_bytes.len() < 4 << 20, "{}", tar_bytes.len());
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let mut found = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().ends_with("install.log") {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            assert!(s.contains("bytes of this log were cut here") && s.contains("LAST-LINE"));
            found = true;
        }
    }
    assert!(found, "no install.log in the tarball");
}

#[test]
fn sigterm_during_write_image_wipes_the_ends_and_exits_143() {
    require_root();
    let work = tempfile::tempdir_in(testkit::loopdev::scratch_root()).unwrap();
    testkit::fixtures::build_disk(work.path(), "disk.img", 24, "ext4");
    let image = work.path().join("disk.img");
    let disk = testkit::LoopDisk::new(48 << 20);
    let mib = 1usize << 20;
    // A bootable image on the disk first, so that a partial write would show.
    let o = testkit::deployer()
        .args(["write-image", image.to_str().unwrap()])
        .arg(&disk.dev)
        .arg("--no-grow")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let srv = Server::start();
    srv.serve_file("/disk.img", &image);
    // 8 MiB, then silence: the write is under way (ends wiped) when the signal comes.
    srv.fault(
        "/disk.img",
        testkit::Fault::StallAfter(8 << 20, Duration::from_secs(120)),
    );
    let mut child = testkit::deployer()
        .args(["write-image", &srv.url("/disk.img")])
        .arg(&disk.dev)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while disk.read_at(0, mib).iter().any(|&b| b != 0) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the write never began"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, err) = terminate(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(err.contains("interrupted by SIGTERM"), "{err}");
    assert!(disk.read_at(0, mib).iter().all(|&b| b == 0), "first MiB");
    let last = disk.read_at(disk.size() - mib as u64, mib);
    assert!(last.iter().all(|&b| b == 0), "last MiB");
}
